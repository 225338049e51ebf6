/**
 * A collection of JSON documents in one table, queried and updated with MongoDB syntax.
 * The SQL comes from the pure translation in ./mongo; this module only runs it and maps errors.
 */

import type { Driver } from "./driver/types.ts";
import { QueryError } from "./mongo/errors.ts";
import { compileFilter, isPlainObject, render } from "./mongo/filter.ts";
import { applyProjection, parseOptions, projectionSql, sortSql } from "./mongo/options.ts";
import { ident, SqlParams } from "./mongo/sql.ts";
import { compileUpdate, type UpdateOptions } from "./mongo/update.ts";
import type { CollectionName } from "./schema.ts";

export type Doc = Record<string, unknown> & { id: string };

export class StoreError extends Error {
  readonly status: 400 | 404 | 409;
  readonly code: string;

  constructor(status: 400 | 404 | 409, code: string, message: string) {
    super(message);
    this.name = "StoreError";
    this.status = status;
    this.code = code;
  }
}

/** Database errors that mean the caller's input was wrong (data exceptions, limits) become 400s. */
const mapError = (e: unknown): never => {
  const code = (e as { code?: unknown }).code;
  if (typeof code === "string" && (code.startsWith("22") || code.startsWith("54") || code === "2201B")) {
    throw new QueryError("bad_input", (e as Error).message);
  }
  throw e;
};

const IMMUTABLE = ["id"];
const MAX_ATTEMPTS = 5;

export class DocumentCollection {
  private readonly table: string;

  constructor(
    private readonly driver: Driver,
    readonly name: CollectionName,
  ) {
    this.table = ident(name);
  }

  /**
   * Runs one statement. Every statement here stands alone (autocommit), so one that lost a deadlock or
   * a serialization race (two updateMany over overlapping rows) is simply run again.
   */
  private async run<T>(text: string, params: unknown[]): Promise<T[]> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.driver.query<T>(text, params);
      } catch (e) {
        const code = (e as { code?: unknown }).code;
        if ((code === "40P01" || code === "40001") && attempt < MAX_ATTEMPTS) continue;
        return mapError(e);
      }
    }
  }

  private checkDoc(doc: unknown): Doc {
    if (!isPlainObject(doc)) throw new QueryError("bad_document", "a document must be a JSON object");
    if (typeof doc.id !== "string" || doc.id.length === 0)
      throw new QueryError("bad_document", "a document needs a non-empty string id", "id");
    return doc as Doc;
  }

  /** Inserts a new document; 409 when its id is taken. */
  async insert(doc: Doc): Promise<Doc> {
    const d = this.checkDoc(doc);
    const rows = await this.run<{ doc: Doc }>(
      `INSERT INTO ${this.table} (id, doc) VALUES ($1, $2::jsonb) ON CONFLICT (id) DO NOTHING RETURNING doc`,
      [d.id, JSON.stringify(d)],
    );
    if (rows.length === 0) throw new StoreError(409, "conflict", `${this.name}: '${d.id}' already exists`);
    return rows[0]!.doc;
  }

  /** Inserts or replaces the whole document. */
  async upsert(id: string, doc: Doc): Promise<Doc> {
    const d = this.checkDoc({ ...doc, id });
    const rows = await this.run<{ doc: Doc }>(
      `INSERT INTO ${this.table} AS t (id, doc) VALUES ($1, $2::jsonb)
       ON CONFLICT (id) DO UPDATE SET doc = excluded.doc, version = t.version + 1, updated_at = now()
       RETURNING doc`,
      [id, JSON.stringify(d)],
    );
    return rows[0]!.doc;
  }

  async get(id: string): Promise<Doc | null> {
    const rows = await this.run<{ doc: Doc }>(`SELECT doc FROM ${this.table} WHERE id = $1`, [id]);
    return rows[0]?.doc ?? null;
  }

  /** Documents matching a MongoDB filter, with sort/limit/skip/projection options. */
  async find(filter: unknown, options?: unknown): Promise<Doc[]> {
    const opts = parseOptions(options);
    const p = new SqlParams();
    const fields = projectionSql(opts.projection, "doc", p);
    const where = render(compileFilter(filter), "doc", p);
    // The sort reads the stored document (qualified), not the projected output column.
    let text = `SELECT ${fields} AS doc FROM ${this.table} WHERE ${where}${sortSql(opts.sort, `${this.table}.doc`, p)}`;
    if (opts.limit) text += ` LIMIT ${p.param(opts.limit, "int")}`; // 0 means no limit, as in MongoDB
    if (opts.skip !== undefined) text += ` OFFSET ${p.param(opts.skip, "int")}`;
    const rows = await this.run<{ doc: Doc }>(text, p.values);
    return opts.projection
      ? rows.map((r) => applyProjection(r.doc, opts.projection) as Doc)
      : rows.map((r) => r.doc);
  }

  async count(filter: unknown): Promise<number> {
    const p = new SqlParams();
    const where = render(compileFilter(filter), "doc", p);
    const rows = await this.run<{ n: number | string }>(
      `SELECT count(*)::int AS n FROM ${this.table} WHERE ${where}`,
      p.values,
    );
    return Number(rows[0]?.n ?? 0);
  }

  /**
   * Applies a MongoDB update atomically; null when there is no such document. `options.immutable`
   * adds top-level fields that may not change to the always-protected `id`.
   */
  async update(id: string, update: unknown, options: UpdateOptions = {}): Promise<Doc | null> {
    const p = new SqlParams();
    const idParam = p.param(id);
    const immutable = [...IMMUTABLE, ...(options.immutable ?? [])];
    const next = compileUpdate(update, `${this.table}.doc`, p, { immutable });
    const rows = await this.run<{ doc: Doc }>(
      `UPDATE ${this.table} SET doc = ${next}, version = version + 1, updated_at = now() WHERE id = ${idParam} RETURNING doc`,
      p.values,
    );
    return rows[0]?.doc ?? null;
  }

  /** Applies a MongoDB update to every matching document; returns how many changed. */
  async updateMany(filter: unknown, update: unknown): Promise<number> {
    const p = new SqlParams();
    const where = render(compileFilter(filter), `${this.table}.doc`, p);
    const next = compileUpdate(update, `${this.table}.doc`, p, { immutable: IMMUTABLE });
    const rows = await this.run<{ id: string }>(
      `UPDATE ${this.table} SET doc = ${next}, version = version + 1, updated_at = now() WHERE ${where} RETURNING id`,
      p.values,
    );
    return rows.length;
  }

  async delete(id: string): Promise<boolean> {
    const rows = await this.run<{ id: string }>(`DELETE FROM ${this.table} WHERE id = $1 RETURNING id`, [id]);
    return rows.length > 0;
  }

  /** Removes every document (tests and resets). */
  async clear(): Promise<void> {
    await this.run(`DELETE FROM ${this.table}`, []);
  }
}
