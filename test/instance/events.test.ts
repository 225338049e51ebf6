/**
 * `BlockEvents`: events posted to the controller's `/events` (a recording test server), appended to the
 * Redis stream when REDIS_URL is set (read back with XRANGE), arguments refused naming the field, and
 * configuration that is missing or malformed.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { hostname } from "node:os";
import { Redis } from "ioredis";
import { BlockEvents, ConfigError, serveInstance } from "../../src/instance/index.ts";
import { BLOCK_EVENTS_STREAM, BlockEventSchema, EVENT_DATA_MAX_BYTES } from "../../src/queue/index.ts";

const REDIS_URL = process.env.REDIS_URL?.trim() || undefined;

interface Received {
  method: string;
  path: string;
  contentType: string | null;
  body: unknown;
}

describe("BlockEvents over HTTP to the cluster controller", () => {
  const received: Received[] = [];
  let server: ReturnType<typeof Bun.serve>;
  let url: string;

  beforeAll(() => {
    server = Bun.serve({
      port: 0,
      async fetch(req) {
        const body: unknown = await req.json();
        received.push({
          method: req.method,
          path: new URL(req.url).pathname,
          contentType: req.headers.get("content-type"),
          body,
        });
        const name = (body as { event_name?: unknown }).event_name;
        if (name === "refuse") {
          return Response.json(
            { error: { code: "unknown_event", message: "no such event" } },
            { status: 400 },
          );
        }
        if (name === "crash") return new Response("internal trouble", { status: 500 });
        return Response.json({ id: `ev-${received.length}` }, { status: 202 });
      },
    });
    url = server.url.href; // ends with "/": the client must not double it
  });
  afterAll(() => server.stop(true));

  const client = (env: Record<string, string> = {}) =>
    new BlockEvents({
      env: { AIOS_CONTROLLER_URL: url, AIOS_BLOCK_ID: "block-1", AIOS_INSTANCE_ID: "inst-1", ...env },
    });

  test("posts the block event as JSON to /events and resolves to the controller's id", async () => {
    const before = Date.now();
    const id = await client().pushEvent("block_started", { step: 1, message: "Execution started" });
    const last = received.at(-1)!;
    expect(id).toBe(`ev-${received.length}`);
    expect(last).toMatchObject({ method: "POST", path: "/events", contentType: "application/json" });
    expect(last.body).toEqual({
      block_id: "block-1",
      instance_id: "inst-1",
      event_name: "block_started",
      event_data: { step: 1, message: "Execution started" },
      ts: expect.any(Number),
    });
    const event = BlockEventSchema.parse(last.body);
    expect(event.ts).toBeGreaterThanOrEqual(before);
    expect(event.ts).toBeLessThanOrEqual(Date.now());
  });

  test("a task handler pushes through ctx.events, with the instance's own ids", async () => {
    const instance = await serveInstance(
      {
        onTask: async (task, ctx) => {
          await ctx.events.pushEvent("task_seen", { seq_no: task.seqNo });
          return "ok";
        },
      },
      {
        hostname: "127.0.0.1",
        // With a controller the instance checks tokens there; this fake one answers events only.
        env: {
          AIOS_CONTROLLER_URL: url,
          AIOS_ANONYMOUS: "1",
          AIOS_BLOCK_ID: "block-9",
          AIOS_INSTANCE_ID: "inst-9",
        },
      },
    );
    try {
      const res = await fetch(`${instance.url}/task`, {
        method: "POST",
        body: JSON.stringify({ session_id: "s", seq_no: 7, data: {}, ts: 1 }),
      });
      expect(res.status).toBe(200);
      expect(received.at(-1)?.body).toMatchObject({
        block_id: "block-9",
        instance_id: "inst-9",
        event_name: "task_seen",
        event_data: { seq_no: 7 },
      });
    } finally {
      await instance.stop();
    }
  });

  test("a malformed AIOS_CONTROLLER_URL stops serveInstance before it listens", async () => {
    const start = serveInstance({ onTask: () => 1 }, { env: { AIOS_CONTROLLER_URL: "not a url" } });
    await expect(start).rejects.toThrow("AIOS_CONTROLLER_URL");
  });

  test("data defaults to {} and travels as JSON keeps it; options override the environment", async () => {
    const events = new BlockEvents({
      env: { AIOS_CONTROLLER_URL: url },
      blockId: "block-opt",
      instanceId: "inst-opt",
    });
    await events.pushEvent("no-data");
    expect(received.at(-1)!.body).toMatchObject({
      block_id: "block-opt",
      instance_id: "inst-opt",
      event_data: {},
    });
    await events.pushEvent("dated", { at: new Date(0), gone: undefined, n: Number.NaN });
    expect((received.at(-1)!.body as { event_data: unknown }).event_data).toEqual({
      at: "1970-01-01T00:00:00.000Z",
      n: null,
    });
  });

  test("the instance id defaults to the host name", async () => {
    await new BlockEvents({ env: { AIOS_CONTROLLER_URL: url, AIOS_BLOCK_ID: "b" } }).pushEvent("x");
    expect(received.at(-1)!.body).toMatchObject({ instance_id: hostname() });
  });

  test("a 4xx or 5xx answer rejects naming the status and the body", async () => {
    await expect(client().pushEvent("refuse")).rejects.toThrow(/answered 400: .*no such event/);
    await expect(client().pushEvent("crash")).rejects.toThrow(/answered 500: internal trouble/);
  });

  test("an unreachable controller rejects naming the URL", async () => {
    const probe = Bun.serve({ port: 0, fetch: () => new Response("") });
    const gone = probe.url.href;
    probe.stop(true);
    const events = new BlockEvents({ env: { AIOS_CONTROLLER_URL: gone, AIOS_BLOCK_ID: "b" } });
    await expect(events.pushEvent("x")).rejects.toThrow(`POST ${gone}events failed`);
  });

  test("uses the fetch it is given", async () => {
    const calls: { url: string; body: unknown }[] = [];
    const events = new BlockEvents({
      env: { AIOS_CONTROLLER_URL: "http://controller.example:8080/api/", AIOS_BLOCK_ID: "b" },
      fetch: async (u, init) => {
        calls.push({ url: u, body: JSON.parse(String(init.body)) });
        return new Response(null, { status: 204 });
      },
    });
    expect(await events.pushEvent("e", { k: "v" })).toBe("");
    expect(calls).toEqual([{ url: "http://controller.example:8080/api/events", body: expect.any(Object) }]);
    expect(calls[0]!.body).toMatchObject({ block_id: "b", event_name: "e", event_data: { k: "v" } });
  });

  test("bad names are refused with a TypeError naming name, before anything is sent", async () => {
    const events = client();
    const count = received.length;
    for (const bad of ["", "   ", "x".repeat(201), 42, null]) {
      const push = events.pushEvent(bad as string);
      await expect(push).rejects.toBeInstanceOf(TypeError);
      await expect(push).rejects.toThrow(/^name: /);
    }
    expect(received.length).toBe(count);
    await events.pushEvent("x".repeat(200));
    expect(received.length).toBe(count + 1);
  });

  test("bad data is refused with a TypeError naming data", async () => {
    const events = client();
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    const notObjects = [[1, 2], null, "text", 7, new Map([["a", 1]]), new Date()];
    for (const bad of notObjects) {
      await expect(events.pushEvent("e", bad as unknown as Record<string, unknown>)).rejects.toThrow(
        /^data: must be a JSON object/,
      );
    }
    await expect(events.pushEvent("e", { n: 1n })).rejects.toThrow(/^data: cannot be serialized as JSON/);
    await expect(events.pushEvent("e", cyclic)).rejects.toThrow(/^data: cannot be serialized as JSON/);
    // {"s":"..."} is 8 bytes around the string; multi-byte characters count as their UTF-8 bytes.
    const fits = { s: "x".repeat(EVENT_DATA_MAX_BYTES - 8) };
    await events.pushEvent("e", fits);
    await expect(events.pushEvent("e", { s: `${"x".repeat(EVENT_DATA_MAX_BYTES - 9)}é` })).rejects.toThrow(
      /^data: must be at most 65536 bytes as JSON, got 65537/,
    );
    await expect(events.pushEvent("e", { ...fits, more: 1 })).rejects.toBeInstanceOf(TypeError);
  });

  test("after close() pushes reject", async () => {
    const events = client();
    await events.close();
    await expect(events.pushEvent("e")).rejects.toThrow(/closed/);
  });
});

describe("BlockEvents configuration", () => {
  test("with neither REDIS_URL nor AIOS_CONTROLLER_URL, a push rejects saying which to set", async () => {
    const events = new BlockEvents({ env: { AIOS_BLOCK_ID: "b", AIOS_CONTROLLER_URL: " ", REDIS_URL: "" } });
    await expect(events.pushEvent("e")).rejects.toThrow(/set REDIS_URL .* or AIOS_CONTROLLER_URL/);
  });

  test("without a block id a push rejects naming AIOS_BLOCK_ID", async () => {
    const events = new BlockEvents({ env: { AIOS_CONTROLLER_URL: "http://127.0.0.1:9" } });
    const push = events.pushEvent("e");
    await expect(push).rejects.toBeInstanceOf(ConfigError);
    await expect(push).rejects.toThrow(/^AIOS_BLOCK_ID: /);
  });

  test("a malformed REDIS_URL or AIOS_CONTROLLER_URL is a ConfigError naming it, at construction", () => {
    const make = (env: Record<string, string>) => () =>
      new BlockEvents({ env: { AIOS_BLOCK_ID: "b", ...env } });
    expect(make({ REDIS_URL: "http://127.0.0.1:6379" })).toThrow(ConfigError);
    expect(make({ REDIS_URL: "127.0.0.1:6379" })).toThrow(/^REDIS_URL: must be a redis:\/\//);
    expect(make({ AIOS_CONTROLLER_URL: "controller:8080" })).toThrow(/^AIOS_CONTROLLER_URL: /);
    expect(make({ AIOS_CONTROLLER_URL: "ftp://controller" })).toThrow(ConfigError);
  });

  test("an unreachable Redis rejects the push, naming the cause", async () => {
    const events = new BlockEvents({ env: { REDIS_URL: "redis://127.0.0.1:1", AIOS_BLOCK_ID: "b" } });
    await expect(events.pushEvent("e", { n: 1 })).rejects.toThrow(/redis unreachable: .*ECONNREFUSED/);
    await events.close();
  });
});

describe.skipIf(REDIS_URL === undefined)("BlockEvents through Redis", () => {
  let raw: Redis;
  const pushed: string[] = [];
  beforeAll(() => {
    raw = new Redis(REDIS_URL ?? "");
  });
  afterAll(async () => {
    // Only our entries: the stream is shared with whatever else runs against this Redis.
    if (pushed.length > 0) await raw.xdel(BLOCK_EVENTS_STREAM, ...pushed);
    await raw.quit();
  });

  test("appends the block event to aios:block-events, preferred over the controller", async () => {
    let posted = 0;
    const events = new BlockEvents({
      env: {
        REDIS_URL: REDIS_URL ?? "",
        AIOS_CONTROLLER_URL: "http://127.0.0.1:9",
        AIOS_BLOCK_ID: "block-r",
      },
      instanceId: "inst-r",
      fetch: async () => {
        posted++;
        return new Response(null, { status: 202 });
      },
    });
    const first = await events.pushEvent("send-processed-notification", { user: "u1", items: [1, 2] });
    const second = await events.pushEvent("uncaught-exception", { error: "boom" });
    pushed.push(first, second);
    await events.close();
    expect(posted).toBe(0);

    const entries = (await raw.xrange(BLOCK_EVENTS_STREAM, first, second)) as [string, string[]][];
    expect(entries.map(([id]) => id)).toEqual([first, second]);
    const [field, text] = entries[0]![1];
    expect(field).toBe("m");
    expect(BlockEventSchema.parse(JSON.parse(text!))).toEqual({
      block_id: "block-r",
      instance_id: "inst-r",
      event_name: "send-processed-notification",
      event_data: { user: "u1", items: [1, 2] },
      ts: expect.any(Number),
    });
    expect(JSON.parse(entries[1]![1][1]!)).toMatchObject({
      event_name: "uncaught-exception",
      event_data: { error: "boom" },
    });
    await expect(events.pushEvent("late")).rejects.toThrow(/closed/);
  });
});
