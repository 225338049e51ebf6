/** `aios gateway`: block creation across clusters (`/api/createBlock`). */

import { bootstrapTokens, storeGuard } from "../auth/index.ts";
import { GATEWAY_PORT, startGateway } from "../gateway/serve.ts";
import { openStore, storeConfigFrom } from "../store/index.ts";
import {
  AUTH_FLAGS,
  AUTH_FLAGS_USAGE,
  authSettingsFrom,
  parseFlags,
  parsePort,
  stringFlag,
  type Verb,
} from "./args.ts";
import { bootstrapFrom, serveService } from "./serve.ts";

const flags = {
  registry: { type: "string" },
  port: { type: "string" },
  host: { type: "string" },
  "data-dir": { type: "string" },
  ...AUTH_FLAGS,
} as const;

export const gatewayVerb: Verb = {
  name: "gateway",
  summary: "serve /api/createBlock: blocks placed across clusters",
  usage: `usage: aios gateway [--registry URL] [--port P] [--host H] [--data-dir DIR] [--anonymous]

Serves POST /api/createBlock (a block specification: its component from the registry, its cluster
chosen by the clusterAllocator policy and the candidate clusters' dry runs, run in parallel),
GET /api/blocks, GET /api/blocks/{id} (the creation record and its steps) and DELETE /api/blocks/{id},
the console API and the dashboard, and the tokens and audit log of its store (/api/tokens, /api/audit).
Every call needs a token (Authorization: Bearer) unless --anonymous. Prints "listening gateway <url>"
once ready; stops on SIGINT or SIGTERM.

  --registry URL      the registry (default $AIOS_REGISTRY_URL, else http://127.0.0.1:3000)
  --port P            default ${GATEWAY_PORT}; 0 picks a free port
  --host H            address to bind (default 127.0.0.1)
  --data-dir DIR      on-disk PGlite for the creation records and tokens (DATABASE_URL: PostgreSQL)
${AUTH_FLAGS_USAGE}
  -h, --help          show this help`,
  async run(argv) {
    const { values } = parseFlags(argv, flags);
    if (values.help === true) {
      console.log(this.usage);
      return 0;
    }
    const dataDir = stringFlag(values["data-dir"]);
    const host = stringFlag(values.host) ?? "127.0.0.1";
    const port = parsePort(values.port, "--port", GATEWAY_PORT);
    const auth = authSettingsFrom(values);
    return serveService("gateway", async () => {
      // The store is opened here so the guard looks tokens up in it.
      const store = await openStore(storeConfigFrom(dataDir ? { dataDir } : {}));
      try {
        // Tokens a deployment brings (its Secret): the service credential, AIOS_ADMIN_TOKEN.
        await bootstrapTokens(store, bootstrapFrom(auth));
        const gateway = await startGateway({
          host,
          port,
          registryUrl:
            stringFlag(values.registry) ?? process.env.AIOS_REGISTRY_URL ?? "http://127.0.0.1:3000",
          store,
          guard: storeGuard(store, auth),
        });
        return {
          listeners: gateway.listeners,
          stop: async () => {
            await gateway.stop();
            await store.close();
          },
        };
      } catch (err) {
        await store.close();
        throw err;
      }
    });
  },
};
