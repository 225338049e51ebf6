/**
 * Postgres jsonpath literals. JSON's string escapes are exactly jsonpath's, so JSON.stringify quotes
 * keys and strings safely; the whole jsonpath then travels as one bound parameter, never as SQL text.
 */
import { fail } from "./errors.ts";

export const jpString = (s: string): string => JSON.stringify(s);

export const jpKey = (key: string): string => `.${JSON.stringify(key)}`;

export const jpScalar = (value: unknown, at: string): string => {
  if (value === null) return "null";
  switch (typeof value) {
    case "string":
      return JSON.stringify(value);
    case "boolean":
      return value ? "true" : "false";
    case "number":
      if (!Number.isFinite(value)) fail("bad_value", `${at}: numbers must be finite`, at);
      return JSON.stringify(value);
    default:
      return fail("bad_value", `${at}: expected a scalar`, at);
  }
};

/** The jsonpath item type() name of a JSON value. */
export const jpType = (value: unknown): string => {
  if (value === null) return "null";
  if (Array.isArray(value)) return "array";
  switch (typeof value) {
    case "string":
      return "string";
    case "number":
      return "number";
    case "boolean":
      return "boolean";
    default:
      return "object";
  }
};
