/** `aios allocator`: the resource allocator WebSocket server over the registries' store. */

import { defaultWorkerCount } from "../allocator/pool.ts";
import { DEFAULT_LIMITS, type ProtocolLimits } from "../allocator/protocol.ts";
import { ALLOCATOR_PORT, MAX_MESSAGE_BYTES, startAllocator } from "../allocator/serve.ts";
import { bootstrapTokens, storeGuard } from "../auth/index.ts";
import { installBuiltinPolicies } from "../policy/builtins.ts";
import { PolicyStore } from "../policy/store.ts";
import { openStore, storeConfigFrom } from "../store/index.ts";
import {
  AUTH_FLAGS,
  AUTH_FLAGS_USAGE,
  authSettingsFrom,
  parseFlags,
  parsePort,
  stringFlag,
  UsageError,
  type Verb,
} from "./args.ts";
import { bootstrapFrom, serveService } from "./serve.ts";

const flags = {
  port: { type: "string" },
  host: { type: "string" },
  "data-dir": { type: "string" },
  workers: { type: "string" },
  "max-candidates": { type: "string" },
  "builtin-policies": { type: "boolean" },
  "message-rate": { type: "string" },
  "message-burst": { type: "string" },
  ...AUTH_FLAGS,
} as const;

const count = (raw: string | undefined, flag: string, min: number, max: number): number | undefined => {
  if (raw === undefined) return undefined;
  const n = Number(raw);
  if (!/^\d+$/.test(raw) || n < min || n > max) {
    throw new UsageError(`${flag} must be an integer from ${min} to ${max}, got ${JSON.stringify(raw)}`);
  }
  return n;
};

export const allocatorVerb: Verb = {
  name: "allocator",
  summary: "serve the resource allocator (WebSocket placement requests run by allocatorServer policies)",
  usage: `usage: aios allocator [--port P] [--host H] [--data-dir DIR] [--workers N] [--max-candidates N]
                      [--message-rate N] [--message-burst N] [--builtin-policies] [--anonymous]

Serves resource-allocator.md's WebSocket protocol: each message is a request {"adhoc": true,
"policy_rule_uri", "clusters" | "filter" | "search", "inputs", "parameters", "settings"}, answered on
the same socket, in order, by the policy's {"cluster_id", "node_id", "gpus"} or by
{"error": {"code", "message", "details"}}. Clusters, their global metrics and the policies are read
from the store the registry writes. Prints "listening allocator <url>" once ready; stops on SIGINT or
SIGTERM.

Connecting needs a token with the read level (admin, operator or internal), sent as
"Authorization: Bearer <token>" with the WebSocket upgrade (401/403 otherwise), unless --anonymous.
Tokens are looked up in the same store. A message may be at most ${MAX_MESSAGE_BYTES} bytes (a larger one
closes the socket with 1009); a connection sending more than --message-rate messages a second gets
rate_limited errors, and is closed with 1008 if it keeps on.

  --port P              default ${ALLOCATOR_PORT}; 0 picks a free port
  --host H              address to bind (default 127.0.0.1; 0.0.0.0 for every interface)
  --data-dir DIR        on-disk PGlite (DATABASE_URL selects PostgreSQL; neither: in memory)
  --workers N           policy worker threads (default ${defaultWorkerCount()} here; 0 runs policies inline)
  --max-candidates N    most clusters one request may put before its policy (default ${DEFAULT_LIMITS.maxCandidates})
  --message-rate N      messages a second one connection may send (default ${DEFAULT_LIMITS.messagesPerSecond})
  --message-burst N     messages one connection may send at once (default ${DEFAULT_LIMITS.messageBurst})
  --builtin-policies    store the built-in policies first (as \`aios up\` does)
${AUTH_FLAGS_USAGE}
  -h, --help            show this help`,
  async run(argv) {
    const { values } = parseFlags(argv, flags);
    if (values.help === true) {
      console.log(this.usage);
      return 0;
    }
    const port = parsePort(values.port, "--port", ALLOCATOR_PORT);
    const workers = count(stringFlag(values.workers), "--workers", 0, 64);
    const maxCandidates = count(stringFlag(values["max-candidates"]), "--max-candidates", 1, 9_999);
    const messagesPerSecond = count(stringFlag(values["message-rate"]), "--message-rate", 1, 1_000_000);
    const messageBurst = count(stringFlag(values["message-burst"]), "--message-burst", 1, 1_000_000);
    const limits: Partial<ProtocolLimits> = {
      ...(maxCandidates === undefined ? {} : { maxCandidates }),
      ...(messagesPerSecond === undefined ? {} : { messagesPerSecond }),
      ...(messageBurst === undefined ? {} : { messageBurst }),
    };
    const dataDir = stringFlag(values["data-dir"]);
    const auth = authSettingsFrom(values);
    return serveService("allocator", async () => {
      // Opened here so the guard can look tokens up in it; closed after the allocator stops.
      const store = await openStore(storeConfigFrom({ dataDir }));
      let started: Awaited<ReturnType<typeof startAllocator>>;
      try {
        await bootstrapTokens(store, bootstrapFrom(auth));
        started = await startAllocator({
          host: stringFlag(values.host) ?? "127.0.0.1",
          port,
          store,
          ...(workers === undefined ? {} : { workers }),
          ...(Object.keys(limits).length > 0 ? { limits } : {}),
          guard: storeGuard(store, { anonymous: auth.anonymous }),
        });
      } catch (err) {
        await store.close().catch(() => {});
        throw err;
      }
      const running = {
        ...started,
        async stop() {
          await started.stop();
          await store.close();
        },
      };
      try {
        if (values["builtin-policies"] === true) {
          const report = await installBuiltinPolicies(new PolicyStore(running.store));
          console.error(
            `aios allocator: built-in policies: ${report.installed.length} installed, ${report.unchanged.length} already stored`,
          );
        }
      } catch (err) {
        await running.stop();
        throw err;
      }
      return running;
    });
  },
};
