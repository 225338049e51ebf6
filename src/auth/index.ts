/**
 * Authentication and authorization for every aios entry point. See scopes.ts for the model,
 * routes.ts for the one table of levels, guard.ts for the check, hono.ts for the HTTP middleware.
 */
import { ApiError } from "../http/errors.ts";
import type { Store } from "../store/index.ts";
import { AuditLog } from "./audit.ts";
import {
  type Authenticator,
  knownTokenAuthenticator,
  remoteAuthenticator,
  storeAuthenticator,
} from "./authenticator.ts";
import { Guard } from "./guard.ts";
import type { Principal } from "./scopes.ts";
import { TokenStore } from "./tokens.ts";

export { AuditLog } from "./audit.ts";
export { authHeaders, ON_BEHALF_OF, serviceToken, useServiceToken } from "./credential.ts";
export { ANONYMOUS, bearerToken, Guard, onBehalfOfHeader } from "./guard.ts";
export { guardRoutes, whoami } from "./hono.ts";
export { ROUTE_LEVELS, ruleFor, type ServiceName } from "./routes.ts";
export { effectiveCaller, meets, type Principal, type Scope } from "./scopes.ts";
export { generateToken, parseToken, TokenStore } from "./tokens.ts";

/** How a server verb was told to treat callers: `--anonymous` / AIOS_ANONYMOUS, `--token` / AIOS_TOKEN. */
export interface AuthSettings {
  /** Calls without a token act as admin. Local development only. */
  anonymous?: boolean;
  /** This service's own credential for the calls it makes. */
  token?: string;
}

/** `AIOS_ANONYMOUS=1|true|yes` turns anonymous access on. */
export const anonymousFromEnv = (env = process.env): boolean =>
  /^(1|true|yes|on)$/i.test(env.AIOS_ANONYMOUS ?? "");

/** The guard of a service that holds the store: tokens looked up there, calls audited there. */
export const storeGuard = (store: Store, settings: AuthSettings = {}): Guard =>
  new Guard({
    authenticator: storeAuthenticator(new TokenStore(store)),
    anonymous: settings.anonymous === true,
    audit: new AuditLog(store),
  });

/** Who a workload's own credential stands for when it comes back to it (the controller gave it). */
const SERVICE: Principal = Object.freeze({
  id: "service",
  name: "aios service",
  scopes: ["internal" as const],
});

/**
 * The guard of a workload (block services, instances), which holds no store: its own credential is
 * known, other tokens are checked at `verifyUrl` (its controller's `GET /auth/whoami`).
 */
export const workloadGuard = (options: {
  token?: string | undefined;
  verifyUrl?: string | undefined;
  anonymous?: boolean;
}): Guard => {
  const remote: Authenticator | undefined = options.verifyUrl
    ? remoteAuthenticator(options.verifyUrl)
    : undefined;
  const authenticator = options.token ? knownTokenAuthenticator(options.token, SERVICE, remote) : remote;
  return new Guard({
    anonymous: options.anonymous === true,
    ...(authenticator ? { authenticator } : {}),
  });
};

/**
 * At the start of a service that holds the store: its own credential (`--token` / AIOS_TOKEN) is stored
 * as an `internal` token, and AIOS_ADMIN_TOKEN as an `admin` one, each if not there yet. This is how a
 * deployment (deploy/, a Kubernetes Secret) brings its first tokens without a running API; both are
 * made with `aios token generate`.
 */
export const bootstrapTokens = async (
  store: Store,
  tokens: { service?: string | undefined; admin?: string | undefined },
): Promise<void> => {
  const made = new TokenStore(store);
  if (tokens.service) await made.ensure(tokens.service, "service credential", ["internal"]);
  if (tokens.admin) {
    // A revoked bootstrap admin stays revoked: the service starts without it.
    await made.ensure(tokens.admin, "bootstrap admin", ["admin"]).catch((err: unknown) => {
      if (!(err instanceof ApiError && err.status === 409)) throw err;
      console.warn(`[aios] AIOS_ADMIN_TOKEN: ${err.message}; not used`);
    });
  }
};
