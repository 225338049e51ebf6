/** The embedded driver: PGlite in memory, or on disk under a data directory. */
import { PGlite } from "@electric-sql/pglite";
import { drizzle } from "drizzle-orm/pglite";
import { migrate } from "drizzle-orm/pglite/migrator";
import type { Driver } from "./types.ts";

export const openPglite = async (
  dataDir?: string,
  settings: Record<string, string> = {},
): Promise<Driver> => {
  const client = await PGlite.create(dataDir ? { dataDir } : {});
  for (const [name, value] of Object.entries(settings)) {
    await client.query("SELECT set_config($1, $2, false)", [name, value]);
  }
  return {
    kind: dataDir ? "pglite-disk" : "pglite-memory",
    async query<T>(text: string, params: unknown[]) {
      const result = await client.query<T>(text, params);
      return result.rows;
    },
    async migrate(migrationsFolder: string) {
      await migrate(drizzle({ client }), { migrationsFolder });
    },
    async close() {
      await client.close();
    },
  };
};
