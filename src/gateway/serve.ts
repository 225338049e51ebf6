/** `startGateway`: the gateway API over a store (for creation records) and the registry. */
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
