/**
 * The logic shared by the document registries (clusters, components): validation of documents, ids,
 * update documents and list/query requests over one store collection. No HTTP here: every function
 * takes plain values and throws `ApiError` (or lets the store's `QueryError`/`StoreError` through),
 * which `src/http/errors.ts` turns into the error contract.
 */
import type { z } from "zod";
import { type ApiError, badRequest, notFound, parseWith } from "../http/errors.ts";
import { type Doc, type DocumentCollection, isPlainObject } from "../store/index.ts";
import { MAX_LIMIT } from "../store/mongo/options.ts";
import { elementSchemaAtPath, QueryBodySchema, schemaAtPath } from "./schemas.ts";

/**
 * Refuses keys a stored document must not have: `$`-prefixed keys (they would read as operators in
 * filters and updates, and no update could reach them) and `__proto__`. Iterative, names the path.
 */
export const checkDocumentKeys = (doc: unknown): void => {
  const stack: [unknown, string][] = [[doc, ""]];
  while (stack.length > 0) {
    const [value, at] = stack.pop()!;
    if (value === null || typeof value !== "object") continue;
    for (const [key, child] of Object.entries(value)) {
      const path = at === "" ? key : `${at}.${key}`;
      if (key.startsWith("$")) {
        throw badRequest("bad_field_name", `${path}: a field name cannot start with '$'`, { path });
      }
      if (key === "__proto__")
        throw badRequest("bad_field_name", `${path}: '__proto__' is not a field name`, { path });
      stack.push([child, path]);
    }
  }
};

/**
 * Every list and query answer holds at most MAX_LIMIT documents unless the caller asks for fewer (page
 * with `skip`), so no single call can pull a whole table into memory; a larger `limit` is a 400.
 */
export const capped = (options: unknown): unknown => {
  if (options === undefined || options === null) return { limit: MAX_LIMIT };
  if (isPlainObject(options) && options.limit === undefined) return { ...options, limit: MAX_LIMIT };
  return options;
};

export interface ListOptions {
  limit?: number;
  skip?: number;
}

/** Parses `?limit` and `?skip` query parameters: non-negative integers, a 400 naming the one at fault. */
export const parseListParams = (params: {
  limit?: string | undefined;
  skip?: string | undefined;
}): ListOptions => {
  const out: ListOptions = {};
  for (const name of ["limit", "skip"] as const) {
    const raw = params[name];
    if (raw === undefined) continue;
    if (!/^\d{1,15}$/.test(raw)) {
      throw badRequest("bad_option", `${name} must be a non-negative integer, got ${JSON.stringify(raw)}`, {
        path: name,
      });
    }
    out[name] = Number(raw);
  }
  return out;
};

/** One operator's entry in an update document: the operator, the dotted field path and its operand. */
interface UpdateEntry {
  op: string;
  field: string;
  value: unknown;
}

const entriesOf = (update: Record<string, unknown>): UpdateEntry[] => {
  const out: UpdateEntry[] = [];
  for (const [op, fields] of Object.entries(update)) {
    if (!isPlainObject(fields)) continue; // the store names this error
    for (const [field, value] of Object.entries(fields)) out.push({ op, field, value });
  }
  return out;
};

/**
 * Type-checks, where the schema knows the field, `$set`, `$min` and `$max` operands and the elements
 * of `$push`/`$addToSet`, and refuses `$`-keys in stored values. The store checks everything else
 * (operators, operand shapes, conflicts, the immutable id) and names what it refuses.
 */
