/**
 * The auth core on its own: the scope table row by row, tokens (hashed at rest, revoked, expired),
 * the guard's 401/403 decisions and on-behalf-of, the cache's revocation delay, and audit queries.
 * Runs on PGlite, and on PostgreSQL too when DATABASE_URL is set.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { AuditLog } from "../../src/auth/audit.ts";
import { CachedAuthenticator } from "../../src/auth/authenticator.ts";
import { bearerToken, Guard, onBehalfOfHeader } from "../../src/auth/guard.ts";
import { bootstrapTokens, storeGuard, workloadGuard } from "../../src/auth/index.ts";
import { isAudited, ROUTE_LEVELS, ruleFor } from "../../src/auth/routes.ts";
import { LEVELS, type Level, meets, type Scope, scopeProblem } from "../../src/auth/scopes.ts";
import { generateToken, parseToken, TokenStore } from "../../src/auth/tokens.ts";
import { ApiError } from "../../src/http/errors.ts";
import type { Store } from "../../src/store/index.ts";
import { backends } from "../support/stores.ts";

/** The scope table of src/auth/scopes.ts, written out: which scope meets which level (block `b1`). */
const MEETS: Record<Level, Record<string, boolean>> = {
  public: { admin: true, operator: true, internal: true, "infer:b1": true, "infer:*": true, none: true },
  authenticated: {
    admin: true,
    operator: true,
    internal: true,
    "infer:b1": true,
    "infer:*": true,
    none: true,
  },
  read: { admin: true, operator: true, internal: true, "infer:b1": false, "infer:*": false, none: false },
  infer: { admin: true, operator: true, internal: true, "infer:b1": true, "infer:*": true, none: false },
  operator: { admin: true, operator: true, internal: true, "infer:b1": false, "infer:*": false, none: false },
  internal: {
    admin: true,
    operator: false,
    internal: true,
    "infer:b1": false,
    "infer:*": false,
    none: false,
  },
  admin: { admin: true, operator: false, internal: false, "infer:b1": false, "infer:*": false, none: false },
};

describe("the scope table", () => {
  for (const level of LEVELS) {
    for (const [scope, expected] of Object.entries(MEETS[level])) {
      test(`${scope} ${expected ? "meets" : "does not meet"} ${level}`, () => {
        const scopes = (scope === "none" ? [] : [scope]) as Scope[];
        expect(meets(scopes, level, "b1")).toBe(expected);
      });
    }
  }
  test("infer:<block> meets infer on that block only", () => {
    expect(meets(["infer:b1"], "infer", "b2")).toBe(false);
    expect(meets(["infer:*"], "infer", "b2")).toBe(true);
  });
  test("scopes are checked when a token is made", () => {
    expect(scopeProblem("admin")).toBeNull();
    expect(scopeProblem("infer:demo")).toBeNull();
    expect(scopeProblem("root")).toContain("not a scope");
    expect(scopeProblem("infer:")).toContain("no valid block id");
  });
});

describe("the route table", () => {
  test("literal rows win over patterns, HEAD is GET, unknown paths have no rule", () => {
    expect(ruleFor("controller", "POST", "/blocks/query")?.level).toBe("read");
    expect(ruleFor("controller", "GET", "/blocks/b1")?.level).toBe("read");
    expect(ruleFor("registry", "HEAD", "/clusters")?.level).toBe("read");
    expect(ruleFor("registry", "GET", "/policies/policy.x:v1/wasm")?.level).toBe("read");
    expect(ruleFor("gateway", "GET", "/ui/app.js")?.level).toBe("public");
    expect(ruleFor("registry", "GET", "/nope")).toBeUndefined();
  });
  test("reads and telemetry are not audited; changes are", () => {
    expect(isAudited(ruleFor("gateway", "POST", "/api/createBlock")!)).toBe(true);
    expect(isAudited(ruleFor("registry", "POST", "/clusters/query")!)).toBe(false);
    expect(isAudited(ruleFor("registry", "PUT", "/cluster/c1")!)).toBe(false);
    expect(isAudited(ruleFor("gateway", "GET", "/api/blocks")!)).toBe(false);
  });
  test("every state-changing row needs more than a token", () => {
    for (const [service, rules] of Object.entries(ROUTE_LEVELS)) {
      for (const r of rules) {
        if (r.method === "GET" || r.method === "GRPC" || r.method === "WS" || r.audit === false) continue;
        expect([service, r.path, ["operator", "internal", "admin"].includes(r.level)]).toEqual([
          service,
          r.path,
          true,
        ]);
      }
    }
  });
});

test("bearer headers", () => {
  expect(bearerToken(undefined)).toBeNull();
  expect(bearerToken("Bearer abc")).toBe("abc");
  expect(bearerToken("bearer  abc ")).toBe("abc");
  expect(() => bearerToken("Basic abc")).toThrow("Bearer <token>");
});

