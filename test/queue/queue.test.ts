/**
 * The event queue's delivery semantics, one suite run against the in-process driver and, when REDIS_URL
 * is set, against Redis Streams: order, acknowledgement only after the handler, redelivery, groups,
 * claims from stopped or dead consumers, dead letters, closing. Each test uses streams of its own.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { Redis } from "ioredis";
import {
  BlockEventSchema,
  type DeadLetter,
  deadLetterStream,
  EVENT_DATA_MAX_BYTES,
  type EventQueue,
  MemoryQueue,
  openQueue,
  QueueClosedError,
  QueueConfigError,
  type QueueMessage,
  queueConfigFrom,
  RedisQueue,
} from "../../src/queue/index.ts";
import { QUEUE_DRIVERS, REDIS_URL } from "../support/queues.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls `check` until it holds; fails naming `what` after `timeoutMs`. */
const waitFor = async (what: string, check: () => boolean | Promise<boolean>, timeoutMs = 5000) => {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
};

/** A promise and its resolver, to hold a handler until the test lets it go. */
const gate = () => {
  let open = () => {};
  const opened = new Promise<void>((r) => {
    open = r;
  });
  return { opened, open };
};

// Short timings, so redelivery is observable within a test.
const FAST = { blockMs: 30, claimIdleMs: 200 } as const;

