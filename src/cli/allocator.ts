/** `aios allocator`: the resource allocator WebSocket server over the registries' store. */

import { defaultWorkerCount } from "../allocator/pool.ts";
import { DEFAULT_LIMITS } from "../allocator/protocol.ts";
import { ALLOCATOR_PORT, startAllocator } from "../allocator/serve.ts";
import { installBuiltinPolicies } from "../policy/builtins.ts";
import { PolicyStore } from "../policy/store.ts";
import { storeConfigFrom } from "../store/index.ts";
import { parseFlags, parsePort, stringFlag, UsageError, type Verb } from "./args.ts";
import { serveService } from "./serve.ts";

const flags = {
  port: { type: "string" },
  host: { type: "string" },
  "data-dir": { type: "string" },
  workers: { type: "string" },
  "max-candidates": { type: "string" },
  "builtin-policies": { type: "boolean" },
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
                      [--builtin-policies]

Serves resource-allocator.md's WebSocket protocol: each message is a request {"adhoc": true,
"policy_rule_uri", "clusters" | "filter" | "search", "inputs", "parameters", "settings"}, answered on
the same socket, in order, by the policy's {"cluster_id", "node_id", "gpus"} or by
{"error": {"code", "message", "details"}}. Clusters, their global metrics and the policies are read
from the store the registry writes. Prints "listening allocator <url>" once ready; stops on SIGINT or
SIGTERM.

  --port P              default ${ALLOCATOR_PORT}; 0 picks a free port
  --host H              address to bind (default 127.0.0.1; 0.0.0.0 for every interface)
  --data-dir DIR        on-disk PGlite (DATABASE_URL selects PostgreSQL; neither: in memory)
  --workers N           policy worker threads (default ${defaultWorkerCount()} here; 0 runs policies inline)
  --max-candidates N    most clusters one request may put before its policy (default ${DEFAULT_LIMITS.maxCandidates})
  --builtin-policies    store the built-in policies first (as \`aios up\` does)
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
    const dataDir = stringFlag(values["data-dir"]);
    return serveService("allocator", async () => {
      const running = await startAllocator({
        host: stringFlag(values.host) ?? "127.0.0.1",
        port,
        store: storeConfigFrom({ dataDir }),
        ...(workers === undefined ? {} : { workers }),
        ...(maxCandidates === undefined ? {} : { limits: { maxCandidates } }),
      });
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
