/**
 * The document store: one connection chosen from configuration (Postgres when a URL is given, else
 * PGlite on disk when a data directory is given, else PGlite in memory), migrated at open.
 */
import { fileURLToPath } from "node:url";
import { DocumentCollection } from "./collection.ts";
import { openPglite } from "./driver/pglite.ts";
import { openPostgres } from "./driver/postgres.ts";
import type { Driver } from "./driver/types.ts";
import { PolicyModuleTable } from "./modules.ts";
import { COLLECTION_NAMES, type CollectionName } from "./schema.ts";

export { type Doc, DocumentCollection, StoreError } from "./collection.ts";
export type { PolicyModuleRow, PolicyModuleTable } from "./modules.ts";
export { conditionsToFilter } from "./mongo/conditions.ts";
export { QueryError } from "./mongo/errors.ts";
export { isPlainObject } from "./mongo/filter.ts";
export type { CollectionName } from "./schema.ts";

export interface StoreConfig {
  dataDir?: string;
  databaseUrl?: string;
  /** Session settings for every connection (e.g. `enable_seqscan: "off"` in tests of index paths). */
  settings?: Record<string, string>;
}

export interface Store {
  readonly kind: Driver["kind"];
  collection(name: CollectionName): DocumentCollection;
  /** Policy module bytes (metadata is in the `policies` collection). */
  readonly policyModules: PolicyModuleTable;
  close(): Promise<void>;
}

const MIGRATIONS = fileURLToPath(new URL("../../migrations", import.meta.url));

/** The storage configuration a server verb gets from its flags and environment. */
export const storeConfigFrom = (flags: { dataDir?: string }, env = process.env): StoreConfig => ({
  dataDir: flags.dataDir,
  databaseUrl: env.DATABASE_URL || undefined,
});

/** Whether a service was handed an open store (shared) rather than the configuration to open one. */
export const isOpenStore = (s: StoreConfig | Store | undefined): s is Store =>
  s !== undefined && typeof (s as Store).collection === "function";

export const openStore = async (config: StoreConfig = {}): Promise<Store> => {
  const driver = config.databaseUrl
    ? await openPostgres(config.databaseUrl, config.settings)
    : await openPglite(config.dataDir, config.settings);
  await driver.migrate(MIGRATIONS);
  const collections = new Map(COLLECTION_NAMES.map((n) => [n, new DocumentCollection(driver, n)]));
  return {
    kind: driver.kind,
    collection: (name) => {
      const c = collections.get(name);
      if (!c) throw new Error(`unknown collection ${name}`);
      return c;
    },
    policyModules: new PolicyModuleTable(driver),
    close: () => driver.close(),
  };
};
