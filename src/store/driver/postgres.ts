/** The production driver: PostgreSQL through postgres.js, pooled. */
import { drizzle } from "drizzle-orm/postgres-js";
import { migrate } from "drizzle-orm/postgres-js/migrator";
import postgres from "postgres";
import type { Driver } from "./types.ts";

// Serializes migrations across processes that start at once against one database.
const MIGRATION_LOCK = 0x41_49_4f_53;

export const openPostgres = async (
  url: string,
  settings: Record<string, string> = {},
  max = 10,
): Promise<Driver> => {
  const sql = postgres(url, { max, onnotice: () => {}, connection: settings });
  return {
    kind: "postgres",
    async query<T>(text: string, params: unknown[]) {
      // `unsafe` only means "text not written as a template": the text is ours and every value is bound.
      return (await sql.unsafe(text, params as postgres.ParameterOrJSON<never>[])) as unknown as T[];
    },
    async migrate(migrationsFolder: string) {
      // The lock lives on its own connection so that a pool of any size is free for the migration.
      const lock = postgres(url, { max: 1, onnotice: () => {} });
      try {
        await lock`select pg_advisory_lock(${MIGRATION_LOCK})`;
        await migrate(drizzle({ client: sql }), { migrationsFolder });
      } finally {
        await lock.end({ timeout: 5 });
      }
    },
    async close() {
      await sql.end({ timeout: 5 });
    },
  };
};
