/**
 * The gateway behind the guard, with real tokens on one store shared with a registry (as `aios up`
 * runs them): `/api/whoami`; `/api/tokens` creating (the token once), listing (never a secret or a
 * hash) and revoking tokens, a revoked one refused within the cache window; the audit log of creations,
 * scales, removals and refused calls with their actor and outcome, read through `/api/audit` and its
 * filters. What the gateway asks of a controller or the registry for a user names that user
 * (`x-aios-on-behalf-of`), so their guards and audit logs see who asked.
 *
 * The controller is a stand-in with the real guard (service "controller" of src/auth/routes.ts), so
 * what it was sent is seen exactly; the real one is in the `aios up` tests (test/auth/cli.test.ts).
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { Hono } from "hono";
import {
  AuditLog,
  Guard,
  generateToken,
  guardRoutes,
  ON_BEHALF_OF,
  parseToken,
  serviceToken,
  storeGuard,
  TokenStore,
  useServiceToken,
} from "../../src/auth/index.ts";
import { type RunningServers, startRegistry } from "../../src/cli/serve.ts";
import { type RunningGateway, startGateway } from "../../src/gateway/serve.ts";
import { installBuiltinPolicies } from "../../src/policy/builtins.ts";
import { PolicyStore } from "../../src/policy/store.ts";
import { openStore, type Store } from "../../src/store/index.ts";
import { Processes } from "../support/processes.ts";
import { filteredBlockSpec } from "../support/spec-samples.ts";

setDefaultTimeout(60_000);

const RUN = crypto.randomUUID().slice(0, 6);
const CLUSTER = `gw-auth-${RUN}`;
const COMPONENT = `model.gw-auth-${RUN}:1.0.0`;
const BLOCK = `gw-auth-block-${RUN}`;

type Who = "admin" | "operator" | "reader" | "infer" | "services";

describe("the gateway with tokens", () => {
  let store: Store;
  let registry: RunningServers;
  let gateway: RunningGateway;
  let controller: ReturnType<typeof Bun.serve>;
  let previousCredential: string | undefined;
  const tokens = {} as Record<Who, { token: string; id: string; name: string }>;
  /** What the stand-in controller was asked: the action and the user named. */
  const asked: { action: string; onBehalfOf: unknown; caller: string }[] = [];
  const instances = [{ instance_id: `${BLOCK}-a`, node_id: "n1", started_at: new Date().toISOString() }];

  const api = async (who: Who | null, method: string, path: string, body?: unknown) => {
    const headers: Record<string, string> = {};
    if (who) headers.authorization = `Bearer ${tokens[who].token}`;
    if (body !== undefined) headers["content-type"] = "application/json";
    const res = await fetch(`${gateway.url}${path}`, {
      method,
      headers,
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    // biome-ignore lint/suspicious/noExplicitAny: answers are checked field by field
    return { status: res.status, body: (await res.json()) as any };
  };

  beforeAll(async () => {
    store = await openStore({});
    const made = new TokenStore(store);
    const scopes: Record<Who, string> = {
      admin: "admin",
      operator: "operator",
      reader: "operator",
      infer: `infer:${BLOCK}`,
      services: "internal",
    };
    for (const [who, scope] of Object.entries(scopes) as [Who, string][]) {
      const name = `gw ${who} ${RUN}`;
      const { token, info } = await made.create({ name, scopes: [scope] }, "test");
      tokens[who] = { token, id: info.id, name };
    }
    // This process is the services' process here: their calls present the internal token.
    previousCredential = serviceToken();
    useServiceToken(tokens.services.token);

    const guard = storeGuard(store);
    registry = await startRegistry({ host: "127.0.0.1", port: 0, metricsPort: 0, store, guard });
    const registryUrl = registry.listeners[0]!.url;
    await installBuiltinPolicies(new PolicyStore(store));

    // A controller that does what it is asked, behind the real guard, recording who asked for whom.
    const app = new Hono();
    app.use(guardRoutes(guard, "controller"));
    const doc = () => ({
      id: BLOCK,
      status: "running",
      cluster_id: CLUSTER,
      minInstances: 1,
      maxInstances: 4,
      instances,
    });
    app.post("/executeAction", async (c) => {
      const { action, data } = (await c.req.json()) as { action: string; data: Record<string, unknown> };
      const header = c.req.header(ON_BEHALF_OF);
      asked.push({
        action,
        onBehalfOf: header ? JSON.parse(header) : null,
        caller: c.get("principal").name,
      });
      if (action === "dry_run") return c.json({ selection_score_data: { score: 1 } });
      if (action === "scale" && data.operation === "upscale") {
        for (let i = 0; i < Number(data.instances_count); i++)
          instances.push({ instance_id: `${BLOCK}-${instances.length}`, node_id: "n1", started_at: "" });
      }
      return c.json({ ok: true });
    });
    app.get("/blocks", (c) => c.json([doc()]));
    app.get("/blocks/:id", (c) => c.json(doc()));
    controller = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: app.fetch });

    const post = (path: string, body: unknown) =>
      fetch(`${registryUrl}${path}`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${tokens.admin.token}` },
        body: JSON.stringify(body),
      });
    expect(
      (await post("/components", { componentURI: COMPONENT, runtime: { command: ["true"] } })).status,
    ).toBe(201);
    expect(
      (
        await post("/clusters", {
          id: CLUSTER,
          status: "live",
          tags: [RUN],
          config: { urlMap: { controllerService: `http://127.0.0.1:${controller.port}` } },
        })
      ).status,
    ).toBe(201);

    gateway = await startGateway({ host: "127.0.0.1", port: 0, registryUrl, store, guard });
  });

  afterAll(async () => {
    await gateway?.stop();
    controller?.stop(true);
    await registry?.stop();
    await store?.close();
    useServiceToken(previousCredential);
  });

  test("the dashboard's files and the probes need no token; the API does", async () => {
    expect((await fetch(`${gateway.url}/`)).status).toBe(200);
    expect((await fetch(`${gateway.url}/ui/app.js`)).status).toBe(200);
    expect((await fetch(`${gateway.url}/health`)).status).toBe(200);
    expect((await fetch(`${gateway.url}/openapi.json`)).status).toBe(200);
    const none = await api(null, "GET", "/api/blocks");
    expect(none.status).toBe(401);
    expect(none.body.error.code).toBe("unauthenticated");
    expect((await api("infer", "GET", "/api/blocks")).status).toBe(403);
    expect((await api("reader", "GET", "/api/blocks")).status).toBe(200);
    // The registry's policies, read with the gateway's own credential.
    const policies = await api("reader", "GET", "/api/policies?kind=clusterAllocator");
    expect(policies.status).toBe(200);
    expect(policies.body.length).toBeGreaterThan(0);
  });

  test("GET /api/whoami names the token, for any valid one", async () => {
    const me = await api("infer", "GET", "/api/whoami");
    expect(me).toEqual({
      status: 200,
      body: { principal: { id: tokens.infer.id, name: tokens.infer.name, scopes: [`infer:${BLOCK}`] } },
    });
    expect((await api(null, "GET", "/api/whoami")).status).toBe(401);
  });

  test("tokens: an admin creates (the token once), lists (no secrets) and revokes; others may not", async () => {
    const created = await api("admin", "POST", "/api/tokens", {
      name: `ci ${RUN}`,
      scopes: ["operator", "infer:*"],
      expires_in: 3600,
    });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({
      name: `ci ${RUN}`,
      scopes: ["operator", "infer:*"],
      created_by: tokens.admin.id,
      revoked_at: null,
    });
    expect(created.body.token).toMatch(/^aios_[a-z0-9]{12}_[A-Za-z0-9_-]{43}$/);
    expect(created.body.id).toMatch(/^tok_/);
    expect(Date.parse(created.body.expires_at) - Date.now()).toBeGreaterThan(3500_000);
    expect(created.body.hash).toBeUndefined();

    const list = await api("admin", "GET", "/api/tokens");
    expect(list.status).toBe(200);
    const listed = list.body.find((t: { id: string }) => t.id === created.body.id);
    expect(listed).toMatchObject({ name: `ci ${RUN}` });
    for (const t of list.body) {
      expect(t.hash).toBeUndefined();
      expect(t.token).toBeUndefined();
    }
    expect(JSON.stringify(list.body)).not.toContain(parseToken(created.body.token)!.secret);

    // The new token works at once.
    const fresh = `Bearer ${created.body.token}`;
    const use = () => fetch(`${gateway.url}/api/blocks`, { headers: { authorization: fresh } });
    expect((await use()).status).toBe(200);

    // Only admins manage tokens; bad input is a 400 naming the field.
    expect((await api("operator", "GET", "/api/tokens")).status).toBe(403);
    expect((await api("operator", "POST", "/api/tokens", { name: "x", scopes: ["admin"] })).status).toBe(403);
    const bad = await api("admin", "POST", "/api/tokens", { name: "x", scopes: ["root"] });
    expect(bad.status).toBe(400);
    expect(bad.body.error.message).toContain("scopes.0");
    expect((await api("admin", "DELETE", "/api/tokens/tok_nosuchtoken0")).status).toBe(404);

    const revoked = await api("admin", "DELETE", `/api/tokens/${created.body.id}`);
    expect(revoked.status).toBe(200);
    expect(revoked.body.revoked_at).toBeString();
    // Refused within the cache window (5 s).
    const until = Date.now() + 7000;
    let status = 200;
    while (Date.now() < until && status !== 401) {
      await Bun.sleep(250);
      status = (await use()).status;
    }
    expect(status).toBe(401);
  }, 20_000);

  test("a creation, a scale and a removal name the user to the controller, and are audited", async () => {
    const spec = filteredBlockSpec({ blockId: BLOCK, blockComponentURI: COMPONENT }, [
      { variable: "tags", operator: "contains", value: RUN },
    ]);
    const created = await api("operator", "POST", "/api/createBlock", spec);
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const scaled = await api("operator", "POST", `/api/blocks/${BLOCK}/scale`, { delta: 1 });
    expect(scaled.status, JSON.stringify(scaled.body)).toBe(200);
    // An inference token may not scale: refused before the controller is asked.
    const refused = await api("infer", "POST", `/api/blocks/${BLOCK}/scale`, { delta: 1 });
    expect(refused.status).toBe(403);
    expect(refused.body.error.code).toBe("forbidden");
    const removed = await api("operator", "DELETE", `/api/blocks/${BLOCK}`);
    expect(removed.status, JSON.stringify(removed.body)).toBe(200);

    // The controller was asked by the services' token, for the operator.
    const operator = { id: tokens.operator.id, name: tokens.operator.name, scopes: ["operator"] };
    expect(asked.map((a) => a.action)).toEqual(["dry_run", "create_block", "scale", "remove_block"]);
    for (const a of asked) {
      expect(a.onBehalfOf).toEqual(operator);
      expect(a.caller).toBe(tokens.services.name);
    }

    const log = new AuditLog(store);
    const gatewayEntries = await log.query({ service: "gateway", target: BLOCK });
    expect(gatewayEntries.map((e) => [e.method, e.path, e.actor.name, e.outcome, e.status])).toEqual([
      ["DELETE", `/api/blocks/${BLOCK}`, tokens.operator.name, "success", 200],
      ["POST", `/api/blocks/${BLOCK}/scale`, tokens.infer.name, "refused", 403],
      ["POST", `/api/blocks/${BLOCK}/scale`, tokens.operator.name, "success", 200],
    ]);
    const byOperator = await log.query({ service: "gateway", actor: tokens.operator.id, method: "POST" });
    expect(byOperator.find((e) => e.path === "/api/createBlock")).toMatchObject({
      status: 201,
      outcome: "success",
      on_behalf_of: null,
    });
    // At the controller: the services' token, acting for the operator.
    const atController = await log.query({ service: "controller", actor: tokens.operator.name });
    expect(atController).toHaveLength(4);
    for (const e of atController) {
      expect(e).toMatchObject({
        actor: { id: tokens.services.id, name: tokens.services.name },
        on_behalf_of: { id: tokens.operator.id, name: tokens.operator.name },
        path: "/executeAction",
        outcome: "success",
      });
    }
  });

  test("a policy upload through the gateway names the user to the registry", async () => {
    const form = new FormData();
    form.set("uri", `policy.loadBalancer.gw-auth-${RUN}:v1`);
    form.set("kind", "loadBalancer");
    form.set("module", new Blob([new Uint8Array([1, 2, 3, 4])]), "not.wasm");
    const res = await fetch(`${gateway.url}/api/policies`, {
      method: "POST",
      headers: { authorization: `Bearer ${tokens.operator.token}` },
      body: form,
    });
    expect(res.status).toBeGreaterThanOrEqual(400);
    expect(res.status).toBeLessThan(500);
    const [atRegistry] = await new AuditLog(store).query({ service: "registry", method: "POST", limit: 1 });
    expect(atRegistry).toMatchObject({
      path: "/policies",
      actor: { id: tokens.services.id },
      on_behalf_of: { id: tokens.operator.id, name: tokens.operator.name },
      outcome: "refused",
    });
  });

  test("GET /api/audit: admins only, newest first, with filters", async () => {
    expect((await api("operator", "GET", "/api/audit")).status).toBe(403);
    expect((await api(null, "GET", "/api/audit")).status).toBe(401);

    const all = await api("admin", "GET", "/api/audit?limit=1000");
    expect(all.status).toBe(200);
    const ids = all.body.map((e: { id: string }) => e.id);
    expect(ids).toEqual([...ids].sort().reverse());

    const refused = await api("admin", "GET", `/api/audit?outcome=refused&actor=${tokens.infer.id}`);
    expect(refused.body.length).toBeGreaterThanOrEqual(1);
    for (const e of refused.body)
      expect(e).toMatchObject({ outcome: "refused", actor: { id: tokens.infer.id } });

    const forOperator = await api(
      "admin",
      "GET",
      `/api/audit?actor=${encodeURIComponent(tokens.operator.name)}&service=controller&method=POST`,
    );
    expect(forOperator.body).toHaveLength(4);

    const target = await api("admin", "GET", `/api/audit?target=${BLOCK}&limit=1`);
    expect(target.body).toHaveLength(1);
    expect(target.body[0].method).toBe("DELETE");

    const future = new Date(Date.now() + 3600_000).toISOString();
    expect((await api("admin", "GET", `/api/audit?since=${future}`)).body).toEqual([]);
    const past = new Date(Date.now() - 3600_000).toISOString();
    expect((await api("admin", "GET", `/api/audit?until=${past}`)).body).toEqual([]);

    const bad = await api("admin", "GET", "/api/audit?outcome=maybe");
    expect(bad.status).toBe(400);
    expect(bad.body.error.message).toContain("outcome");
    expect((await api("admin", "GET", "/api/audit?colour=red")).status).toBe(400);
  });

  test("the library default is open: a gateway without a guard lets anyone in", async () => {
    const open = await startGateway({
      host: "127.0.0.1",
      port: 0,
      registryUrl: registry.listeners[0]!.url,
      store,
    });
    try {
      const me = await fetch(`${open.url}/api/whoami`);
      expect(((await me.json()) as { principal: { anonymous: boolean } }).principal.anonymous).toBe(true);
      expect(Guard.open().anonymous).toBe(true);
    } finally {
      await open.stop();
    }
  });
});

