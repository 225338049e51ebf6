/**
 * The executor over the instances' task channel (`/task/ws`, one WebSocket per instance), against real
 * `serveInstance` instances: results, many tasks on one socket, an instance stopped with tasks in flight
 * (retried elsewhere), refusals, repeats, timeouts, the caller's deadline, the result cap, removal and
 * close; and the HTTP fallback for an instance without the channel and with `transport: "http"`.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { create, type MessageInitShape, toBinary } from "@bufbuild/protobuf";
import { Executor, ExecutorError, type InstanceRef } from "../../src/block/executor.ts";
import { ChannelFailure, TaskChannel, taskSocketUrl } from "../../src/block/task-channel.ts";
import { AIOSPacketSchema } from "../../src/gen/payload_pb.ts";
import { type ServedInstance, serveInstance, TaskError } from "../../src/instance/index.ts";

const packet = (fields: MessageInitShape<typeof AIOSPacketSchema> = {}) =>
  toBinary(
    AIOSPacketSchema,
    create(AIOSPacketSchema, {
      sessionId: "session-1",
      seqNo: 1n,
      data: '{"a": 2, "b": 3}',
      ts: 1_700_000_000.5,
      ...fields,
    }),
  );

interface Data {
  a?: number;
  b?: number;
  refuse?: boolean;
  crash?: boolean;
  sleep_ms?: number;
  /** Sleep only on this instance. */
  slow_on?: string;
  pad?: string;
}

/** Tasks run by each instance, by instance id. */
const runs = new Map<string, number>();
const instances: ServedInstance[] = [];

/** A real instance (the SDK, so it serves `/task/ws`) that sums `data.a + data.b`. */
const sdkInstance = async (id: string): Promise<InstanceRef & { served: ServedInstance }> => {
  const served = await serveInstance(
    {
      onTask: async (task) => {
        runs.set(id, (runs.get(id) ?? 0) + 1);
        const data = task.data as Data;
        if (data.sleep_ms && (data.slow_on === undefined || data.slow_on === id))
          await Bun.sleep(data.sleep_ms);
        if (data.refuse) throw new TaskError("bad_task", "refused on purpose");
        if (data.crash) throw new Error("handler crashed");
        return { sum: (data.a ?? 0) + (data.b ?? 0), by: id, pad: data.pad };
      },
    },
    { hostname: "127.0.0.1", env: { AIOS_INSTANCE_ID: id } },
  );
  instances.push(served);
  return { id, url: served.url, served };
};

type Server = ReturnType<typeof Bun.serve>;
const servers: Server[] = [];

/** An instance that speaks only `POST /task` (as one not written with the SDK); counts upgrade tries. */
const httpOnlyInstance = (id: string) => {
  const seen = { upgrades: 0, posts: 0 };
  const server = Bun.serve({
    port: 0,
    hostname: "127.0.0.1",
    async fetch(req) {
      const url = new URL(req.url);
      if (url.pathname === "/task/ws") seen.upgrades += 1;
      if (req.method !== "POST" || url.pathname !== "/task") return new Response("no", { status: 404 });
      seen.posts += 1;
      const task = (await req.json()) as { data: Data };
      return Response.json({ result: { sum: (task.data.a ?? 0) + (task.data.b ?? 0), by: id } });
    },
  });
  servers.push(server);
  return { ref: { id, url: `http://127.0.0.1:${server.port}` } as InstanceRef, seen };
};

let wsA: InstanceRef & { served: ServedInstance };
let wsB: InstanceRef & { served: ServedInstance };

beforeAll(async () => {
  wsA = await sdkInstance("ws-a");
  wsB = await sdkInstance("ws-b");
});

afterAll(async () => {
  await Promise.all([...instances.map((i) => i.stop()), ...servers.map((s) => s.stop(true))]);
});

const sumOf = (res: { result: string }) => (JSON.parse(res.result) as { sum: number }).sum;

