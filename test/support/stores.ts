/**
 * The storage backends a suite runs on: in-memory PGlite always, and the real PostgreSQL too when
 * DATABASE_URL is set (as .ci/run does when one is reachable), so both are checked in one run.
 */
import { afterAll, beforeAll, setDefaultTimeout } from "bun:test";
import {
  type CollectionName,
  type DocumentCollection,
  openStore,
  type Store,
  type StoreConfig,
} from "../../src/store/index.ts";

export interface Backend {
  name: string;
  open: () => Promise<Store>;
}

/** [name, configuration] of each backend, for `describe.each`. */
export const STORE_CONFIGS: [name: string, config: StoreConfig][] = [
  ["pglite", {}],
  ...(process.env.DATABASE_URL
    ? [["postgres", { databaseUrl: process.env.DATABASE_URL }] as [string, StoreConfig]]
    : []),
];

export const backends: Backend[] = STORE_CONFIGS.map(([name, config]) => ({
  name,
  open: () => openStore(config),
}));

/** The same backends with sequential scans off, so queries go through the GIN index where they can. */
export const indexedBackends: Backend[] = backends.map((b) => ({
  name: `${b.name} (GIN index forced)`,
  open: () =>
    openStore({
      databaseUrl: b.name === "postgres" ? process.env.DATABASE_URL : undefined,
      settings: { enable_seqscan: "off" },
    }),
}));

/**
 * Opens `backend` for the enclosing describe block with collection `name` emptied before and after
 * (a shared Postgres may hold rows from an earlier run); `seed` fills it once.
 */
export const useCollection = (
  backend: Backend,
  name: CollectionName,
  seed?: (col: DocumentCollection) => Promise<void>,
): { readonly col: DocumentCollection } => {
  let store: Store | undefined;
  let col: DocumentCollection | undefined;
  beforeAll(async () => {
    setDefaultTimeout(300_000);
    store = await backend.open();
    col = store.collection(name);
    await col.clear();
    await seed?.(col);
  });
  afterAll(async () => {
    await col?.clear();
    await store?.close();
  });
  return {
    get col() {
      if (!col) throw new Error("the collection is opened in beforeAll");
      return col;
    },
  };
};
