/**
 * policy.eventHandler.failure-counter: counts a block's events by name in the rule's context store
 * (here a Map behind aios_context_get/set) and asks to replace an instance that keeps failing.
 */
import { afterEach, beforeAll, describe, expect, test } from "bun:test";
import { ensureBuilt, type FakeHost, openPolicy, type PolicyHandle } from "../../wasm-policies/harness.ts";

const open: PolicyHandle[] = [];
const start = async (context = new Map<string, unknown>()) => {
  const host: FakeHost = { context };
  const p = await openPolicy("failure-counter", host);
  open.push(p);
  return { p, host, context };
};
const event = (event_name: string, event_data: Record<string, unknown> = {}, block_id = "block-1") => ({
  block_id,
  event_name,
  event_data,
});

beforeAll(() => ensureBuilt(), 180_000);
afterEach(async () => {
  for (const p of open.splice(0)) await p.close();
});

describe("failure-counter", () => {
  test("counts events per block and name in the context store", async () => {
    const { p, context } = await start();
    expect(await p.eval(event("block_started", { step: 1 }))).toEqual({
      handled: true,
      count: 1,
      actions: [],
    });
    expect((await p.eval(event("block_started"))).count).toBe(2);
    expect((await p.eval(event("block_started", {}, "block-2"))).count).toBe(1);
    expect((await p.eval(event("send-processed-notification"))).count).toBe(1);
    expect(Object.fromEntries(context)).toEqual({
      "events:block-1:block_started": 2,
      "events:block-2:block_started": 1,
      "events:block-1:send-processed-notification": 1,
    });
  });

  test("the third instance_failure asks to replace the instance and resets the count", async () => {
    const { p, context } = await start();
    const failure = event("instance_failure", { instance_id: "instance-2", error: "CUDA OOM" });
    expect((await p.eval(failure)).actions).toEqual([]);
    expect((await p.eval(failure)).actions).toEqual([]);
    expect(await p.eval(failure)).toEqual({
      handled: true,
      count: 3,
      actions: [
        {
          action: "replace_instance",
          block_id: "block-1",
          instance_id: "instance-2",
          reason: "event 'instance_failure' received 3 times",
        },
      ],
    });
    expect(context.get("events:block-1:instance_failure")).toBe(0);
    expect((await p.eval(failure)).count).toBe(1);
  });

  test("counts live in the store, not the instance: a new instance continues them", async () => {
    const shared = new Map<string, unknown>();
    const first = await start(shared);
    const failure = event("instance_failure", { instance_id: "instance-0" });
    await first.p.eval(failure);
    await first.p.eval(failure);
    const second = await start(shared);
    expect((await second.p.eval(failure)).actions).toHaveLength(1);
  });

  test("failure_events and threshold come from parameters; no instance_id, no action", async () => {
    const { p } = await start();
    const params = { failure_events: ["uncaught-exception"], threshold: 2 };
    const crash = event("uncaught-exception", { instance_id: "instance-1" });
    expect((await p.eval(crash, params)).actions).toEqual([]);
    expect((await p.eval(crash, params)).actions).toMatchObject([{ instance_id: "instance-1" }]);
    // instance_failure is not in this rule's list.
    const failure = event("instance_failure", { instance_id: "instance-1" });
    for (let i = 0; i < 3; i++) expect((await p.eval(failure, params)).actions).toEqual([]);
    const anonymous = event("uncaught-exception", {});
    await p.eval(anonymous, params);
    expect(await p.eval(anonymous, params)).toEqual({ handled: true, count: 2, actions: [] });
  });

  test("management reads and resets a count; bad input is an error", async () => {
    const { p, context } = await start();
    await p.eval(event("instance_failure"));
    expect(await p.management("get_state", { block_id: "block-1", event_name: "instance_failure" })).toEqual({
      ok: true,
      key: "events:block-1:instance_failure",
      count: 1,
    });
    await p.management("reset", { block_id: "block-1", event_name: "instance_failure" });
    expect(context.get("events:block-1:instance_failure")).toBe(0);
    await expect(p.management("reset")).rejects.toThrow("needs data");
    await expect(p.management("purge")).rejects.toThrow("unknown management action 'purge'");
    await expect(p.eval({ event_name: "x" })).rejects.toThrow("input_data must name the event");
  });
});