describe("the executor over the task channel", () => {
  test("results come back over one socket per instance", async () => {
    const executor = new Executor({ blockId: "b", instances: [wsA, wsB] });
    const res = await Promise.all([1, 2, 3, 4].map((i) => executor.infer(packet({ seqNo: BigInt(i) }))));
    expect(res.map((r) => [r.message, r.instanceId, sumOf(r)])).toEqual([
      [true, "ws-a", 5],
      [true, "ws-b", 5],
      [true, "ws-a", 5],
      [true, "ws-b", 5],
    ]);
    expect([...executor.channels.keys()].sort()).toEqual([wsA.url, wsB.url].sort());
    for (const channel of executor.channels.values()) expect(channel.state).toBe("open");
    executor.close();
  });

  test("many tasks in flight on one socket each resolve to their own caller", async () => {
    const executor = new Executor({ blockId: "b", instances: [wsA] });
    // Later tasks sleep less, so the answers come back out of order.
    const all = await Promise.all(
      Array.from({ length: 200 }, (_, i) =>
        executor.infer(
          packet({
            sessionId: "many",
            seqNo: BigInt(i + 1),
            data: JSON.stringify({ a: i, b: 1000, sleep_ms: (200 - i) % 37 }),
          }),
        ),
      ),
    );
    expect(all.map((r) => [r.seqNo, sumOf(r)])).toEqual(
      Array.from({ length: 200 }, (_, i) => [BigInt(i + 1), i + 1000]),
    );
    expect(executor.channels.size).toBe(1);
    expect(executor.channels.get(wsA.url)?.inFlight).toBe(0);
    executor.close();
  });

  test("an instance stopped with tasks in flight: they succeed on another at once, the failure reported", async () => {
    const doomed = await sdkInstance("doomed");
    const failures: [string, string][] = [];
    const executor = new Executor({
      blockId: "b",
      instances: [doomed, wsB],
      attemptTimeoutMs: 10_000,
      onInstanceFailure: (id, reason) => failures.push([id, reason]),
    });
    await executor.infer(packet()); // opens the channel to `doomed` (round-robin starts there)
    expect(executor.channels.get(doomed.url)?.state).toBe("open");
    const started = Date.now();
    const pending = Array.from({ length: 6 }, (_, i) =>
      executor.infer(
        packet({
          sessionId: "kill",
          seqNo: BigInt(i + 1),
          data: '{"a":1,"b":1,"sleep_ms":2000,"slow_on":"doomed"}',
        }),
      ),
    );
    await Bun.sleep(50);
    expect(executor.channels.get(doomed.url)?.inFlight).toBe(3);
    await doomed.served.stop();
    const res = await Promise.all(pending);
    expect(res.map((r) => [r.message, r.instanceId, sumOf(r)])).toEqual(Array(6).fill([true, "ws-b", 2]));
    // Retried when the socket closed, not after the 2 s task or the 10 s attempt timeout.
    expect(Date.now() - started).toBeLessThan(1500);
    expect(failures.length).toBe(3);
    for (const [id, reason] of failures) {
      expect(id).toBe("doomed");
      expect(reason).toContain("unreachable: the task channel closed");
    }
    expect(executor.metrics.instance("doomed")?.errors_total).toBe(3);
    executor.close();
  });

  test("an instance without the channel is served over HTTP, and not asked again for a while", async () => {
    const plain = httpOnlyInstance("plain");
    const executor = new Executor({ blockId: "b", instances: [plain.ref] });
    for (let i = 1; i <= 5; i++) {
      const res = await executor.infer(packet({ seqNo: BigInt(i) }));
      expect([res.message, res.instanceId, sumOf(res)]).toEqual([true, "plain", 5]);
    }
    expect(plain.seen).toEqual({ upgrades: 1, posts: 5 });
    expect(executor.channels.get(plain.ref.url)?.state).toBe("refused");
    expect(executor.failures.size).toBe(0);
    executor.close();
  });

  test('transport "http" never opens a socket', async () => {
    const plain = httpOnlyInstance("plain-http");
    const executor = new Executor({ blockId: "b", instances: [plain.ref, wsA], transport: "http" });
    for (let i = 1; i <= 4; i++)
      expect((await executor.infer(packet({ seqNo: BigInt(i) }))).message).toBe(true);
    expect(plain.seen).toEqual({ upgrades: 0, posts: 2 });
    expect(executor.channels.size).toBe(0);
  });

  test("a refusal (TaskError, 4xx) over the channel: message false with the error, not retried", async () => {
    const executor = new Executor({ blockId: "b", instances: [wsA, wsB] });
    const res = await executor.infer(packet({ sessionId: "refuse", data: '{"refuse":true}' }));
    expect([res.message, res.error, res.instanceId, res.result]).toEqual([
      false,
      "bad_task: refused on purpose",
      "ws-a",
      "",
    ]);
    expect(executor.metrics.instance("ws-b")?.requests_total).toBe(0);
    expect(executor.channels.get(wsA.url)?.state).toBe("open");
    executor.close();
  });

  test("a crash (500) over the channel is a failure: retried on another instance", async () => {
    const failures: string[] = [];
    const executor = new Executor({
      blockId: "b",
      instances: [wsA, wsB],
      onInstanceFailure: (id, reason) => failures.push(`${id}: ${reason}`),
    });
    const err = await executor.infer(packet({ sessionId: "crash", data: '{"crash":true}' })).catch((e) => e);
    expect(err).toBeInstanceOf(ExecutorError);
    expect((err as ExecutorError).code).toBe("unavailable");
    expect(failures).toHaveLength(2);
    expect(failures[0]).toStartWith('ws-a: answered HTTP 500: {"error":{"code":"internal"');
    executor.close();
  });

  test("an instance answering outside the protocol: its tasks fail at once and go elsewhere", async () => {
    // Accepts the upgrade, then answers every task with something no task can be matched to.
    const answers = ["not json", '{"id":null,"status":400,"body":{}}'];
    const liars = answers.map((answer) => {
      const server = Bun.serve({
        port: 0,
        hostname: "127.0.0.1",
        fetch: (req, srv) => (srv.upgrade(req) ? undefined : new Response("no", { status: 404 })),
        websocket: { message: (ws) => void ws.send(answer) },
      });
      servers.push(server);
      return server;
    });
    for (const [i, liar] of liars.entries()) {
      const failures: string[] = [];
      const executor = new Executor({
        blockId: "b",
        instances: [{ id: "liar", url: `http://127.0.0.1:${liar.port}` }, wsB],
        attemptTimeoutMs: 5000,
        onInstanceFailure: (id, reason) => failures.push(`${id}: ${reason}`),
      });
      const started = Date.now();
      const res = await executor.infer(packet({ sessionId: `liar-${i}` }));
      expect([res.message, res.instanceId]).toEqual([true, "ws-b"]);
      expect(Date.now() - started).toBeLessThan(1000);
      expect(failures).toHaveLength(1);
      expect(failures[0]).toStartWith("liar: unreachable: the task channel closed");
      executor.close();
    }
  });

  test("a repeated (session_id, seq_no) over the channel runs once", async () => {
    const executor = new Executor({ blockId: "b", instances: [wsB] });
    const before = runs.get("ws-b") ?? 0;
    const first = await executor.infer(packet({ sessionId: "dup", seqNo: 3n, data: '{"a":1,"b":2}' }));
    const again = await executor.infer(packet({ sessionId: "dup", seqNo: 3n, data: '{"a":10,"b":20}' }));
    const [c1, c2] = await Promise.all([
      executor.infer(packet({ sessionId: "dup", seqNo: 4n, data: '{"a":1,"b":1,"sleep_ms":30}' })),
      executor.infer(packet({ sessionId: "dup", seqNo: 4n, data: '{"a":1,"b":1,"sleep_ms":30}' })),
    ]);
    expect([sumOf(first), sumOf(again), sumOf(c1), sumOf(c2)]).toEqual([3, 3, 2, 2]);
    expect((runs.get("ws-b") ?? 0) - before).toBe(2);
    executor.close();
  });

  test("past the attempt timeout: a failure, the task goes elsewhere, the late answer is ignored", async () => {
    const failures: string[] = [];
    const executor = new Executor({
      blockId: "b",
      instances: [wsA, wsB],
      attemptTimeoutMs: 100,
      onInstanceFailure: (id, reason) => failures.push(`${id}: ${reason}`),
    });
    const res = await executor.infer(
      packet({ sessionId: "slow", data: '{"a":1,"b":1,"sleep_ms":300,"slow_on":"ws-a"}' }),
    );
    expect([res.instanceId, sumOf(res)]).toEqual(["ws-b", 2]);
    expect(failures).toEqual(["ws-a: no answer within 100 ms"]);
    await Bun.sleep(300); // the late answer arrives on the socket, for no one
    const channel = executor.channels.get(wsA.url);
    expect([channel?.state, channel?.inFlight]).toEqual(["open", 0]);
    executor.setInstances([wsA]);
    expect((await executor.infer(packet({ sessionId: "after-slow" }))).instanceId).toBe("ws-a");
    executor.close();
  });

  test("the caller's deadline over the channel: deadline_exceeded, the instance not blamed", async () => {
    const failures: string[] = [];
    const executor = new Executor({
      blockId: "b",
      instances: [wsA],
      onInstanceFailure: (id) => failures.push(id),
    });
    await executor.infer(packet({ sessionId: "warm" }));
    const err = await executor
      .infer(packet({ sessionId: "deadline", data: '{"sleep_ms":300}' }), AbortSignal.timeout(50))
      .catch((e) => e);
    expect((err as ExecutorError).code).toBe("deadline_exceeded");
    expect(failures).toEqual([]);
    expect(executor.channels.get(wsA.url)?.inFlight).toBe(0);
    executor.close();
  });

  test("an answer over maxResultBytes is a failed task, not retried", async () => {
    const executor = new Executor({ blockId: "b", instances: [wsA, wsB], maxResultBytes: 300 });
    const small = await executor.infer(
      packet({ sessionId: "cap", data: JSON.stringify({ pad: "x".repeat(200) }) }),
    );
    expect(small.message).toBe(true);
    const res = await executor.infer(
      packet({ sessionId: "cap", seqNo: 2n, data: JSON.stringify({ pad: "x".repeat(400) }) }),
    );
    expect([res.message, res.instanceId]).toEqual([false, "ws-b"]);
    expect(res.error).toContain("result_too_large");
    expect(executor.failures.size).toBe(0);
    executor.close();
  });

  test("a task too large for a shared socket goes over HTTP", async () => {
    const executor = new Executor({ blockId: "b", instances: [wsA] });
    const big = JSON.stringify({ a: 1, b: 1, pad: "z".repeat(2 * 1024 * 1024) });
    const res = await executor.infer(packet({ sessionId: "big", data: big }));
    expect([res.message, sumOf(res)]).toEqual([true, 2]);
    // Never tried over the channel, so none was opened.
    expect(executor.channels.get(wsA.url)?.state ?? "idle").toBe("idle");
    executor.close();
  });

  test("removing an instance closes its channel once its tasks are answered; close() closes the rest", async () => {
    const executor = new Executor({ blockId: "b", instances: [wsA, wsB] });
    await Promise.all([executor.infer(packet({ seqNo: 1n })), executor.infer(packet({ seqNo: 2n }))]);
    const a = executor.channels.get(wsA.url);
    const b = executor.channels.get(wsB.url);
    const slow = executor.infer(packet({ sessionId: "rm", data: '{"a":4,"b":4,"sleep_ms":100}' }));
    await Bun.sleep(20);
    expect(a?.inFlight).toBe(1);
    executor.setInstances([wsB]);
    expect(executor.channels.has(wsA.url)).toBe(false);
    expect(a?.state).toBe("open");
    expect(sumOf(await slow)).toBe(8);
    expect(a?.state).toBe("closed");
    expect(b?.state).toBe("open");
    executor.close();
    expect(b?.state).toBe("closed");
    expect(executor.channels.size).toBe(0);
    // Still serves, over HTTP.
    expect((await executor.infer(packet({ sessionId: "after-close" }))).message).toBe(true);
    expect(executor.channels.size).toBe(0);
  });

  test("a channel whose socket closed reconnects on next use", async () => {
    const first = (await sdkInstance("phoenix")).served;
    const ref: InstanceRef = { id: "phoenix", url: first.url };
    const executor = new Executor({ blockId: "b", instances: [ref] });
    expect((await executor.infer(packet())).instanceId).toBe("phoenix");
    await first.stop();
    await Bun.sleep(20);
    expect(executor.channels.get(ref.url)?.state).toBe("idle");
    const again = await serveInstance(
      { onTask: () => ({ sum: 0 }) },
      { hostname: "127.0.0.1", port: first.port, env: {} },
    );
    instances.push(again);
    expect((await executor.infer(packet({ seqNo: 2n }))).message).toBe(true);
    expect(executor.channels.get(ref.url)?.state).toBe("open");
    executor.close();
  });
});

