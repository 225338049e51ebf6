/**
 * The instance SDK against real servers: the task protocol (results, refusals, failures, dedup, bad
 * bodies), health, metrics (JSON and Prometheus), /mgmt, the environment, and the block's Executor
 * balancing over two instances served by `serveInstance`.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { create, type MessageInitShape, toBinary } from "@bufbuild/protobuf";
import { Executor } from "../../src/block/executor.ts";
import { AIOSPacketSchema, FileInfoSchema } from "../../src/gen/payload_pb.ts";
import {
  ConfigError,
  type InstanceContext,
  readInstanceConfig,
  type ServedInstance,
  serveInstance,
  type Task,
  TaskError,
} from "../../src/instance/index.ts";

/** Word counts of `data.text`: `{ words, counts: {word: n} }`; refuses a missing text, fails on "boom". */
const wordCount = (task: Task, ctx: InstanceContext) => {
  const text = (task.data as { text?: unknown }).text;
  if (typeof text !== "string") throw new TaskError("bad_text", "data.text must be a string");
  if (text === "boom") throw new Error("handler crashed");
  const counts: Record<string, number> = {};
  const words = text.toLowerCase().match(/[a-z0-9']+/g) ?? [];
  for (const w of words) counts[w] = (counts[w] ?? 0) + 1;
  ctx.metrics.counter("words_seen").inc(words.length);
  ctx.metrics.gauge("last_text_length").set(text.length);
  return {
    words: words.length,
    counts,
    by: ctx.instanceId,
    files: task.files.map((f) => ({ metadata: f.metadata, text: new TextDecoder().decode(f.data) })),
    frame: new TextDecoder().decode(task.framePtr),
  };
};

const post = (url: string, path: string, body: unknown) =>
  fetch(`${url}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });

const taskBody = (seq: number, data: unknown, session = "s-1") => ({
  session_id: session,
  seq_no: seq,
  data,
  ts: 1_700_000_000.25,
  output_ptr: "",
  frame_ptr: Buffer.from("frame").toString("base64"),
  files: [{ metadata: '{"type":"text"}', file_data: Buffer.from("hello file").toString("base64") }],
});

describe("serveInstance: the task protocol", () => {
  let inst: ServedInstance;
  let healthy = true;
  let calls = 0;
  const initSeen: unknown[] = [];
  const updates: Record<string, unknown>[] = [];

  beforeAll(async () => {
    inst = await serveInstance(
      {
        init: async (ctx) => {
          await Bun.sleep(5);
          initSeen.push({ initData: ctx.initData, settings: ctx.settings, gpus: ctx.gpus });
        },
        onTask: (task, ctx) => {
          calls += 1;
          return wordCount(task, ctx);
        },
        health: () => healthy,
        management: (action, data, ctx) => {
          if (action === "echo") return { action, data, threshold: ctx.parameters.threshold };
          throw new TaskError("unknown_action", `no action ${action}`);
        },
        onParameterUpdate: (p) => {
          if (typeof p.threshold !== "number")
            throw new TaskError("invalid_input", "threshold must be a number");
          updates.push(p);
        },
      },
      {
        hostname: "127.0.0.1",
        env: {
          AIOS_BLOCK_ID: "wc-block",
          AIOS_INSTANCE_ID: "wc-1",
          AIOS_INIT_DATA: '{"model":"tiny"}',
          AIOS_INIT_SETTINGS: '{"lang":"en"}',
          AIOS_PARAMETERS: '{"threshold":0.5,"mode":"fast"}',
          CUDA_VISIBLE_DEVICES: "0,2",
        },
      },
    );
  });
  afterAll(async () => {
    await inst?.stop();
  });

  test("init ran with the environment's data before serveInstance resolved", () => {
    expect(initSeen).toEqual([{ initData: { model: "tiny" }, settings: { lang: "en" }, gpus: ["0", "2"] }]);
    expect(inst.port).toBeGreaterThan(0);
    expect(inst.url).toBe(`http://127.0.0.1:${inst.port}`);
  });

  test("POST /task answers the handler's result, with files and frame_ptr decoded", async () => {
    const res = await post(inst.url, "/task", taskBody(1, { text: "the cat and the hat" }));
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({
      result: {
        words: 5,
        counts: { the: 2, cat: 1, and: 1, hat: 1 },
        by: "wc-1",
        files: [{ metadata: '{"type":"text"}', text: "hello file" }],
        frame: "frame",
      },
    });
  });

  test("a TaskError is a 4xx with its code and message; a thrown Error is a 500", async () => {
    const refused = await post(inst.url, "/task", taskBody(2, { text: 42 }));
    expect(refused.status).toBe(400);
    expect((await refused.json()).error).toMatchObject({
      code: "bad_text",
      message: "data.text must be a string",
    });
    const crashed = await post(inst.url, "/task", taskBody(3, { text: "boom" }));
    expect(crashed.status).toBe(500);
    expect((await crashed.json()).error.code).toBe("internal");
  });

  test("a repeated (session_id, seq_no) answers the stored result without running again", async () => {
    const before = calls;
    const first = await (await post(inst.url, "/task", taskBody(10, { text: "one two" }, "dup"))).json();
    const again = await (await post(inst.url, "/task", taskBody(10, { text: "changed text" }, "dup"))).json();
    expect(again).toEqual(first);
    expect(calls).toBe(before + 1);
    // Concurrent duplicates share one run; another seq_no or session runs again.
    const [a, b] = await Promise.all([
      post(inst.url, "/task", taskBody(11, { text: "x y z" }, "dup")).then((r) => r.json()),
      post(inst.url, "/task", taskBody(11, { text: "x y z" }, "dup")).then((r) => r.json()),
    ]);
    expect(a).toEqual(b);
    expect(calls).toBe(before + 2);
    await post(inst.url, "/task", taskBody(10, { text: "one two" }, "other"));
    expect(calls).toBe(before + 3);
    // A failed (500) task is not remembered: its retry runs again.
    await post(inst.url, "/task", taskBody(12, { text: "boom" }, "dup"));
    await post(inst.url, "/task", taskBody(12, { text: "boom" }, "dup"));
    expect(calls).toBe(before + 5);
  });

  test("a malformed task body is a 400 naming the field", async () => {
    const cases: [unknown, string][] = [
      [{ ...taskBody(1, {}), session_id: undefined }, "session_id"],
      [{ ...taskBody(1, {}), seq_no: "one" }, "seq_no"],
      [{ ...taskBody(1, {}), seq_no: -1 }, "seq_no"],
      [{ ...taskBody(1, {}), ts: "now" }, "ts"],
      [{ ...taskBody(1, {}), data: undefined }, "data"],
      [{ ...taskBody(1, {}), frame_ptr: "not base64!" }, "frame_ptr"],
      [{ ...taskBody(1, {}), files: [{ metadata: "", file_data: 7 }] }, "files.0.file_data"],
    ];
    for (const [body, field] of cases) {
      const res = await post(inst.url, "/task", body);
      expect(res.status).toBe(400);
      expect((await res.json()).error.message).toStartWith(`${field}:`);
    }
    const notJson = await post(inst.url, "/task", "{nope");
    expect(notJson.status).toBe(400);
    expect((await notJson.json()).error.code).toBe("invalid_json");
  });

  test("GET /health: 200 while health() is true, 503 when false", async () => {
    const ok = await fetch(`${inst.url}/health`);
    expect(ok.status).toBe(200);
    expect(await ok.json()).toMatchObject({ status: "healthy", instance_id: "wc-1", block_id: "wc-block" });
    healthy = false;
    const bad = await fetch(`${inst.url}/health`);
    expect(bad.status).toBe(503);
    expect((await bad.json()).status).toBe("unhealthy");
    healthy = true;
    expect((await fetch(`${inst.url}/health`)).status).toBe(200);
  });

  test("GET /metrics: tasks, failures, latency, system and custom metrics; Prometheus text", async () => {
    const m = await (await fetch(`${inst.url}/metrics`)).json();
    expect(m.instance_id).toBe("wc-1");
    expect(m.tasks_total).toBe(calls);
    // The refusal (bad_text) and the crashes ("boom") count as failures.
    expect(m.tasks_failed).toBe(4);
    expect(m.in_flight).toBe(0);
    expect(m.queue).toBe(0);
    expect(typeof m.latency_ms.p50).toBe("number");
    expect(typeof m.latency_ms.p99).toBe("number");
    expect(m.cpu_percent).toBeGreaterThanOrEqual(0);
    expect(m.memory_bytes).toBeGreaterThan(0);
    expect(m.custom.words_seen).toBe(inst.metrics.counter("words_seen").value);
    expect(m.custom.words_seen).toBeGreaterThanOrEqual(5);
    expect(m.custom.last_text_length).toBeGreaterThan(0);

    const prom = await fetch(`${inst.url}/metrics?format=prometheus`);
    expect(prom.headers.get("content-type")).toContain("text/plain");
    const text = await prom.text();
    expect(text).toContain("# HELP aios_instance_tasks_total ");
    expect(text).toContain("# TYPE aios_instance_tasks_total counter");
    expect(text).toContain(`aios_instance_tasks_total{block="wc-block",instance="wc-1"} ${calls}`);
    expect(text).toContain("# TYPE aios_instance_task_duration_ms histogram");
    expect(text).toContain("# TYPE aios_instance_custom_words_seen counter");
    expect(text).toContain("# TYPE aios_instance_custom_last_text_length gauge");
    expect((await fetch(`${inst.url}/metrics?format=xml`)).status).toBe(400);
  });

  test("POST /mgmt: parameter_update then get_parameters, a user action, unknown actions", async () => {
    const got = await (await post(inst.url, "/mgmt", { mgmt_action: "get_parameters" })).json();
    expect(got).toEqual({ parameters: { threshold: 0.5, mode: "fast" } });
    const upd = await post(inst.url, "/mgmt", {
      mgmt_action: "parameter_update",
      mgmt_data: { threshold: 0.9 },
    });
    expect(upd.status).toBe(200);
    expect(updates).toEqual([{ threshold: 0.9, mode: "fast" }]);
    const after = await (await post(inst.url, "/mgmt", { mgmt_action: "get_parameters" })).json();
    expect(after).toEqual({ parameters: { threshold: 0.9, mode: "fast" } });
    expect(inst.parameters).toEqual({ threshold: 0.9, mode: "fast" });

    const echo = await (await post(inst.url, "/mgmt", { mgmt_action: "echo", mgmt_data: [1] })).json();
    expect(echo).toEqual({ result: { action: "echo", data: [1], threshold: 0.9 } });

    const unknown = await post(inst.url, "/mgmt", { mgmt_action: "nope" });
    expect(unknown.status).toBe(400);
    expect((await unknown.json()).error.code).toBe("unknown_action");
    const badUpdate = await post(inst.url, "/mgmt", { mgmt_action: "parameter_update", mgmt_data: 3 });
    expect(badUpdate.status).toBe(400);
    // An update the component refuses is not applied.
    const refused = await post(inst.url, "/mgmt", {
      mgmt_action: "parameter_update",
      mgmt_data: { threshold: "high" },
    });
    expect(refused.status).toBe(400);
    expect((await refused.json()).error.message).toBe("threshold must be a number");
    expect(inst.parameters).toEqual({ threshold: 0.9, mode: "fast" });
    const missing = await post(inst.url, "/mgmt", { mgmt_data: {} });
    expect((await missing.json()).error.message).toStartWith("mgmt_action:");
  });
});

