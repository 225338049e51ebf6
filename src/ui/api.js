/**
 * The gateway's console API, same origin. Every failure becomes an ApiError whose message is what the
 * operator reads: the HTTP status, the API's error code and its message (`{"error": {"code", "message"}}`).
 *
 * Every call carries the API token (`Authorization: Bearer`) kept in localStorage: it comes from the
 * `#token=` fragment of the URL `aios up` prints (taken out of the address bar at once), or from the
 * sign-in form shown when the API answers 401.
 */

const TOKEN_KEY = "aios.token";

/** The token when storage refuses to keep it (private mode): it lasts as long as the page. */
/** @type {string | null} */
let memoryToken = null;

/** @returns {string | null} */
export const getToken = () => {
  try {
    return localStorage.getItem(TOKEN_KEY);
  } catch {
    return null;
  }
};

/** @param {string | null} token */
export const setToken = (token) => {
  try {
    if (token) localStorage.setItem(TOKEN_KEY, token);
    else localStorage.removeItem(TOKEN_KEY);
  } catch {
    // storage refused: memoryToken keeps it
  }
  memoryToken = token;
};

const currentToken = () => getToken() ?? memoryToken;

/**
 * Takes `token=` out of the URL's fragment (`#token=aios_...`, or `#/block/x&token=...`) into storage,
 * and the fragment out of the address bar and history, so the token is not bookmarked or shared.
 * @returns {boolean} whether a token was there
 */
export const adoptTokenFromUrl = () => {
  const hash = location.hash.replace(/^#/, "");
  const parts = hash.split("&");
  const found = parts.find((p) => p.startsWith("token="));
  if (!found) return false;
  setToken(decodeURIComponent(found.slice("token=".length)));
  const rest = parts.filter((p) => !p.startsWith("token=")).join("&");
  history.replaceState(null, "", `${location.pathname}${location.search}${rest ? `#${rest}` : ""}`);
  return true;
};

/** @type {Set<(err: ApiError) => void>} */
const unauthenticatedListeners = new Set();

/** Called on every 401 (the sign-in form listens). @param {(err: ApiError) => void} fn */
export const onUnauthenticated = (fn) => {
  unauthenticatedListeners.add(fn);
};

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
  /** @type {Record<string, string>} */
  const headers = { accept: "application/json" };
  const token = currentToken();
  if (token) headers.authorization = `Bearer ${token}`;
  /** @type {RequestInit} */
  const init = { method, headers };
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
  if (!res.ok) {
    const err = await errorOf(res);
    if (res.status === 401) for (const fn of unauthenticatedListeners) fn(err);
    throw err;
  }
  const text = await res.text();
  return { status: res.status, body: text === "" ? null : JSON.parse(text) };
};

/** @param {string} path */
export const get = async (path) => (await request("GET", path)).body;

/** @param {string} id */
export const enc = (id) => encodeURIComponent(id);
