/**
 * `aios policy build|upload|list|test`: write, store and try WebAssembly policies.
 *   build  compiles an AssemblyScript policy with the aios SDK (wasm-policies/sdk) to .wasm
 *   upload stores a .wasm in the registry under a URI and kind
 *   list   the stored policies
 *   test   runs a stored policy (by URI) or a local .wasm through the same admission and runtime
 *          the services use, and prints its output and the call time
 */
import { readFile } from "node:fs/promises";
import { basename, relative, resolve } from "node:path";
import { compile, ROOT } from "../../wasm-policies/build.ts";
import { useServiceToken } from "../auth/index.ts";
import { SANDBOX_DEFAULTS } from "../policy/abi.ts";
import { isPolicyError } from "../policy/errors.ts";
import { isPolicyKindName, POLICY_KIND_NAMES, type PolicyKindName } from "../policy/kinds/index.ts";
import { compilePolicy, instantiatePolicy } from "../policy/runtime.ts";
import { AdmissionError, admitPolicyModule } from "../policy/wasm/admission.ts";
import { DEFAULT_REGISTRY_URL, RegistryClient } from "../registry/client.ts";
import { type FlagValue, parseFlags, stringFlag, UsageError, type Verb } from "./args.ts";
import { policiesTable } from "./get.ts";
import { clientToken } from "./output.ts";

const registryUrl = (flag: FlagValue) =>
  stringFlag(flag) ?? process.env.AIOS_REGISTRY_URL ?? DEFAULT_REGISTRY_URL;

/** The registry at `--registry`, called with the user's token (`--token`, AIOS_TOKEN or aios up's file). */
const registryClient = (values: Record<string, FlagValue>): RegistryClient => {
  const { token } = clientToken(values.token);
  // The CLI process's credential is the user's: the registry client presents it.
  if (token !== undefined) useServiceToken(token);
  return new RegistryClient(registryUrl(values.registry));
};

const TOKEN_USAGE = `  --token T          the API token (default $AIOS_TOKEN, else $AIOS_DATA_DIR/admin-token)`;

const kindFlag = (raw: FlagValue, required: boolean): PolicyKindName | undefined => {
  const kind = stringFlag(raw);
  if (kind === undefined) {
    if (required) throw new UsageError(`--kind is required (one of ${POLICY_KIND_NAMES.join(", ")})`);
    return undefined;
  }
  if (!isPolicyKindName(kind))
    throw new UsageError(`--kind must be one of ${POLICY_KIND_NAMES.join(", ")}, got '${kind}'`);
  return kind;
};

const positiveInt = (raw: FlagValue, flag: string): number | undefined => {
  const value = stringFlag(raw);
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value) || Number(value) <= 0)
    throw new UsageError(`${flag} must be a positive integer, got '${value}'`);
  return Number(value);
};

const readJsonFile = async (path: string, flag: string): Promise<unknown> => {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (err) {
    throw new UsageError(`${flag}: cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? err})`);
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new UsageError(`${flag}: ${path} is not valid JSON (${err instanceof Error ? err.message : err})`);
  }
};

/** Prints and answers exit status 0. */
const print = (text: string): number => {
  console.log(text);
  return 0;
};

const BUILD_USAGE = `usage: aios policy build <policy.ts> [-o out.wasm]

Compiles an AssemblyScript policy written with the aios SDK (import from "wasm-policies/sdk") into a
WebAssembly module the registry admits. The output defaults to the source's name with .wasm.`;

const UPLOAD_USAGE = `usage: aios policy upload <policy.wasm> --uri NAME:VERSION --kind KIND [flags]

  --uri U            the policy's URI, e.g. policy.loadBalancer.mine:v1 (versions are immutable)
  --kind K           ${POLICY_KIND_NAMES.join(" | ")}
  --description D    what it does
  --fuel N           fuel per call (default ${SANDBOX_DEFAULTS.fuel})
  --memory-bytes N   memory cap (default ${SANDBOX_DEFAULTS.memoryBytes})
  --registry URL     the registry (default $AIOS_REGISTRY_URL or ${DEFAULT_REGISTRY_URL})
${TOKEN_USAGE}`;