describe("serveInstance: defaults and lifecycle", () => {
  test("no management handler: unknown actions are 400; no health(): healthy", async () => {
    const inst = await serveInstance({ onTask: () => 1 }, { hostname: "127.0.0.1", env: {} });
    try {
      const res = await post(inst.url, "/mgmt", { mgmt_action: "whatever" });
      expect(res.status).toBe(400);
      expect((await res.json()).error).toMatchObject({ code: "unknown_action" });
      expect((await fetch(`${inst.url}/health`)).status).toBe(200);
      expect(await (await post(inst.url, "/task", taskBody(1, null))).json()).toEqual({ result: 1 });
      expect((await fetch(`${inst.url}/nope`)).status).toBe(404);
    } finally {
      await inst.stop();
    }
  });

  test("/health is 503 until init finishes; a health() that throws or hangs is 503", async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    let port = 0;
    // Find a free port first, so the test can probe the server while init is still running.
    const probe = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: () => new Response("") });
    port = probe.port ?? 0;
    await probe.stop(true);
    let mode: "throw" | "hang" | "ok" = "ok";
    const serving = serveInstance(
      {
        init: () => gate,
        onTask: () => "ok",
        health: async () => {
          if (mode === "throw") throw new Error("disk full");
          if (mode === "hang") await Bun.sleep(1000);
          return true;
        },
      },
      { hostname: "127.0.0.1", port, env: {}, healthTimeoutMs: 50 },
    );
    const url = `http://127.0.0.1:${port}`;
    const early = await fetch(`${url}/health`);
    expect(early.status).toBe(503);
    expect((await early.json()).reason).toBe("initializing");
    expect((await post(url, "/task", taskBody(1, {}))).status).toBe(503);
    release();
    const inst = await serving;
    try {
      expect((await fetch(`${url}/health`)).status).toBe(200);
      mode = "throw";
      const threw = await fetch(`${url}/health`);
      expect([threw.status, (await threw.json()).reason]).toEqual([503, "health check threw: disk full"]);
      mode = "hang";
      const hung = await fetch(`${url}/health`);
      expect(hung.status).toBe(503);
      expect((await hung.json()).reason).toContain("within 50 ms");
    } finally {
      await inst.stop();
    }
  });

  test("an init that throws rejects serveInstance (the server is stopped)", async () => {
    const err = await serveInstance(
      {
        init: () => {
          throw new Error("weights missing");
        },
        onTask: () => null,
      },
      { hostname: "127.0.0.1", env: {} },
    ).catch((e) => e);
    expect((err as Error).message).toBe("weights missing");
  });

  test("concurrency limit: tasks beyond it queue, reported as queue", async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    const inst = await serveInstance(
      { onTask: async (t) => (t.seqNo === 1 ? gate.then(() => 1) : t.seqNo) },
      { hostname: "127.0.0.1", env: {}, concurrency: 1 },
    );
    try {
      const first = post(inst.url, "/task", taskBody(1, {}));
      const second = post(inst.url, "/task", taskBody(2, {}));
      await Bun.sleep(50);
      const m = await (await fetch(`${inst.url}/metrics`)).json();
      expect([m.in_flight, m.queue]).toEqual([1, 1]);
      release();
      expect(await (await first).json()).toEqual({ result: 1 });
      expect(await (await second).json()).toEqual({ result: 2 });
    } finally {
      await inst.stop();
    }
  });
});

