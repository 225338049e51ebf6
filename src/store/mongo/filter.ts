/**
 * MongoDB query filter -> parameterized SQL over a JSONB column. Pure: no driver, no I/O.
 *
 * Most predicates become one lax-mode jsonpath predicate (`doc @@ $n::jsonpath`), which the GIN
 * jsonb_path_ops index serves. Lax mode walks arrays the way MongoDB does (a path through an array
 * visits its elements; a filter on a leaf array visits its elements), and every comparison carries a
 * type guard so that MongoDB's type bracketing holds and lax mode's extra unwrapping of nested arrays
 * never matches. What jsonpath cannot say exactly (equality with objects or arrays, $elemMatch) is an
 * SQL EXISTS over `jsonb_path_query`, ANDed with a jsonpath pre-filter that is a necessary condition
 * so the index still narrows the scan.
 */
import { fail } from "./errors.ts";
import { jpKey, jpScalar, jpString, jpType } from "./jsonpath.ts";
import type { SqlParams } from "./sql.ts";

export type Filter = Record<string, unknown>;

/** The compiled form: jsonpath leaves merge into one `@@`; SQL leaves render against a column. */
export type Pred =
  | { k: "jp"; expr: string }
  | { k: "sql"; render: (col: string, p: SqlParams, depth: number) => string }
  | { k: "and" | "or"; items: Pred[] }
  | { k: "not"; item: Pred }
  | { k: "const"; value: boolean };

/**
 * A way to reach the values at a path: items of `parent` that satisfy `guards`, then `step` (keys and
 * array indexes). Guards sit on the parent's items, never on an array value itself: a lax filter
 * would look into the array instead.
 */
interface Alt {
  parent: string;
  step: string;
  guards: string[];
}

/**
 * The field a condition applies to. `whole`: the value itself, not a leaf array's elements (MongoDB
 * applies the operators of a value-form `$elemMatch` to each element as it is).
 */
interface Field {
  root: string;
  segments: string[];
  alts: Alt[];
  whole: boolean;
}

type Cond = (x: string) => string;

const MAX_DEPTH = 32;
const MAX_NUMERIC_SEGMENTS = 4;

/** The field operators the translation knows (anything else is refused, naming it). */
export const FIELD_OPERATORS = new Set([
  "$eq",
  "$ne",
  "$gt",
  "$gte",
  "$lt",
  "$lte",
  "$in",
  "$nin",
  "$not",
  "$exists",
  "$type",
  "$regex",
  "$options",
  "$size",
  "$all",
  "$elemMatch",
]);

const TRUE: Pred = { k: "const", value: true };
const FALSE: Pred = { k: "const", value: false };

const and = (items: Pred[]): Pred => {
  const flat: Pred[] = [];
  for (const item of items) {
    if (item.k === "const") {
      if (!item.value) return FALSE;
      continue;
    }
    if (item.k === "and") flat.push(...item.items);
    else flat.push(item);
  }
  if (flat.length === 0) return TRUE;
  return flat.length === 1 ? flat[0]! : { k: "and", items: flat };
};

const or = (items: Pred[]): Pred => {
  const flat: Pred[] = [];
  for (const item of items) {
    if (item.k === "const") {
      if (item.value) return TRUE;
      continue;
    }
    if (item.k === "or") flat.push(...item.items);
    else flat.push(item);
  }
  if (flat.length === 0) return FALSE;
  return flat.length === 1 ? flat[0]! : { k: "or", items: flat };
};

const not = (item: Pred): Pred => {
  if (item.k === "const") return { k: "const", value: !item.value };
  if (item.k === "not") return item.item;
  return { k: "not", item };
};

const jp = (expr: string): Pred => ({ k: "jp", expr });

export const isPlainObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v);

const isNumericSegment = (s: string): boolean => /^(0|[1-9][0-9]*)$/.test(s);

/** Splits and checks a dotted field path. */
export const parsePath = (path: string, at = path): string[] => {
  if (path.length === 0) fail("bad_path", "field path must not be empty", at);
  const segments = path.split(".");
  for (const s of segments) {
    if (s.length === 0) fail("bad_path", `field path '${path}' has an empty segment`, at);
    if (s.startsWith("$")) fail("bad_path", `field path '${path}' has a segment starting with '$'`, at);
  }
  return segments;
};