const LIST_USAGE = `usage: aios policy list [--kind K] [--json] [--registry URL] [--token T]

Lists the policies stored in the registry (aios get policies shows the same through the gateway).`;

const TEST_USAGE = `usage: aios policy test <uri | policy.wasm> --input in.json [flags]

Runs the policy's eval once (or --repeat N times) and prints the output and the call time.
  --input F          input_data as JSON; a file holding {"input_data": ...} may also give
                     "parameters" and "context"
  --kind K           the contract to check the output against (required for a .wasm file)
  --settings F       init settings as JSON (default {})
  --parameters F     parameters as JSON (default {})
  --repeat N         calls to time (default 1; prints the median)
  --fuel N, --memory-bytes N   sandbox limits for a .wasm file
  --registry URL     where to fetch a policy given by URI
${TOKEN_USAGE}`;

const build = async (argv: string[]): Promise<number> => {
  const { values, positionals } = parseFlags(argv, { out: { type: "string", short: "o" } }, true);
  if (values.help) return print(BUILD_USAGE);
  const [source] = positionals;
  if (!source) throw new UsageError("give the policy source file");
  const out = stringFlag(values.out) ?? `${source.replace(/\.ts$/, "")}.wasm`;
  const started = performance.now();
  // The compiler resolves paths from the repository root, where the SDK lives.
  await compile({
    name: basename(source),
    entry: relative(ROOT, resolve(source)),
    out: relative(ROOT, resolve(out)),
    sources: [],
  });
  const bytes = await readFile(out);
  // Admit it here too, so a module the registry would refuse fails now, not at upload.
  const admitted = admitPolicyModule(bytes);
  console.log(
    `built ${out} (${bytes.byteLength} bytes, exports ${admitted.exports.join(", ")}) in ${Math.round(performance.now() - started)} ms`,
  );
  return 0;
};

const upload = async (argv: string[]): Promise<number> => {
  const { values, positionals } = parseFlags(
    argv,
    {
      uri: { type: "string" },
      kind: { type: "string" },
      description: { type: "string" },
      fuel: { type: "string" },
      "memory-bytes": { type: "string" },
      registry: { type: "string" },
      token: { type: "string" },
    },
    true,
  );
  if (values.help) return print(UPLOAD_USAGE);
  const [file] = positionals;
  if (!file) throw new UsageError("give the .wasm file to upload");
  const uri = stringFlag(values.uri);
  if (!uri) throw new UsageError("--uri is required (name:version)");
  const kind = kindFlag(values.kind, true) as PolicyKindName;
  const bytes = new Uint8Array(await readFile(file));
  const client = registryClient(values);
  const { policy, created } = await client.uploadPolicy(uri, bytes, {
    kind,
    description: stringFlag(values.description),
    fuel: positiveInt(values.fuel, "--fuel"),
    memoryBytes: positiveInt(values["memory-bytes"], "--memory-bytes"),
  });
  console.log(
    `${created ? "uploaded" : "unchanged (same bytes already stored)"} ${policy.uri} (${policy.kind}, sha256 ${policy.sha256.slice(0, 12)})`,
  );
  return 0;
};

const list = async (argv: string[]): Promise<number> => {
  const { values } = parseFlags(argv, {
    kind: { type: "string" },
    json: { type: "boolean" },
    registry: { type: "string" },
    token: { type: "string" },
  });
  if (values.help) return print(LIST_USAGE);
  const policies = await registryClient(values).listPolicies(kindFlag(values.kind, false));
  if (values.json) return print(JSON.stringify(policies, null, 2));
  // The same table as `aios get policies`, which reads them through the gateway.
  return print(policiesTable(policies));
};

