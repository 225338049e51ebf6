/**
 * `aios block-runtime --block-id ID`: hosts one block's executor (gRPC inference, metrics, /mgmt),
 * mapper, auto-scaler and health checker in this process (src/block/serve.ts).
 */
import { readFileSync } from "node:fs";
import { workloadGuard } from "../auth/index.ts";
import { type InstanceRef, readInstanceList } from "../block/mapper.ts";
import { BLOCK_PORTS, type BlockPortName, startBlockRuntime } from "../block/serve.ts";
import { ApiError } from "../http/errors.ts";
import {
  AUTH_FLAGS,
  AUTH_FLAGS_USAGE,
  authSettingsFrom,
  type FlagValue,
  parseFlags,
  parsePort,
  stringFlag,
  UsageError,
  type Verb,
} from "./args.ts";
import { serveService } from "./serve.ts";

const PORT_FLAGS: Record<BlockPortName, string> = {
  grpc: "port",
  metrics: "metrics-port",
  executor: "mgmt-port",
  mapper: "mapper-port",
  autoscaler: "autoscaler-port",
  health: "health-port",
};

const flags = {
  "block-id": { type: "string" },
  block: { type: "string" },
  instance: { type: "string", multiple: true },
  "instances-url": { type: "string" },
  controller: { type: "string" },
  registry: { type: "string" },
  "cluster-id": { type: "string" },
  host: { type: "string" },
  ...AUTH_FLAGS,
  ...Object.fromEntries(Object.values(PORT_FLAGS).map((f) => [f, { type: "string" }])),
} as const;

/** `--instance id=url`, repeatable. */
const parseInstances = (raw: FlagValue): InstanceRef[] => {
  const list = Array.isArray(raw) ? raw : typeof raw === "string" ? [raw] : [];
  const refs = list.map((entry) => {
    const at = entry.indexOf("=");
    if (at <= 0) throw new UsageError(`--instance must be ID=URL, got ${JSON.stringify(entry)}`);
    return { id: entry.slice(0, at), url: entry.slice(at + 1) };
  });
  try {
    return readInstanceList(refs, "--instance");
  } catch (err) {
    throw new UsageError(err instanceof Error ? err.message : String(err));
  }
};

/** `--block FILE` or `--block '{"json": ...}'`. */
const readBlock = (raw: string | undefined): unknown => {
  if (raw === undefined) return undefined;
  const text = raw.trimStart().startsWith("{") ? raw : readFileSync(raw, "utf8");
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new UsageError(`--block: not valid JSON (${err instanceof Error ? err.message : String(err)})`);
  }
};

export const blockRuntimeVerb: Verb = {
  name: "block-runtime",
  summary: "host one block's executor, mapper, auto-scaler and health checker",
  usage: `usage: aios block-runtime --block-id ID [--block FILE|JSON] [--instance ID=URL ...] [flags]

Serves the block's gRPC inference API (InferenceProxy.infer), executor metrics and /mgmt, the
mapper's instance API, and the auto-scaler's and health checker's /mgmt. Prints one
"listening <name> <url>" line per listener (grpc, metrics, executor, mapper, autoscaler,
health-checker); stops on SIGINT or SIGTERM.

Every listener checks the caller's token (gRPC: the "authorization: Bearer <token>" metadata;
inference needs infer:<block id>, infer:*, operator or admin): this service's own token is known,
others are checked at the controller (GET /auth/whoami, cached 5 s). Without --controller only the
own token is accepted, unless --anonymous.

  --block-id ID          the block (required)
  --block FILE|JSON      the block document: policies.{loadBalancer,autoscaler,stabilityChecker},
                         minInstances, maxInstances; default: GET /blocks/ID from --controller
  --instance ID=URL      an instance serving the task protocol (repeatable)
  --instances-url URL    a URL the mapper polls for the instance list ({"instances": [...]})
  --controller URL       the cluster controller (scale and remove_instance actions);
                         default $AIOS_CONTROLLER_URL
  --registry URL         where the block's policies are loaded from; default $AIOS_REGISTRY_URL,
                         else http://127.0.0.1:3000 when the block names policies
  --cluster-id ID        the cluster, for the policies' cluster_data and cluster metrics
  --host H               address to bind (default 127.0.0.1; 0.0.0.0 for every interface)
  --port P               gRPC inference (default ${BLOCK_PORTS.grpc})
  --metrics-port P       executor metrics (default ${BLOCK_PORTS.metrics})
  --mgmt-port P          executor management (default ${BLOCK_PORTS.executor})
  --mapper-port P        mapper (default ${BLOCK_PORTS.mapper})
  --autoscaler-port P    auto-scaler management (default ${BLOCK_PORTS.autoscaler})
  --health-port P        health-checker management (default ${BLOCK_PORTS.health})
${AUTH_FLAGS_USAGE}
  -h, --help             show this help

0 for a port picks a free one.`,
  async run(argv) {
    const { values } = parseFlags(argv, flags);
    if (values.help === true) {
      console.log(this.usage);
      return 0;
    }
    const blockId = stringFlag(values["block-id"]);
    if (!blockId) throw new UsageError("--block-id is required");
    const ports = Object.fromEntries(
      Object.entries(PORT_FLAGS).map(([name, flag]) => [
        name,
        parsePort(values[flag], `--${flag}`, BLOCK_PORTS[name as BlockPortName]),
      ]),
    ) as Record<BlockPortName, number>;
    const block = readBlock(stringFlag(values.block));
    const controllerUrl = stringFlag(values.controller) ?? process.env.AIOS_CONTROLLER_URL;
    const registryUrl =
      stringFlag(values.registry) ?? process.env.AIOS_REGISTRY_URL ?? "http://127.0.0.1:3000";
    const clusterId = stringFlag(values["cluster-id"]);
    const instancesUrl = stringFlag(values["instances-url"]);
    const instances = parseInstances(values.instance);
    const auth = authSettingsFrom(values);
    if (auth.token === undefined && !controllerUrl && auth.anonymous !== true) {
      throw new UsageError(
        "no way to check a caller's token: give --token (or AIOS_TOKEN), --controller (or AIOS_CONTROLLER_URL), or --anonymous (or AIOS_ANONYMOUS=1) for local development",
      );
    }
    const guard = workloadGuard({
      token: auth.token,
      verifyUrl: controllerUrl || undefined,
      anonymous: auth.anonymous === true,
    });
    return serveService("block-runtime", async () => {
      try {
        return await startBlockRuntime({
          blockId,
          block,
          host: stringFlag(values.host) ?? "127.0.0.1",
          ports,
          instances,
          registryUrl,
          guard,
          ...(instancesUrl ? { instancesUrl } : {}),
          ...(controllerUrl ? { controllerUrl } : {}),
          ...(clusterId ? { clusterId } : {}),
        });
      } catch (err) {
        if (err instanceof ApiError) throw new UsageError(err.message);
        throw err;
      }
    });
  },
};