/** Every way MongoDB's traversal reaches the values at `segments`, as lax jsonpath. */
const alternatives = (root: string, segments: string[], at: string): Alt[] => {
  const numeric = segments.slice(1).filter(isNumericSegment).length;
  if (numeric > MAX_NUMERIC_SEGMENTS)
    fail("bad_path", `field path '${at}' has more than ${MAX_NUMERIC_SEGMENTS} numeric segments`, at);
  let alts: Alt[] = [{ parent: root, step: jpKey(segments[0]!), guards: [] }];
  for (const seg of segments.slice(1)) {
    const next: Alt[] = [];
    for (const a of alts) {
      if (isNumericSegment(seg)) {
        // An array value is indexed; any other value is looked up by the key "n".
        next.push({ ...a, step: `${a.step}[${seg}]`, guards: [...a.guards, `@${a.step}.type() == "array"`] });
        next.push({
          ...a,
          step: `${a.step}${jpKey(seg)}`,
          guards: [...a.guards, `@${a.step}.type() != "array"`],
        });
      } else {
        next.push({ parent: full(a), step: jpKey(seg), guards: [] });
      }
    }
    alts = next;
  }
  return alts;
};

const full = (a: Alt): string =>
  a.guards.length ? `${a.parent} ? (${a.guards.join(" && ")})${a.step}` : `${a.parent}${a.step}`;

/** Some whole value at the path (leaf arrays not unwrapped) satisfies `cond`. */
const anyWhole = (alts: Alt[], cond: Cond): Pred =>
  or(alts.map((a) => jp(`exists(${a.parent} ? (${[...a.guards, cond(`@${a.step}`)].join(" && ")}))`)));

/** Some value at the path (a leaf array's elements, unless `whole`) satisfies `cond`. */
const anyValue = (f: Field, cond: Cond): Pred =>
  f.whole ? anyWhole(f.alts, cond) : or(f.alts.map((a) => jp(`exists(${full(a)} ? (${cond("@")}))`)));

/** The path is missing somewhere along MongoDB's traversal (so `null` equality matches). */
const missing = (root: string, segments: string[], alts: Alt[]): Pred => {
  if (segments.slice(1).some(isNumericSegment)) return not(or(alts.map((a) => jp(`exists(${full(a)})`))));
  const parts: Pred[] = [];
  let prefix = root;
  for (const seg of segments) {
    parts.push(jp(`exists(${prefix} ? (@.type() != "object" || !exists(@${jpKey(seg)})))`));
    prefix += jpKey(seg);
  }
  return or(parts);
};

const scalarEq =
  (value: unknown, at: string): Cond =>
  (x) =>
    `${x}.type() == ${jpString(jpType(value))} && ${x} == ${jpScalar(value, at)}`;

/**
 * A necessary condition, in lax jsonpath, for a value at `path` to equal `value` or to have it as an
 * element: only used to let the index narrow an exact SQL check.
 */
const containsPrefilter = (path: string, value: unknown, at: string): Pred => {
  if (Array.isArray(value)) {
    return and(
      value.filter((v) => !isPlainObject(v) && !Array.isArray(v)).map((v) => containsPrefilter(path, v, at)),
    );
  }
  if (isPlainObject(value)) {
    return and(Object.entries(value).map(([k, v]) => containsPrefilter(`${path}${jpKey(k)}`, v, at)));
  }
  return jp(`exists(${path} ? (@ == ${jpScalar(value, at)}))`);
};

const sqlExists = (alts: Alt[], where: (v: string, p: SqlParams, depth: number) => string): Pred =>
  or(
    alts.map((a) => ({
      k: "sql" as const,
      render: (col: string, p: SqlParams, depth: number) => {
        const v = `v${depth}`;
        return `EXISTS (SELECT 1 FROM jsonb_path_query(${col}, ${p.param(`lax ${full(a)}`, "jsonpath")}) AS ${v} WHERE ${where(v, p, depth)})`;
      },
    })),
  );

