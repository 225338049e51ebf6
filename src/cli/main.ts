#!/usr/bin/env bun
/**
 * The `aios` command: `bun run src/cli/main.ts <verb> [flags]`. One module per verb; each answers
 * `--help`. A mistake on the command line prints the usage on stderr and exits with status 2.
 */
import { allocatorVerb } from "./allocator.ts";
import { applyVerb } from "./apply.ts";
import { UsageError, type Verb } from "./args.ts";
import { blockRuntimeVerb } from "./block-runtime.ts";
import { controllerVerb } from "./controller.ts";
import { deleteVerb } from "./delete.ts";
import { gatewayVerb } from "./gateway.ts";
import { getVerb } from "./get.ts";
import { inferVerb } from "./infer.ts";
import { logsVerb } from "./logs.ts";
import { policyVerb } from "./policy.ts";
import { registryVerb } from "./registry.ts";
import { scaleVerb } from "./scale.ts";
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
    "Run `aios <verb> --help` for a verb's flags.",
  ].join("\n");

/** Runs the command line (without the runtime and script) and resolves to the exit status. */
export const main = async (argv: string[]): Promise<number> => {
  const [name, ...rest] = argv;
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
    console.error(`aios ${verb.name}: ${err instanceof Error ? err.message : String(err)}`);
    return 1;
  }
};

if (import.meta.main) {
  process.exit(await main(process.argv.slice(2)));
}
