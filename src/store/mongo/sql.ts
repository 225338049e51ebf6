/**
 * A tiny parameterized SQL accumulator. Text only ever comes from this module's callers' constants;
 * every user value goes through `param`, which returns a `$n` placeholder.
 */
export interface SqlQuery {
  text: string;
  params: unknown[];
}

export class SqlParams {
  readonly values: unknown[] = [];

  /** Adds a bound value and returns its placeholder, cast when a cast is given. */
  param(value: unknown, cast?: "jsonb" | "jsonpath" | "text[]" | "int" | "text"): string {
    this.values.push(value);
    const placeholder = `$${this.values.length}`;
    return cast ? `${placeholder}::${cast}` : placeholder;
  }
}

/** Quotes a SQL identifier that the code chose (a collection's table), never a user value. */
export const ident = (name: string): string => {
  if (!/^[a-z_][a-z0-9_]*$/.test(name)) throw new Error(`invalid identifier ${name}`);
  return `"${name}"`;
};
