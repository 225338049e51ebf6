/**
 * The executor against real instances (Bun.serve speaking the instance task protocol): routing with and
 * without a load balancer policy, fallbacks when the policy errs, retries when an instance fails, the
 * gRPC service over HTTP/2 (Connect's gRPC transport and grpc-js), and the metrics and /mgmt apps.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createServer, type Http2Server } from "node:http2";
import type { AddressInfo } from "node:net";
import { create, type MessageInitShape, toBinary } from "@bufbuild/protobuf";
import { Code, type ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import { createExecutorMetricsApp, createExecutorMgmtApp, executorRoutes } from "../../src/block/app.ts";
import {
  Executor,
  ExecutorError,
  type InstanceRef,
  type LoadBalancerPolicy,
} from "../../src/block/executor.ts";
import { PacketError } from "../../src/block/packet.ts";
import { InferenceProxy } from "../../src/gen/inference_pb.ts";
import { AIOSPacketSchema, FileInfoSchema } from "../../src/gen/payload_pb.ts";
import { connectHandler } from "../../src/http/connect-adapter.ts";
import { PolicyError } from "../../src/policy/errors.ts";
import { instantiatePolicy, type PolicyInstance } from "../../src/policy/runtime.ts";
import { compiledBuiltin } from "../support/builtin-policies.ts";
import { grpcJsInferenceClient } from "../support/grpc.ts";

const packet = (fields: MessageInitShape<typeof AIOSPacketSchema> = {}) =>
  toBinary(
    AIOSPacketSchema,
    create(AIOSPacketSchema, {
      sessionId: "session-1",
      seqNo: 1n,
      data: '{"a": 2, "b": 3}',
      ts: 1_700_000_000.5,
      framePtr: new TextEncoder().encode("fp"),
      files: [
        create(FileInfoSchema, { metadata: '{"type":"text"}', fileData: new TextEncoder().encode("abc") }),
      ],
      ...fields,
    }),
  );

interface TaskBody {
  session_id: string;
  seq_no: number;
  data: { a?: number; b?: number; refuse?: boolean; sleep_ms?: number; slow_on?: string };
  ts: number;
  output_ptr: string;
  frame_ptr: string;
  files: { metadata: string; file_data: string }[];
}

type Server = ReturnType<typeof Bun.serve>;
const servers: Server[] = [];
/** The last task body each calculating instance received, by instance id. */
const received = new Map<string, TaskBody>();

/**
 * An instance that sums `data.a + data.b`; `refuse` answers 400, `sleep_ms` delays the answer (only on
 * the instance named by `slow_on`, when given).
 */
const calcInstance = (id: string): InstanceRef => {
  const server = Bun.serve({
    port: 0,
    hostname: "127.0.0.1",
    async fetch(req) {
      const url = new URL(req.url);
      if (req.method !== "POST" || url.pathname !== "/task") return new Response("no", { status: 404 });
      const task = (await req.json()) as TaskBody;
      received.set(id, task);
      const slow = task.data.slow_on === undefined || task.data.slow_on === id;
      if (task.data.sleep_ms && slow) await Bun.sleep(task.data.sleep_ms);
      if (task.data.refuse) {
        return Response.json({ error: { code: "bad_task", message: "refused on purpose" } }, { status: 400 });
      }
      return Response.json({ result: { sum: (task.data.a ?? 0) + (task.data.b ?? 0), by: id } });
    },
  });
  servers.push(server);
  return { id, url: `http://127.0.0.1:${server.port}` };
};

const brokenInstance = (id: string): InstanceRef => {
  const server = Bun.serve({
    port: 0,
    hostname: "127.0.0.1",
    fetch: () => Response.json({ error: { code: "internal", message: "boom" } }, { status: 500 }),
  });
  servers.push(server);
  return { id, url: `http://127.0.0.1:${server.port}` };
};

/** A port that was listening and is no longer: connections are refused. */
const goneInstance = async (id: string): Promise<InstanceRef> => {
  const server = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: () => new Response("") });
  const url = `http://127.0.0.1:${server.port}`;
  await server.stop(true);
  return { id, url };
};

let calcA: InstanceRef;
let calcB: InstanceRef;
let calcC: InstanceRef;
let broken: InstanceRef;
let gone: InstanceRef;

