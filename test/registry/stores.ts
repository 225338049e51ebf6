/**
 * The stores the registry suites run on (test/support/stores.ts). Each suite opens one store per kind
 * in beforeAll and empties the collections it uses.
 */
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
