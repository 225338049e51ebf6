/**
 * The registry and the global metrics API behind the guard, on real servers with real tokens: 401
 * without a valid token, 403 without the scope, the probes open; `GET /auth/whoami` names the token
 * (how workloads check tokens remotely); state-changing calls audited with their actor and outcome,
 * the user a service acted for only when an internal token says so; a revoked token refused within the
 * cache window. And `aios registry` as a process: tokens of its store, or --anonymous / AIOS_ANONYMOUS.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AuditLog, ON_BEHALF_OF, storeGuard, TokenStore } from "../../src/auth/index.ts";
import { type RunningServers, startRegistry } from "../../src/cli/serve.ts";
import { openStore, type Store } from "../../src/store/index.ts";
import { Processes, ROOT } from "../support/processes.ts";

setDefaultTimeout(90_000);

const RUN = crypto.randomUUID().slice(0, 6);

describe("the registry with tokens", () => {
  let store: Store;
  let running: RunningServers;
  let registry = "";
  let metrics = "";
  const tokens: Record<"admin" | "operator" | "internal" | "infer", { token: string; id: string }> = {
    admin: { token: "", id: "" },
    operator: { token: "", id: "" },
    internal: { token: "", id: "" },
    infer: { token: "", id: "" },
  };
  const bearer = (who: keyof typeof tokens) => ({ authorization: `Bearer ${tokens[who].token}` });

  beforeAll(async () => {
    store = await openStore({});
    const made = new TokenStore(store);
    const scopes = { admin: "admin", operator: "operator", internal: "internal", infer: "infer:*" } as const;
    for (const [who, scope] of Object.entries(scopes) as [keyof typeof tokens, string][]) {
      const { token, info } = await made.create({ name: `reg ${who} ${RUN}`, scopes: [scope] }, "test");
      tokens[who] = { token, id: info.id };
    }
    running = await startRegistry({
      host: "127.0.0.1",
      port: 0,
      metricsPort: 0,
      store,
      guard: storeGuard(store),
    });
    registry = running.listeners[0]!.url;
    metrics = running.listeners[1]!.url;
  });
  afterAll(async () => {
    await running?.stop();
    await store?.close();
  });

  const post = (path: string, body: unknown, headers: Record<string, string> = {}) =>
    fetch(`${registry}${path}`, {
      method: "POST",
      headers: { "content-type": "application/json", ...headers },
      body: JSON.stringify(body),
    });

  test("probes and the API description need no token; everything else does", async () => {
    for (const url of [registry, metrics]) {
      expect((await fetch(`${url}/health`)).status).toBe(200);
      expect((await fetch(`${url}/openapi.json`)).status).toBe(200);
    }
    const none = await fetch(`${registry}/clusters`);
    expect(none.status).toBe(401);
    expect(((await none.json()) as { error: { code: string } }).error.code).toBe("unauthenticated");
    const bad = await fetch(`${registry}/clusters`, { headers: { authorization: "Bearer aios_nope" } });
    expect(bad.status).toBe(401);
    const malformed = await fetch(`${registry}/clusters`, { headers: { authorization: "Basic abc" } });
    expect(malformed.status).toBe(401);
    expect((await fetch(`${metrics}/cluster/query`)).status).toBe(401);
  });

  test("a token lacking the scope is a 403 naming what it needs; one with it passes", async () => {
    const refused = await fetch(`${registry}/clusters`, { headers: bearer("infer") });
    expect(refused.status).toBe(403);
    const body = (await refused.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe("forbidden");
    expect(body.error.message).toContain("admin, operator, internal");
    expect((await fetch(`${registry}/clusters`, { headers: bearer("operator") })).status).toBe(200);

    // Metrics pushes are for services (internal): an operator may read, not push.
    const push = (who: keyof typeof tokens) =>
      fetch(`${metrics}/cluster/reg-${RUN}`, {
        method: "PUT",
        headers: { "content-type": "application/json", ...bearer(who) },
        body: JSON.stringify({ cluster: { vcpu: { load_15m: 1 } } }),
      });
    expect((await push("operator")).status).toBe(403);
    expect((await push("internal")).status).toBe(200);
    expect((await fetch(`${metrics}/cluster/reg-${RUN}`, { headers: bearer("operator") })).status).toBe(200);
    // The registry port serves the metrics API under the same rules.
    expect((await fetch(`${registry}/cluster/reg-${RUN}`, { headers: bearer("infer") })).status).toBe(403);
  });

  test("GET /auth/whoami names the token; without a valid one it is a 401", async () => {
    const res = await fetch(`${registry}/auth/whoami`, { headers: bearer("infer") });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({
      principal: { id: tokens.infer.id, name: `reg infer ${RUN}`, scopes: ["infer:*"] },
    });
    expect((await fetch(`${registry}/auth/whoami`)).status).toBe(401);
  });

  test("state-changing calls are audited with their actor and outcome, refused ones too", async () => {
    const id = `audit-${RUN}`;
    expect((await post("/clusters", { id, status: "live" }, bearer("operator"))).status).toBe(201);
    expect((await post("/clusters", { id: `${id}-x` }, bearer("infer"))).status).toBe(403);
    expect((await post("/clusters", { id: `${id}-y` })).status).toBe(401);
    // Reads are not audited.
    await fetch(`${registry}/clusters/${id}`, { headers: bearer("operator") });

    const log = new AuditLog(store);
    const done = await log.query({ actor: `reg operator ${RUN}` });
    expect(done).toHaveLength(1);
    expect(done[0]).toMatchObject({
      actor: { id: tokens.operator.id, name: `reg operator ${RUN}` },
      on_behalf_of: null,
      service: "registry",
      method: "POST",
      path: "/clusters",
      status: 201,
      outcome: "success",
    });
    const refused = await log.query({ service: "registry", outcome: "refused", limit: 10 });
    expect(refused.map((e) => [e.actor.name, e.status])).toEqual(
      expect.arrayContaining([
        [`reg infer ${RUN}`, 403],
        ["unauthenticated", 401],
      ]),
    );
  });

  test("the user a service acts for is believed from an internal token only", async () => {
    const user = JSON.stringify({ id: "tok_someoneelse1", name: `alice ${RUN}`, scopes: ["operator"] });
    expect(
      (await post("/clusters", { id: `obo-${RUN}` }, { ...bearer("internal"), [ON_BEHALF_OF]: user })).status,
    ).toBe(201);
    const whoami = await fetch(`${registry}/auth/whoami`, {
      headers: { ...bearer("operator"), [ON_BEHALF_OF]: user },
    });
    expect(((await whoami.json()) as { principal: { id: string } }).principal.id).toBe(tokens.operator.id);
    expect(
      (await post("/clusters", { id: `obo2-${RUN}` }, { ...bearer("operator"), [ON_BEHALF_OF]: user }))
        .status,
    ).toBe(201);

    const log = new AuditLog(store);
    const [forAlice] = await log.query({ actor: `alice ${RUN}` });
    expect(forAlice).toMatchObject({
      actor: { id: tokens.internal.id },
      on_behalf_of: { id: "tok_someoneelse1", name: `alice ${RUN}` },
      target: null,
      outcome: "success",
    });
    const [byOperator] = await log.query({ actor: tokens.operator.id, limit: 1 });
    expect(byOperator).toMatchObject({ path: "/clusters", on_behalf_of: null });
  });

  test("a revoked token is refused within the cache window (5 s)", async () => {
    const { token, info } = await new TokenStore(store).create(
      { name: `short-lived ${RUN}`, scopes: ["operator"] },
      "test",
    );
    const headers = { authorization: `Bearer ${token}` };
    expect((await fetch(`${registry}/clusters`, { headers })).status).toBe(200);
    await new TokenStore(store).revoke(info.id);
    const until = Date.now() + 7000;
    let status = 200;
    while (Date.now() < until) {
      status = (await fetch(`${registry}/clusters`, { headers })).status;
      if (status === 401) break;
      await Bun.sleep(250);
    }
    expect(status).toBe(401);
  }, 20_000);

  test("an anonymous guard lets calls without a token in, and still refuses a bad token", async () => {
    const open = await startRegistry({
      host: "127.0.0.1",
      port: 0,
      metricsPort: 0,
      store,
      guard: storeGuard(store, { anonymous: true }),
    });
    try {
      const url = open.listeners[0]!.url;
      const res = await fetch(`${url}/auth/whoami`);
      expect(await res.json()).toEqual({
        principal: { id: "anonymous", name: "anonymous", scopes: ["admin"], anonymous: true },
      });
      expect((await fetch(`${url}/clusters`)).status).toBe(200);
      expect((await fetch(`${url}/clusters`, { headers: { authorization: "Bearer aios_x" } })).status).toBe(
        401,
      );
    } finally {
      await open.stop();
    }
  });
});

describe("aios registry as a process", () => {
  const procs = new Processes();
  const dir = mkdtempSync(join(tmpdir(), "aios-auth-registry-"));
  afterAll(async () => {
    await procs.stopAll();
    rmSync(dir, { recursive: true, force: true });
  });

  test("checks the tokens of its store, stores a deployment's first ones; --anonymous lets anyone in", async () => {
    // A token made in the store the registry will open (on-disk PGlite: one process at a time).
    const store = await openStore({ dataDir: dir });
    const { token } = await new TokenStore(store).create({ name: "proc", scopes: ["operator"] }, "test");
    await store.close();

    // A deployment's first tokens, made offline (`aios token generate`) and stored by the service at start.
    const generate = () => {
      const out = Bun.spawnSync([process.execPath, "run", "src/cli/main.ts", "token", "generate"], {
        cwd: ROOT,
      });
      expect(out.exitCode).toBe(0);
      return out.stdout.toString().trim();
    };
    const adminToken = generate();
    const serviceToken = generate();
    expect(adminToken).toMatch(/^aios_[a-z0-9]{12}_[A-Za-z0-9_-]{43}$/);
    expect(serviceToken).not.toBe(adminToken);

    const withTokens = procs.bun(
      "registry",
      [
        "run",
        "src/cli/main.ts",
        "registry",
        ...["--port", "0", "--metrics-port", "0", "--data-dir", dir, "--token", serviceToken],
      ],
      { env: { AIOS_ADMIN_TOKEN: adminToken } },
    );
    const { registry } = await withTokens.listening(["registry", "metrics"], 60_000);
    expect((await fetch(`${registry}/clusters`)).status).toBe(401);
    const ok = await fetch(`${registry}/clusters`, { headers: { authorization: `Bearer ${token}` } });
    expect(ok.status).toBe(200);
    const whoami = async (t: string) =>
      (
        (await (
          await fetch(`${registry}/auth/whoami`, { headers: { authorization: `Bearer ${t}` } })
        ).json()) as {
          principal: { name: string; scopes: string[] };
        }
      ).principal;
    expect(await whoami(adminToken)).toMatchObject({ name: "bootstrap admin", scopes: ["admin"] });
    expect(await whoami(serviceToken)).toMatchObject({ scopes: ["internal"] });
    await withTokens.stop();

    for (const [args, env] of [
      [["--anonymous"], {}],
      [[], { AIOS_ANONYMOUS: "1" }],
    ] as [string[], Record<string, string>][]) {
      const open = procs.bun(
        "registry-anonymous",
        ["run", "src/cli/main.ts", "registry", "--port", "0", "--metrics-port", "0", ...args],
        { env },
      );
      const urls = await open.listening(["registry", "metrics"], 60_000);
      expect((await fetch(`${urls.registry}/clusters`)).status).toBe(200);
      expect((await fetch(`${urls.metrics}/cluster/query`)).status).toBe(200);
      await open.stop();
    }
  });
});
