/**
 * The error every part of the Mongo translation throws for input the caller got wrong.
 * `path` names the field or operator at fault so the HTTP layer can answer a 400 that says what is wrong.
 */
export class QueryError extends Error {
  readonly code: string;
  readonly path: string | undefined;

  constructor(code: string, message: string, path?: string) {
    super(message);
    this.name = "QueryError";
    this.code = code;
    this.path = path;
  }
}

export const fail = (code: string, message: string, path?: string): never => {
  throw new QueryError(code, message, path);
};
