/**
 * `GET /task/ws` on a real `serveInstance`, spoken by hand with a WebSocket: the same answers as
 * `POST /task`, many tasks in flight answered as they finish, malformed frames answered 400 on a socket
 * that stays open, the body limit, 503 before init, and stop() closing the sockets.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { type ServedInstance, serveInstance, TaskError } from "../../src/instance/index.ts";

const task = (seq: number, data: unknown, session = "s-1") => ({
  session_id: session,
  seq_no: seq,
  data,
  ts: 1_700_000_000.25,
  output_ptr: "",
  frame_ptr: "",
  files: [],
});

interface Answer {
  id: number | null;
  status: number;
  body: { result?: unknown; error?: { code: string; message: string } };
}

/** A WebSocket to `/task/ws` whose answers are collected; `next(n)` waits for n more of them. */
const socket = async (url: string) => {
  const ws = new WebSocket(`${url.replace("http", "ws")}/task/ws`);
  const answers: Answer[] = [];
  const waiters: (() => void)[] = [];
  let closed: { code: number; reason: string } | null = null;
  ws.onmessage = (ev) => {
    answers.push(JSON.parse(ev.data as string));
    for (const w of waiters.splice(0)) w();
  };
  ws.onclose = (ev) => {
    closed = { code: ev.code, reason: ev.reason };
    for (const w of waiters.splice(0)) w();
  };
  await new Promise<void>((resolve, reject) => {
    ws.onopen = () => resolve();
    ws.onerror = () => reject(new Error("the upgrade failed"));
  });
  let seen = 0;
  return {
    ws,
    get closed() {
      return closed;
    },
    send: (frame: unknown) => ws.send(typeof frame === "string" ? frame : JSON.stringify(frame)),
    async next(n = 1): Promise<Answer[]> {
      const deadline = Date.now() + 3000;
      while (answers.length < seen + n && closed === null && Date.now() < deadline) {
        await Promise.race([new Promise<void>((r) => waiters.push(r)), Bun.sleep(50)]);
      }
      const out = answers.slice(seen, seen + n);
      seen += out.length;
      return out;
    },
  };
};