describe("TaskChannel", () => {
  test("taskSocketUrl: ws for http, wss for https, the instance's base path kept", () => {
    expect(taskSocketUrl("http://127.0.0.1:8001")).toBe("ws://127.0.0.1:8001/task/ws");
    expect(taskSocketUrl("https://inst.example/base/")).toBe("wss://inst.example/base/task/ws");
  });

  test("an unreachable instance: ChannelUnavailable, so the caller can fall back", async () => {
    const gone = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: () => new Response("") });
    const url = `http://127.0.0.1:${gone.port}`;
    await gone.stop(true);
    const channel = new TaskChannel(url);
    const err = await channel.send("{}", 1000).catch((e) => e);
    expect((err as Error).name).toBe("ChannelUnavailable");
    expect(channel.state).toBe("idle");
  });

  test("close() fails the tasks in flight at once", async () => {
    const channel = new TaskChannel(wsA.url);
    const body = JSON.stringify({ session_id: "close", seq_no: 1, data: { sleep_ms: 500 }, ts: 1 });
    const pending = channel.send(body, 5000).catch((e) => e);
    await Bun.sleep(30);
    channel.close();
    const err = await pending;
    expect(err).toBeInstanceOf(ChannelFailure);
    expect((err as ChannelFailure).kind).toBe("closed");
    expect(channel.state).toBe("closed");
  });
});