for (const backend of backends) {
  describe(`tokens on ${backend.name}`, () => {
    let store: Store;
    let tokens: TokenStore;
    beforeAll(async () => {
      store = await backend.open();
      await store.collection("api_tokens").clear();
      await store.collection("audit_log").clear();
      tokens = new TokenStore(store);
    });
    afterAll(() => store.close());

    test("a token is shown once and only its hash is stored", async () => {
      const { token, info } = await tokens.create({ name: "ci", scopes: ["operator"] }, "test");
      const parsed = parseToken(token);
      expect(parsed?.id).toBe(info.id);
      const stored = JSON.stringify(await store.collection("api_tokens").get(info.id));
      expect(stored).not.toContain(parsed!.secret);
      expect(stored).toContain('"hash"');
      expect(await tokens.verify(token)).toEqual({ id: info.id, name: "ci", scopes: ["operator"] });
      expect(JSON.stringify(await tokens.list())).not.toContain('"hash"');
    });

    test("a wrong secret, a revoked token and an expired one are refused", async () => {
      const { token, info } = await tokens.create(
        { name: "short", scopes: ["infer:demo"], expires_in: 60 },
        "t",
      );
      const forged = `${token.slice(0, -4)}AAAA`;
      expect(await tokens.verify(forged)).toBeNull();
      expect(await tokens.verify("aios_nope")).toBeNull();
      expect(await tokens.verify(token, Date.now() + 61_000)).toBeNull();
      expect(await tokens.verify(token)).not.toBeNull();
      await tokens.revoke(info.id);
      expect(await tokens.verify(token)).toBeNull();
      await expect(tokens.revoke("tok_000000000000")).rejects.toThrow("no token");
    });

    test("a token made elsewhere is stored once, and only with its own secret", async () => {
      const service = generateToken();
      const admin = generateToken();
      await bootstrapTokens(store, { service, admin });
      await bootstrapTokens(store, { service, admin }); // a restart: already there
      expect((await tokens.verify(service))?.scopes).toEqual(["internal"]);
      expect((await tokens.verify(admin))?.scopes).toEqual(["admin"]);
      const imposter = `${service.slice(0, 18)}${generateToken().slice(18)}`;
      await expect(tokens.ensure(imposter, "x", ["admin"])).rejects.toThrow("another secret");
      await expect(tokens.ensure("nope", "x", ["admin"])).rejects.toThrow("not an aios token");
      // A revoked bootstrap admin does not stop a restart, and does not come back.
      await tokens.revoke(parseToken(admin)!.id);
      await bootstrapTokens(store, { service, admin });
      expect(await tokens.verify(admin)).toBeNull();
    });

    test("bad token requests name what is wrong", async () => {
      await expect(tokens.create({ name: "x", scopes: ["root"] }, "t")).rejects.toThrow("scopes.0");
      await expect(tokens.create({ name: "", scopes: ["admin"] }, "t")).rejects.toThrow("name");
      await expect(tokens.create({ name: "x", scopes: [] }, "t")).rejects.toThrow("scopes");
    });

    test("the guard: 401 without or with a bad token, 403 lacking the scope, the principal otherwise", async () => {
      const guard = storeGuard(store);
      const op = (await tokens.create({ name: "op", scopes: ["operator"] }, "t")).token;
      const inf = (await tokens.create({ name: "inf", scopes: ["infer:b1"] }, "t")).token;
      const status = async (auth: string | undefined, level: Level, block?: string) =>
        guard.require({ authorization: auth }, level, block).then(
          (p) => p.name,
          (e: ApiError) => e.status,
        );
      expect(await status(undefined, "read")).toBe(401);
      expect(await status("Bearer aios_garbage", "read")).toBe(401);
      expect(await status(`Bearer ${inf}`, "read")).toBe(403);
      expect(await status(`Bearer ${inf}`, "infer", "b1")).toBe("inf");
      expect(await status(`Bearer ${inf}`, "infer", "b2")).toBe(403);
      expect(await status(`Bearer ${op}`, "operator")).toBe("op");
      expect(await status(`Bearer ${op}`, "internal")).toBe(403);
      expect(await status(`Bearer ${op}`, "admin")).toBe(403);
      expect(await status(undefined, "public")).toBe("anonymous");
      expect(await status("Bearer aios_garbage", "public")).toBe(401);
      // Anonymous access, when turned on, is for calls without a token; a bad token is still refused.
      const dev = storeGuard(store, { anonymous: true });
      expect((await dev.require({ authorization: undefined }, "admin")).anonymous).toBe(true);
      await expect(dev.require({ authorization: "Bearer aios_garbage" }, "read")).rejects.toThrow(
        "not valid",
      );
    });

    test("only internal callers may name the user they act for", async () => {
      const guard = storeGuard(store);
      const svc = (await tokens.create({ name: "svc", scopes: ["internal"] }, "t")).token;
      const op = (await tokens.create({ name: "op2", scopes: ["operator"] }, "t")).token;
      const user = { id: "tok_user", name: "alice", scopes: ["operator"] as Scope[] };
      const header = onBehalfOfHeader({ ...user })["x-aios-on-behalf-of"];
      const viaService = await guard.require(
        { authorization: `Bearer ${svc}`, onBehalfOf: header },
        "operator",
      );
      expect(viaService.onBehalfOf).toEqual(user);
      const viaOperator = await guard.require(
        { authorization: `Bearer ${op}`, onBehalfOf: header },
        "operator",
      );
      expect(viaOperator.onBehalfOf).toBeUndefined();
      await expect(
        guard.require({ authorization: `Bearer ${svc}`, onBehalfOf: "{" }, "read"),
      ).rejects.toThrow("x-aios-on-behalf-of");
    });

    test("a workload knows its own token and asks about others", async () => {
      const own = (await tokens.create({ name: "block", scopes: ["internal"] }, "t")).token;
      const guard = workloadGuard({ token: own });
      expect((await guard.require({ authorization: `Bearer ${own}` }, "internal")).scopes).toEqual([
        "internal",
      ]);
      // No verifier to ask: other tokens are refused, never let through.
      const other = (await tokens.create({ name: "other", scopes: ["admin"] }, "t")).token;
      await expect(guard.require({ authorization: `Bearer ${other}` }, "read")).rejects.toThrow("not valid");
      await expect(workloadGuard({}).require({ authorization: undefined }, "read")).rejects.toThrow(
        "needs a token",
      );
    });

    test("audit entries are queried by actor, outcome and time, newest first", async () => {
      const audit = new AuditLog(store);
      const base = Date.parse("2026-01-01T00:00:00Z");
      const entry = (name: string, status: number) => ({
        actor: { id: `tok_${name}`, name },
        service: "gateway",
        method: "POST",
        path: "/api/createBlock",
        target: null,
        status,
        outcome: status < 400 ? ("success" as const) : ("refused" as const),
      });
      await audit.record(entry("alice", 200), base);
      await audit.record(entry("bob", 403), base + 1000);
      await audit.record(entry("alice", 422), base + 2000);
      const alice = await audit.query({ actor: "alice", since: "2026-01-01T00:00:00Z" });
      expect(alice.map((e) => e.status)).toEqual([422, 200]);
      expect(
        (await audit.query({ outcome: "refused", since: "2026-01-01T00:00:00Z" })).map((e) => e.actor.name),
      ).toEqual(["alice", "bob"]);
      expect(await audit.query({ until: "2025-12-31T00:00:00Z" })).toEqual([]);
      expect(() => audit.query({ limit: "5000" })).toThrow();
      await expect(audit.query({ actor: { $ne: 1 } })).rejects.toThrow("actor");
    });
  });
}