describe("GET /task/ws", () => {
  let inst: ServedInstance;
  let calls = 0;

  beforeAll(async () => {
    inst = await serveInstance(
      {
        onTask: async (t) => {
          calls += 1;
          const data = t.data as { n?: number; sleep_ms?: number; refuse?: boolean; crash?: boolean };
          if (data.sleep_ms) await Bun.sleep(data.sleep_ms);
          if (data.refuse) throw new TaskError("bad_n", "refused on purpose", 422);
          if (data.crash) throw new Error("handler crashed");
          return { twice: (data.n ?? 0) * 2 };
        },
      },
      { hostname: "127.0.0.1", env: { AIOS_INSTANCE_ID: "ws-1" }, bodyLimit: 4096 },
    );
  });
  afterAll(async () => {
    await inst.stop();
  });

  test("answers what POST /task answers: result, refusal (4xx), crash (500), bad body (400)", async () => {
    const s = await socket(inst.url);
    const bodies = [
      task(1, { n: 21 }),
      task(2, { refuse: true }),
      task(3, { crash: true }),
      { ...task(4, {}), seq_no: "four" },
    ];
    for (const [i, body] of bodies.entries()) s.send({ id: i + 1, task: body });
    const viaSocket = (await s.next(4)).sort((a, b) => (a.id ?? 0) - (b.id ?? 0));
    const viaHttp = await Promise.all(
      bodies.map(async (body, i) => {
        // Other seq_nos, so the HTTP requests are not answered from the repeat cache.
        const res = await fetch(`${inst.url}/task`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ ...body, seq_no: typeof body.seq_no === "number" ? 100 + i : body.seq_no }),
        });
        return { id: i + 1, status: res.status, body: await res.json() };
      }),
    );
    expect(viaSocket).toEqual(viaHttp);
    expect(viaSocket.map((a) => a.status)).toEqual([200, 422, 500, 400]);
    expect(viaSocket[0]?.body).toEqual({ result: { twice: 42 } });
    expect(viaSocket[3]?.body.error?.message).toStartWith("seq_no:");
    s.ws.close();
  });

  test("many tasks in flight on one socket, answered as they finish, each with its own id", async () => {
    const s = await socket(inst.url);
    // The first sent sleeps longest: the answers come back in the reverse order.
    for (let i = 1; i <= 20; i++) s.send({ id: i, task: task(1000 + i, { n: i, sleep_ms: (21 - i) * 10 }) });
    const answers = await s.next(20);
    expect(answers.map((a) => a.id)).toEqual(Array.from({ length: 20 }, (_, i) => 20 - i));
    for (const a of answers) expect(a.body).toEqual({ result: { twice: (a.id ?? 0) * 2 } });
    s.ws.close();
  });

  test("a repeated (session_id, seq_no) is answered once, over the socket and over HTTP alike", async () => {
    const s = await socket(inst.url);
    const before = calls;
    s.send({ id: 1, task: task(7, { n: 1 }, "dup") });
    s.send({ id: 2, task: task(7, { n: 99 }, "dup") });
    const [a, b] = await s.next(2);
    expect(a?.body).toEqual({ result: { twice: 2 } });
    expect(b?.body).toEqual(a?.body);
    const http = await fetch(`${inst.url}/task`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(task(7, { n: 5 }, "dup")),
    });
    expect(await http.json()).toEqual({ result: { twice: 2 } });
    expect(calls).toBe(before + 1);
    s.ws.close();
  });

  test("malformed frames answer 400 (with the id when readable) and the socket stays open", async () => {
    const s = await socket(inst.url);
    s.send("{not json");
    s.send({ task: task(1, {}) });
    s.send({ id: 1.5, task: task(1, {}) });
    s.send({ id: 9 });
    s.ws.send(new Uint8Array([1, 2, 3]));
    const answers = await s.next(5);
    expect(answers.map((a) => [a.id, a.status, a.body.error?.code])).toEqual([
      [null, 400, "invalid_json"],
      [null, 400, "invalid_frame"],
      [null, 400, "invalid_frame"],
      [9, 400, "invalid_input"],
      [null, 400, "invalid_frame"],
    ]);
    s.send({ id: 10, task: task(20, { n: 3 }) });
    expect(await s.next()).toEqual([{ id: 10, status: 200, body: { result: { twice: 6 } } }]);
    expect(s.closed).toBeNull();
    s.ws.close();
  });

  test("a task over bodyLimit answers 413 with its id; the socket stays open", async () => {
    const s = await socket(inst.url);
    const big = task(30, { n: 1, pad: "x".repeat(5000) });
    s.send(`{"id":41,"task":${JSON.stringify(big)}}`);
    // Just under the limit once the envelope is left out: accepted.
    const fits = task(31, { n: 2, pad: "" });
    const pad = 4096 - JSON.stringify(fits).length;
    const fitting = JSON.stringify({ ...fits, data: { n: 2, pad: "y".repeat(pad) } });
    expect(fitting.length).toBe(4096);
    s.send(`{"id":42,"task":${fitting}}`);
    const [tooBig, ok] = await s.next(2);
    expect([tooBig?.id, tooBig?.status, tooBig?.body.error?.code]).toEqual([41, 413, "payload_too_large"]);
    expect([ok?.id, ok?.status]).toEqual([42, 200]);
    // The HTTP route refuses the same body the same way.
    const http = await fetch(`${inst.url}/task`, { method: "POST", body: JSON.stringify(big) });
    expect(http.status).toBe(413);
    s.ws.close();
  });

  test("stop() closes the sockets", async () => {
    const other = await serveInstance({ onTask: () => 1 }, { hostname: "127.0.0.1", env: {} });
    const s = await socket(other.url);
    await other.stop();
    await s.next();
    expect(s.closed?.code).toBe(1001);
  });
});

test("before init finishes, a task over the socket answers 503 as over HTTP", async () => {
  const probe = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: () => new Response("") });
  const port = probe.port ?? 0;
  await probe.stop(true);
  let release!: () => void;
  const gate = new Promise<void>((r) => {
    release = r;
  });
  const serving = serveInstance(
    { init: () => gate, onTask: () => "ok" },
    { hostname: "127.0.0.1", port, env: {} },
  );
  const s = await socket(`http://127.0.0.1:${port}`);
  s.send({ id: 1, task: task(1, {}) });
  const [early] = await s.next();
  expect([early?.status, early?.body.error?.code]).toEqual([503, "not_ready"]);
  release();
  const inst = await serving;
  try {
    s.send({ id: 2, task: task(1, {}) });
    expect(await s.next()).toEqual([{ id: 2, status: 200, body: { result: "ok" } }]);
  } finally {
    s.ws.close();
    await inst.stop();
  }
});