const loadRoundRobin = async (): Promise<PolicyInstance> =>
  instantiatePolicy(await compiledBuiltin("policy.loadBalancer.roundrobin:v0.0.1"), {
    ruleId: "executor-test",
    settings: {},
    parameters: {},
  });

/** A policy double: answers what `decide` returns (or throws). */
const fakePolicy = (decide: () => unknown): LoadBalancerPolicy =>
  ({
    uri: "policy.loadBalancer.fake:v1",
    eval: async () => decide(),
    management: async (action: string, data: unknown) => ({ action, data }),
  }) as unknown as LoadBalancerPolicy;

beforeAll(async () => {
  calcA = calcInstance("calc-a");
  calcB = calcInstance("calc-b");
  calcC = calcInstance("calc-c");
  broken = brokenInstance("broken");
  gone = await goneInstance("gone");
});

afterAll(async () => {
  await Promise.all(servers.map((s) => s.stop(true)));
});

describe("Executor.infer", () => {
  test("forwards the task in the protocol's form and answers the result with the instance id", async () => {
    const executor = new Executor({ blockId: "b", instances: [calcA] });
    const res = await executor.infer(packet({ seqNo: 4n }));
    expect([res.message, res.instanceId, res.sessionId, res.seqNo, res.error]).toEqual([
      true,
      "calc-a",
      "session-1",
      4n,
      "",
    ]);
    expect(JSON.parse(res.result)).toEqual({ sum: 5, by: "calc-a" });
    expect(received.get("calc-a")).toEqual({
      session_id: "session-1",
      seq_no: 4,
      data: { a: 2, b: 3 },
      ts: 1_700_000_000.5,
      output_ptr: "",
      frame_ptr: Buffer.from("fp").toString("base64"),
      files: [{ metadata: '{"type":"text"}', file_data: Buffer.from("abc").toString("base64") }],
    });
  });

  test("without a policy: round-robin over the instances", async () => {
    const executor = new Executor({ blockId: "b", instances: [calcA, calcB, calcC] });
    const ids: string[] = [];
    for (let i = 1; i <= 6; i++) ids.push((await executor.infer(packet({ seqNo: BigInt(i) }))).instanceId);
    expect(ids).toEqual(["calc-a", "calc-b", "calc-c", "calc-a", "calc-b", "calc-c"]);
    expect(executor.metrics.blockMetrics().policy_fallbacks_total).toBe(0);
  });

  test("the built-in round-robin policy: a session sticks to one instance, sessions spread", async () => {
    const policy = await loadRoundRobin();
    const executor = new Executor({ blockId: "b", instances: [calcA, calcB, calcC], policy });
    const bySession = new Map<string, Set<string>>();
    for (let seq = 1; seq <= 4; seq++) {
      for (const s of ["s-1", "s-2", "s-3"]) {
        const res = await executor.infer(packet({ sessionId: s, seqNo: BigInt(seq) }));
        expect(res.message).toBe(true);
        const set = bySession.get(s) ?? new Set<string>();
        set.add(res.instanceId);
        bySession.set(s, set);
      }
    }
    for (const set of bySession.values()) expect(set.size).toBe(1);
    const used = new Set([...bySession.values()].flatMap((s) => [...s]));
    expect(used.size).toBe(3);
    expect(executor.metrics.blockMetrics().policy_fallbacks_total).toBe(0);
    await policy.close();
  });

  test("a policy answering an instance not offered, or throwing: round-robin, counted by code", async () => {
    const stray = new Executor({
      blockId: "b",
      instances: [calcA, calcB],
      policy: fakePolicy(() => ({ instance_id: "elsewhere" })),
    });
    const a = await stray.infer(packet());
    const b = await stray.infer(packet());
    expect([a.instanceId, b.instanceId].sort()).toEqual(["calc-a", "calc-b"]);
    expect(Object.fromEntries(stray.metrics.policyFallbacks)).toEqual({ bad_output: 2 });

    const throwing = new Executor({
      blockId: "b",
      instances: [calcA],
      policy: fakePolicy(() => {
        throw new PolicyError("fuel_exhausted", "policy.loadBalancer.fake:v1", "ran out of fuel");
      }),
    });
    expect((await throwing.infer(packet())).message).toBe(true);
    expect(throwing.metrics.blockMetrics().policy_fallbacks_total).toBe(1);
    expect(Object.fromEntries(throwing.metrics.policyFallbacks)).toEqual({ fuel_exhausted: 1 });
  });

  test("a failing (500) and an unreachable instance: every request succeeds elsewhere, failures reported", async () => {
    const failures: [string, string][] = [];
    const executor = new Executor({
      blockId: "b",
      instances: [broken, gone, calcA],
      onInstanceFailure: (id, reason) => failures.push([id, reason]),
    });
    for (let i = 1; i <= 6; i++) {
      const res = await executor.infer(packet({ seqNo: BigInt(i) }));
      expect([res.message, res.instanceId]).toEqual([true, "calc-a"]);
    }
    const ids = new Set(failures.map(([id]) => id));
    expect([...ids].sort()).toEqual(["broken", "gone"]);
    expect(failures.find(([id]) => id === "broken")?.[1]).toContain("HTTP 500");
    expect(failures.find(([id]) => id === "gone")?.[1]).toContain("unreachable");
    const json = executor.metrics.blockMetrics();
    expect(json.instances.broken?.errors_total).toBeGreaterThan(0);
    expect(json.instances.gone?.errors_total).toBeGreaterThan(0);
    expect(json.instances["calc-a"]).toMatchObject({ requests_total: 6, errors_total: 0, in_flight: 0 });
    expect(json.errors_total).toBe(failures.length);
    expect(executor.failures.get("broken")?.reason).toContain("HTTP 500");
  });

  test("every instance failing: Unavailable naming the instances tried", async () => {
    const executor = new Executor({ blockId: "b", instances: [broken, gone] });
    const err = await executor.infer(packet()).catch((e) => e);
    expect(err).toBeInstanceOf(ExecutorError);
    expect((err as ExecutorError).code).toBe("unavailable");
    expect([...(err as ExecutorError).tried].sort()).toEqual(["broken", "gone"]);
    expect((err as ExecutorError).message).toContain("broken");
  });

  test("a slow instance past the attempt timeout is a failure; the task goes to another", async () => {
    const failures: string[] = [];
    const executor = new Executor({
      blockId: "b",
      instances: [calcA, calcB],
      attemptTimeoutMs: 100,
      onInstanceFailure: (id, reason) => failures.push(`${id}: ${reason}`),
    });
    const res = await executor.infer(packet({ data: '{"a":1,"b":1,"sleep_ms":300,"slow_on":"calc-a"}' }));
    expect([res.message, res.instanceId]).toEqual([true, "calc-b"]);
    expect(failures).toEqual(["calc-a: no answer within 100 ms"]);
    // Slow everywhere: every attempt times out.
    const err = await executor.infer(packet({ data: '{"sleep_ms":300}' })).catch((e) => e);
    expect((err as ExecutorError).code).toBe("unavailable");
    expect(failures.some((f) => f.includes("no answer within 100 ms"))).toBe(true);
  });

  test("a failed instance is passed over for ejectMs, then tried again", async () => {
    const executor = new Executor({ blockId: "b", instances: [gone, calcA], ejectMs: 150 });
    await executor.infer(packet({ seqNo: 1n })); // round-robin starts at gone: fails, calc-a answers
    expect(executor.ejected.has("gone")).toBe(true);
    for (let i = 2; i <= 5; i++) await executor.infer(packet({ seqNo: BigInt(i) }));
    // While ejected, no request was sent to it.
    expect(executor.metrics.instance("gone")?.requests_total).toBe(1);
    await Bun.sleep(200);
    expect(executor.ejected.has("gone")).toBe(false);
    for (let i = 6; i <= 7; i++) await executor.infer(packet({ seqNo: BigInt(i) }));
    expect(executor.metrics.instance("gone")?.requests_total).toBe(2);
  });

  test("drain: tasks in progress are answered, new ones refused as unavailable", async () => {
    const executor = new Executor({ blockId: "b", instances: [calcA] });
    const slow = executor.infer(packet({ data: '{"a":2,"b":2,"sleep_ms":150}' }));
    await Bun.sleep(20);
    expect(executor.active).toBe(1);
    const drained = executor.drain(2000);
    const refused = await executor.infer(packet()).catch((e) => e);
    expect((refused as ExecutorError).code).toBe("unavailable");
    expect((refused as ExecutorError).message).toContain("shutting down");
    expect(JSON.parse((await slow).result)).toMatchObject({ sum: 4 });
    expect(await drained).toBe(true);
    // A task that outlives the grace period: drain says so.
    const stuck = new Executor({ blockId: "b", instances: [calcA] });
    const pending = stuck.infer(packet({ data: '{"sleep_ms":300}' }));
    await Bun.sleep(20);
    expect(await stuck.drain(30)).toBe(false);
    await pending;
  });

  test("an answer over maxResultBytes is a failed task, not retried", async () => {
    const executor = new Executor({ blockId: "b", instances: [calcA, calcB], maxResultBytes: 100 });
    const res = await executor.infer(packet({ data: JSON.stringify({ a: "x".repeat(200) }) }));
    expect(res.message).toBe(false);
    expect(res.error).toContain("result_too_large");
    expect(executor.failures.size).toBe(0);
  });

  test("the caller's deadline passing: deadline_exceeded, the instance not blamed", async () => {
    const failures: string[] = [];
    const executor = new Executor({
      blockId: "b",
      instances: [calcA, calcB],
      onInstanceFailure: (id) => failures.push(id),
    });
    const err = await executor
      .infer(packet({ data: '{"sleep_ms":300}' }), AbortSignal.timeout(50))
      .catch((e) => e);
    expect((err as ExecutorError).code).toBe("deadline_exceeded");
    expect(failures).toEqual([]);
  });

  test("a 4xx from the instance: message false with its error, not retried", async () => {
    const executor = new Executor({ blockId: "b", instances: [calcA, calcB] });
    const res = await executor.infer(packet({ data: '{"refuse":true}' }));
    expect([res.message, res.error, res.instanceId, res.result]).toEqual([
      false,
      "bad_task: refused on purpose",
      "calc-a",
      "",
    ]);
    expect(executor.metrics.blockMetrics().instances["calc-b"]?.requests_total).toBe(0);
  });

  test("an invalid packet: PacketError naming the field; no instances: unavailable", async () => {
    const executor = new Executor({ blockId: "b", instances: [calcA] });
    const bad = await executor.infer(packet({ ts: 0 })).catch((e) => e);
    expect(bad).toBeInstanceOf(PacketError);
    expect((bad as PacketError).field).toBe("ts");
    executor.setInstances([]);
    const none = await executor.infer(packet()).catch((e) => e);
    expect((none as ExecutorError).code).toBe("unavailable");
    expect((none as ExecutorError).message).toContain("no instances");
  });

  test("the policy reads the block metrics through aios_get_metrics' host provider", async () => {
    let seen: unknown;
    const policy = {
      uri: "policy.loadBalancer.spy:v1",
      eval: async (_input: unknown, options: { host: { getMetrics: () => unknown } }) => {
        seen = options.host.getMetrics();
        return { instance_id: "calc-b" };
      },
      management: async () => ({}),
    } as unknown as LoadBalancerPolicy;
    const executor = new Executor({ blockId: "blk", instances: [calcA, calcB], policy });
    expect((await executor.infer(packet())).instanceId).toBe("calc-b");
    expect(seen).toMatchObject({
      block_metrics: {
        block_id: "blk",
        instances: { "calc-a": { in_flight: 0 }, "calc-b": { in_flight: 0 } },
      },
      cluster_metrics: null,
    });
  });
});

