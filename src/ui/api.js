/**
 * The gateway's console API, same origin. Every failure becomes an ApiError whose message is what the
 * operator reads: the HTTP status, the API's error code and its message (`{"error": {"code", "message"}}`).
 */

export class ApiError extends Error {
  /**
   * @param {number} status 0 when the request never got an answer
   * @param {string} code
   * @param {string} message
   * @param {unknown} [details]
   */
  constructor(status, code, message, details) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.details = details ?? null;
  }

  /** "422 admission_refused: the module exports no eval" */
  get text() {
    return this.status === 0
      ? `${this.code}: ${this.message}`
      : `${this.status} ${this.code}: ${this.message}`;
  }
}

/**
 * @param {Response} res
 * @returns {Promise<ApiError>}
 */
const errorOf = async (res) => {
  const text = await res.text().catch(() => "");
  try {
    const body = JSON.parse(text);
    if (body && typeof body === "object" && body.error && typeof body.error === "object") {
      return new ApiError(
        res.status,
        String(body.error.code ?? "error"),
        String(body.error.message ?? res.statusText),
        body.error.details,
      );
    }
  } catch {
    // not JSON: the body itself is the message
  }
  return new ApiError(
    res.status,
    "http_error",
    text.trim().slice(0, 500) || res.statusText || "request failed",
  );
};

/**
 * @param {string} method
 * @param {string} path
 * @param {{ json?: unknown, form?: FormData, timeoutMs?: number }} [options]
 * @returns {Promise<{ status: number, body: any }>}
 */
export const request = async (method, path, options = {}) => {
  /** @type {RequestInit} */
  const init = { method, headers: { accept: "application/json" } };
  if (options.json !== undefined) {
    init.body = JSON.stringify(options.json);
    init.headers = { ...init.headers, "content-type": "application/json" };
  } else if (options.form) {
    init.body = options.form;
  }
  init.signal = AbortSignal.timeout(options.timeoutMs ?? 15_000);
  let res;
  try {
    res = await fetch(path, init);
  } catch (err) {
    const timeout = err instanceof DOMException && err.name === "TimeoutError";
    throw new ApiError(
      0,
      timeout ? "timeout" : "unreachable",
      timeout ? `no answer from ${path}` : "the gateway did not answer",
    );
  }
  if (!res.ok) throw await errorOf(res);
  const text = await res.text();
  return { status: res.status, body: text === "" ? null : JSON.parse(text) };
};

/** @param {string} path */
export const get = async (path) => (await request("GET", path)).body;

/** @param {string} id */
export const enc = (id) => encodeURIComponent(id);
