/**
 * Query options: sort, limit, skip, projection. Sort follows MongoDB: a path through arrays sorts by
 * its smallest value ascending and its largest descending; types order null < numbers < strings <
 * objects < arrays < booleans; strings compare by code point. Projection is applied to the fetched
 * documents (pure JS), with MongoDB's inclusion/exclusion rules.
 */
import { fail } from "./errors.ts";
import { alternativesFor, isPlainObject, parsePath } from "./filter.ts";
import type { SqlParams } from "./sql.ts";

export interface QueryOptions {
  sort?: Record<string, 1 | -1>;
  limit?: number;
  skip?: number;
  projection?: Record<string, 0 | 1 | boolean>;
}

export const MAX_LIMIT = 10_000;

const int = (v: unknown, name: string, max: number): number => {
  if (typeof v !== "number" || !Number.isInteger(v) || v < 0 || v > max)
    fail("bad_option", `options.${name} must be an integer from 0 to ${max}`, `options.${name}`);
  return v as number;
};

/** Checks options from a request; unknown keys are refused so a typo never goes unnoticed. */
export const parseOptions = (options: unknown): QueryOptions => {
  if (options === undefined || options === null) return {};
  if (!isPlainObject(options)) return fail("bad_option", "options must be an object", "options");
  const out: QueryOptions = {};
  for (const [k, v] of Object.entries(options)) {
    if (v === undefined) continue; // an option a JS caller left unset
    switch (k) {
      case "limit":
        out.limit = int(v, k, MAX_LIMIT);
        break;
      case "skip":
        out.skip = int(v, k, Number.MAX_SAFE_INTEGER);
        break;
      case "sort": {
        if (!isPlainObject(v))
          fail("bad_option", "options.sort must be an object of path: 1 | -1", "options.sort");
        const sort: Record<string, 1 | -1> = {};
        for (const [path, dir] of Object.entries(v as object)) {
          parsePath(path, `options.sort.${path}`);
          if (dir !== 1 && dir !== -1)
            fail("bad_option", `options.sort.${path} must be 1 or -1`, `options.sort.${path}`);
          sort[path] = dir;
        }
        out.sort = sort;
        break;
      }
      case "projection": {
        if (!isPlainObject(v))
          fail("bad_option", "options.projection must be an object", "options.projection");
        const projection: Record<string, 0 | 1 | boolean> = {};
        for (const [path, flag] of Object.entries(v as object)) {
          parsePath(path, `options.projection.${path}`);
          if (flag !== 0 && flag !== 1 && typeof flag !== "boolean")
            fail(
              "bad_option",
              `options.projection.${path} must be 0, 1, true or false`,
              `options.projection.${path}`,
            );
          projection[path] = flag;
        }
        projectionMode(projection);
        out.projection = projection;
        break;
      }
      default:
        fail("bad_option", `unknown option '${k}' (expected sort, limit, skip, projection)`, `options.${k}`);
    }
  }
  return out;
};

// Rank of a JSON value in MongoDB's cross-type order; SQL NULL (missing) ranks with null.
const rank = (v: string) =>
  `CASE jsonb_typeof(${v}) WHEN 'number' THEN 2 WHEN 'string' THEN 3 WHEN 'object' THEN 4 WHEN 'array' THEN 5 WHEN 'boolean' THEN 8 ELSE 1 END`;
const num = (v: string) => `CASE WHEN jsonb_typeof(${v}) = 'number' THEN (${v})::numeric END`;
const str = (v: string) => `CASE WHEN jsonb_typeof(${v}) = 'string' THEN ${v} #>> '{}' END COLLATE "C"`;

/**
 * ORDER BY terms for a sort spec over `col`. Missing and null tie (both rank 1); a path that holds
 * only empty arrays ranks 0, before them, as in MongoDB. Objects compare by JSONB's order (fewer keys
 * first), not MongoDB's field-by-field order.
 */
export const sortSql = (sort: Record<string, 1 | -1> | undefined, col: string, p: SqlParams): string => {
  const terms: string[] = [];
  for (const [path, dir] of Object.entries(sort ?? {})) {
    const segments = parsePath(path);
    const order = dir === 1 ? "ASC" : "DESC";
    const paths = alternativesFor(segments);
    // Candidate values: every value MongoDB's traversal reaches, leaf arrays by element.
    const candidates = paths
      .map((jp) => `SELECT v FROM jsonb_path_query(${col}, ${p.param(`lax ${jp}[*]`, "jsonpath")}) AS v`)
      .join(" UNION ALL ");
    const key = `(SELECT c.v FROM (${candidates}) AS c ORDER BY ${rank("c.v")} ${order}, ${num("c.v")} ${order}, ${str("c.v")} ${order}, c.v ${order} LIMIT 1)`;
    const found = paths.map((jp) => `${col} @? ${p.param(`lax ${jp}`, "jsonpath")}`).join(" OR ");
    const keyRank = `CASE WHEN ${key} IS NOT NULL THEN ${rank(key)} WHEN ${found} THEN 0 ELSE 1 END`;
    terms.push(
      `${keyRank} ${order}`,
      `${num(key)} ${order}`,
      `${str(key)} ${order}`,
      `coalesce(${key}, 'null'::jsonb) ${order}`,
    );
  }
  return terms.length ? ` ORDER BY ${terms.join(", ")}` : "";
};

