/**
 * MongoDB update document -> one SQL expression computing the new document from the old, so the
 * UPDATE that uses it is atomic (row lock, re-evaluated on the latest row under concurrency).
 * Each operator is one step of a LATERAL chain (d0 -> d1 -> ...), so no step repeats another's text.
 * The aios_* SQL functions it calls are created by the migrations (migrations/*_update_functions.sql).
 */
import { fail } from "./errors.ts";
import { compileField, compileFilter, isPlainObject, parsePath, render } from "./filter.ts";
import type { SqlParams } from "./sql.ts";

export const UPDATE_OPERATORS = [
  "$set",
  "$unset",
  "$inc",
  "$mul",
  "$min",
  "$max",
  "$push",
  "$pull",
  "$addToSet",
  "$rename",
] as const;
type UpdateOperator = (typeof UPDATE_OPERATORS)[number];

interface Step {
  op: UpdateOperator;
  path: string[];
  value: unknown;
  at: string;
}

export interface UpdateOptions {
  /** Top-level fields that an update may not touch (the document id). */
  immutable?: string[];
}

const conflicts = (a: string[], b: string[]): boolean => {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return false;
  return true;
};

/** Validates an update document into steps; throws QueryError naming the operator or path at fault. */
export const parseUpdate = (update: unknown, options: UpdateOptions = {}): Step[] => {
  if (!isPlainObject(update)) return fail("bad_update", "an update must be an object of update operators");
  const keys = Object.keys(update);
  if (keys.length === 0) fail("bad_update", "an update must contain at least one update operator");
  const steps: Step[] = [];
  const touched: { path: string[]; at: string }[] = [];
  const touch = (path: string[], at: string) => {
    const top = path[0]!;
    if (options.immutable?.includes(top))
      fail("immutable_field", `${at}: the field '${top}' cannot be changed`, at);
    for (const t of touched)
      if (conflicts(t.path, path))
        fail("conflict", `${at}: updating '${path.join(".")}' would conflict with ${t.at}`, at);
    touched.push({ path, at });
  };
  for (const op of keys) {
    if (!(UPDATE_OPERATORS as readonly string[]).includes(op)) {
      if (!op.startsWith("$"))
        fail("bad_update", `'${op}' is not an update operator: use $set to replace a field's value`, op);
      fail("unknown_operator", `unknown update operator ${op}`, op);
    }
    const fields = update[op];
    if (!isPlainObject(fields)) fail("bad_update", `${op} needs an object of field paths`, op);
    for (const [field, value] of Object.entries(fields as Record<string, unknown>)) {
      const at = `${op}.${field}`;
      const path = parsePath(field, at);
      checkValue(op as UpdateOperator, value, at);
      touch(path, at);
      if (op === "$rename") {
        const to = parsePath(value as string, at);
        if (conflicts(path, to)) fail("bad_update", `${at}: $rename source and target overlap`, at);
        touch(to, at);
      }
      steps.push({ op: op as UpdateOperator, path, value, at });
    }
  }
  return steps;
};

const checkValue = (op: UpdateOperator, value: unknown, at: string): void => {
  if (value === undefined) fail("bad_value", `${at}: a value is required`, at);
  switch (op) {
    case "$inc":
    case "$mul":
      if (typeof value !== "number" || !Number.isFinite(value))
        fail("bad_value", `${at}: ${op} needs a number, not ${JSON.stringify(value)}`, at);
      break;
    case "$rename":
      if (typeof value !== "string")
        fail("bad_value", `${at}: $rename needs the new field path as a string`, at);
      break;
    case "$push":
    case "$addToSet":
      if (isPlainObject(value) && "$each" in value) {
        if (!Array.isArray(value.$each)) fail("bad_value", `${at}.$each: needs an array`, `${at}.$each`);
        const allowed = op === "$push" ? ["$each", "$position", "$slice"] : ["$each"];
        for (const k of Object.keys(value)) {
          if (!allowed.includes(k))
            fail("unknown_operator", `${at}: unknown modifier ${k} for ${op}`, `${at}.${k}`);
          if ((k === "$position" || k === "$slice") && !Number.isInteger(value[k]))
            fail("bad_value", `${at}.${k}: needs an integer`, `${at}.${k}`);
        }
      }
      break;
    default:
      break;
  }
};