const elementsOf = (v: string): string =>
  `jsonb_array_elements(CASE WHEN jsonb_typeof(${v}) = 'array' THEN ${v} ELSE '[]'::jsonb END)`;

/** Equality with MongoDB's rules: null matches missing, leaf arrays match by element too. */
const eq = (f: Field, value: unknown, at: string): Pred => {
  if (value === undefined) return fail("bad_value", `${at}: a value is required`, at);
  if (value === null)
    return or([
      anyValue(f, (x) => `${x}.type() == "null"`),
      f.whole ? FALSE : missing(f.root, f.segments, f.alts),
    ]);
  if (!isPlainObject(value) && !Array.isArray(value)) return anyValue(f, scalarEq(value, at));
  const json = JSON.stringify(value);
  const exact = sqlExists(f.alts, (v, p, depth) => {
    const val = p.param(json, "jsonb");
    if (f.whole) return `${v} = ${val}`;
    const e = `e${depth}`;
    return `(${v} = ${val} OR EXISTS (SELECT 1 FROM ${elementsOf(v)} AS ${e} WHERE ${e} = ${val}))`;
  });
  const pre = f.whole ? TRUE : or(f.alts.map((a) => containsPrefilter(full(a), value, at)));
  return withPrefilter(exact, pre);
};

const withPrefilter = (exact: Pred, pre: Pred): Pred => {
  if (pre.k === "const") return exact;
  return and([pre, exact]);
};

const isType =
  (t: string): Cond =>
  (x) =>
    `${x}.type() == "${t}"`;
const isInteger: Cond = (x) => `${x}.type() == "number" && ${x} == ${x}.floor()`;
const TYPE_CONDITIONS: Record<string, Cond> = {
  double: isType("number"),
  number: isType("number"),
  decimal: isType("number"),
  int: isInteger,
  long: isInteger,
  string: isType("string"),
  object: isType("object"),
  bool: isType("boolean"),
  null: isType("null"),
};
const TYPE_CODES: Record<number, string> = {
  1: "double",
  2: "string",
  3: "object",
  4: "array",
  8: "bool",
  10: "null",
  16: "int",
  18: "long",
  19: "decimal",
};
// BSON types JSON cannot hold: valid in a query, never matched.
const UNREPRESENTABLE_TYPES = new Set([
  "binData",
  "undefined",
  "objectId",
  "date",
  "regex",
  "dbPointer",
  "javascript",
  "symbol",
  "timestamp",
  "minKey",
  "maxKey",
]);
const UNREPRESENTABLE_CODES = new Set([-1, 5, 6, 7, 9, 11, 12, 13, 14, 17, 127]);

const typeMatch = (f: Field, spec: unknown, at: string): Pred => {
  const specs = Array.isArray(spec) ? spec : [spec];
  if (specs.length === 0) fail("bad_value", `${at}: $type needs at least one type`, at);
  return or(
    specs.map((s): Pred => {
      let name: string | undefined;
      if (typeof s === "number") {
        if (UNREPRESENTABLE_CODES.has(s)) return FALSE;
        name = TYPE_CODES[s];
      } else if (typeof s === "string") {
        if (UNREPRESENTABLE_TYPES.has(s)) return FALSE;
        name = s;
      }
      if (name === "array") return anyWhole(f.alts, (w) => `${w}.type() == "array"`);
      const cond = name === undefined ? undefined : TYPE_CONDITIONS[name];
      if (cond === undefined) return fail("bad_type", `${at}: unknown $type ${JSON.stringify(s)}`, at);
      return anyValue(f, cond);
    }),
  );
};

/** The flags jsonpath's like_regex runs: MongoDB's `x` (extended) is one PostgreSQL does not implement. */
const REGEX_OPTIONS = /^[ims]*$/;

/**
 * The longest $regex: PostgreSQL compiles and matches a pattern in time that grows with its length
 * (much faster with its alternations), against every string value it reaches, so one request with a
 * pattern of a few thousand characters holds a connection for seconds.
 */
export const MAX_REGEX_LENGTH = 1000;

