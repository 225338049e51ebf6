/**
 * The HTTP error contract shared by every aios service, and the body helpers that feed it.
 *
 * Every error leaves as JSON `{"error": {"code", "message", "details"}}` with a 4xx status when the
 * caller got something wrong: a malformed or oversized body, a value of the wrong type (the message names
 * the JSON path), a Mongo filter or update the store refuses (the message names the operator or field),
 * a missing document, a duplicate id, an unknown route. Anything else is a bug and answers a 500 with a
 * generic message; the cause goes to stderr, never to the client.
 *
 * Services whose wire format is different (the global metrics API answers `{"success", "data",
 * "error"}`) reuse `toApiError` and render the result their own way.
 */
import type { Context, ErrorHandler, NotFoundHandler } from "hono";
import { HTTPException } from "hono/http-exception";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { z } from "zod";
import { PolicyError } from "../policy/errors.ts";
import { QueryError, StoreError } from "../store/index.ts";
import { ServiceClientError } from "./client.ts";

export type ErrorStatus = 400 | 401 | 403 | 404 | 405 | 409 | 413 | 415 | 422 | 429 | 500 | 503;

/** An error meant for the caller: its status, a stable machine code, a message and optional details. */
export class ApiError extends Error {
  readonly status: ErrorStatus;
  readonly code: string;
  readonly details: unknown;

  constructor(status: ErrorStatus, code: string, message: string, details?: unknown) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.details = details ?? null;
  }

  toBody(): ErrorBody {
    return { error: { code: this.code, message: this.message, details: this.details } };
  }
}

export interface ErrorBody {
  error: { code: string; message: string; details: unknown };
}

export const badRequest = (code: string, message: string, details?: unknown): ApiError =>
  new ApiError(400, code, message, details);

export const notFound = (message: string, details?: unknown): ApiError =>
  new ApiError(404, "not_found", message, details);

/** 1 MiB: far above any registry document, small enough that a flood cannot hold much memory. */
export const DEFAULT_BODY_LIMIT = 1024 * 1024;

/** Documents and filters nest a handful of levels; anything deeper than this is refused before use. */
export const DEFAULT_MAX_DEPTH = 64;

/** Renders a JSON path (`nodes.nodeData.0.id`) from zod-style path segments; `body` for the root. */
export const formatPath = (path: readonly PropertyKey[]): string =>
  path.length === 0 ? "body" : path.map((p) => String(p)).join(".");

/** A zod failure as a 400 whose message names the JSON path of the first issue; all issues in details. */
export const fromZodError = (err: z.core.$ZodError, prefix: readonly PropertyKey[] = []): ApiError => {
  const issues = err.issues.map((issue) => {
    const path = [...prefix, ...issue.path];
    // An unknown key is reported on its parent; name the key itself.
    if (issue.code === "unrecognized_keys" && issue.keys.length > 0) path.push(issue.keys[0]!);
    return { path: formatPath(path), code: issue.code, message: issue.message };
  });
  const first = issues[0];
  const more = issues.length > 1 ? ` (and ${issues.length - 1} more)` : "";
  const message = first ? `${first.path}: ${first.message}${more}` : "invalid input";
  return badRequest("invalid_input", message, { issues });
};

/** What an error says, whatever was thrown. */
export const errorMessage = (err: unknown): string => (err instanceof Error ? err.message : String(err));

/** Maps anything thrown while handling a request to the error the caller sees. */
export const toApiError = (err: unknown): ApiError => {
  if (err instanceof ApiError) return err;
  if (err instanceof QueryError) {
    return badRequest(err.code, err.message, err.path === undefined ? null : { path: err.path });
  }
  if (err instanceof StoreError) return new ApiError(err.status, err.code, err.message);
  if (err instanceof z.core.$ZodError) return fromZodError(err);
  if (err instanceof PolicyError) {
    // A policy that fails is the policy author's to fix: its code and URI, never a 5xx.
    const status = err.code === "not_found" ? 404 : err.code === "bad_input" ? 400 : 422;
    return new ApiError(status, err.code, err.message, { uri: err.uri, ...err.details });
  }
  if (err instanceof ServiceClientError) {
    // Another service's answer: its refusal passes through; an unreachable or failing service is ours.
    const known: readonly number[] = [400, 403, 404, 409, 413, 415, 422, 429];
    if (known.includes(err.status))
      return new ApiError(err.status as ErrorStatus, err.code, err.message, err.details);
    return new ApiError(
      503,
      err.code === "unreachable" ? "service_unreachable" : "service_failed",
      err.message,
    );
  }
  if (err instanceof HTTPException) {
    const status = err.status;
    if (status === 413)
      return new ApiError(413, "payload_too_large", err.message || "request body too large");
    if (status >= 400 && status < 500) {
      return new ApiError(status === 404 || status === 405 ? status : 400, "bad_request", err.message);
    }
  }
  return new ApiError(500, "internal", "internal error");
};

