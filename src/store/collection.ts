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
import { type CollectionName, SEARCH_CONFIG, SEARCHABLE_COLLECTIONS } from "./schema.ts";

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

  /**
   * The documents with these ids that match `filter` (all when none), in the order of `ids`, at most
   * `limit` of them; ids without a document are left out. One statement however many ids (a `$in` of
   * thousands of ids would be a jsonpath as long).
   */
  async getMany(ids: readonly string[], options: { filter?: unknown; limit?: number } = {}): Promise<Doc[]> {
    if (ids.length === 0) return [];
    const p = new SqlParams();
    const list = p.param(ids, "text[]");
    const where = render(compileFilter(options.filter), `${this.table}.doc`, p);
    let text = `SELECT ${this.table}.doc FROM unnest(${list}) WITH ORDINALITY AS wanted(id, n)
      JOIN ${this.table} ON ${this.table}.id = wanted.id WHERE ${where} ORDER BY wanted.n`;
    if (options.limit) text += ` LIMIT ${p.param(options.limit, "int")}`;
    const rows = await this.run<{ doc: Doc }>(text, p.values);
    return rows.map((r) => r.doc);
  }

  /**
   * Full-text search over the string values of the documents (collections with a `search_vector`):
   * the documents containing any word of `text`, best first by `ts_rank` (ties by id). Words are
   * stemmed and stop words dropped as for the stored vectors, so "GPUs serving vision models" finds
   * "gpu", "serve", "vision", "model"; the more of them a document holds, the higher it ranks.
   */
  async search(
    text: string,
    options: { limit?: number; filter?: unknown } = {},
  ): Promise<{ doc: Doc; rank: number }[]> {
    if (!SEARCHABLE_COLLECTIONS.includes(this.name)) {
      throw new Error(`collection ${this.name} has no search vector`);
    }
    const p = new SqlParams();
    const config = `'${SEARCH_CONFIG}'::regconfig`;
    // plainto_tsquery ANDs the words; a similarity search wants any of them, ranked by how many match.
    const query = `(SELECT replace(plainto_tsquery(${config}, ${p.param(text, "text")})::text, ' & ', ' | ')::tsquery AS q) AS s`;
    const where = render(compileFilter(options.filter), `${this.table}.doc`, p);
    let sql = `SELECT doc, ts_rank(search_vector, s.q, 1)::float8 AS rank FROM ${this.table}, ${query}
      WHERE search_vector @@ s.q AND ${where} ORDER BY rank DESC, id`;
    if (options.limit) sql += ` LIMIT ${p.param(options.limit, "int")}`;
    const rows = await this.run<{ doc: Doc; rank: number | string }>(sql, p.values);
    return rows.map((r) => ({ doc: r.doc, rank: Number(r.rank) }));
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