describe("configuration from the environment", () => {
  test("defaults, values, GPUs", () => {
    const cfg = readInstanceConfig({
      AIOS_BLOCK_ID: "b",
      AIOS_INSTANCE_ID: "i",
      AIOS_PARAMETERS: '{"k":1}',
      AIOS_INSTANCE_PORT: "8123",
      CUDA_VISIBLE_DEVICES: "0,2",
    });
    expect(cfg).toEqual({
      blockId: "b",
      instanceId: "i",
      initData: {},
      settings: {},
      parameters: { k: 1 },
      port: 8123,
      gpus: ["0", "2"],
    });
    const empty = readInstanceConfig({ CUDA_VISIBLE_DEVICES: "" });
    expect([empty.gpus, empty.port, empty.parameters]).toEqual([[], 0, {}]);
    expect(empty.instanceId.length).toBeGreaterThan(0);
  });

  test("malformed values are ConfigErrors naming the variable", () => {
    const cases: [Record<string, string>, string][] = [
      [{ AIOS_PARAMETERS: "{bad" }, "AIOS_PARAMETERS"],
      [{ AIOS_PARAMETERS: "[1,2]" }, "AIOS_PARAMETERS"],
      [{ AIOS_INIT_DATA: "nope" }, "AIOS_INIT_DATA"],
      [{ AIOS_INIT_SETTINGS: "{" }, "AIOS_INIT_SETTINGS"],
      [{ AIOS_INSTANCE_PORT: "http" }, "AIOS_INSTANCE_PORT"],
      [{ AIOS_INSTANCE_PORT: "70000" }, "AIOS_INSTANCE_PORT"],
    ];
    for (const [env, variable] of cases) {
      let err: unknown;
      try {
        readInstanceConfig(env);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as ConfigError).variable).toBe(variable);
      expect((err as ConfigError).message).toStartWith(`${variable}:`);
    }
  });

  test("serveInstance refuses to start on a malformed AIOS_PARAMETERS", async () => {
    const err = await serveInstance({ onTask: () => null }, { env: { AIOS_PARAMETERS: "{oops" } }).catch(
      (e) => e,
    );
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toContain("AIOS_PARAMETERS");
  });
});

