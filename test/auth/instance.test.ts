/**
 * The instance SDK's guard: `serveInstance` builds it from the environment the runtime gives
 * (AIOS_TOKEN, AIOS_CONTROLLER_URL, AIOS_ANONYMOUS): `/task` 401 without a token and answered with the
 * workload's own one or a token the controller vouches for, 403 below `internal`; `/health` public;
 * the `/task/ws` upgrade refused before upgrading; events posted with the token. Without any of the
 * three variables (an instance started by hand) it checks nothing.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { Hono } from "hono";
import { Guard } from "../../src/auth/guard.ts";
import { guardRoutes, whoami } from "../../src/auth/hono.ts";
import { storeGuard } from "../../src/auth/index.ts";
import { TokenStore } from "../../src/auth/tokens.ts";
import { type ServedInstance, serveInstance } from "../../src/instance/index.ts";
import { instanceGuardFromEnv } from "../../src/instance/serve.ts";
import { openStore, type Store } from "../../src/store/index.ts";

/** A controller as far as instances use it: `GET /auth/whoami` and `POST /events`, store-backed. */
const startController = (store: Store) => {
  const events: { authorization: string | undefined; body: unknown }[] = [];
  const app = new Hono();
  app.use(guardRoutes(storeGuard(store), "controller"));
  app.get("/auth/whoami", whoami);
  app.post("/events", async (c) => {
    events.push({ authorization: c.req.header("authorization"), body: await c.req.json() });
    return c.json({ id: `ev-${events.length}` }, 202);
  });
  const server = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: app.fetch });
  return { url: `http://127.0.0.1:${server.port}`, events, stop: () => server.stop(true) };
};

const TASK = { session_id: "s", data: { text: "hi" }, ts: 1 };
let seq = 0;

let store: Store;
let controller: ReturnType<typeof startController>;
let instance: ServedInstance;
/** The workload's own credential (the runtime's AIOS_TOKEN), internal. */
let own: string;
const t = { internal: "", operator: "", infer: "" };

const task = (url: string, token?: string) =>
  fetch(`${url}/task`, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      ...(token === undefined ? {} : { authorization: `Bearer ${token}` }),
    },
    body: JSON.stringify({ ...TASK, seq_no: ++seq }),
  });

/** The upgrade request a WebSocket client sends, made by hand so the refusal's answer can be read. */
const upgrade = (url: string, token?: string) =>
  fetch(`${url}/task/ws`, {
    headers: {
      connection: "Upgrade",
      upgrade: "websocket",
      "sec-websocket-version": "13",
      "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
      ...(token === undefined ? {} : { authorization: `Bearer ${token}` }),
    },
  });

/** Bun's WebSocket with the upgrade's headers (the DOM type the project compiles with lacks them). */
const WebSocketWithHeaders = WebSocket as unknown as new (
  url: string,
  options: { headers: Record<string, string> },
) => WebSocket;

/** Opens `/task/ws` (with `token`) and sends one task: its answer, or how the socket ended. */
const taskOverSocket = (url: string, token?: string) =>
  new Promise<{ opened: boolean; answer?: { id: number; status: number; body: unknown } }>((resolve) => {
    const ws = new WebSocketWithHeaders(`${url.replace("http", "ws")}/task/ws`, {
      headers: token === undefined ? {} : { authorization: `Bearer ${token}` },
    });
    let opened = false;
    ws.onopen = () => {
      opened = true;
      ws.send(JSON.stringify({ id: 7, task: { ...TASK, seq_no: ++seq } }));
    };
    ws.onmessage = (ev) => {
      resolve({ opened, answer: JSON.parse(String(ev.data)) });
      ws.close();
    };
    ws.onclose = () => resolve({ opened });
    ws.onerror = () => resolve({ opened });
  });

beforeAll(async () => {
  store = await openStore({});
  const tokens = new TokenStore(store);
  own = (await tokens.create({ name: "workload", scopes: ["internal"] }, "test")).token;
  t.internal = (await tokens.create({ name: "another service", scopes: ["internal"] }, "test")).token;
  t.operator = (await tokens.create({ name: "ops", scopes: ["operator"] }, "test")).token;
  t.infer = (await tokens.create({ name: "app", scopes: ["infer:*"] }, "test")).token;
  controller = startController(store);
  instance = await serveInstance(
    {
      onTask: async (task, ctx) => {
        await ctx.events.pushEvent("task_seen", { seq_no: task.seqNo });
        return { ok: true };
      },
    },
    {
      hostname: "127.0.0.1",
      env: {
        AIOS_BLOCK_ID: "blk-inst",
        AIOS_INSTANCE_ID: "i-1",
        AIOS_TOKEN: own,
        AIOS_CONTROLLER_URL: controller.url,
      },
    },
  );
});

afterAll(async () => {
  await instance?.stop();
  controller?.stop();
  await store?.close();
});

