/**
 * The allocator's WebSocket endpoint with tokens, on a real server: the upgrade is refused with 401
 * (no token, an unknown one) or 403 (a token without the read level) and a JSON error, on any path;
 * a token with the level connects and is answered; connections are audited. Per connection, messages
 * over the rate limit are answered with `rate_limited` in their turn and a client that keeps on is
 * disconnected (1008); a message over the size limit closes the socket (1009) with a reason.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { request as httpRequest } from "node:http";
import { type RunningAllocator, startAllocator } from "../../src/allocator/serve.ts";
import { AuditLog } from "../../src/auth/audit.ts";
import { storeGuard } from "../../src/auth/index.ts";
import { TokenStore } from "../../src/auth/tokens.ts";
import { installBuiltinPolicies } from "../../src/policy/builtins.ts";
import { PolicyStore } from "../../src/policy/store.ts";
import { openStore, type Store } from "../../src/store/index.ts";
import { AllocatorClient } from "../allocator/fixtures.ts";

setDefaultTimeout(60_000);

const CLUSTER = {
  id: "auth-cluster-1",
  nodes: {
    count: 1,
    nodeData: [
      { id: "node-0", gpus: { count: 2, memory: 32768, gpus: [{ memory: 16384 }, { memory: 16384 }] } },
    ],
  },
};
const METRICS = {
  id: "auth-cluster-1",
  nodes: {
    "node-0": {
      status: "healthy",
      gpus: [
        { id: "0", memory_total: 16384, memory_free: 2000, utilization: 0.5 },
        { id: "1", memory_total: 16384, memory_free: 12000, utilization: 0.1 },
      ],
    },
  },
};
const REQUEST = {
  adhoc: true,
  policy_rule_uri: "policy.allocator.most-free-gpu:v0.0.1",
  clusters: [CLUSTER.id],
  inputs: { gpus: 1 },
};
const ANSWER = { cluster_id: CLUSTER.id, node_id: "node-0", gpus: ["1"] };

let store: Store;
let server: RunningAllocator;
let limited: RunningAllocator;
const tokens = { operator: "", infer: "", internal: "" };
const ids = { operator: "", infer: "" };

beforeAll(async () => {
  store = await openStore({});
  await store.collection("clusters").insert(CLUSTER);
  await store.collection("cluster_metrics").insert(METRICS);
  await installBuiltinPolicies(new PolicyStore(store));
  const made = new TokenStore(store);
  const operator = await made.create({ name: "alice", scopes: ["operator"] }, "test");
  const infer = await made.create({ name: "bob", scopes: ["infer:*"] }, "test");
  tokens.operator = operator.token;
  ids.operator = operator.info.id;
  tokens.infer = infer.token;
  ids.infer = infer.info.id;
  tokens.internal = (await made.create({ name: "gateway", scopes: ["internal"] }, "test")).token;
  const guard = storeGuard(store);
  server = await startAllocator({ store, port: 0, workers: 0, guard });
  limited = await startAllocator({
    store,
    port: 0,
    workers: 0,
    guard,
    limits: { messagesPerSecond: 5, messageBurst: 5 },
  });
});

afterAll(async () => {
  await server?.stop();
  await limited?.stop();
  await store?.close();
});

/** A WebSocket upgrade by hand, to read a refusal's status and body (a WebSocket client cannot). */
const upgrade = (url: string, path: string, headers: Record<string, string> = {}) =>
  new Promise<{ status: number; body: { error?: { code: string; message: string } } | null }>(
    (resolve, reject) => {
      const { hostname, port } = new URL(url.replace(/^ws/, "http"));
      const req = httpRequest({
        hostname,
        port,
        path,
        headers: {
          connection: "Upgrade",
          upgrade: "websocket",
          "sec-websocket-key": Buffer.from("0123456789abcdef").toString("base64"),
          "sec-websocket-version": "13",
          ...headers,
        },
      });
      req.on("upgrade", (res, socket) => {
        socket.destroy();
        resolve({ status: res.statusCode ?? 0, body: null });
      });
      req.on("response", async (res) => {
        let text = "";
        for await (const chunk of res) text += chunk;
        resolve({ status: res.statusCode ?? 0, body: text ? JSON.parse(text) : null });
      });
      req.on("error", reject);
      req.end();
    },
  );

