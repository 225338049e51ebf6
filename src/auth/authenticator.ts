/**
 * Turning a bearer token into a principal. Services that hold the store look tokens up themselves
 * (StoreAuthenticator); block services and instances, which do not, ask a service that does
 * (RemoteAuthenticator, `GET /auth/whoami`), and know their own credential without asking
 * (KnownTokenAuthenticator). Answers are cached briefly: a revoked token stops working within
 * CACHE_MS everywhere, and a busy executor does not ask once per inference. While the service that
 * answers cannot be reached (a controller restarting), a token it accepted within STALE_IF_ERROR_MS
 * is still accepted, so inference outlives a control plane restart (as Kubernetes' webhook token
 * cache does); a token never seen, or refused, is not.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import type { Principal } from "./scopes.ts";
import type { TokenStore } from "./tokens.ts";

export interface Authenticator {
  /** The principal of a token; null when the token is not valid. */
  authenticate(token: string): Promise<Principal | null>;
}

/** How long a verified token is trusted without asking again (also the revocation delay). */
export const CACHE_MS = 5_000;
/** How long an invalid token is remembered as invalid (a flood of bad tokens costs one lookup each). */
const NEGATIVE_CACHE_MS = 1_000;
const RETRY_AFTER_ERROR_MS = 1_000;
/** How long after its check an accepted token stays accepted while checks fail (the authority is down). */
export const STALE_IF_ERROR_MS = 120_000;
const MAX_CACHED = 10_000;

/** Wraps an authenticator with a small time-bounded cache keyed by the token's hash. */
export class CachedAuthenticator implements Authenticator {
  readonly #cache = new Map<string, { principal: Principal | null; checked: number; until: number }>();
  constructor(
    private readonly inner: Authenticator,
    private readonly ttlMs = CACHE_MS,
    private readonly staleIfErrorMs = STALE_IF_ERROR_MS,
  ) {}

  /** Checks under way: when an entry expires, every call in flight shares one check, not one each. */
  readonly #inflight = new Map<string, Promise<Principal | null>>();

  authenticate(token: string): Promise<Principal | null> {
    const key = createHash("sha256").update(token).digest("base64");
    const hit = this.#cache.get(key);
    if (hit && hit.until > Date.now()) return Promise.resolve(hit.principal);
    let pending = this.#inflight.get(key);
    if (!pending) {
      pending = this.inner.authenticate(token).then(
        (principal) => {
          this.#inflight.delete(key);
          if (this.#cache.size >= MAX_CACHED) this.#cache.clear();
          const now = Date.now();
          this.#cache.set(key, {
            principal,
            checked: now,
            until: now + (principal ? this.ttlMs : NEGATIVE_CACHE_MS),
          });
          return principal;
        },
        (err: unknown) => {
          this.#inflight.delete(key);
          // The check could not be made: an accepted token's last answer holds for a while.
          const last = this.#cache.get(key);
          const now = Date.now();
          if (last?.principal && now - last.checked < this.staleIfErrorMs) {
            // Ask again in a second, not on every call, while the authority is away.
            last.until = now + RETRY_AFTER_ERROR_MS;
            return last.principal;
          }
          throw err;
        },
      );
      this.#inflight.set(key, pending);
    }
    return pending;
  }
}

export const storeAuthenticator = (tokens: TokenStore): Authenticator =>
  new CachedAuthenticator({ authenticate: (t) => tokens.verify(t) });

/** Asks a service that holds the store (`GET <baseUrl>/auth/whoami`); a refusal is null. */
export const remoteAuthenticator = (baseUrl: string, timeoutMs = 2_000): Authenticator =>
  new CachedAuthenticator({
    async authenticate(token) {
      const res = await fetch(`${baseUrl.replace(/\/+$/, "")}/auth/whoami`, {
        headers: { authorization: `Bearer ${token}` },
        signal: AbortSignal.timeout(timeoutMs),
      });
      if (res.status === 401) return null;
      if (!res.ok) throw new Error(`token check at ${baseUrl} answered HTTP ${res.status}`);
      const body = (await res.json()) as { principal?: Principal };
      return body.principal ?? null;
    },
  });

/** Knows one token (this process's own credential) without asking anyone; the rest go to `next`. */
export const knownTokenAuthenticator = (
  token: string,
  principal: Principal,
  next?: Authenticator,
): Authenticator => {
  const expected = createHash("sha256").update(token).digest();
  return {
    async authenticate(candidate) {
      const got = createHash("sha256").update(candidate).digest();
      if (timingSafeEqual(got, expected)) return principal;
      return next ? next.authenticate(candidate) : null;
    },
  };
};