test("the cache trusts a verified token for its window, then asks again", async () => {
  let answer: { id: string; name: string; scopes: Scope[] } | null = {
    id: "t",
    name: "t",
    scopes: ["admin"],
  };
  let asked = 0;
  const cached = new CachedAuthenticator(
    {
      authenticate: async () => {
        asked++;
        return answer;
      },
    },
    50,
  );
  expect(await cached.authenticate("a")).not.toBeNull();
  answer = null; // revoked
  expect(await cached.authenticate("a")).not.toBeNull();
  expect(asked).toBe(1);
  await Bun.sleep(60);
  expect(await cached.authenticate("a")).toBeNull();
  expect(asked).toBe(2);
});

test("while checks fail, a token accepted within the stale window stays accepted; others are errors", async () => {
  let down = false;
  let asked = 0;
  const cached = new CachedAuthenticator(
    {
      authenticate: async (token) => {
        asked++;
        if (down) throw new Error("controller unreachable");
        return token === "good" ? { id: "t", name: "t", scopes: ["admin"] } : null;
      },
    },
    20, // trusted without asking
    200, // accepted while checks fail, counted from the last successful check
  );
  expect(await cached.authenticate("good")).not.toBeNull();
  expect(await cached.authenticate("bad")).toBeNull();
  down = true;
  await Bun.sleep(30);
  expect((await cached.authenticate("good"))?.id).toBe("t");
  // The failed check is not repeated on every call: the next one within a second uses the entry.
  const before = asked;
  expect((await cached.authenticate("good"))?.id).toBe("t");
  expect(asked).toBe(before);
  // A refused token, or one never seen, is no better for the authority being away.
  await Bun.sleep(1_050);
  await expect(cached.authenticate("bad")).rejects.toThrow("controller unreachable");
  await expect(cached.authenticate("never-seen")).rejects.toThrow("controller unreachable");
  // Past the window since the last successful check, the error shows.
  await expect(cached.authenticate("good")).rejects.toThrow("controller unreachable");
  down = false;
  expect(await cached.authenticate("good")).not.toBeNull();
});

test("calls in flight when an entry expires share one check", async () => {
  let asked = 0;
  const cached = new CachedAuthenticator({
    authenticate: async () => {
      asked++;
      await Bun.sleep(20);
      return { id: "t", name: "t", scopes: ["admin"] };
    },
  });
  const answers = await Promise.all(Array.from({ length: 50 }, () => cached.authenticate("same")));
  expect(answers.every((a) => a?.id === "t")).toBe(true);
  expect(asked).toBe(1);
});

test("Guard.open() lets everything through as anonymous", async () => {
  expect((await Guard.open().require({ authorization: undefined }, "admin")).anonymous).toBe(true);
  expect(new ApiError(401, "unauthenticated", "x").status).toBe(401);
});
