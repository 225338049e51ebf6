#!/usr/bin/env bun
/**
 * The `aios` command: `bun run src/cli/main.ts <verb> [flags]`. One module per verb; each answers
 * `--help`. A mistake on the command line prints the usage on stderr and exits with status 2.
 */
import { ServiceClientError } from "../http/client.ts";
import { allocatorVerb } from "./allocator.ts";
import { applyVerb } from "./apply.ts";
import { UsageError, type Verb } from "./args.ts";
import { auditVerb } from "./audit.ts";
import { blockRuntimeVerb } from "./block-runtime.ts";
import { controllerVerb } from "./controller.ts";
import { deleteVerb } from "./delete.ts";
import { gatewayVerb } from "./gateway.ts";
import { getVerb } from "./get.ts";
import { inferVerb } from "./infer.ts";
import { logsVerb } from "./logs.ts";
import { clientToken, tokenHint } from "./output.ts";
import { policyVerb } from "./policy.ts";
import { registryVerb } from "./registry.ts";
import { scaleVerb } from "./scale.ts";
import { tokenVerb } from "./token.ts";
import { upVerb } from "./up.ts";

/** Verbs that serve, then verbs that talk to a running system (through the gateway). */
const SERVER_VERBS: readonly Verb[] = [
  upVerb,
  registryVerb,
  gatewayVerb,
  controllerVerb,
  allocatorVerb,
  blockRuntimeVerb,
];
const CLIENT_VERBS: readonly Verb[] = [
  applyVerb,
  getVerb,
  inferVerb,
  scaleVerb,
  logsVerb,
  deleteVerb,
  policyVerb,
  tokenVerb,
  auditVerb,
];

export const VERBS: readonly Verb[] = [...SERVER_VERBS, ...CLIENT_VERBS];

const verbLines = (verbs: readonly Verb[]) => verbs.map((v) => `  ${v.name.padEnd(14)} ${v.summary}`);

export const usage = (): string =>
  [
    "usage: aios <verb> [flags]",
    "",
    "run the system:",
    ...verbLines(SERVER_VERBS),
    "",
    "use it (through the gateway: --gateway URL, default $AIOS_GATEWAY_URL or http://127.0.0.1:8080):",
    ...verbLines(CLIENT_VERBS),
    "",
    "Every call needs an API token: --token T (before or after the verb), else $AIOS_TOKEN, else the",
    "admin token aios up saved in $AIOS_DATA_DIR/admin-token (AIOS_DATA_DIR defaults to .data).",
    "Run `aios <verb> --help` for a verb's flags.",
  ].join("\n");

/** Runs the command line (without the runtime and script) and resolves to the exit status. */
export const main = async (argv: string[]): Promise<number> => {
  // `aios --token T <verb> ...` is `aios <verb> ... --token T`.
  const global: string[] = [];
  while (argv[0] === "--token" || argv[0]?.startsWith("--token=")) {
    const [flag, value] = argv[0] === "--token" ? argv.slice(0, 2) : [argv[0]];
    global.push(...(value === undefined ? [flag as string] : [flag as string, value]));
    argv = argv.slice(value === undefined ? 1 : 2);
  }
  const [name, ...verbArgs] = argv;
  const rest = [...verbArgs, ...global];
  if (name === undefined) {
    console.error(usage());
    return 2;
  }
  if (name === "--help" || name === "-h" || name === "help") {
    const verb = VERBS.find((v) => v.name === rest[0]);
    console.log(verb ? verb.usage : usage());
    return 0;
  }
  const verb = VERBS.find((v) => v.name === name);
  if (verb === undefined) {
    console.error(`aios: unknown verb '${name}'\n\n${usage()}`);
    return 2;
  }
  try {
    return await verb.run(rest);
  } catch (err) {
    if (err instanceof UsageError) {
      console.error(`aios ${verb.name}: ${err.message}\n\n${verb.usage}`);
      return 2;
    }
    let message = err instanceof Error ? err.message : String(err);
    // A 401 from a client that did not say already how to give a token (the registry's, for aios policy).
    if (err instanceof ServiceClientError && err.status === 401 && !message.includes("--token")) {
      message = `${message}\n${tokenHint(clientToken(undefined).source)}`;
    }
    console.error(`aios ${verb.name}: ${message}`);
    return 1;
  }
};

if (import.meta.main) {
  process.exit(await main(process.argv.slice(2)));
}
