/**
 * The specification's condition lists (`clusterQuery`, `clusterMetricsQuery`):
 *   {"logicalOperator": "AND" | "OR", "conditions": [{"variable", "operator", "value"} | <nested list>]}
 * -> a MongoDB filter. Values arrive as text ("10"); numeric text matches a number field numerically
 * (and a string field as the same text), "true"/"false" match booleans too.
 */
import { fail, QueryError } from "./errors.ts";
import { isPlainObject, parsePath } from "./filter.ts";

type Filter = Record<string, unknown>;

const COMPARE: Record<string, string> = {
  "==": "$eq",
  "=": "$eq",
  eq: "$eq",
  "!=": "$ne",
  ne: "$ne",
  "<": "$lt",
  lt: "$lt",
  "<=": "$lte",
  lte: "$lte",
  ">": "$gt",
  gt: "$gt",
  ">=": "$gte",
  gte: "$gte",
};
const SET: Record<string, string> = {
  in: "$in",
  "not in": "$nin",
  not_in: "$nin",
  nin: "$nin",
  contains: "$all",
  contains_all: "$all",
  all: "$all",
  contains_any: "$in",
  any: "$in",
};

const NUMERIC = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

/** The values a condition's value stands for: itself, and its number or boolean reading. */
const readings = (v: unknown): unknown[] => {
  if (typeof v !== "string") return [v];
  const t = v.trim();
  if (NUMERIC.test(t)) return [v, Number(t)];
  if (t === "true" || t === "false") return [v, t === "true"];
  return [v];
};

const listOf = (value: unknown, at: string): unknown[] => {
  if (Array.isArray(value)) return value;
  if (typeof value === "string") return value.split(",").map((s) => s.trim());
  return fail(
    "bad_condition",
    `${at}.value: a set operator needs a list (an array or comma-separated text)`,
    `${at}.value`,
  );
};

const condition = (c: unknown, at: string): Filter => {
  if (!isPlainObject(c)) return fail("bad_condition", `${at}: a condition must be an object`, at);
  if ("conditions" in c) return conditionsAt(c, at);
  const { variable, operator, value } = c;
  if (typeof variable !== "string")
    return fail("bad_condition", `${at}.variable: must be a field path`, `${at}.variable`);
  try {
    parsePath(variable, `${at}.variable`);
  } catch (err) {
    // The store's message names the path, not the condition: say which condition it is.
    if (err instanceof QueryError) fail(err.code, `${at}.variable: ${err.message}`, `${at}.variable`);
    throw err;
  }
  if (typeof operator !== "string")
    return fail("bad_condition", `${at}.operator: must be text`, `${at}.operator`);
  const op = operator.trim().toLowerCase();
  if (op === "exists") return { [variable]: { $exists: !(value === false || value === "false") } };
  if (value === undefined) return fail("bad_condition", `${at}.value: is required`, `${at}.value`);
  const cmp = COMPARE[op];
  if (cmp) {
    const alts = readings(value);
    if (cmp === "$eq") return { [variable]: alts.length === 1 ? alts[0] : { $in: alts } };
    if (cmp === "$ne") return { [variable]: { $nin: alts } };
    return alts.length === 1
      ? { [variable]: { [cmp]: alts[0] } }
      : { $or: alts.map((a) => ({ [variable]: { [cmp]: a } })) };
  }
  const set = SET[op];
  if (set) {
    const items = listOf(value, at);
    if (set === "$all") {
      // Every listed item present (an array field contains each; a scalar field equals each).
      const each = items.map((i) => ({ [variable]: { $in: readings(i) } }));
      if (each.length === 0) return {};
      return each.length === 1 ? each[0]! : { $and: each };
    }
    return { [variable]: { [set]: items.flatMap(readings) } };
  }
  return fail(
    "bad_condition",
    `${at}.operator: unknown operator '${operator}' (expected ==, !=, <, <=, >, >=, in, not in, contains, contains_any, exists)`,
    `${at}.operator`,
  );
};

const conditionsAt = (spec: Record<string, unknown>, at: string): Filter => {
  const logical = spec.logicalOperator ?? "AND";
  if (typeof logical !== "string" || !["AND", "OR"].includes(logical.toUpperCase()))
    fail("bad_condition", `${at}.logicalOperator: must be AND or OR`, `${at}.logicalOperator`);
  const list = spec.conditions;
  if (!Array.isArray(list))
    return fail("bad_condition", `${at}.conditions: must be an array`, `${at}.conditions`);
  if (list.length === 0) return {};
  const parts = list.map((c, i) => condition(c, `${at}.conditions.${i}`));
  if (parts.length === 1) return parts[0]!;
  return { [(logical as string).toUpperCase() === "AND" ? "$and" : "$or"]: parts };
};

/** Condition list -> MongoDB filter; throws QueryError naming the condition at fault. */
export const conditionsToFilter = (spec: unknown, at = "query"): Filter => {
  if (spec === undefined || spec === null) return {};
  if (!isPlainObject(spec))
    return fail("bad_condition", `${at}: must be an object with logicalOperator and conditions`, at);
  return conditionsAt(spec, at);
};
