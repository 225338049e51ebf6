/**
 * The block services' guard (startBlockRuntime with a workloadGuard, as `aios block-runtime` builds
 * it): InferenceProxy.infer checked from the `authorization` metadata on the plain gRPC fast path
 * (grpc-js, Connect's gRPC transport) and through the Connect adapter (Connect protocol over HTTP/1.1,
 * gRPC-web), with the gRPC codes a refusal maps to; the management, metrics and mapper apps' 401/403;
 * a user's token verified at a controller-like `GET /auth/whoami` once and then cached; and the
 * block's own credential on its calls to a guarded instance (task channel, metrics).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { create, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import {
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
} from "@connectrpc/connect-node";
import { Hono } from "hono";
import { serviceToken, useServiceToken } from "../../src/auth/credential.ts";
import { guardRoutes, whoami } from "../../src/auth/hono.ts";
import { storeGuard, workloadGuard } from "../../src/auth/index.ts";
import { TokenStore } from "../../src/auth/tokens.ts";
import { fetchInstanceReports } from "../../src/block/metrics.ts";
import { type RunningBlock, startBlockRuntime } from "../../src/block/serve.ts";
import { InferenceProxy } from "../../src/gen/inference_pb.ts";
import { AIOSPacketSchema } from "../../src/gen/payload_pb.ts";
import { type ServedInstance, serveInstance } from "../../src/instance/index.ts";
import { openStore, type Store } from "../../src/store/index.ts";
import { bearer, grpcJsInferenceClient } from "../support/grpc.ts";

const BLOCK_ID = "blk-auth";
const FREE = { grpc: 0, metrics: 0, executor: 0, mapper: 0, autoscaler: 0, health: 0 };

/** A controller as far as workloads use it: `GET /auth/whoami` (store-backed), counting the asks. */
const startWhoami = (store: Store) => {
  let asked = 0;
  const app = new Hono();
  app.use(async (c, next) => {
    if (c.req.path === "/auth/whoami") asked += 1;
    await next();
  });
  app.use(guardRoutes(storeGuard(store), "controller"));
  app.get("/auth/whoami", whoami);
  const server = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: app.fetch });
  return {
    url: `http://127.0.0.1:${server.port}`,
    get asked() {
      return asked;
    },
    stop: () => server.stop(true),
  };
};

let seq = 0n;
const packet = (n: number) =>
  toBinary(
    AIOSPacketSchema,
    create(AIOSPacketSchema, { sessionId: `auth-${seq}`, seqNo: ++seq, data: JSON.stringify({ n }), ts: 1 }),
  );

let store: Store;
let controller: ReturnType<typeof startWhoami>;
let instance: ServedInstance;
let block: RunningBlock;
let previousCredential: string | undefined;
/** The block's own credential (AIOS_TOKEN): internal, known to the block and the instance. */
let own: string;
/** Users' tokens: infer on this block, infer on another block, operator. */
const t = { infer: "", other: "", operator: "", inferAll: "" };

beforeAll(async () => {
  store = await openStore({});
  const tokens = new TokenStore(store);
  own = (await tokens.create({ name: "blk-auth workloads", scopes: ["internal"] }, "test")).token;
  t.infer = (await tokens.create({ name: "app", scopes: [`infer:${BLOCK_ID}`] }, "test")).token;
  t.other = (await tokens.create({ name: "other app", scopes: ["infer:other-block"] }, "test")).token;
  t.operator = (await tokens.create({ name: "ops", scopes: ["operator"] }, "test")).token;
  t.inferAll = (await tokens.create({ name: "any block", scopes: ["infer:*"] }, "test")).token;
  controller = startWhoami(store);
  // What the runtime gives a workload: its token and its controller (the instance reads them from env).
  instance = await serveInstance(
    { onTask: (task) => ({ doubled: (task.data as { n: number }).n * 2 }) },
    {
      hostname: "127.0.0.1",
      env: {
        AIOS_INSTANCE_ID: "i-auth",
        AIOS_BLOCK_ID: BLOCK_ID,
        AIOS_TOKEN: own,
        AIOS_CONTROLLER_URL: controller.url,
      },
    },
  );
  // The process credential the block services present (what AIOS_TOKEN sets at start).
  previousCredential = serviceToken();
  useServiceToken(own);
  block = await startBlockRuntime({
    blockId: BLOCK_ID,
    block: { id: BLOCK_ID },
    ports: FREE,
    instances: [{ id: "i-auth", url: instance.url }],
    guard: workloadGuard({ token: own, verifyUrl: controller.url }),
  });
});

afterAll(async () => {
  await block?.stop();
  await instance?.stop();
  controller?.stop();
  useServiceToken(previousCredential);
  await store?.close();
});

