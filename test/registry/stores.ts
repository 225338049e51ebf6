/**
 * The stores the registry suites run on: in-memory PGlite always, and PostgreSQL too when DATABASE_URL
 * is set. Each suite opens one store per kind in beforeAll and empties the collections it uses.
 */
import type { CollectionName, Store, StoreConfig } from "../../src/store/index.ts";
import { openStore } from "../../src/store/index.ts";

export const STORE_KINDS: [name: string, config: StoreConfig][] = [
  ["pglite-memory", {}],
  ...(process.env.DATABASE_URL
    ? [["postgres", { databaseUrl: process.env.DATABASE_URL }] as [string, StoreConfig]]
    : []),
];

/** Opens a store and empties the given collections (tables on a shared Postgres may hold old rows). */
export const openCleanStore = async (config: StoreConfig, collections: CollectionName[]): Promise<Store> => {
  const store = await openStore(config);
  for (const name of collections) {
    const collection = store.collection(name);
    for (const doc of await collection.find({})) await collection.delete(doc.id);
  }
  return store;
};

/** JSON request helpers for `app.request`. */
export const json = (method: string, body: unknown, headers: Record<string, string> = {}): RequestInit => ({
  method,
  headers: { "content-type": "application/json", ...headers },
  body: typeof body === "string" ? body : JSON.stringify(body),
});
