/**
 * The check every entry point makes: who is calling (the bearer token, or anonymous where a user turned
 * that on for local development) and whether the route's level (routes.ts) lets them. 401 when there
 * is no valid token, 403 when the token lacks the scope; 503 when the token cannot be checked.
 */
import { z } from "zod";
import { ApiError, errorMessage } from "../http/errors.ts";
import type { AuditLog } from "./audit.ts";
import type { Authenticator } from "./authenticator.ts";
import { ON_BEHALF_OF } from "./credential.ts";
import { blockOf, levelOf, type RouteRule, ruleFor, type ServiceName } from "./routes.ts";
import { type Level, meets, type Principal, type Scope, scopeProblem, scopesMeeting } from "./scopes.ts";

export interface GuardOptions {
  /** Checks tokens; without one only anonymous calls can pass (and only when `anonymous`). */
  authenticator?: Authenticator;
  /** Calls without a token act as an anonymous admin. For local development only. */
  anonymous?: boolean;
  /** Where state-changing calls are recorded (services that hold the store). */
  audit?: AuditLog;
}

export const ANONYMOUS: Principal = Object.freeze({
  id: "anonymous",
  name: "anonymous",
  scopes: ["admin"] as Scope[],
  anonymous: true,
});

const OnBehalfOfSchema = z.object({
  id: z.string().min(1).max(200),
  name: z.string().max(200),
  scopes: z.array(z.string().max(300)).max(32),
});

/** The token of an `Authorization: Bearer <token>` header; null when there is none. */
export const bearerToken = (header: string | null | undefined): string | null => {
  if (!header) return null;
  const m = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header);
  if (!m) throw new ApiError(401, "unauthenticated", "the Authorization header must be 'Bearer <token>'");
  return m[1] as string;
};

export interface CallCredentials {
  authorization: string | null | undefined;
  onBehalfOf?: string | null | undefined;
}

export class Guard {
  constructor(readonly options: GuardOptions) {}

  /** Everything allowed, no tokens: for embedding and tests. The `aios` verbs never build this. */
  static open(): Guard {
    return new Guard({ anonymous: true });
  }

  get anonymous(): boolean {
    return this.options.anonymous === true;
  }

  get audit(): AuditLog | undefined {
    return this.options.audit;
  }

  /** The caller, or a 401 (no valid token) / 503 (cannot check one). */
  async authenticate(creds: CallCredentials): Promise<Principal> {
    const token = bearerToken(creds.authorization);
    if (token === null) {
      if (this.anonymous) return ANONYMOUS;
      throw new ApiError(
        401,
        "unauthenticated",
        "this endpoint needs a token: send 'Authorization: Bearer <token>' (aios up prints an admin token; aios token create makes more)",
      );
    }
    const authenticator = this.options.authenticator;
    if (!authenticator) {
      if (this.anonymous) return ANONYMOUS;
      throw new ApiError(401, "unauthenticated", "this service checks no tokens");
    }
    let principal: Principal | null;
    try {
      principal = await authenticator.authenticate(token);
    } catch (err) {
      throw new ApiError(503, "auth_unavailable", `cannot check the token: ${errorMessage(err)}`);
    }
    if (!principal)
      throw new ApiError(401, "unauthenticated", "the token is not valid (unknown, revoked or expired)");
    return withOnBehalfOf(principal, creds.onBehalfOf);
  }

  /** Authenticates, then requires `level` (for `infer`, on `blockId`): the caller, or a 401/403. */
  async require(creds: CallCredentials, level: Level, blockId?: string): Promise<Principal> {
    const principal = await this.identify(creds, level);
    this.authorize(principal, level, blockId);
    return principal;
  }

  /** The caller of a call at `level`: on a public one a token is not needed, else a 401 as authenticate. */
  identify(creds: CallCredentials, level: Level): Promise<Principal> {
    return level === "public" ? this.authenticateIfGiven(creds) : this.authenticate(creds);
  }

  /** A 403 naming the scopes that would do, unless `principal` meets `level` (on `blockId`). */
  authorize(principal: Principal, level: Level, blockId?: string): void {
    if (meets(principal.scopes, level, blockId)) return;
    const need = scopesMeeting(level, blockId);
    throw new ApiError(
      403,
      "forbidden",
      `token '${principal.name}' (${principal.id}) lacks the scope for this call: it needs one of ${need.join(", ")}`,
      { required: level, has: principal.scopes },
    );
  }

  /** The rule for a call and its caller (see ruleFor for calls no row names). */
  async check(
    service: ServiceName,
    method: string,
    path: string,
    creds: CallCredentials,
    blockId?: string,
  ): Promise<{ principal: Principal; rule: RouteRule | undefined }> {
    const rule = ruleFor(service, method, path);
    const principal = await this.require(creds, levelOf(rule), blockId ?? blockOf(rule, path));
    return { principal, rule };
  }

  /** On a public route a token is not needed, but a bad one is still refused. */
  private async authenticateIfGiven(creds: CallCredentials): Promise<Principal> {
    if (!creds.authorization) return ANONYMOUS_PUBLIC;
    return this.authenticate(creds);
  }
}

/** The caller of a public route that sent no token (no scopes: it can do nothing else). */
const ANONYMOUS_PUBLIC: Principal = Object.freeze({
  id: "anonymous",
  name: "anonymous",
  scopes: [],
  anonymous: true,
});

/** A service names the user it acts for; only `internal` callers are believed. */
const withOnBehalfOf = (principal: Principal, header: string | null | undefined): Principal => {
  if (!header || !meets(principal.scopes, "internal")) return principal;
  let parsed: unknown;
  try {
    parsed = JSON.parse(header);
  } catch {
    throw new ApiError(400, "invalid_input", `${ON_BEHALF_OF} must be JSON {"id","name","scopes"}`);
  }
  const result = OnBehalfOfSchema.safeParse(parsed);
  if (!result.success || result.data.scopes.some((s) => scopeProblem(s) !== null)) {
    throw new ApiError(
      400,
      "invalid_input",
      `${ON_BEHALF_OF} must be JSON {"id","name","scopes"} with valid scopes`,
    );
  }
  return { ...principal, onBehalfOf: result.data as Principal["onBehalfOf"] };
};

/** The header value naming `principal` (or the user it acts for) to the next service. */
export const onBehalfOfHeader = (principal: Principal | undefined): Record<string, string> => {
  if (!principal || principal.anonymous) return {};
  const who = principal.onBehalfOf ?? { id: principal.id, name: principal.name, scopes: principal.scopes };
  return { [ON_BEHALF_OF]: JSON.stringify(who) };
};