describe("InferenceProxy.infer on the gRPC fast path (grpc-js)", () => {
  const call = async (token?: string) => {
    const client = grpcJsInferenceClient(
      block.url("grpc").replace(/^http:\/\//, ""),
      token === undefined ? {} : { token },
    );
    try {
      return await client.infer(packet(21));
    } finally {
      client.close();
    }
  };

  test("no token: UNAUTHENTICATED, saying a token is needed", async () => {
    const err = await call().catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 16, details: expect.stringContaining("needs a token") });
  });

  test("an unknown token: UNAUTHENTICATED", async () => {
    const err = await call("aios_000000000000_0000000000000000000000000000000000000000000").catch(
      (e: unknown) => e,
    );
    expect(err).toMatchObject({ code: 16, details: expect.stringContaining("not valid") });
  });

  test("infer on another block: PERMISSION_DENIED naming the scope it needs", async () => {
    const err = await call(t.other).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 7, details: expect.stringContaining(`infer:${BLOCK_ID}`) });
  });

  test("infer on this block, infer:*, operator and the block's own token: answered", async () => {
    for (const token of [t.infer, t.inferAll, t.operator, own]) {
      const res = await call(token);
      expect(res.message).toBe(true);
      expect(JSON.parse(res.result)).toEqual({ doubled: 42 });
    }
  });
});

describe("InferenceProxy.infer through every Connect transport", () => {
  const transports = {
    // Plain gRPC over HTTP/2: the fast path.
    grpc: (baseUrl: string, interceptors: Interceptor[]) => createGrpcTransport({ baseUrl, interceptors }),
    // The Connect adapter: the Connect protocol over HTTP/1.1, gRPC-web over HTTP/2.
    connect: (baseUrl: string, interceptors: Interceptor[]) =>
      createConnectTransport({ baseUrl, httpVersion: "1.1", interceptors }),
    "grpc-web": (baseUrl: string, interceptors: Interceptor[]) =>
      createGrpcWebTransport({ baseUrl, httpVersion: "2", interceptors }),
  } as const;

  for (const [name, transport] of Object.entries(transports)) {
    const infer = (token?: string) =>
      createClient(
        InferenceProxy,
        transport(block.url("grpc"), token === undefined ? [] : [bearer(token)]),
      ).infer({ rpcData: packet(5) });
    const refusal = async (token?: string) => ConnectError.from(await infer(token).catch((e: unknown) => e));

    test(`${name}: no token is Unauthenticated, infer:otherblock PermissionDenied, infer:${BLOCK_ID} OK`, async () => {
      const none = await refusal();
      expect(none.code).toBe(Code.Unauthenticated);
      expect(none.rawMessage).toContain("needs a token");
      const other = await refusal(t.other);
      expect(other.code).toBe(Code.PermissionDenied);
      expect(other.rawMessage).toContain(`infer:${BLOCK_ID}`);
      const res = await infer(t.infer);
      expect(res.message).toBe(true);
      expect(JSON.parse(res.result)).toEqual({ doubled: 10 });
    });
  }

  test("a malformed Authorization value is Unauthenticated (Connect protocol)", async () => {
    const basic: Interceptor = (next) => (req) => {
      req.header.set("authorization", "Basic dXNlcjpwYXNz");
      return next(req);
    };
    const err = await createClient(
      InferenceProxy,
      createConnectTransport({ baseUrl: block.url("grpc"), httpVersion: "1.1", interceptors: [basic] }),
    )
      .infer({ rpcData: packet(1) })
      .catch((e: unknown) => ConnectError.from(e));
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as ConnectError).code).toBe(Code.Unauthenticated);
  });
});