export const checkUpdate = (update: unknown, schema: z.ZodType): unknown => {
  if (!isPlainObject(update)) return update;
  for (const { op, field, value } of entriesOf(update)) {
    const path = field.split(".");
    if (op === "$set" || op === "$min" || op === "$max") {
      const fieldSchema = schemaAtPath(schema, path);
      if (fieldSchema !== undefined) parseWith(fieldSchema, value, [op, field]);
      if (isPlainObject(value) || Array.isArray(value)) checkDocumentKeys({ [field]: value });
    } else if (op === "$push" || op === "$addToSet") {
      const element = elementSchemaAtPath(schema, path);
      const each = isPlainObject(value) && Array.isArray(value.$each) ? value.$each : undefined;
      if (element !== undefined) {
        if (each === undefined) parseWith(element, value, [op, field]);
        else for (const [i, v] of each.entries()) parseWith(element, v, [op, field, "$each", i]);
      }
      for (const v of each ?? [value]) if (isPlainObject(v) || Array.isArray(v)) checkDocumentKeys(v);
    }
  }
  return update;
};

/** What distinguishes one document registry from another. */
export interface DocumentKind {
  /** Singular noun for messages: "cluster", "component". */
  noun: string;
  /** Checks an id taken from a URL path (400 when malformed). */
  parseId(id: string): string;
  /**
   * Validates a document from a request body into the document to store. `pathId` is the id from the
   * URL for PUT (the body may omit it, or must agree).
   */
  toDocument(body: unknown, pathId?: string): Doc;
  /** The document schema, used to type-check `$set` values of known fields. */
  schema: z.ZodType;
  /** Top-level fields no update may touch (the store always protects `id`). */
  immutable: readonly string[];
}

/** CRUD and query over one collection, for one kind of document. */
export class DocumentRegistry {
  constructor(
    readonly kind: DocumentKind,
    readonly collection: DocumentCollection,
  ) {}

  private missing(id: string): ApiError {
    return notFound(`${this.kind.noun} '${id}' not found`, { id });
  }

  /** Inserts a new document; the store answers 409 when the id exists. */
  async create(body: unknown): Promise<Doc> {
    const doc = this.kind.toDocument(body);
    return this.collection.insert(doc);
  }

  /** Lists documents in id order, optionally paged. */
  async list(options: ListOptions = {}): Promise<Doc[]> {
    return this.collection.find({}, capped({ sort: { id: 1 }, ...options }));
  }

  async get(rawId: string): Promise<Doc> {
    const id = this.kind.parseId(rawId);
    const doc = await this.collection.get(id);
    if (doc === null) throw this.missing(id);
    return doc;
  }

  /** Applies a MongoDB update document; 404 when there is no such document. */
  async update(rawId: string, update: unknown): Promise<Doc> {
    const id = this.kind.parseId(rawId);
    const checked = checkUpdate(update, this.kind.schema);
    const doc = await this.collection.update(id, checked, { immutable: [...this.kind.immutable] });
    if (doc === null) throw this.missing(id);
    return doc;
  }

  /** Replaces the whole document (or creates it): PUT semantics. */
  async replace(rawId: string, body: unknown): Promise<Doc> {
    const id = this.kind.parseId(rawId);
    return this.collection.upsert(id, this.kind.toDocument(body, id));
  }

  async remove(rawId: string): Promise<{ id: string; deleted: true }> {
    const id = this.kind.parseId(rawId);
    if (!(await this.collection.delete(id))) throw this.missing(id);
    return { id, deleted: true };
  }

  /** `{"query": <Mongo filter>, "options": {sort, limit, skip, projection}}` -> matching documents. */
  async query(body: unknown): Promise<Doc[]> {
    const { query, options } = parseWith(QueryBodySchema, body);
    return this.collection.find(query ?? {}, capped(options));
  }
}

/** Adds the id from the URL to a body, refusing a body whose own id disagrees. */
export const withPathId = (body: unknown, field: string, pathId: string | undefined): unknown => {
  if (pathId === undefined || !isPlainObject(body)) return body;
  const own = body[field];
  if (own !== undefined && own !== pathId) {
    throw badRequest(
      "id_mismatch",
      `${field}: the body says ${JSON.stringify(own)} but the URL says '${pathId}'`,
      {
        path: field,
      },
    );
  }
  return { ...body, [field]: pathId };
};
