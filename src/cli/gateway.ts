/** `aios gateway`: block creation across clusters (`/api/createBlock`). */
import { GATEWAY_PORT, startGateway } from "../gateway/serve.ts";
import { storeConfigFrom } from "../store/index.ts";
import { parseFlags, parsePort, stringFlag, type Verb } from "./args.ts";
import { serveService } from "./serve.ts";

const flags = {
  registry: { type: "string" },
  port: { type: "string" },
  host: { type: "string" },
  "data-dir": { type: "string" },
} as const;

export const gatewayVerb: Verb = {
  name: "gateway",
  summary: "serve /api/createBlock: blocks placed across clusters",
  usage: `usage: aios gateway [--registry URL] [--port P] [--host H] [--data-dir DIR]

Serves POST /api/createBlock (a block specification: its component from the registry, its cluster
chosen by the clusterAllocator policy and the candidate clusters' dry runs, run in parallel),
GET /api/blocks, GET /api/blocks/{id} (the creation record and its steps) and DELETE /api/blocks/{id}.
Prints "listening gateway <url>" once ready; stops on SIGINT or SIGTERM.

  --registry URL      the registry (default $AIOS_REGISTRY_URL, else http://127.0.0.1:3000)
  --port P            default ${GATEWAY_PORT}; 0 picks a free port
  --host H            address to bind (default 127.0.0.1)
  --data-dir DIR      on-disk PGlite for the creation records (DATABASE_URL: PostgreSQL)
  -h, --help          show this help`,
  async run(argv) {
    const { values } = parseFlags(argv, flags);
    if (values.help === true) {
      console.log(this.usage);
      return 0;
    }
    const dataDir = stringFlag(values["data-dir"]);
    return serveService("gateway", () =>
      startGateway({
        host: stringFlag(values.host) ?? "127.0.0.1",
        port: parsePort(values.port, "--port", GATEWAY_PORT),
        registryUrl: stringFlag(values.registry) ?? process.env.AIOS_REGISTRY_URL ?? "http://127.0.0.1:3000",
        store: storeConfigFrom(dataDir ? { dataDir } : {}),
      }),
    );
  },
};