const regexMatch = (f: Field, pattern: unknown, options: unknown, at: string): Pred => {
  if (typeof pattern !== "string") fail("bad_value", `${at}: $regex must be a string`, at);
  if ((pattern as string).length > MAX_REGEX_LENGTH)
    fail("bad_regex", `${at}: $regex must be at most ${MAX_REGEX_LENGTH} characters`, at);
  const opts = options === undefined ? "" : options;
  if (typeof opts !== "string" || !REGEX_OPTIONS.test(opts))
    fail("bad_value", `${at}: $options must be a string of the flags i, m, s (x is not supported)`, at);
  try {
    new RegExp(pattern as string);
  } catch (e) {
    fail("bad_regex", `${at}: invalid $regex: ${(e as Error).message}`, at);
  }
  const flag = opts ? ` flag ${jpString(opts as string)}` : "";
  return anyValue(
    f,
    (x) => `${x}.type() == "string" && ${x} like_regex ${jpString(pattern as string)}${flag}`,
  );
};

const COMPARISON: Record<string, string> = { $gt: ">", $gte: ">=", $lt: "<", $lte: "<=" };

const compare = (f: Field, op: string, value: unknown, at: string): Pred => {
  if (value === null) {
    // MongoDB: $gte/$lte null mean equality with null (missing included); $gt/$lt null match nothing.
    return op === "$gte" || op === "$lte" ? eq(f, null, at) : FALSE;
  }
  if (isPlainObject(value) || Array.isArray(value))
    return fail("unsupported", `${at}: ${op} with an object or array value is not supported`, at);
  return anyValue(
    f,
    (x) => `${x}.type() == ${jpString(jpType(value))} && ${x} ${COMPARISON[op]} ${jpScalar(value, at)}`,
  );
};

// Value-form $elemMatch operators that look at an element's own scalar value: the only ones whose
// check on the array's elements (leaf unwrapping) is a necessary condition usable as a pre-filter.
const ELEMENT_SCALAR_OPERATORS = new Set(["$eq", "$gt", "$gte", "$lt", "$lte", "$regex", "$options"]);

/** `$elemMatch`: one element of an array at the path satisfies the whole condition. */
const elemMatch = (f: Field, spec: unknown, at: string, depth: number): Pred => {
  if (!isPlainObject(spec)) return fail("bad_value", `${at}: $elemMatch needs an object`, at);
  const keys = Object.keys(spec);
  const valueForm = keys.length > 0 && keys.every((k) => k.startsWith("$") && FIELD_OPERATORS.has(k));
  if (valueForm) {
    // Each element is wrapped as {"v": element} so the operators apply to it like to a field, as is.
    const vf: Field = { root: "$", segments: ["v"], alts: alternatives("$", ["v"], at), whole: true };
    const inner = compileOperators(vf, spec, `${at}.$elemMatch`, depth + 1);
    const exact = sqlExists(f.alts, (v, p, d) => {
      const e = `e${d}`;
      return `EXISTS (SELECT 1 FROM ${elementsOf(v)} AS ${e} WHERE ${render(inner, `jsonb_build_object('v', ${e})`, p, d + 1)})`;
    });
    const scalarOps = Object.fromEntries(
      Object.entries(spec).filter(
        ([k, v]) => ELEMENT_SCALAR_OPERATORS.has(k) && !isPlainObject(v) && !Array.isArray(v) && v !== null,
      ),
    );
    if (Object.keys(scalarOps).length === 0 || ("$options" in scalarOps && !("$regex" in scalarOps)))
      return exact;
    return withPrefilter(exact, compileOperators({ ...f, whole: false }, scalarOps, at, depth + 1));
  }
  const inner = compileFilterAt("$", spec, `${at}.$elemMatch`, depth + 1);
  const exact = sqlExists(f.alts, (v, p, d) => {
    const e = `e${d}`;
    return `EXISTS (SELECT 1 FROM ${elementsOf(v)} AS ${e} WHERE jsonb_typeof(${e}) = 'object' AND ${render(inner, e, p, d + 1)})`;
  });
  const pre = or(f.alts.map((a) => necessary(compileFilterAt(full(a), spec, `${at}.$elemMatch`, depth + 1))));
  return withPrefilter(exact, pre);
};