for (const driver of QUEUE_DRIVERS) {
  describe.skipIf(driver.skip)(`event queue: ${driver.name}`, () => {
    let queue: EventQueue;
    let raw: Redis | undefined;
    const created: string[] = [];
    const fresh = (label: string) => {
      const stream = `test:queue:${label}:${crypto.randomUUID()}`;
      created.push(stream, deadLetterStream(stream));
      return stream;
    };
    /** Everything a handler saw, in order. */
    const recorder = () => {
      const seen: QueueMessage[] = [];
      return { seen, handler: async (m: QueueMessage) => void seen.push(m) };
    };

    beforeAll(() => {
      queue = driver.open();
      if (driver.name === "redis") raw = new Redis(REDIS_URL ?? "");
    });
    afterAll(async () => {
      await queue.close();
      if (raw !== undefined) {
        if (created.length > 0) await raw.del(...created);
        await raw.quit();
      }
    });

    test("delivers messages in publish order, with the ids publish returned, and acknowledges them", async () => {
      const stream = fresh("order");
      const ids: string[] = [];
      for (let n = 0; n < 5; n++) ids.push(await queue.publish(stream, { n, text: `m${n}` }));
      expect(new Set(ids).size).toBe(5);
      const { seen, handler } = recorder();
      const c = queue.consume(stream, "g", "c1", handler, FAST);
      await waitFor("5 messages", () => seen.length === 5);
      await c.stop();
      expect(seen.map((m) => m.id)).toEqual(ids);
      expect(seen.map((m) => m.message)).toEqual([0, 1, 2, 3, 4].map((n) => ({ n, text: `m${n}` })));
      expect(seen.every((m) => m.deliveries === 1)).toBe(true);
      expect(await queue.pending(stream, "g")).toBe(0);
    });

    test("a message is acknowledged only once its handler resolved", async () => {
      const stream = fresh("ack");
      const hold = gate();
      let started = false;
      const c = queue.consume(
        stream,
        "g",
        "c1",
        async () => {
          started = true;
          await hold.opened;
        },
        FAST,
      );
      await queue.publish(stream, { job: 1 });
      await waitFor("the handler to start", () => started);
      expect(await queue.pending(stream, "g")).toBe(1);
      hold.open();
      await waitFor("the acknowledgement", async () => (await queue.pending(stream, "g")) === 0);
      await c.stop();
    });

    test("a handler that throws leaves its message pending; it is redelivered after claimIdleMs, later ones are not held up", async () => {
      const stream = fresh("retry");
      const seen: { tag: unknown; deliveries: number; at: number }[] = [];
      const c = queue.consume(
        stream,
        "g",
        "c1",
        async (m) => {
          seen.push({ tag: m.message.tag, deliveries: m.deliveries, at: Date.now() });
          if (m.message.tag === "a" && m.deliveries === 1) throw new Error("transient");
        },
        FAST,
      );
      await queue.publish(stream, { tag: "a" });
      await queue.publish(stream, { tag: "b" });
      await waitFor("the redelivery", () => seen.length === 3);
      await c.stop();
      expect(seen.map((s) => [s.tag, s.deliveries])).toEqual([
        ["a", 1],
        ["b", 1],
        ["a", 2],
      ]);
      const [first, , again] = seen;
      expect(again!.at - first!.at).toBeGreaterThanOrEqual(FAST.claimIdleMs - 10);
      expect(await queue.pending(stream, "g")).toBe(0);
    });

    test("two consumers of one group share the messages, each delivered once", async () => {
      const stream = fresh("share");
      const ids = new Set<string>();
      for (let n = 0; n < 20; n++) ids.add(await queue.publish(stream, { n }));
      const byConsumer: Record<string, string[]> = { c1: [], c2: [] };
      const handler = (name: string) => async (m: QueueMessage) => {
        byConsumer[name]!.push(m.id);
        await sleep(10);
      };
      const opts = { ...FAST, batch: 1 };
      const c1 = queue.consume(stream, "g", "c1", handler("c1"), opts);
      const c2 = queue.consume(stream, "g", "c2", handler("c2"), opts);
      await waitFor("20 deliveries", () => byConsumer.c1!.length + byConsumer.c2!.length >= 20);
      // Past claimIdleMs: nothing acknowledged may come back.
      await sleep(FAST.claimIdleMs + 100);
      await Promise.all([c1.stop(), c2.stop()]);
      const all = [...byConsumer.c1!, ...byConsumer.c2!];
      expect(all.length).toBe(20);
      expect(new Set(all)).toEqual(ids);
      expect(byConsumer.c1!.length).toBeGreaterThan(0);
      expect(byConsumer.c2!.length).toBeGreaterThan(0);
      expect(await queue.pending(stream, "g")).toBe(0);
    });

    test("each group sees every message, including those published before it was created", async () => {
      const stream = fresh("groups");
      const ids = [await queue.publish(stream, { n: 0 }), await queue.publish(stream, { n: 1 })];
      const g1 = recorder();
      const g2 = recorder();
      const c1 = queue.consume(stream, "g1", "c", g1.handler, FAST);
      const c2 = queue.consume(stream, "g2", "c", g2.handler, FAST);
      await waitFor("both groups to catch up", () => g1.seen.length === 2 && g2.seen.length === 2);
      ids.push(await queue.publish(stream, { n: 2 }));
      await waitFor("the new message in both groups", () => g1.seen.length === 3 && g2.seen.length === 3);
      await Promise.all([c1.stop(), c2.stop()]);
      expect(g1.seen.map((m) => m.id)).toEqual(ids);
      expect(g2.seen.map((m) => m.id)).toEqual(ids);
    });

    test("a consumer stopped mid-way leaves its unacknowledged messages to another consumer of the group", async () => {
      const stream = fresh("takeover");
      const a = [await queue.publish(stream, { n: 0 }), await queue.publish(stream, { n: 1 })];
      const hold = gate();
      let startedA = false;
      const seenByA: string[] = [];
      const consumerA = queue.consume(
        stream,
        "g",
        "a",
        async (m) => {
          seenByA.push(m.id);
          startedA = true;
          await hold.opened;
          throw new Error("stopped mid-way");
        },
        { ...FAST, batch: 10 },
      );
      await waitFor("consumer a to start", () => startedA);
      const stopping = consumerA.stop();
      hold.open();
      await stopping;
      const stoppedAt = Date.now();
      // a fetched both, handled only the first, and acknowledged neither.
      expect(seenByA).toEqual([a[0]!]);
      expect(await queue.pending(stream, "g")).toBe(2);

      const b: QueueMessage[] = [];
      const consumerB = queue.consume(stream, "g", "b", async (m) => void b.push(m), FAST);
      await waitFor("consumer b to claim both", () => b.length === 2);
      const claimedAt = Date.now();
      await consumerB.stop();
      expect(b.map((m) => [m.id, m.deliveries])).toEqual([
        [a[0]!, 2],
        [a[1]!, 2],
      ]);
      expect(claimedAt - stoppedAt).toBeGreaterThanOrEqual(FAST.claimIdleMs - 50);
      expect(await queue.pending(stream, "g")).toBe(0);
    });

    test("a slow handler keeps its message: no other consumer claims it while it runs", async () => {
      const stream = fresh("slow");
      const seen: string[] = [];
      const slow = queue.consume(
        stream,
        "g",
        "slow",
        async (m) => {
          seen.push(`slow:${m.deliveries}`);
          await sleep(FAST.claimIdleMs * 3);
        },
        FAST,
      );
      await queue.publish(stream, { n: 0 });
      await waitFor("the slow handler to start", () => seen.length === 1);
      const other = queue.consume(
        stream,
        "g",
        "other",
        async (m) => void seen.push(`other:${m.deliveries}`),
        FAST,
      );
      await waitFor("the acknowledgement", async () => (await queue.pending(stream, "g")) === 0, 3000);
      await Promise.all([slow.stop(), other.stop()]);
      expect(seen).toEqual(["slow:1"]);
    });

    test("a message failing maxDeliveries times goes to <stream>:dead with the last error and is acknowledged", async () => {
      const stream = fresh("poison");
      const calls: string[] = [];
      const c = queue.consume(
        stream,
        "g",
        "c1",
        async (m) => {
          calls.push(`${m.message.kind}:${m.deliveries}`);
          if (m.message.kind === "poison") throw new Error(`boom #${m.deliveries}`);
        },
        { ...FAST, claimIdleMs: 80, maxDeliveries: 3 },
      );
      const poisonId = await queue.publish(stream, { kind: "poison", payload: [1, 2] });
      await queue.publish(stream, { kind: "good" });

      const dead: QueueMessage[] = [];
      const inspector = queue.consume(
        deadLetterStream(stream),
        "inspect",
        "i",
        async (m) => void dead.push(m),
        FAST,
      );
      await waitFor("the dead letter", () => dead.length === 1);
      await Promise.all([c.stop(), inspector.stop()]);

      expect(calls).toEqual(["poison:1", "good:1", "poison:2", "poison:3"]);
      const letter = dead[0]!.message as unknown as DeadLetter;
      expect(letter).toMatchObject({
        stream,
        group: "g",
        id: poisonId,
        message: { kind: "poison", payload: [1, 2] },
        deliveries: 3,
        error: "Error: boom #3",
      });
      expect(typeof letter.ts).toBe("number");
      expect(await queue.pending(stream, "g")).toBe(0);
    });

    test.skipIf(driver.name !== "redis")(
      "redis: a message pending for a consumer that died is claimed by another",
      async () => {
        // The dead consumer is a bare XREADGROUP that never acknowledges.
        if (raw === undefined) throw new Error("no redis client");
        const stream = fresh("died");
        await raw.call("XGROUP", ["CREATE", stream, "g", "0", "MKSTREAM"]);
        const id = await queue.publish(stream, { n: 1 });
        const got = await raw.call("XREADGROUP", [
          "GROUP",
          "g",
          "ghost",
          "COUNT",
          "1",
          "STREAMS",
          stream,
          ">",
        ]);
        expect(JSON.stringify(got)).toContain(id);
        const { seen, handler } = recorder();
        const c = queue.consume(stream, "g", "alive", handler, FAST);
        await waitFor("the claim", () => seen.length === 1);
        await c.stop();
        expect(seen[0]).toMatchObject({ id, message: { n: 1 }, deliveries: 2 });
        expect(await queue.pending(stream, "g")).toBe(0);
      },
    );

    test.skipIf(driver.name !== "redis")(
      "redis: an entry that is not a JSON message goes to the dead letters, not to the handler",
      async () => {
        if (raw === undefined) throw new Error("no redis client");
        const stream = fresh("foreign");
        const id = String(await raw.call("XADD", [stream, "*", "other", "field"]));
        const { seen, handler } = recorder();
        const c = queue.consume(stream, "g", "c", handler, FAST);
        await waitFor("the acknowledgement", async () => {
          const dead = await raw?.call("XLEN", [deadLetterStream(stream)]);
          return dead === 1;
        });
        await c.stop();
        expect(seen).toEqual([]);
        expect(await queue.pending(stream, "g")).toBe(0);
        const entries = (await raw.call("XRANGE", [deadLetterStream(stream), "-", "+"])) as [
          string,
          string[],
        ][];
        const letter = JSON.parse(entries[0]![1][1]!) as DeadLetter;
        expect(letter).toMatchObject({ id, message: '["other","field"]' });
        expect(letter.error).toContain("not a JSON object");
      },
    );

    test("pending is 0 for an unknown stream or group; consume refuses bad options", async () => {
      expect(await queue.pending(`test:queue:none:${crypto.randomUUID()}`, "g")).toBe(0);
      expect(() => queue.consume(fresh("opts"), "g", "c", async () => {}, { batch: 0 })).toThrow(/batch/);
      expect(() => queue.consume(fresh("opts"), "g", "c", async () => {}, { claimIdleMs: -1 })).toThrow(
        /claimIdleMs/,
      );
      await expect(queue.publish(fresh("bad"), [1] as unknown as Record<string, unknown>)).rejects.toThrow(
        /message/,
      );
    });

    test("close() stops consumers after their handler in progress; the queue then refuses work", async () => {
      const q = driver.open();
      const stream = fresh("close");
      const hold = gate();
      let started = false;
      let finished = false;
      q.consume(
        stream,
        "g",
        "c",
        async () => {
          started = true;
          await hold.opened;
          finished = true;
        },
        FAST,
      );
      await q.publish(stream, { n: 1 });
      await waitFor("the handler to start", () => started);
      let closed = false;
      const closing = q.close().then(() => {
        closed = true;
      });
      await sleep(50);
      expect(closed).toBe(false);
      hold.open();
      await closing;
      expect(finished).toBe(true);
      await expect(q.publish(stream, { n: 2 })).rejects.toBeInstanceOf(QueueClosedError);
      expect(() => q.consume(stream, "g", "c", async () => {})).toThrow(QueueClosedError);
    });

    test("a process that closes its queue exits by itself", async () => {
      const dir = await mkdtemp(join(tmpdir(), "aios-queue-"));
      const script = join(dir, "exit.ts");
      const src = resolve(import.meta.dir, "../../src/queue/index.ts");
      await writeFile(
        script,
        `import { openQueue } from ${JSON.stringify(src)};
const q = openQueue({ redisUrl: process.env.REDIS_URL || undefined });
const stream = ${JSON.stringify(fresh("exit"))};
let got = 0;
q.consume(stream, "g", "c", async () => { got++; }, { blockMs: 1000 });
await q.publish(stream, { n: 1 });
while (got === 0) await new Promise((r) => setTimeout(r, 10));
// Close during a blocking read, the case that used to hold the process open.
await new Promise((r) => setTimeout(r, 200));
await q.close();
console.log(Date.now());
`,
      );
      try {
        const env = { ...process.env, REDIS_URL: driver.name === "redis" ? REDIS_URL : "" };
        const child = Bun.spawn([process.execPath, script], { env, stdout: "pipe", stderr: "pipe" });
        const timer = setTimeout(() => child.kill(), 10_000);
        const code = await child.exited;
        const exitedAt = Date.now();
        clearTimeout(timer);
        const closedAt = Number(await new Response(child.stdout).text());
        const err = await new Response(child.stderr).text();
        expect({ code, err }).toEqual({ code: 0, err: "" });
        // Exits right after close(), not when some leftover timer or socket lets go.
        expect(exitedAt - closedAt).toBeLessThan(1000);
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    });
  });
}

describe("event queue: configuration and failures", () => {
  test("queueConfigFrom reads REDIS_URL; empty is unset, a non-redis URL is refused naming it", () => {
    expect(queueConfigFrom({})).toEqual({ redisUrl: undefined });
    expect(queueConfigFrom({ REDIS_URL: "  " })).toEqual({ redisUrl: undefined });
    expect(queueConfigFrom({ REDIS_URL: "redis://h:6379/2" })).toEqual({ redisUrl: "redis://h:6379/2" });
    expect(queueConfigFrom({ REDIS_URL: "rediss://h" }).redisUrl).toBe("rediss://h");
    expect(() => queueConfigFrom({ REDIS_URL: "http://h" })).toThrow(QueueConfigError);
    expect(() => queueConfigFrom({ REDIS_URL: "localhost:6379" })).toThrow(/^REDIS_URL: /);
  });

  test("openQueue picks the driver from the configuration, without connecting", async () => {
    const memory = openQueue({});
    const redis = openQueue({ redisUrl: "redis://127.0.0.1:1" });
    expect(memory).toBeInstanceOf(MemoryQueue);
    expect(openQueue({ redisUrl: undefined })).toBeInstanceOf(MemoryQueue);
    expect(redis).toBeInstanceOf(RedisQueue);
    await Promise.all([memory.close(), redis.close()]);
  });

  test("an unreachable Redis rejects commands naming the cause, and consumers report errors and stop", async () => {
    const queue = openQueue({ redisUrl: "redis://127.0.0.1:1" });
    await expect(queue.publish("s", { n: 1 })).rejects.toThrow(/ECONNREFUSED|unreachable/);
    await expect(queue.pending("s", "g")).rejects.toThrow();
    const errors: unknown[] = [];
    const c = queue.consume("s", "g", "c", async () => {}, { onError: (e) => errors.push(e) });
    await waitFor("an error report", () => errors.length > 0);
    await c.stop();
    await queue.close();
    expect(String(errors[0])).toMatch(/ECONNREFUSED|unreachable|retries/);
  });

  test("BlockEventSchema accepts a block event and refuses an empty name or oversized data", () => {
    const event = { block_id: "b", instance_id: "i", event_name: "started", event_data: { step: 1 }, ts: 1 };
    expect(BlockEventSchema.parse(event)).toEqual(event);
    expect(BlockEventSchema.safeParse({ ...event, event_name: "" }).success).toBe(false);
    expect(BlockEventSchema.safeParse({ ...event, event_data: [] }).success).toBe(false);
    const big = { s: "x".repeat(EVENT_DATA_MAX_BYTES) };
    const refused = BlockEventSchema.safeParse({ ...event, event_data: big });
    expect(refused.success).toBe(false);
    expect(refused.error?.issues[0]?.path).toEqual(["event_data"]);
  });
});