const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

describe("the upgrade", () => {
  test("401 without a token or with an unknown one, 403 without the read level, 101 with it", async () => {
    const none = await upgrade(server.url, "/");
    expect([none.status, none.body?.error?.code]).toEqual([401, "unauthenticated"]);
    const unknown = await upgrade(server.url, "/", bearer(`aios_${"a".repeat(12)}_${"b".repeat(43)}`));
    expect([unknown.status, unknown.body?.error?.code]).toEqual([401, "unauthenticated"]);
    const malformed = await upgrade(server.url, "/", { authorization: "Token x" });
    expect(malformed.status).toBe(401);
    const infer = await upgrade(server.url, "/", bearer(tokens.infer));
    expect([infer.status, infer.body?.error?.code]).toEqual([403, "forbidden"]);
    expect(infer.body?.error?.message).toContain("bob");
    expect((await upgrade(server.url, "/", bearer(tokens.operator))).status).toBe(101);
    expect((await upgrade(server.url, "/", bearer(tokens.internal))).status).toBe(101);
  });

  test("every path is the one endpoint: no path has a laxer rule", async () => {
    for (const path of ["/anything", "/health", "/a/b?c=d"]) {
      expect((await upgrade(server.url, path)).status).toBe(401);
      expect((await upgrade(server.url, path, bearer(tokens.infer))).status).toBe(403);
    }
  });

  test("a client with a token is answered; plain /health needs none", async () => {
    const client = await AllocatorClient.connect(server.url, tokens.operator);
    expect(await client.request(REQUEST)).toEqual(ANSWER);
    client.close();
    const health = await fetch(`${server.url.replace(/^ws/, "http")}/health`);
    expect(health.status).toBe(200);
  });

  test("connections are audited, refused ones too", async () => {
    await Bun.sleep(100); // records are written in the background
    const audit = new AuditLog(store);
    const accepted = await audit.query({ actor: ids.operator, service: "allocator" });
    expect(accepted[0]).toMatchObject({
      actor: { id: ids.operator, name: "alice" },
      method: "WS",
      status: 101,
      outcome: "success",
    });
    const refused = await audit.query({ service: "allocator", outcome: "refused" });
    expect(refused.map((e) => e.status)).toEqual(expect.arrayContaining([401, 403]));
  });
});

describe("limits per connection", () => {
  const answers = async (client: AllocatorClient, n: number) => {
    const out: Record<string, unknown>[] = [];
    for (let i = 0; i < n; i++) out.push(await client.next());
    return out;
  };
  const code = (a: Record<string, unknown>) => (a.error as { code?: string } | undefined)?.code ?? "ok";

  test("over the rate: rate_limited answers in their turn, naming the limit; the socket stays open", async () => {
    const client = await AllocatorClient.connect(limited.url, tokens.operator);
    for (let i = 0; i < 8; i++) client.send(REQUEST);
    const got = await answers(client, 8);
    expect(got.map(code)).toEqual(["ok", "ok", "ok", "ok", "ok", ...Array(3).fill("rate_limited")]);
    expect(got[0]).toEqual(ANSWER);
    const error = got[7]!.error as { message: string; details: Record<string, number> };
    expect(error.message).toContain("5 a second");
    expect(error.details).toEqual({ messages_per_second: 5, burst: 5 });
    expect(client.open).toBe(true);
    // The bucket refills: after a while requests are run again.
    await Bun.sleep(1100);
    expect(await client.request(REQUEST)).toEqual(ANSWER);
    client.close();
  });

  test("a client that keeps sending past the limit is disconnected with 1008", async () => {
    const client = await AllocatorClient.connect(limited.url, tokens.operator);
    for (let i = 0; i < 40; i++) client.send(REQUEST);
    const closed = await client.closed;
    expect(closed.code).toBe(1008);
    expect(closed.reason).toContain("rate limit");
  });

  test("a message over the size limit closes the socket with 1009 and a reason", async () => {
    const client = await AllocatorClient.connect(server.url, tokens.operator);
    client.send(JSON.stringify({ ...REQUEST, inputs: { pad: "x".repeat(4 * 1024 * 1024 + 1) } }));
    const closed = await client.closed;
    expect(closed.code).toBe(1009);
    expect(closed.reason).toMatch(/too big/i);
  });
});