const test = async (argv: string[]): Promise<number> => {
  const { values, positionals } = parseFlags(
    argv,
    {
      input: { type: "string" },
      kind: { type: "string" },
      settings: { type: "string" },
      parameters: { type: "string" },
      repeat: { type: "string" },
      fuel: { type: "string" },
      "memory-bytes": { type: "string" },
      registry: { type: "string" },
      token: { type: "string" },
    },
    true,
  );
  if (values.help) return print(TEST_USAGE);
  const [target] = positionals;
  if (!target) throw new UsageError("give a policy URI or a .wasm file");
  const inputPath = stringFlag(values.input);
  if (!inputPath) throw new UsageError("--input is required");
  const input = await readJsonFile(inputPath, "--input");
  const full = typeof input === "object" && input !== null && "input_data" in input;
  const {
    input_data,
    parameters: fileParameters,
    context,
  } = (full ? input : { input_data: input }) as {
    input_data: unknown;
    parameters?: Record<string, unknown>;
    context?: Record<string, unknown>;
  };
  const settingsPath = stringFlag(values.settings);
  const parametersPath = stringFlag(values.parameters);
  const settings = settingsPath
    ? ((await readJsonFile(settingsPath, "--settings")) as Record<string, unknown>)
    : {};
  const parameters = parametersPath
    ? ((await readJsonFile(parametersPath, "--parameters")) as Record<string, unknown>)
    : (fileParameters ?? {});
  const repeat = positiveInt(values.repeat, "--repeat") ?? 1;

  let compiled: Awaited<ReturnType<typeof compilePolicy>>;
  if (target.endsWith(".wasm")) {
    const kind = kindFlag(values.kind, true) as PolicyKindName;
    const fuel = positiveInt(values.fuel, "--fuel");
    const memoryBytes = positiveInt(values["memory-bytes"], "--memory-bytes");
    const admitted = admitPolicyModule(new Uint8Array(await readFile(target)), { fuel, memoryBytes });
    compiled = await compilePolicy(admitted.instrumented, {
      uri: target,
      kind,
      limits: { fuel, memoryBytes },
    });
  } else {
    const stored = await registryClient(values).compiledPolicy(target);
    const kind = kindFlag(values.kind, false);
    compiled = kind ? { ...stored, kind } : stored;
  }
  const instance = await instantiatePolicy(compiled, { ruleId: "aios-policy-test", settings, parameters });
  const times: number[] = [];
  let output: unknown;
  for (let i = 0; i < repeat; i++) {
    const started = performance.now();
    output = await instance.eval(input_data, { context });
    times.push((performance.now() - started) * 1000);
  }
  await instance.close();
  times.sort((a, b) => a - b);
  console.log(JSON.stringify(output, null, 2));
  const median = times[Math.floor(times.length / 2)] ?? 0;
  console.error(
    `${compiled.uri}: ${repeat === 1 ? "call" : `median of ${repeat} calls`} ${median.toFixed(1)} µs`,
  );
  return 0;
};

const SUBCOMMANDS: Record<string, (argv: string[]) => Promise<number>> = { build, upload, list, test };

export const policyVerb: Verb = {
  name: "policy",
  summary: "build, upload, list and test WebAssembly policies",
  usage: `usage: aios policy <build|upload|list|test> [flags]

${BUILD_USAGE}

${UPLOAD_USAGE}

${LIST_USAGE}

${TEST_USAGE}`,
  async run(argv) {
    const [sub, ...rest] = argv;
    if (sub === undefined || sub === "--help" || sub === "-h") {
      console.log(this.usage);
      return sub === undefined ? 2 : 0;
    }
    const run = SUBCOMMANDS[sub];
    if (!run) throw new UsageError(`unknown subcommand '${sub}' (build, upload, list, test)`);
    try {
      return await run(rest);
    } catch (err) {
      // Policy and admission failures are the user's to fix: say what, without a stack.
      if (isPolicyError(err) || err instanceof AdmissionError) {
        console.error(`aios policy ${sub}: ${err.message}`);
        return 1;
      }
      throw err;
    }
  },
};