describe("end to end: the block's Executor over two served instances", () => {
  const packet = (fields: MessageInitShape<typeof AIOSPacketSchema>) =>
    toBinary(
      AIOSPacketSchema,
      create(AIOSPacketSchema, {
        sessionId: "e2e",
        seqNo: 1n,
        data: '{"text":"to be or not to be"}',
        ts: 1_700_000_000,
        files: [create(FileInfoSchema, { metadata: "{}", fileData: new TextEncoder().encode("f") })],
        ...fields,
      }),
    );

  test("results come back from both; after one stops, every request succeeds on the other", async () => {
    const serve = (id: string) =>
      serveInstance({ onTask: wordCount }, { hostname: "127.0.0.1", env: { AIOS_INSTANCE_ID: id } });
    const a = await serve("inst-a");
    const b = await serve("inst-b");
    try {
      const failures: string[] = [];
      const executor = new Executor({
        blockId: "e2e-block",
        instances: [
          { id: "inst-a", url: a.url },
          { id: "inst-b", url: b.url },
        ],
        onInstanceFailure: (id) => failures.push(id),
      });
      const used = new Set<string>();
      for (let i = 1; i <= 4; i++) {
        const res = await executor.infer(packet({ seqNo: BigInt(i) }));
        expect(res.message).toBe(true);
        const result = JSON.parse(res.result);
        expect(result).toMatchObject({
          words: 6,
          counts: { to: 2, be: 2, or: 1, not: 1 },
          by: res.instanceId,
        });
        used.add(res.instanceId);
      }
      expect([...used].sort()).toEqual(["inst-a", "inst-b"]);

      const refused = await executor.infer(packet({ seqNo: 50n, data: '{"text":1}' }));
      expect([refused.message, refused.error]).toEqual([false, "bad_text: data.text must be a string"]);

      await a.stop();
      for (let i = 5; i <= 10; i++) {
        const res = await executor.infer(packet({ seqNo: BigInt(i) }));
        expect([res.message, res.instanceId]).toEqual([true, "inst-b"]);
      }
      expect(failures.length).toBeGreaterThan(0);
      expect(new Set(failures)).toEqual(new Set(["inst-a"]));
      expect(b.metrics.json().tasks_total).toBeGreaterThanOrEqual(6);
    } finally {
      await a.stop();
      await b.stop();
    }
  });
});