/**
 * The part of a predicate that every match must satisfy, kept only where it is jsonpath (for the
 * index). Negations give nothing: a superset of matches cannot be derived from them.
 */
const necessary = (pred: Pred): Pred => {
  switch (pred.k) {
    case "jp":
      return pred;
    case "and":
      return and(pred.items.map(necessary).filter((p) => p.k !== "const"));
    case "or": {
      const parts = pred.items.map(necessary);
      return parts.some((p) => p.k === "const") ? TRUE : or(parts);
    }
    default:
      return TRUE;
  }
};

const checkDepth = (depth: number, at: string): void => {
  if (depth > MAX_DEPTH) fail("too_deep", `filter nests more than ${MAX_DEPTH} levels`, at);
};

const compileOperators = (f: Field, ops: Record<string, unknown>, at: string, depth: number): Pred => {
  checkDepth(depth, at);
  const parts: Pred[] = [];
  for (const [op, value] of Object.entries(ops)) {
    const opAt = `${at}.${op}`;
    switch (op) {
      case "$eq":
        parts.push(eq(f, value, opAt));
        break;
      case "$ne":
        parts.push(not(eq(f, value, opAt)));
        break;
      case "$gt":
      case "$gte":
      case "$lt":
      case "$lte":
        parts.push(compare(f, op, value, opAt));
        break;
      case "$in":
      case "$nin": {
        if (!Array.isArray(value)) fail("bad_value", `${opAt}: ${op} needs an array`, opAt);
        const any = or((value as unknown[]).map((v, i) => eq(f, v, `${opAt}.${i}`)));
        parts.push(op === "$in" ? any : not(any));
        break;
      }
      case "$not":
        if (!isPlainObject(value) || Object.keys(value).length === 0)
          fail("bad_value", `${opAt}: $not needs a non-empty object of operators`, opAt);
        parts.push(not(compileOperators(f, value as Record<string, unknown>, opAt, depth + 1)));
        break;
      case "$exists": {
        if (typeof value !== "boolean" && typeof value !== "number")
          fail("bad_value", `${opAt}: $exists needs true or false`, opAt);
        const some = or(f.alts.map((a) => jp(`exists(${full(a)})`)));
        parts.push(value ? some : not(some));
        break;
      }
      case "$type":
        parts.push(typeMatch(f, value, opAt));
        break;
      case "$regex":
        parts.push(regexMatch(f, value, ops.$options, opAt));
        break;
      case "$options":
        if (!("$regex" in ops)) fail("bad_value", `${opAt}: $options needs $regex`, opAt);
        break;
      case "$size": {
        if (typeof value !== "number" || !Number.isInteger(value) || value < 0)
          fail("bad_value", `${opAt}: $size needs a non-negative integer`, opAt);
        parts.push(anyWhole(f.alts, (w) => `${w}.type() == "array" && ${w}.size() == ${value}`));
        break;
      }
      case "$all": {
        if (!Array.isArray(value)) fail("bad_value", `${opAt}: $all needs an array`, opAt);
        const items = value as unknown[];
        if (items.length === 0) {
          parts.push(FALSE);
          break;
        }
        parts.push(
          and(
            items.map((v, i) => {
              const itemAt = `${opAt}.${i}`;
              if (isPlainObject(v) && Object.keys(v).length === 1 && "$elemMatch" in v)
                return elemMatch(f, v.$elemMatch, itemAt, depth + 1);
              return eq(f, v, itemAt);
            }),
          ),
        );
        break;
      }
      case "$elemMatch":
        parts.push(elemMatch(f, value, opAt, depth));
        break;
      default:
        fail("unknown_operator", `unknown operator ${op} at ${at}`, opAt);
    }
  }
  return and(parts);
};

