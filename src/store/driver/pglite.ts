/** The embedded driver: PGlite in memory, or on disk under a data directory. */
import { drizzle } from "drizzle-orm/pglite";
import { migrate } from "drizzle-orm/pglite/migrator";
import { createPglite } from "./pglite-template.ts";
import type { Driver } from "./types.ts";

export const openPglite = async (
  dataDir?: string,
  settings: Record<string, string> = {},
): Promise<Driver> => {
  const client = await createPglite(dataDir);
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