describe("aios gateway as a process", () => {
  const procs = new Processes();
  afterAll(() => procs.stopAll());

  test("its own store's tokens (a deployment's first ones stored at start); --anonymous lets anyone in", async () => {
    const admin = generateToken();
    const service = generateToken();
    const gateway = procs.bun(
      "gateway",
      [
        "run",
        "src/cli/main.ts",
        "gateway",
        "--port",
        "0",
        "--registry",
        "http://127.0.0.1:1",
        "--token",
        service,
      ],
      { env: { AIOS_ADMIN_TOKEN: admin } },
    );
    const url = (await gateway.listening(["gateway"], 60_000)).gateway!;
    const call = (path: string, token?: string) =>
      fetch(`${url}${path}`, token ? { headers: { authorization: `Bearer ${token}` } } : {});
    expect((await call("/api/whoami")).status).toBe(401);
    const me = (await (await call("/api/whoami", admin)).json()) as { principal: { name: string } };
    expect(me.principal.name).toBe("bootstrap admin");
    const listed = (await (await call("/api/tokens", admin)).json()) as { name: string; scopes: string[] }[];
    expect(listed.map((t) => [t.name, t.scopes]).sort()).toEqual([
      ["bootstrap admin", ["admin"]],
      ["service credential", ["internal"]],
    ]);
    expect((await call("/api/tokens", service)).status).toBe(403);
    await gateway.stop();

    const open = procs.bun("gateway-anonymous", [
      "run",
      "src/cli/main.ts",
      "gateway",
      ...["--port", "0", "--registry", "http://127.0.0.1:1", "--anonymous"],
    ]);
    const openUrl = (await open.listening(["gateway"], 60_000)).gateway!;
    const anon = (await (await fetch(`${openUrl}/api/whoami`)).json()) as {
      principal: { anonymous: boolean };
    };
    expect(anon.principal.anonymous).toBe(true);
    await open.stop();
  });
});
