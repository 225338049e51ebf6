/** The production driver: PostgreSQL through postgres.js, pooled. */
import { drizzle } from "drizzle-orm/postgres-js";
import { migrate } from "drizzle-orm/postgres-js/migrator";
import postgres from "postgres";
import type { Driver } from "./types.ts";

// Serializes migrations across processes that start at once against one database.
const MIGRATION_LOCK = 0x41_49_4f_53;

export const openPostgres = async (url: string, max = 10): Promise<Driver> => {
  const sql = postgres(url, { max, onnotice: () => {} });
  return {
    kind: "postgres",
    async query<T>(text: string, params: unknown[]) {
      // `unsafe` only means "text not written as a template": the text is ours and every value is bound.
      return (await sql.unsafe(text, params as postgres.ParameterOrJSON<never>[])) as unknown as T[];
    },
    async migrate(migrationsFolder: string) {
      const conn = await sql.reserve();
      try {
        await conn`select pg_advisory_lock(${MIGRATION_LOCK})`;
        await migrate(drizzle({ client: sql }), { migrationsFolder });
      } finally {
        await conn`select pg_advisory_unlock(${MIGRATION_LOCK})`;
        conn.release();
      }
    },
    async close() {
      await sql.end({ timeout: 5 });
    },
  };
};
