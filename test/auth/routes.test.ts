/**
 * Every endpoint against the one table (src/auth/routes.ts), row by row: without a token 401, with a
 * token that lacks the level 403, with one that has it, past the guard. And the table is the apps'
 * routes exactly, both ways, so a new route cannot ship without a row.
 *
 * The apps are built over stand-ins (as in test/http/openapi.test.ts): the guard answers before any
 * handler runs, which is what this test is about. WebSocket and gRPC rows are checked on real servers
 * in allocator.test.ts, instance.test.ts and block.test.ts; here only that they exist.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { Hono } from "hono";
import type { Guard } from "../../src/auth/guard.ts";
import { storeGuard } from "../../src/auth/index.ts";
import { ROUTE_LEVELS, type RouteRule, type ServiceName } from "../../src/auth/routes.ts";
import type { Level } from "../../src/auth/scopes.ts";
import { TokenStore } from "../../src/auth/tokens.ts";
import {
  createExecutorMetricsApp,
  createExecutorMgmtApp,
  createMapperApp,
  createSidecarMgmtApp,
} from "../../src/block/app.ts";
import { createControllerApp } from "../../src/controller/app.ts";
import { createGatewayApp } from "../../src/gateway/app.ts";
import { createInstanceApp } from "../../src/instance/app.ts";
import { createMetricsApp, createRegistryApp } from "../../src/registry/app.ts";
import { openStore, type Store } from "../../src/store/index.ts";

/** Stands in for every dependency: building registers routes; the guard refuses before any is used. */
const stub: never = new Proxy(() => {}, {
  get: (_t, key) => (key === "then" ? undefined : key === Symbol.toPrimitive ? () => "stub" : stub),
  apply: () => stub,
  construct: () => stub,
}) as never;

/** Dependencies as stand-ins, but the guard real. */
const withGuard = (guard: Guard): never =>
  new Proxy({}, { get: (_t, key) => (key === "guard" ? guard : key === "then" ? undefined : stub) }) as never;

const APPS: Partial<Record<ServiceName, (guard: Guard) => Hono>> = {
  registry: (g) => createRegistryApp(stub, g),
  metrics: (g) => createMetricsApp(stub, g),
  controller: (g) =>
    createControllerApp({
      ctx: stub,
      registry: stub,
      scanner: stub,
      stability: stub,
      events: stub,
      guard: g,
    }),
  gateway: (g) => createGatewayApp(withGuard(g)),
  "executor-metrics": (g) => createExecutorMetricsApp(stub, g),
  "executor-mgmt": (g) => createExecutorMgmtApp(stub, g),
  mapper: (g) => createMapperApp(stub, g),
  "sidecar-mgmt": (g) => createSidecarMgmtApp(stub, "auto-scaler", () => [], g),
  instance: (g) => createInstanceApp(stub, stub, stub, { guard: g }),
};

/** The scopes of a token that lacks `level` (none for levels any token meets). */
const LACKING: Record<Level, string | null> = {
  public: null,
  authenticated: null,
  read: "infer:some-block",
  infer: "infer:another-block",
  operator: "infer:some-block",
  internal: "operator",
  admin: "operator",
};
/** The scopes of a token that has `level`, and no more than needed. */
const HAVING: Record<Level, string> = {
  public: "infer:some-block",
  authenticated: "infer:some-block",
  read: "operator",
  infer: "infer:*",
  operator: "operator",
  internal: "internal",
  admin: "admin",
};

const concrete = (path: string) => path.replace(/:[A-Za-z_]+/g, "x1").replace(/\*$/, "x1");

let store: Store;
const tokens: Record<string, string> = {};
beforeAll(async () => {
  store = await openStore({});
  const made = new TokenStore(store);
  for (const scope of new Set([...Object.values(LACKING), ...Object.values(HAVING)])) {
    if (scope) tokens[scope] = (await made.create({ name: `table ${scope}`, scopes: [scope] }, "test")).token;
  }
});
afterAll(() => store.close());