describe("a user's token is verified at the controller once, then cached", () => {
  test("many calls with one token ask the controller at most once; the block's own token never", async () => {
    const tokens = new TokenStore(store);
    const fresh = (await tokens.create({ name: "fresh", scopes: [`infer:${BLOCK_ID}`] }, "test")).token;
    const client = grpcJsInferenceClient(block.url("grpc").replace(/^http:\/\//, ""), { token: fresh });
    const ownClient = grpcJsInferenceClient(block.url("grpc").replace(/^http:\/\//, ""), { token: own });
    try {
      const before = controller.asked;
      for (let i = 0; i < 20; i++) expect((await client.infer(packet(i))).message).toBe(true);
      expect(controller.asked - before).toBe(1);
      const afterUser = controller.asked;
      for (let i = 0; i < 5; i++) expect((await ownClient.infer(packet(i))).message).toBe(true);
      expect(controller.asked).toBe(afterUser);
    } finally {
      client.close();
      ownClient.close();
    }
  });

  test("50 calls at once with a token not yet checked ask the controller once, not 50 times", async () => {
    const tokens = new TokenStore(store);
    const fresh = (await tokens.create({ name: "burst", scopes: [`infer:${BLOCK_ID}`] }, "test")).token;
    const client = grpcJsInferenceClient(block.url("grpc").replace(/^http:\/\//, ""), { token: fresh });
    try {
      const before = controller.asked;
      const answers = await Promise.all(Array.from({ length: 50 }, (_, i) => client.infer(packet(i))));
      expect(answers.every((a) => a.message)).toBe(true);
      expect(controller.asked - before).toBe(1);
    } finally {
      client.close();
    }
  });

  test("a controller that cannot be reached makes a user's call UNAVAILABLE (the own token still works)", async () => {
    const tokens = new TokenStore(store);
    const user = (await tokens.create({ name: "user", scopes: ["infer:*"] }, "test")).token;
    const dark = await startBlockRuntime({
      blockId: BLOCK_ID,
      block: { id: BLOCK_ID },
      ports: FREE,
      instances: [{ id: "i-auth", url: instance.url }],
      // Port 9 on loopback: nothing listens (connection refused at once).
      guard: workloadGuard({ token: own, verifyUrl: "http://127.0.0.1:9" }),
    });
    const address = dark.url("grpc").replace(/^http:\/\//, "");
    const userClient = grpcJsInferenceClient(address, { token: user });
    const ownClient = grpcJsInferenceClient(address, { token: own });
    try {
      const err = await userClient.infer(packet(1)).catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 14, details: expect.stringContaining("cannot check the token") });
      expect((await ownClient.infer(packet(2))).message).toBe(true);
    } finally {
      userClient.close();
      ownClient.close();
      await dark.stop();
    }
  });
});

describe("the management, metrics and mapper apps", () => {
  const call = (url: string, init: RequestInit = {}, token?: string) =>
    fetch(url, {
      ...init,
      headers: {
        "content-type": "application/json",
        ...(token === undefined ? {} : { authorization: `Bearer ${token}` }),
      },
    });
  const mgmt = (service: string, token?: string) =>
    call(
      `${block.url(service)}/mgmt`,
      { method: "POST", body: JSON.stringify({ mgmt_action: "get_instances" }) },
      token,
    );

  for (const service of ["executor", "autoscaler", "health-checker"]) {
    test(`${service} POST /mgmt: 401 without a token, 403 with infer:${BLOCK_ID}, 200 for an operator`, async () => {
      const none = await mgmt(service);
      expect(none.status).toBe(401);
      expect(((await none.json()) as { error: { code: string } }).error.code).toBe("unauthenticated");
      const infer = await mgmt(service, t.infer);
      expect(infer.status).toBe(403);
      expect(((await infer.json()) as { error: { code: string } }).error.code).toBe("forbidden");
      const ok = await mgmt(service, t.operator);
      expect(ok.status).toBe(200);
      expect(((await ok.json()) as { block_id: string }).block_id).toBe(BLOCK_ID);
      // The API description is public.
      expect((await call(`${block.url(service)}/openapi.json`)).status).toBe(200);
    });
  }

  test("executor metrics: read level (401, 403 for infer, 200 for an operator)", async () => {
    const url = `${block.url("metrics")}/metrics/json`;
    expect((await call(url)).status).toBe(401);
    expect((await call(`${block.url("metrics")}/metrics`, {}, t.infer)).status).toBe(403);
    const ok = await call(url, {}, t.operator);
    expect(ok.status).toBe(200);
    expect(((await ok.json()) as { block_id: string }).block_id).toBe(BLOCK_ID);
  });

  test("mapper: reading is read level, changing the list internal only", async () => {
    const url = `${block.url("mapper")}/instances`;
    expect((await call(url)).status).toBe(401);
    expect((await call(url, {}, t.operator)).status).toBe(200);
    const upsert = { method: "POST", body: JSON.stringify({ id: "i-auth", url: instance.url }) };
    expect((await call(url, upsert)).status).toBe(401);
    expect((await call(url, upsert, t.operator)).status).toBe(403);
    expect((await call(url, upsert, own)).status).toBe(200);
    expect(block.mapper.instances).toEqual([{ id: "i-auth", url: instance.url }]);
  });
});

describe("the block's calls to a guarded instance carry its credential", () => {
  test("the instance refuses a caller without a token", async () => {
    const res = await fetch(`${instance.url}/task`, {
      method: "POST",
      body: JSON.stringify({ session_id: "x", seq_no: 1, data: {}, ts: 1 }),
    });
    expect(res.status).toBe(401);
  });

  test("tasks went over the task channel, whose upgrade the instance let in", async () => {
    expect(instance.metrics.json().tasks_total).toBeGreaterThan(0);
    expect(block.executor.channels.get(instance.url)?.state).toBe("open");
  });

  test("the instance's metrics are read with the credential (none without it)", async () => {
    const refs = [{ id: "i-auth", url: instance.url }];
    expect((await fetchInstanceReports(refs)).get("i-auth")).toMatchObject({ instance_id: "i-auth" });
    useServiceToken(undefined);
    try {
      expect((await fetchInstanceReports(refs)).size).toBe(0);
    } finally {
      useServiceToken(own);
    }
  });

  test("the health checker's probe of the instance answers healthy", async () => {
    const run = await block.healthChecker.check();
    expect(run.probes["i-auth"]).toMatchObject({ healthy: true, status: 200 });
  });
});
