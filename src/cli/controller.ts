/** `aios controller --cluster-id ID`: one cluster's controller on the process runtime. */
import { CONTROLLER_PORT, startController } from "../controller/serve.ts";
import { ServiceClientError } from "../http/client.ts";
import { storeConfigFrom } from "../store/index.ts";
import { parseFlags, parsePort, stringFlag, UsageError, type Verb } from "./args.ts";
import { serveService } from "./serve.ts";

const flags = {
  "cluster-id": { type: "string" },
  registry: { type: "string" },
  port: { type: "string" },
  host: { type: "string" },
  "data-dir": { type: "string" },
  "run-dir": { type: "string" },
} as const;

export const controllerVerb: Verb = {
  name: "controller",
  summary: "serve one cluster's controller (blocks, nodes, pre-checks, scanner, events)",
  usage: `usage: aios controller --cluster-id ID [--registry URL] [--port P] [--host H] [--data-dir DIR]

Serves the cluster controller API of cluster-controller.md (/executeAction, /blocks, /cluster-actions,
/vdag-controller, /healthy_nodes, /nodes_status, /check_stability, /mgmt, /events, and the public
gateway /block/{id}/...). Instances and block services run as local processes, tracked in the store,
so a restarted controller adopts what still runs. Registers the cluster document (with its urlMap) in
the registry. Prints "listening controller <url>" once ready; stops on SIGINT or SIGTERM (workloads
keep running).

  --cluster-id ID     the cluster (required)
  --registry URL      the registry (default $AIOS_REGISTRY_URL, else http://127.0.0.1:3000)
  --port P            default ${CONTROLLER_PORT}; 0 picks a free port
  --host H            address to bind (default 127.0.0.1)
  --data-dir DIR      on-disk PGlite for the blocks and runtime records (DATABASE_URL: PostgreSQL)
  --run-dir DIR       where workload logs go (default <data-dir>/runtime, else .data/runtime)
  -h, --help          show this help

REDIS_URL selects Redis Streams for block events; without it the queue is in-process.`,
  async run(argv) {
    const { values } = parseFlags(argv, flags);
    if (values.help === true) {
      console.log(this.usage);
      return 0;
    }
    const clusterId = stringFlag(values["cluster-id"]);
    if (!clusterId) throw new UsageError("--cluster-id is required");
    const dataDir = stringFlag(values["data-dir"]);
    const runDir = stringFlag(values["run-dir"]);
    return serveService(
      "controller",
      async () => {
        let running: Awaited<ReturnType<typeof startController>>;
        try {
          running = await startController({
            clusterId,
            host: stringFlag(values.host) ?? "127.0.0.1",
            port: parsePort(values.port, "--port", CONTROLLER_PORT),
            registryUrl:
              stringFlag(values.registry) ?? process.env.AIOS_REGISTRY_URL ?? "http://127.0.0.1:3000",
            store: storeConfigFrom(dataDir ? { dataDir } : {}),
            ...(runDir ? { runDir } : {}),
          });
        } catch (err) {
          // The registry's own words (unreachable, refused) without the client's class name.
          if (err instanceof ServiceClientError) throw new Error(err.message);
          throw err;
        }
        const { adopted, cleaned } = running.adopted;
        if (adopted.length + cleaned.length > 0) {
          console.error(
            `aios controller: adopted ${adopted.length} running workloads, cleaned ${cleaned.length}`,
          );
        }
        return running;
      },
      "stopping (workloads keep running)",
    );
  },
};
