/**
 * The guard as Hono middleware: `app.use(guardRoutes(guard, "registry"))` before the routes. It sets
 * `c.get("principal")` for handlers (pre-checks see the caller through it) and records state-changing
 * calls in the audit log, refused ones included.
 */
import type { Context, MiddlewareHandler } from "hono";
import { resolveError } from "../http/errors.ts";
import { callEntry } from "./audit.ts";
import { ON_BEHALF_OF } from "./credential.ts";
import type { Guard } from "./guard.ts";
import { blockOf, isAudited, levelOf, type RouteRule, ruleFor, type ServiceName } from "./routes.ts";
import type { Principal } from "./scopes.ts";

declare module "hono" {
  interface ContextVariableMap {
    principal: Principal;
  }
}

/** The resource a path names: the segment after the collection (`/api/blocks/demo/scale` -> `demo`). */
const targetOf = (path: string): string | null => {
  const parts = path.split("/").filter((p) => p !== "" && p !== "api");
  return parts.length >= 2 ? decodeURIComponent(parts[1] as string) : null;
};

const record = async (
  guard: Guard,
  service: ServiceName,
  c: Context,
  rule: RouteRule | undefined,
  principal: Principal | undefined,
  status: number,
): Promise<void> => {
  const audit = guard.audit;
  if (!audit || !rule || !isAudited(rule)) return;
  let target: string | null = null;
  try {
    target = targetOf(c.req.path);
  } catch {
    target = null; // a malformed escape: the path itself is recorded
  }
  await audit.record(
    callEntry(principal, { service, method: c.req.method, path: c.req.path, target, status }),
  );
};

export const guardRoutes =
  (guard: Guard, service: ServiceName): MiddlewareHandler =>
  async (c, next) => {
    const rule = ruleFor(service, c.req.method, c.req.path);
    const level = levelOf(rule);
    // Known once authenticated, so a 403 is recorded under the token it refused.
    let principal: Principal | undefined;
    try {
      principal = await guard.identify(
        { authorization: c.req.header("authorization"), onBehalfOf: c.req.header(ON_BEHALF_OF) },
        level,
      );
      guard.authorize(principal, level, blockOf(rule, c.req.path));
    } catch (err) {
      const apiError = resolveError(err, c);
      await record(guard, service, c, rule, principal, apiError.status);
      return c.json(apiError.toBody(), apiError.status as 401);
    }
    c.set("principal", principal);
    await next();
    await record(guard, service, c, rule, principal, c.res.status);
  };

/** `GET /auth/whoami`: the caller as the guard sees it (also how workloads check a token remotely). */
export const whoami = (c: Context) => {
  const p = c.get("principal");
  return c.json({
    principal: { id: p.id, name: p.name, scopes: p.scopes, ...(p.anonymous ? { anonymous: true } : {}) },
  });
};
