/**
 * What every typed service client shares: one fetch that turns an unreachable service and a non-2xx
 * answer into a ServiceClientError carrying the server's `{"error": {code, message, details}}`.
 */
import { serviceToken } from "../auth/credential.ts";

export class ServiceClientError extends Error {
  override readonly name: string = "ServiceClientError";
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details?: unknown,
  ) {
    super(message);
  }
}

export interface ServiceTarget {
  baseUrl: string;
  /** How the service is named in an "unreachable" message, e.g. "the registry". */
  service: string;
  /** Appended to the unreachable message, e.g. "is it running? (aios up)". */
  hint?: string;
  /** Builds the error (a subclass per service). */
  error?: (status: number, code: string, message: string, details?: unknown) => ServiceClientError;
  /** The bearer token to present; default: this process's credential (src/auth/credential.ts). */
  token?: string;
}

/** `init` with the caller's bearer token added, unless it names its own Authorization. */
export const withCredentials = (init: RequestInit | undefined, token = serviceToken()): RequestInit => {
  const headers = new Headers(init?.headers);
  if (token && !headers.has("authorization")) headers.set("authorization", `Bearer ${token}`);
  return { ...init, headers };
};

export const trimBaseUrl = (url: string): string => url.replace(/\/+$/, "");

/** Fetches `path` from the service; resolves only with a 2xx response. */
export const fetchService = async (
  target: ServiceTarget,
  path: string,
  init?: RequestInit,
): Promise<Response> => {
  const make =
    target.error ??
    ((status, code, message, details) => new ServiceClientError(status, code, message, details));
  let res: Response;
  try {
    res = await fetch(`${target.baseUrl}${path}`, withCredentials(init, target.token ?? serviceToken()));
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    throw make(
      0,
      "unreachable",
      `cannot reach ${target.service} at ${target.baseUrl} (${why})${target.hint ? `; ${target.hint}` : ""}`,
    );
  }
  if (res.ok) return res;
  const body = (await res.json().catch(() => null)) as {
    error?: { code?: string; message?: string; details?: unknown };
  } | null;
  throw make(
    res.status,
    body?.error?.code ?? "http_error",
    body?.error?.message ?? `${init?.method ?? "GET"} ${path}: HTTP ${res.status}`,
    body?.error?.details,
  );
};

/** POSTs a JSON body and resolves with the parsed JSON answer. */
export const postJson = async <T = unknown>(
  target: ServiceTarget,
  path: string,
  body: unknown,
  init: RequestInit = {},
): Promise<T> => {
  const res = await fetchService(target, path, {
    ...init,
    method: "POST",
    headers: { "content-type": "application/json", ...(init.headers ?? {}) },
    body: JSON.stringify(body),
  });
  return (await res.json()) as T;
};