describe("the executor's gRPC service over HTTP/2", () => {
  let server: Http2Server;
  let address = "";
  let executor: Executor;
  beforeAll(async () => {
    executor = new Executor({ blockId: "grpc-block", instances: [broken, calcA, calcB] });
    server = createServer(connectHandler({ routes: executorRoutes(executor) }));
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    address = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => {
    server?.close();
  });

  test("Connect's gRPC transport: results, InvalidArgument, Unavailable, DeadlineExceeded", async () => {
    const client = createClient(InferenceProxy, createGrpcTransport({ baseUrl: `http://${address}` }));
    executor.setInstances([broken, calcA, calcB]);
    for (let i = 1; i <= 4; i++) {
      const ok = await client.infer({ rpcData: packet({ seqNo: BigInt(i) }) });
      expect(ok.message).toBe(true);
      expect(["calc-a", "calc-b"]).toContain(ok.instanceId);
      expect(JSON.parse(ok.result).sum).toBe(5);
      expect(ok.seqNo).toBe(BigInt(i));
    }
    const bad = (await client.infer({ rpcData: packet({ sessionId: "" }) }).catch((e) => e)) as ConnectError;
    expect([bad.code, bad.rawMessage]).toEqual([Code.InvalidArgument, "session_id is required"]);
    const late = (await client
      .infer({ rpcData: packet({ data: '{"sleep_ms":400}' }) }, { timeoutMs: 100 })
      .catch((e) => e)) as ConnectError;
    expect(late.code).toBe(Code.DeadlineExceeded);
    executor.setInstances([]);
    const none = (await client.infer({ rpcData: packet() }).catch((e) => e)) as ConnectError;
    expect(none.code).toBe(Code.Unavailable);
    executor.setInstances([broken, calcA, calcB]);
  });

  test("grpc-js, with the package-less method path", async () => {
    executor.setInstances([broken, calcA]);
    const client = grpcJsInferenceClient(address);
    const call = client.infer;
    const ok = await call(packet({ seqNo: 9n }));
    expect([ok.message, ok.instanceId, ok.seqNo]).toEqual([true, "calc-a", 9n]);
    const refused = await call(packet({ data: '{"refuse":true}' }));
    expect([refused.message, refused.error]).toEqual([false, "bad_task: refused on purpose"]);
    const bad = (await call(packet({ data: "{oops" })).catch((e) => e)) as grpc.ServiceError;
    expect([bad.code, bad.details]).toEqual([grpc.status.INVALID_ARGUMENT, "data is not valid JSON"]);
    executor.setInstances([broken]);
    const down = (await call(packet()).catch((e) => e)) as grpc.ServiceError;
    expect(down.code).toBe(grpc.status.UNAVAILABLE);
    expect(down.details).toContain("broken");
    client.close();
  });
});

describe("metrics and /mgmt apps", () => {
  test("GET /metrics (Prometheus) and /metrics/json", async () => {
    const executor = new Executor({ blockId: "m-block", instances: [calcA] });
    await executor.infer(packet());
    const app = createExecutorMetricsApp(executor);
    const text = await app.request("/metrics");
    expect(text.status).toBe(200);
    expect(text.headers.get("content-type")).toContain("text/plain");
    expect(await text.text()).toContain('aios_executor_requests_total{block="m-block",instance="calc-a"} 1');
    const json = await (await app.request("/metrics/json")).json();
    expect(json).toMatchObject({
      block_id: "m-block",
      requests_total: 1,
      instances: { "calc-a": { requests_total: 1, in_flight: 0 } },
    });
    expect((await app.request("/nope")).status).toBe(404);
  });

  const post = (app: ReturnType<typeof createExecutorMgmtApp>, body: unknown) =>
    app.request("/mgmt", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: typeof body === "string" ? body : JSON.stringify(body),
    });

  test("built-in actions, a policy action, bad bodies", async () => {
    const policy = await loadRoundRobin();
    const executor = new Executor({ blockId: "mg", instances: [calcA, broken], policy });
    await executor.infer(packet()).catch(() => undefined);
    await executor.infer(packet({ sessionId: "other" })).catch(() => undefined);
    const app = createExecutorMgmtApp(executor);

    const instances = await (await post(app, { mgmt_action: "get_instances" })).json();
    expect(instances.block_id).toBe("mg");
    expect(instances.instances.map((i: { id: string }) => i.id)).toEqual(["calc-a", "broken"]);
    expect(instances.instances[1].last_failure.reason).toContain("HTTP 500");
    expect(instances.instances[0].metrics.in_flight).toBe(0);

    const info = await (await post(app, { mgmt_action: "policy_info" })).json();
    expect(info).toMatchObject({ policy: "policy.loadBalancer.roundrobin:v0.0.1", fallback: "round-robin" });

    const state = await post(app, { mgmt_action: "get_state", mgmt_data: {} });
    expect(state.status).toBe(200);
    expect((await state.json()).instances).toEqual(["calc-a", "broken"]);

    const unknown = await post(app, { mgmt_action: "no_such_action" });
    expect(unknown.status).toBeGreaterThanOrEqual(400);
    expect(unknown.status).toBeLessThan(500);

    const missing = await post(app, { mgmt_data: {} });
    expect(missing.status).toBe(400);
    expect((await missing.json()).error.message).toContain("mgmt_action");
    expect((await post(app, "{not json")).status).toBe(400);

    executor.setPolicy(null);
    const noPolicy = await post(app, { mgmt_action: "get_state" });
    expect(noPolicy.status).toBe(400);
    expect((await noPolicy.json()).error.code).toBe("unknown_action");
    await policy.close();
  });
});
