/**
 * The block events processor on the in-process queue and, when REDIS_URL is set, on Redis Streams:
 * events run the policy their block registered (failure-counter), failures are recorded in
 * event_failures without holding up the events behind them, transient failures are redelivered (and
 * dead-lettered in the end), a restarted processor loses nothing, and `POST /events` bodies are checked.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { Redis } from "ioredis";
import {
  acceptEvent,
  EVENTS_GROUP,
  EventsProcessor,
  type EventsProcessor as EventsProcessorType,
  eventRuleId,
} from "../../src/controller/events.ts";
import { ApiError } from "../../src/http/errors.ts";
import { MemoryContextStore } from "../../src/policy/host.ts";
import type { CompiledPolicy } from "../../src/policy/runtime.ts";
import { PolicySet } from "../../src/policy/set.ts";
import {
  type ConsumeOptions,
  deadLetterStream,
  type EventQueue,
  type QueueMessage,
} from "../../src/queue/index.ts";
import { RegistryClientError } from "../../src/registry/client.ts";
import { openStore, type Store } from "../../src/store/index.ts";
import { compiledBuiltin } from "../support/builtin-policies.ts";
import { testContext } from "../support/controller-context.ts";
import { QUEUE_DRIVERS, REDIS_URL } from "../support/queues.ts";

// The events processor never touches the runtime or node placement.

const COUNTER = "policy.eventHandler.failure-counter:v0.0.1";
const FLAKY = "test.eventHandler.flaky:v1";
const DOWN = "test.eventHandler.registry-down:v1";
const BLOCK = "b-events";

// Short timings, so redelivery is observable within a test.
const FAST: ConsumeOptions = { blockMs: 30, claimIdleMs: 200 };

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const waitFor = async (what: string, check: () => boolean | Promise<boolean>, timeoutMs = 8000) => {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
};

const unreachable = () =>
  new RegistryClientError(0, "unreachable", "cannot reach the registry at http://127.0.0.1:1 (refused)");

let store: Store;
beforeAll(async () => {
  store = await openStore({});
  await store.collection("blocks").upsert(BLOCK, {
    id: BLOCK,
    blockInitData: {
      events: {
        instance_failure: COUNTER,
        "custom-threshold": {
          policyRuleURI: COUNTER,
          parameters: { threshold: 2, failure_events: ["custom-threshold"] },
        },
        "wrong-kind": "policy.preCheck.allow-all:v0.0.1",
        flaky: FLAKY,
        "registry-down": DOWN,
      },
    },
  });
  await store.collection("blocks").upsert("b-quiet", { id: "b-quiet", blockInitData: {} });
});
afterAll(async () => {
  await store?.close();
});

for (const driver of QUEUE_DRIVERS) {
  describe.skipIf(driver.skip)(`events processor: ${driver.name}`, () => {
    let queue: EventQueue;
    let raw: Redis | undefined;
    const created: string[] = [];
    const processors: EventsProcessorType[] = [];
    const policySets: PolicySet[] = [];
    /** How often the flaky policy was asked for, per test (it resolves on the third). */
    let flakyCalls = 0;

    const resolve = async (uri: string): Promise<CompiledPolicy> => {
      if (uri === DOWN) throw unreachable();
      if (uri === FLAKY) {
        flakyCalls++;
        if (flakyCalls < 3) throw unreachable();
        return compiledBuiltin(COUNTER);
      }
      return compiledBuiltin(uri);
    };

    beforeAll(() => {
      queue = driver.open();
      if (driver.name === "redis") raw = new Redis(REDIS_URL ?? "");
    });
    afterAll(async () => {
      await Promise.all(processors.map((p) => p.stop()));
      await Promise.all(policySets.map((p) => p.close()));
      await queue.close();
      if (raw !== undefined) {
        if (created.length > 0) await raw.del(...created);
        await raw.quit();
      }
    });

    const setup = (label: string) => {
      const stream = `test:controller-events:${label}:${crypto.randomUUID()}`;
      created.push(stream, deadLetterStream(stream));
      // A context store per test: failure-counter's counts start from zero.
      const policies = new PolicySet(resolve, { context: new MemoryContextStore() });
      policySets.push(policies);
      flakyCalls = 0;
      const ctx = testContext({
        store,
        queue,
        policies,
        cluster: async () => ({ id: "cluster-1" }),
      });
      const processor = (consumer = "p-1", consume: ConsumeOptions = FAST) => {
        const p = new EventsProcessor(ctx, { stream, consumer, consume });
        processors.push(p);
        return p;
      };
      const push = (event_name: string, event_data: Record<string, unknown> = {}, block_id = BLOCK) =>
        acceptEvent(
          ctx,
          { block_id, instance_id: "i-1", event_name, event_data, ts: Date.now() },
          { stream },
        );
      const failures = () => store.collection("event_failures").find({ stream }, { sort: { message_id: 1 } });
      return { stream, ctx, policies, processor, push, failures };
    };

    test("an event runs the policy its block registered, and is acknowledged after it ran", async () => {
      const { stream, policies, processor, push } = setup("counter");
      const p = processor();
      p.start();
      const ids: string[] = [];
      for (let n = 0; n < 3; n++) ids.push((await push("instance_failure", { instance_id: "i-7" })).id);
      await waitFor("3 handled events", () => p.recent().filter((e) => e.outcome === "handled").length === 3);
      const handled = p.recent().reverse();
      expect(handled.map((e) => e.id)).toEqual(ids);
      expect(handled.map((e) => e.policy)).toEqual([COUNTER, COUNTER, COUNTER]);
      expect(handled.map((e) => e.output?.count)).toEqual([1, 2, 3]);
      expect(handled.map((e) => e.actions)).toEqual([
        [],
        [],
        [
          {
            action: "replace_instance",
            block_id: BLOCK,
            instance_id: "i-7",
            reason: "event 'instance_failure' received 3 times",
          },
        ],
      ]);
      // The counts live in the rule's instance: reached the threshold, so started again.
      const instance = await policies.current(eventRuleId(BLOCK, "instance_failure"));
      expect(
        await instance?.management("get_state", { block_id: BLOCK, event_name: "instance_failure" }),
      ).toMatchObject({
        count: 0,
      });
      await waitFor("no pending events", async () => (await queue.pending(stream, EVENTS_GROUP)) === 0);
    });

    test("a registration with parameters runs the policy with them", async () => {
      const { processor, push } = setup("params");
      const p = processor();
      p.start();
      await push("custom-threshold", { instance_id: "i-2" });
      await push("custom-threshold", { instance_id: "i-2" });
      await waitFor("2 handled events", () => p.recent().length === 2);
      expect(p.recent()[0]?.actions).toMatchObject([{ action: "replace_instance", instance_id: "i-2" }]);
    });

    test("an unregistered event, an unknown block, a bad message and a failing policy are recorded and do not block the next event", async () => {
      const { stream, processor, push, failures } = setup("failures");
      const unregistered = await push("no-such-event", { x: 1 });
      const unknownBlock = await push("instance_failure", { x: 2 }, "b-missing");
      const quiet = await push("instance_failure", {}, "b-quiet");
      // Straight onto the stream, as a misbehaving instance with Redis access could.
      const invalid = await queue.publish(stream, { block_id: BLOCK, event_name: "instance_failure" });
      const wrongKind = await push("wrong-kind", {});
      const good = await push("instance_failure", { instance_id: "i-1" });
      const p = processor();
      p.start();
      await waitFor("6 processed events", () => p.recent().length === 6);
      expect(p.recent()[0]).toMatchObject({ id: good.id, outcome: "handled", output: { count: 1 } });
      expect(p.recent().filter((e) => e.outcome === "failed")).toHaveLength(5);

      const docs = await failures();
      // Copies: bun's toMatchObject writes asymmetric matchers into the object it was given.
      const byMessage = new Map(docs.map((d) => [d.message_id, { ...d }]));
      expect(docs).toHaveLength(5);
      expect(byMessage.get(unregistered.id)).toMatchObject({
        block_id: BLOCK,
        event_name: "no-such-event",
        event_data: { x: 1 },
        code: "unregistered_event",
        delivery: 1,
        error: expect.stringContaining("no-such-event"),
      });
      expect(docs.find((d) => d.message_id === unregistered.id)?.error).toContain("instance_failure");
      expect(byMessage.get(unknownBlock.id)).toMatchObject({
        block_id: "b-missing",
        code: "unknown_block",
        error: expect.stringContaining("b-missing"),
      });
      expect(byMessage.get(quiet.id)).toMatchObject({
        code: "unregistered_event",
        error: expect.stringContaining("none"),
      });
      expect(byMessage.get(invalid)).toMatchObject({
        code: "invalid_event",
        error: expect.stringContaining("instance_id"),
      });
      expect(byMessage.get(wrongKind.id)).toMatchObject({
        code: "policy_failed",
        policy: "policy.preCheck.allow-all:v0.0.1",
        error: expect.stringContaining("not a eventHandler policy"),
      });
      expect(Date.parse(String(docs.find((d) => d.message_id === wrongKind.id)?.at))).not.toBeNaN();
      await waitFor("no pending events", async () => (await queue.pending(stream, EVENTS_GROUP)) === 0);
    });

    test("a processor stopped and another started later processes what was queued meanwhile", async () => {
      const { processor, push } = setup("restart");
      const first = processor("p-first");
      first.start();
      await push("instance_failure", { n: 1 });
      await waitFor("the first event", () => first.recent().length === 1);
      await first.stop();
      expect(first.running).toBe(false);

      const queued = [await push("instance_failure", { n: 2 }), await push("instance_failure", { n: 3 })];
      await sleep(100);
      expect(first.recent()).toHaveLength(1);

      const second = processor("p-second");
      second.start();
      await waitFor("the queued events", () => second.recent().length === 2);
      expect(
        second
          .recent()
          .reverse()
          .map((e) => e.id),
      ).toEqual(queued.map((q) => q.id));
      // The same rule instance kept counting across processors: nothing was lost or done twice.
      expect(second.recent().map((e) => e.output?.count)).toEqual([3, 2]);
    });

    test("a transient failure is redelivered until the policy runs, without holding up other events", async () => {
      const { stream, processor, push, failures } = setup("transient");
      const p = processor();
      p.start();
      const flaky = await push("flaky", { instance_id: "i-3" });
      const next = await push("instance_failure", {});
      await waitFor("the flaky event handled", () =>
        p.recent().some((e) => e.id === flaky.id && e.outcome === "handled"),
      );
      const attempts = p
        .recent()
        .filter((e) => e.id === flaky.id)
        .reverse();
      expect(attempts.map((e) => [e.outcome, e.delivery])).toEqual([
        ["retrying", 1],
        ["retrying", 2],
        ["handled", 3],
      ]);
      expect(attempts[0]?.error).toContain("cannot reach the registry");
      // The next event did not wait for the flaky one's redelivery.
      const nextAt = p.recent().find((e) => e.id === next.id);
      expect(nextAt?.outcome).toBe("handled");
      expect(p.recent().indexOf(nextAt!)).toBeGreaterThan(p.recent().indexOf(attempts[1]!));
      expect(await failures()).toHaveLength(0);
      await waitFor("no pending events", async () => (await queue.pending(stream, EVENTS_GROUP)) === 0);
    });

    test("a failure that stays transient is dead-lettered after maxDeliveries and recorded", async () => {
      const { stream, processor, push, failures } = setup("dead");
      const p = processor("p-1", { ...FAST, maxDeliveries: 2 });
      p.start();
      const down = await push("registry-down", { instance_id: "i-4" });
      await waitFor("the failure recorded", async () => (await failures()).length === 1);
      expect((await failures())[0]).toMatchObject({
        message_id: down.id,
        code: "unavailable",
        delivery: 2,
        error: expect.stringContaining("cannot reach the registry"),
      });
      const dead: QueueMessage[] = [];
      const reader = queue.consume(
        deadLetterStream(stream),
        "inspect",
        "r",
        async (m) => void dead.push(m),
        FAST,
      );
      await waitFor("the dead letter", () => dead.length === 1);
      await reader.stop();
      expect(dead[0]?.message).toMatchObject({ id: down.id, deliveries: 2, group: EVENTS_GROUP });
      expect(await queue.pending(stream, EVENTS_GROUP)).toBe(0);
      expect(p.recent().map((e) => [e.outcome, e.delivery])).toEqual([
        ["dead_lettered", 2],
        ["retrying", 1],
      ]);
    });

    test("acceptEvent queues a valid event and refuses bad bodies naming the field", async () => {
      const { ctx, stream } = setup("accept");
      const good = { block_id: BLOCK, instance_id: "i-1", event_name: "x", event_data: { a: 1 }, ts: 1 };
      const { id } = await acceptEvent(ctx, good, { stream });
      expect(id).toMatch(/^\d+-\d+$/);

      const refused = async (body: unknown): Promise<ApiError> => {
        const err = await acceptEvent(ctx, body, { stream }).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(ApiError);
        expect((err as ApiError).status).toBe(400);
        return err as ApiError;
      };
      const { event_name: _, ...noName } = good;
      expect((await refused(noName)).message).toMatch(/^event_name: /);
      expect((await refused({ ...good, event_data: [1] })).message).toMatch(/^event_data: /);
      expect((await refused({ ...good, block_id: "" })).message).toMatch(/^block_id: /);
      expect((await refused({ ...good, ts: "now" })).message).toMatch(/^ts: /);
      expect((await refused({ ...good, event_data: { big: "x".repeat(70_000) } })).message).toMatch(
        /^event_data: .*bytes/,
      );
      expect((await refused("hello")).message).toMatch(/^body: /);

      // Only the valid one was queued.
      const seen: QueueMessage[] = [];
      const reader = queue.consume(stream, "inspect", "r", async (m) => void seen.push(m), FAST);
      await waitFor("the queued event", () => seen.length === 1);
      await sleep(100);
      await reader.stop();
      expect(seen).toHaveLength(1);
      expect(seen[0]?.message).toEqual(good);
    });
  });
}