describe("an instance started with AIOS_TOKEN and AIOS_CONTROLLER_URL", () => {
  test("POST /task: 401 without a token, 200 with the workload's own token", async () => {
    const none = await task(instance.url);
    expect(none.status).toBe(401);
    expect(((await none.json()) as { error: { code: string } }).error.code).toBe("unauthenticated");
    const ok = await task(instance.url, own);
    expect(ok.status).toBe(200);
    expect(await ok.json()).toEqual({ result: { ok: true } });
  });

  test("POST /task: another internal token is checked at the controller; operator and infer are 403", async () => {
    expect((await task(instance.url, t.internal)).status).toBe(200);
    expect((await task(instance.url, t.operator)).status).toBe(403);
    expect((await task(instance.url, t.infer)).status).toBe(403);
    expect(
      (await task(instance.url, "aios_000000000000_0000000000000000000000000000000000000000000")).status,
    ).toBe(401);
  });

  test("GET /health is public; /metrics needs read; /mgmt needs operator", async () => {
    expect((await fetch(`${instance.url}/health`)).status).toBe(200);
    expect((await fetch(`${instance.url}/metrics`)).status).toBe(401);
    expect(
      (await fetch(`${instance.url}/metrics`, { headers: { authorization: `Bearer ${t.operator}` } })).status,
    ).toBe(200);
    const mgmt = (token: string) =>
      fetch(`${instance.url}/mgmt`, {
        method: "POST",
        headers: { authorization: `Bearer ${token}` },
        body: JSON.stringify({ mgmt_action: "get_parameters" }),
      });
    expect((await mgmt(t.infer)).status).toBe(403);
    expect((await mgmt(t.operator)).status).toBe(200);
  });

  test("GET /task/ws: the upgrade is refused without a token (401, never upgraded), 403 below internal", async () => {
    const none = await upgrade(instance.url);
    expect(none.status).toBe(401);
    expect(((await none.json()) as { error: { code: string } }).error.code).toBe("unauthenticated");
    expect((await upgrade(instance.url, t.operator)).status).toBe(403);
    expect(await taskOverSocket(instance.url)).toEqual({ opened: false });
  });

  test("GET /task/ws with the workload's token: upgraded, and tasks are answered over it", async () => {
    const { opened, answer } = await taskOverSocket(instance.url, own);
    expect(opened).toBe(true);
    expect(answer).toEqual({ id: 7, status: 200, body: { result: { ok: true } } });
  });

  test("the events the tasks pushed went to the controller with the workload's token", () => {
    expect(controller.events.length).toBeGreaterThan(0);
    for (const e of controller.events) {
      expect(e.authorization).toBe(`Bearer ${own}`);
      expect(e.body).toMatchObject({ block_id: "blk-inst", instance_id: "i-1", event_name: "task_seen" });
    }
  });
});

describe("instanceGuardFromEnv", () => {
  test("none of AIOS_TOKEN, AIOS_CONTROLLER_URL, AIOS_ANONYMOUS: every call is let in", async () => {
    const open = await serveInstance({ onTask: () => 1 }, { hostname: "127.0.0.1", env: {} });
    try {
      expect((await task(open.url)).status).toBe(200);
      expect((await taskOverSocket(open.url)).opened).toBe(true);
    } finally {
      await open.stop();
    }
  });

  test("AIOS_ANONYMOUS=1 with a token: calls without a token pass, a wrong token does not", async () => {
    const anon = await serveInstance(
      { onTask: () => 1 },
      { hostname: "127.0.0.1", env: { AIOS_ANONYMOUS: "1", AIOS_TOKEN: own } },
    );
    try {
      expect((await task(anon.url)).status).toBe(200);
      expect((await task(anon.url, own)).status).toBe(200);
      expect((await task(anon.url, "wrong")).status).toBe(401);
    } finally {
      await anon.stop();
    }
  });

  test("only AIOS_TOKEN: the own token passes, nothing else (no controller to ask)", async () => {
    const guard = instanceGuardFromEnv({ AIOS_TOKEN: own });
    expect(guard.anonymous).toBe(false);
    const creds = (token?: string) => ({ authorization: token === undefined ? null : `Bearer ${token}` });
    await expect(guard.check("instance", "POST", "/task", creds(own))).resolves.toMatchObject({
      principal: { scopes: ["internal"] },
    });
    await expect(guard.check("instance", "POST", "/task", creds())).rejects.toMatchObject({ status: 401 });
    await expect(guard.check("instance", "POST", "/task", creds(t.internal))).rejects.toMatchObject({
      status: 401,
    });
  });

  test("an explicit options.guard wins over the environment", async () => {
    const inst = await serveInstance(
      { onTask: () => 1 },
      { hostname: "127.0.0.1", env: { AIOS_TOKEN: own }, guard: Guard.open() },
    );
    try {
      expect((await task(inst.url)).status).toBe(200);
    } finally {
      await inst.stop();
    }
  });
});
