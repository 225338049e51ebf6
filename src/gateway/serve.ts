/** `startGateway`: the gateway API over a store (for creation records) and the registry. */
import { AuditLog, type Guard, TokenStore } from "../auth/index.ts";
import { displayHost, type Listener } from "../http/listen.ts";
import { type PolicyResolver, PolicySet } from "../policy/set.ts";
import { RegistryClient } from "../registry/client.ts";
import { isOpenStore, openStore, type Store, type StoreConfig } from "../store/index.ts";
import { createGatewayApp } from "./app.ts";

export const GATEWAY_PORT = 8080;

export interface GatewayOptions {
  host?: string;
  port?: number;
  registryUrl: string;
  /** Where creation records are kept; an open store (shared with the registry in `aios up`) or a config. */
  store?: Store | StoreConfig;
  dryRunTimeoutMs?: number;
  sequentialDryRuns?: boolean;
  resolvePolicy?: PolicyResolver;
  /**
   * Who may call; default Guard.open() (no tokens). The `aios` verbs pass storeGuard on the same store,
   * whose tokens `/api/tokens` manages and whose audit log `/api/audit` reads.
   */
  guard?: Guard;
}

export interface RunningGateway {
  url: string;
  listeners: Listener[];
  stop(): Promise<void>;
}

export const startGateway = async (options: GatewayOptions): Promise<RunningGateway> => {
  const ownStore = !isOpenStore(options.store);
  const store = isOpenStore(options.store) ? options.store : await openStore(options.store ?? {});
  const registry = new RegistryClient(options.registryUrl);
  const policies = new PolicySet(options.resolvePolicy ?? ((uri) => registry.compiledPolicy(uri)));
  const host = options.host ?? "127.0.0.1";
  const app = createGatewayApp({
    registry,
    policies,
    creations: store.collection("block_creations"),
    tokens: new TokenStore(store),
    audit: new AuditLog(store),
    ...(options.guard ? { guard: options.guard } : {}),
    ...(options.dryRunTimeoutMs !== undefined ? { dryRunTimeoutMs: options.dryRunTimeoutMs } : {}),
    ...(options.sequentialDryRuns !== undefined ? { sequentialDryRuns: options.sequentialDryRuns } : {}),
  });
  const server = Bun.serve({
    hostname: host,
    port: options.port ?? GATEWAY_PORT,
    fetch: app.fetch,
    idleTimeout: 0,
  });
  const url = `http://${displayHost(host)}:${server.port}`;
  return {
    url,
    listeners: [{ name: "gateway", url }],
    async stop() {
      await server.stop(true);
      await policies.close();
      if (ownStore) await store.close();
    },
  };
};
