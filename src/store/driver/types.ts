/** What the store needs from a database connection: parameterized queries and migrations. */
export interface Driver {
  readonly kind: "pglite-memory" | "pglite-disk" | "postgres";
  query<T = Record<string, unknown>>(text: string, params: unknown[]): Promise<T[]>;
  migrate(migrationsFolder: string): Promise<void>;
  close(): Promise<void>;
}
