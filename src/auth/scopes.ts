/**
 * Who may do what: the scopes a token carries and the level each endpoint requires.
 *
 * A token carries scopes: `admin`, `operator`, `internal` (service-to-service), `infer:<blockId>` for one
 * block's inference or `infer:*` for every block's. An endpoint requires one level (routes.ts). A level is
 * met by these scopes:
 *
 * | level           | met by                                  | for                                        |
 * |-----------------|-----------------------------------------|--------------------------------------------|
 * | `public`        | anyone, no token                        | health probes, API descriptions, the UI's files |
 * | `authenticated` | any valid token                         | `whoami`                                    |
 * | `read`          | admin, operator, internal               | every read of the control plane             |
 * | `infer`         | admin, operator, internal, `infer:<this block>`, `infer:*` | the inference call       |
 * | `operator`      | admin, operator, internal               | creating, scaling, deleting; policy uploads |
 * | `internal`      | admin, internal                         | what only services call: metrics pushes, events, instance tasks |
 * | `admin`         | admin                                   | tokens, the audit log                       |
 *
 * `internal` meets `operator` because services act for a user who was checked where the call entered
 * (the gateway forwarding a creation to a controller); they name that user in `x-aios-on-behalf-of`.
 */

export const BASE_SCOPES = ["admin", "operator", "internal"] as const;
export type BaseScope = (typeof BASE_SCOPES)[number];
/** A scope as stored on a token. */
export type Scope = BaseScope | `infer:${string}`;

export const LEVELS = ["public", "authenticated", "read", "infer", "operator", "internal", "admin"] as const;
export type Level = (typeof LEVELS)[number];

/** Who is calling: a token's identity, or the anonymous caller of a local development install. */
export interface Principal {
  /** The token id (`tok_...`), or `anonymous`. */
  id: string;
  name: string;
  scopes: Scope[];
  /** Set when the call came without a token and anonymous access is on. */
  anonymous?: boolean;
  /** The user a service acted for (`x-aios-on-behalf-of`), when the caller is a service. */
  onBehalfOf?: { id: string; name: string; scopes: Scope[] };
}

const BLOCK_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$/;

/** Why a scope string is not a scope, or null when it is one. */
export const scopeProblem = (scope: string): string | null => {
  if ((BASE_SCOPES as readonly string[]).includes(scope)) return null;
  if (scope.startsWith("infer:")) {
    const block = scope.slice("infer:".length);
    return block === "*" || BLOCK_ID.test(block) ? null : `'${scope}' names no valid block id`;
  }
  return `'${scope}' is not a scope (admin, operator, internal, infer:<blockId> or infer:*)`;
};

const MEETS: Record<Exclude<Level, "public" | "authenticated" | "infer">, readonly BaseScope[]> = {
  read: ["admin", "operator", "internal"],
  operator: ["admin", "operator", "internal"],
  internal: ["admin", "internal"],
  admin: ["admin"],
};

/** Whether `scopes` meet `level` (for `infer`, on `blockId`; undefined means any one block). */
export const meets = (scopes: readonly Scope[], level: Level, blockId?: string): boolean => {
  if (level === "public" || level === "authenticated") return true;
  if (level === "infer") {
    return scopes.some(
      (s) =>
        s === "admin" ||
        s === "operator" ||
        s === "internal" ||
        s === "infer:*" ||
        (s.startsWith("infer:") && (blockId === undefined || s === `infer:${blockId}`)),
    );
  }
  return scopes.some((s) => (MEETS[level] as readonly string[]).includes(s));
};

/** The scopes that would meet `level`, for a 403's message. */
export const scopesMeeting = (level: Level, blockId?: string): string[] =>
  level === "infer"
    ? ["admin", "operator", "internal", `infer:${blockId ?? "<block>"}`, "infer:*"]
    : level === "public" || level === "authenticated"
      ? []
      : [...MEETS[level]];

/** The caller the decision should be about: the user a trusted service acted for, else the caller. */
export const effectiveCaller = (p: Principal): { id: string; name: string; scopes: Scope[] } =>
  p.onBehalfOf ?? { id: p.id, name: p.name, scopes: p.scopes };