export const compileField = (
  root: string,
  segments: string[],
  value: unknown,
  at: string,
  depth: number,
): Pred => {
  const f: Field = { root, segments, alts: alternatives(root, segments, at), whole: false };
  if (isPlainObject(value)) {
    const keys = Object.keys(value);
    const dollar = keys.filter((k) => k.startsWith("$"));
    if (dollar.length > 0) {
      if (dollar.length !== keys.length)
        fail("bad_value", `${at}: cannot mix operators and fields in one object`, at);
      return compileOperators(f, value, at, depth + 1);
    }
  }
  return eq(f, value, at);
};

const compileLogical = (op: string, value: unknown, root: string, at: string, depth: number): Pred => {
  if (!Array.isArray(value) || value.length === 0)
    return fail("bad_value", `${at}: ${op} needs a non-empty array of filters`, at);
  const items = value.map((f, i) => {
    if (!isPlainObject(f)) fail("bad_value", `${at}.${i}: expected a filter object`, `${at}.${i}`);
    return compileFilterAt(root, f as Filter, `${at}.${i}`, depth + 1);
  });
  if (op === "$and") return and(items);
  return op === "$or" ? or(items) : not(or(items));
};

const compileFilterAt = (root: string, filter: unknown, at: string, depth: number): Pred => {
  checkDepth(depth, at);
  if (!isPlainObject(filter)) return fail("bad_filter", `${at || "filter"}: a filter must be an object`, at);
  const parts: Pred[] = [];
  for (const [key, value] of Object.entries(filter)) {
    const keyAt = at ? `${at}.${key}` : key;
    if (key === "$and" || key === "$or" || key === "$nor") {
      parts.push(compileLogical(key, value, root, keyAt, depth));
    } else if (key === "$comment") {
      // MongoDB ignores comments when matching.
    } else if (key.startsWith("$")) {
      fail("unknown_operator", `unknown top-level operator ${key}`, keyAt);
    } else {
      parts.push(compileField(root, parsePath(key, keyAt), value, keyAt, depth));
    }
  }
  return and(parts);
};

/** Compiles a MongoDB filter; throws QueryError naming the operator or field at fault. */
export const compileFilter = (filter: unknown): Pred => compileFilterAt("$", filter ?? {}, "", 0);

const toJp = (pred: Pred): string | undefined => {
  switch (pred.k) {
    case "jp":
      return pred.expr;
    case "and":
    case "or": {
      const parts = pred.items.map(toJp);
      if (parts.some((p) => p === undefined)) return undefined;
      return parts.map((p) => `(${p})`).join(pred.k === "and" ? " && " : " || ");
    }
    default:
      // Negation stays in SQL (`NOT (doc @@ ...)`): PGlite's GIN jsonb_path_ops answers some `!(...)`
      // jsonpath predicates wrongly (seen on PostgreSQL 18.6 in PGlite 0.5.16), and every jsonpath
      // leaf here is two-valued, so SQL's NOT means the same.
      return undefined;
  }
};

/** Renders a compiled predicate as an SQL boolean over `col` (a jsonb expression). */
export const render = (pred: Pred, col: string, p: SqlParams, depth = 0): string => {
  const whole = toJp(pred);
  if (whole !== undefined) return `(${col} @@ ${p.param(whole, "jsonpath")})`;
  switch (pred.k) {
    case "const":
      return pred.value ? "TRUE" : "FALSE";
    case "sql":
      return pred.render(col, p, depth);
    case "not":
      return `(NOT ${render(pred.item, col, p, depth)})`;
    case "and":
    case "or": {
      // Jsonpath siblings go together into one `@@` so the index sees them at once.
      const jps = pred.items.filter((i) => toJp(i) !== undefined);
      const rest = pred.items.filter((i) => toJp(i) === undefined);
      const group: Pred[] = jps.length > 1 ? [{ k: pred.k, items: jps }] : jps;
      const sqlParts = [...group, ...rest].map((i) => render(i, col, p, depth));
      return `(${sqlParts.join(pred.k === "and" ? " AND " : " OR ")})`;
    }
    default:
      return "TRUE";
  }
};

/** The lax jsonpaths (from the document root) at which MongoDB's traversal finds a path's values. */
export const alternativesFor = (segments: string[]): string[] =>
  alternatives("$", segments, segments.join(".")).map(full);
