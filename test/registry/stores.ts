/**
 * The stores the registry suites run on (test/support/stores.ts). Each suite opens one store per kind
 * in beforeAll and empties the collections it uses.
 */
import { afterAll, beforeAll } from "bun:test";
import type { Hono } from "hono";
import { createRegistryApp } from "../../src/registry/app.ts";
import type { CollectionName, Store, StoreConfig } from "../../src/store/index.ts";
import { openStore } from "../../src/store/index.ts";

export { STORE_CONFIGS as STORE_KINDS } from "../support/stores.ts";

/** Opens a store and empties the given collections (tables on a shared Postgres may hold old rows). */
export const openCleanStore = async (config: StoreConfig, collections: CollectionName[]): Promise<Store> => {
  const store = await openStore(config);
  for (const name of collections) await store.collection(name).clear();
  return store;
};

/** JSON request helpers for `app.request`. */
export const json = (method: string, body: unknown, headers: Record<string, string> = {}): RequestInit => ({
  method,
  headers: { "content-type": "application/json", ...headers },
  body: typeof body === "string" ? body : JSON.stringify(body),
});

/**
 * For the enclosing describe block: a store on `config` with `collections` emptied, the registry app
 * over it (`seed` runs once against the app), closed afterwards.
 */
export const useRegistryApp = (
  config: StoreConfig,
  collections: CollectionName[],
  seed?: (app: Hono) => Promise<void>,
): { readonly store: Store; readonly app: Hono } => {
  let store: Store | undefined;
  let app: Hono | undefined;
  beforeAll(async () => {
    store = await openCleanStore(config, collections);
    app = createRegistryApp(store);
    await seed?.(app);
  });
  afterAll(async () => {
    await store?.close();
  });
  return {
    get store() {
      if (!store) throw new Error("the store is opened in beforeAll");
      return store;
    },
    get app() {
      if (!app) throw new Error("the app is created in beforeAll");
      return app;
    },
  };
};