const call = async (
  app: Hono,
  rule: RouteRule,
  token?: string,
): Promise<{ status: number; code?: string }> => {
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (token) headers.authorization = `Bearer ${token}`;
  const init: RequestInit = { method: rule.method, headers };
  if (rule.method !== "GET") init.body = "{}";
  // A handler over stand-ins may fail or never answer; past the guard is all that is asked here.
  const quiet = console.error;
  console.error = () => {};
  try {
    const res = await Promise.race([
      app.request(concrete(rule.path), init),
      Bun.sleep(2000).then(() => new Response(null, { status: 599 })),
    ]);
    const body = (await res.json().catch(() => null)) as { error?: { code?: string } } | null;
    return { status: res.status, code: body?.error?.code };
  } finally {
    console.error = quiet;
  }
};

for (const [service, build] of Object.entries(APPS) as [ServiceName, (g: Guard) => Hono][]) {
  describe(`${service}`, () => {
    let app: Hono;
    beforeAll(() => {
      app = build(storeGuard(store));
    });

    test("the table lists exactly the app's routes", () => {
      const served = app.routes
        .filter((r) => r.method !== "ALL")
        .map((r) => `${r.method} ${r.path}`)
        .sort();
      const table = ROUTE_LEVELS[service]
        .filter((r) => r.method !== "WS" && r.method !== "GRPC")
        .map((r) => `${r.method} ${r.path}`)
        .sort();
      expect([...new Set(served)]).toEqual(table);
    });

    for (const rule of ROUTE_LEVELS[service].filter((r) => r.method !== "WS" && r.method !== "GRPC")) {
      test(`${rule.method} ${rule.path} (${rule.level})`, async () => {
        const anonymous = await call(app, rule);
        if (rule.level === "public") expect(anonymous.status).not.toBe(401);
        else expect([anonymous.status, anonymous.code]).toEqual([401, "unauthenticated"]);

        const lacking = LACKING[rule.level];
        if (lacking) {
          const refused = await call(app, rule, tokens[lacking]);
          expect([refused.status, refused.code]).toEqual([403, "forbidden"]);
        }
        const allowed = await call(app, rule, tokens[HAVING[rule.level]]);
        expect([401, 403]).not.toContain(allowed.status);
      });
    }
  });
}

test("every service in the table is checked here or on a real server", () => {
  const here = Object.keys(APPS);
  const elsewhere = ["allocator", "executor"];
  expect([...here, ...elsewhere].sort()).toEqual(Object.keys(ROUTE_LEVELS).sort());
  for (const [service, rules] of Object.entries(ROUTE_LEVELS)) {
    for (const r of rules)
      if (r.method === "WS" || r.method === "GRPC")
        expect(["allocator", "executor", "instance"]).toContain(service);
  }
});

describe("rows naming their block (infer:<block> reaches that block only)", () => {
  const withBlock = Object.entries(ROUTE_LEVELS).flatMap(([service, rules]) =>
    rules.filter((r) => r.block !== undefined).map((r) => [service as ServiceName, r] as const),
  );

  test("each is an infer row whose path has the parameter", () => {
    expect(withBlock.length).toBeGreaterThan(0);
    for (const [, r] of withBlock) {
      expect(r.level).toBe("infer");
      expect(r.path.split("/")).toContain(`:${r.block}`);
    }
  });

  for (const [service, rule] of withBlock) {
    test(`${service} ${rule.method} ${rule.path}`, async () => {
      const made = new TokenStore(store);
      const forX1 = (await made.create({ name: "only x1", scopes: ["infer:x1"] }, "test")).token;
      const forEscaped = (await made.create({ name: "only a-b", scopes: ["infer:a-b"] }, "test")).token;
      const app = APPS[service]!(storeGuard(store));
      const at = (id: string) => ({ ...rule, path: rule.path.replace(`:${rule.block}`, id) });
      // concrete() puts x1 in the path: the token for x1 passes, the same token on x2 does not.
      expect([401, 403]).not.toContain((await call(app, at("x1"), forX1)).status);
      expect(await call(app, at("x2"), forX1)).toEqual({ status: 403, code: "forbidden" });
      // The id is compared decoded, as the handler reads it; a bad escape matches no token.
      expect([401, 403]).not.toContain((await call(app, at("a%2Db"), forEscaped)).status);
      expect((await call(app, at("%E0%A4%A"), forX1)).status).toBe(403);
    });
  }
});
