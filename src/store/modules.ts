/**
 * Policy module bytes, content-addressed: `put` is idempotent, and `deleteUnreferenced` removes a
 * module only once no policy document names it, so concurrent uploads of the same bytes never race.
 */
import type { Driver } from "./driver/types.ts";

export interface PolicyModuleRow {
  sha256: string;
  original: Uint8Array;
  instrumented: Uint8Array;
}

export class PolicyModuleTable {
  constructor(private readonly driver: Driver) {}

  async put(row: PolicyModuleRow): Promise<void> {
    await this.driver.query(
      "INSERT INTO policy_modules (sha256, original, instrumented) VALUES ($1, $2, $3) ON CONFLICT (sha256) DO NOTHING",
      [row.sha256, row.original, row.instrumented],
    );
  }

  /** The bytes of one form of a module, or null when none is stored under the hash. */
  async get(sha256: string, form: "original" | "instrumented"): Promise<Uint8Array | null> {
    const column = form === "original" ? "original" : "instrumented";
    const rows = await this.driver.query<{ bytes: Uint8Array }>(
      `SELECT ${column} AS bytes FROM policy_modules WHERE sha256 = $1`,
      [sha256],
    );
    const bytes = rows[0]?.bytes;
    return bytes ? new Uint8Array(bytes) : null;
  }

  /** Removes the module unless a policy document still names it (`doc.module`). */
  async deleteUnreferenced(sha256: string): Promise<boolean> {
    const rows = await this.driver.query(
      `DELETE FROM policy_modules m WHERE m.sha256 = $1
         AND NOT EXISTS (SELECT 1 FROM policies p WHERE p.doc->>'module' = m.sha256) RETURNING m.sha256`,
      [sha256],
    );
    return rows.length > 0;
  }
}