const itemsOf = (value: unknown): unknown[] =>
  isPlainObject(value) && "$each" in value ? (value.$each as unknown[]) : [value];

/** The SQL condition, on array element `e`, that $pull removes. */
const pullCondition = (value: unknown, e: string, p: SqlParams, at: string): string => {
  if (isPlainObject(value)) {
    const keys = Object.keys(value);
    if (keys.length > 0 && keys.every((k) => k.startsWith("$")))
      return render(compileField("$", ["v"], value, at, 1), `jsonb_build_object('v', ${e})`, p, 1);
    return `(jsonb_typeof(${e}) = 'object' AND ${render(compileFilter(value), e, p, 1)})`;
  }
  return `${e} = ${p.param(JSON.stringify(value), "jsonb")}`;
};

const stepSql = (s: Step, d: string, p: SqlParams): string => {
  const path = p.param(s.path, "text[]");
  // Registered on use: Postgres refuses a parameter that no expression mentions.
  const field = () => p.param(s.path.join("."), "text");
  const json = (v: unknown) => p.param(JSON.stringify(v), "jsonb");
  switch (s.op) {
    case "$set":
      return `aios_set(${d}, ${path}, ${json(s.value)})`;
    case "$unset":
      return `aios_unset(${d}, ${path})`;
    case "$inc":
    case "$mul":
    case "$min":
    case "$max":
      return `aios_set(${d}, ${path}, aios_apply(${p.param(s.op, "text")}, ${d} #> ${path}, ${json(s.value)}, ${field()}))`;
    case "$push": {
      const v = s.value;
      const position = isPlainObject(v) && "$position" in v ? p.param(v.$position, "int") : "NULL::int";
      const slice = isPlainObject(v) && "$slice" in v ? p.param(v.$slice, "int") : "NULL::int";
      return `aios_set(${d}, ${path}, aios_push(${d} #> ${path}, ${json(itemsOf(v))}, ${position}, ${slice}, ${field()}))`;
    }
    case "$addToSet":
      return `aios_set(${d}, ${path}, aios_add_to_set(${d} #> ${path}, ${json(itemsOf(s.value))}, ${field()}))`;
    case "$pull": {
      const cond = pullCondition(s.value, "x.e", p, s.at);
      const kept = `(SELECT coalesce(jsonb_agg(x.e ORDER BY x.i), '[]'::jsonb) FROM jsonb_array_elements(${d} #> ${path}) WITH ORDINALITY AS x(e, i) WHERE NOT ${cond})`;
      return `CASE WHEN ${d} #> ${path} IS NULL THEN ${d} WHEN jsonb_typeof(${d} #> ${path}) = 'array' THEN aios_set(${d}, ${path}, ${kept}) ELSE aios_fail('Cannot apply $pull to a non-array value at ' || ${field()}) END`;
    }
    case "$rename":
      return `aios_rename(${d}, ${path}, ${p.param(parsePath(s.value as string), "text[]")})`;
  }
};

/**
 * A scalar subquery that yields the updated document from `source` (the target row's doc column).
 * Used as `SET doc = <this>` so Postgres recomputes it on the newest row version when rows race.
 */
export const compileUpdate = (
  update: unknown,
  source: string,
  p: SqlParams,
  options?: UpdateOptions,
): string => {
  const steps = parseUpdate(update, options);
  const from = [`(SELECT ${source} AS d0) AS s0`];
  steps.forEach((s, i) => {
    from.push(`LATERAL (SELECT ${stepSql(s, `s${i}.d${i}`, p)} AS d${i + 1}) AS s${i + 1}`);
  });
  const n = steps.length;
  return `(SELECT s${n}.d${n} FROM ${from.join(", ")})`;
};