/** Logs what the caller must not see: the cause of a 500. */
const logUnexpected = (err: unknown, c: Context): void => {
  console.error(`[aios] ${c.req.method} ${c.req.path} failed:`, err);
};

/** Converts and logs: the one place that decides whether an error is the caller's or ours. */
export const resolveError = (err: unknown, c: Context): ApiError => {
  const apiError = toApiError(err);
  if (apiError.status >= 500) logUnexpected(err, c);
  return apiError;
};

/** `app.onError(onError)`: every error as `{"error": {"code", "message", "details"}}`. */
export const onError: ErrorHandler = (err, c) => {
  const apiError = resolveError(err, c);
  return c.json(apiError.toBody(), apiError.status as ContentfulStatusCode);
};

/** `app.notFound(onNotFound)`: an unknown route (or a method the route does not serve) is a 404. */
export const onNotFound: NotFoundHandler = (c) =>
  c.json(notFound(`no route for ${c.req.method} ${c.req.path}`).toBody(), 404);

export interface ReadJsonOptions {
  /** Largest accepted body in bytes; default 1 MiB. Larger bodies answer 413. */
  limit?: number;
  /** Deepest accepted nesting of arrays and objects; default 64. */
  maxDepth?: number;
}

const tooLarge = (limit: number): ApiError =>
  new ApiError(413, "payload_too_large", `request body exceeds ${limit} bytes`, { limit });

/** Reads at most `limit` bytes of a request body; refuses a larger declared or actual length with 413. */
export const readBodyBytes = async (req: Request, limit: number): Promise<Uint8Array> => {
  const declared = req.headers.get("content-length");
  if (declared !== null && Number(declared) > limit) throw tooLarge(limit);
  if (req.body === null) return new Uint8Array(0);
  const reader = req.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > limit) {
      await reader.cancel().catch(() => {});
      throw tooLarge(limit);
    }
    chunks.push(value);
  }
  const bytes = new Uint8Array(total);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return bytes;
};

/** Throws a 400 when a parsed JSON value nests deeper than `maxDepth` (iterative: no stack to exhaust). */
export const checkDepth = (value: unknown, maxDepth: number): void => {
  const stack: [unknown, number][] = [[value, 1]];
  while (stack.length > 0) {
    const [v, depth] = stack.pop()!;
    if (v === null || typeof v !== "object") continue;
    if (depth > maxDepth) {
      throw badRequest("too_deep", `body nests more than ${maxDepth} levels of arrays and objects`, {
        maxDepth,
      });
    }
    for (const child of Object.values(v)) {
      if (child !== null && typeof child === "object") stack.push([child, depth + 1]);
    }
  }
};

/** Parses JSON text into a value, as a 400 naming the problem when it is not JSON or nests too deep. */
export const parseJsonText = (text: string, maxDepth = DEFAULT_MAX_DEPTH, what = "body"): unknown => {
  if (text.trim() === "") throw badRequest("invalid_json", `${what} must be JSON, got nothing`);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    throw badRequest("invalid_json", `${what} is not valid JSON: ${reason}`);
  }
  checkDepth(value, maxDepth);
  return value;
};

/** Reads a request body as JSON with a size limit: 413 when too large, 400 when not JSON or too deep. */
export const readJson = async (req: Request, options: ReadJsonOptions = {}): Promise<unknown> => {
  const bytes = await readBodyBytes(req, options.limit ?? DEFAULT_BODY_LIMIT);
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw badRequest("invalid_json", "body is not valid UTF-8");
  }
  return parseJsonText(text, options.maxDepth ?? DEFAULT_MAX_DEPTH);
};

/** Validates a value with a zod schema; a failure is a 400 naming the JSON path at fault. */
export const parseWith = <S extends z.ZodType>(
  schema: S,
  value: unknown,
  prefix: readonly PropertyKey[] = [],
): z.output<S> => {
  const result = schema.safeParse(value);
  if (!result.success) throw fromZodError(result.error, prefix);
  return result.data;
};

/** Reads a JSON body (size-limited) and validates it with a zod schema. */
export const readJsonWith = async <S extends z.ZodType>(
  req: Request,
  schema: S,
  options?: ReadJsonOptions,
): Promise<z.output<S>> => parseWith(schema, await readJson(req, options));