const projectionMode = (projection: Record<string, 0 | 1 | boolean>): "include" | "exclude" => {
  let include = false;
  let exclude = false;
  for (const [path, flag] of Object.entries(projection)) {
    if (path === "id") continue;
    if (flag) include = true;
    else exclude = true;
  }
  // `{id: 1}` alone includes just the id.
  if (!include && !exclude && projection.id) include = true;
  if (include && exclude)
    fail(
      "bad_option",
      "options.projection cannot mix inclusion and exclusion (except for id)",
      "options.projection",
    );
  return include ? "include" : "exclude";
};

type Obj = Record<string, unknown>;

/**
 * MongoDB's inclusion of one path: an object keeps the path (an object whose sub-field is missing
 * stays, empty); an array keeps its elements' projections, dropping scalars; a scalar where the path
 * goes on is dropped (undefined).
 */
const pick = (value: unknown, segments: string[]): unknown => {
  if (segments.length === 0) return value;
  if (Array.isArray(value))
    return value.filter((v) => isPlainObject(v) || Array.isArray(v)).map((v) => pick(v, segments));
  if (!isPlainObject(value)) return undefined;
  const [head, ...rest] = segments as [string, ...string[]];
  if (!(head in value)) return {};
  const inner = pick(value[head], rest);
  return inner === undefined ? {} : { [head]: inner };
};

const merge = (a: unknown, b: unknown): unknown => {
  if (a === undefined) return b;
  if (b === undefined) return a;
  if (Array.isArray(a) && Array.isArray(b)) return a.map((x, i) => merge(x, b[i]));
  if (isPlainObject(a) && isPlainObject(b)) {
    const out: Obj = { ...a };
    for (const [k, v] of Object.entries(b)) out[k] = merge(out[k], v);
    return out;
  }
  return b;
};

const drop = (value: unknown, segments: string[]): unknown => {
  if (Array.isArray(value))
    return value.map((v) => (isPlainObject(v) || Array.isArray(v) ? drop(v, segments) : v));
  if (!isPlainObject(value)) return value;
  const [head, ...rest] = segments as [string, ...string[]];
  if (!(head in value)) return value;
  const out: Obj = { ...value };
  if (rest.length === 0) delete out[head];
  else out[head] = drop(value[head], rest);
  return out;
};

/**
 * The SQL that fetches only what a projection can keep, so a projected query moves less data: for an
 * inclusion, the top-level fields it names (and the id); for an exclusion, the document without the
 * top-level fields it drops. `applyProjection` then does the exact work on the smaller document.
 */
export const projectionSql = (projection: QueryOptions["projection"], col: string, p: SqlParams): string => {
  if (!projection || Object.keys(projection).length === 0) return col;
  const paths = Object.keys(projection);
  if (projectionMode(projection) === "include") {
    const keys = [...new Set(["id", ...paths.map((k) => k.split(".")[0]!)])];
    // One jsonb_each reads the (TOASTed) document once; `doc ? k` / `doc -> k` per key would
    // decompress it once per key (measured 3x slower on the server in test/bench/store-queries.ts).
    return `(SELECT coalesce(jsonb_object_agg(f.key, f.value), '{}'::jsonb) FROM jsonb_each(${col}) AS f WHERE f.key = ANY(${p.param(keys, "text[]")}))`;
  }
  const dropped = paths.filter((k) => !k.includes(".") && !projection[k]);
  return dropped.length ? `(${col} - ${p.param(dropped, "text[]")})` : col;
};

/** Applies a checked projection to one document. `id` stays unless projected out with 0. */
export const applyProjection = (doc: Obj, projection: Record<string, 0 | 1 | boolean> | undefined): Obj => {
  if (!projection || Object.keys(projection).length === 0) return doc;
  const mode = projectionMode(projection);
  if (mode === "include") {
    let out: unknown = {};
    const keepId = projection.id === undefined || Boolean(projection.id);
    if (keepId && "id" in doc) out = { id: doc.id };
    for (const [path, flag] of Object.entries(projection)) {
      if (path === "id" || !flag) continue;
      out = merge(out, pick(doc, parsePath(path)));
    }
    return out as Obj;
  }
  let out: unknown = doc;
  for (const [path, flag] of Object.entries(projection)) {
    if (path === "id" && flag) continue; // `{a: 0, id: 1}` excludes a and keeps the id
    out = drop(out, parsePath(path));
  }
  return out as Obj;
};
