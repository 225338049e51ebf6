/**
 * policy.autoscaler.target-tracking: desired = ceil(load / target) clamped to the block's
 * [minInstances, maxInstances], the specification's three answers, and cooldowns on context.now_ms.
 */
import { afterEach, beforeAll, describe, expect, test } from "bun:test";
import { ensureBuilt, type FakeHost, openPolicy, type PolicyHandle } from "../../wasm-policies/harness.ts";

const BLOCK = { id: "detector-yolo-88", minInstances: 1, maxInstances: 5 };
const ids = (n: number) => Array.from({ length: n }, (_, i) => `instance-${i}`);

/** Metrics with the given in-flight counts (and CPU percentages) per instance. */
const metrics = (inFlight: number[], cpu: number[] = []) => ({
  block_metrics: {
    instances: Object.fromEntries(
      inFlight.map((n, i) => [
        `instance-${i}`,
        { in_flight: n, cpu_percent: cpu[i] ?? 0, requests_total: 10 },
      ]),
    ),
  },
  cluster_metrics: {},
});

const open: PolicyHandle[] = [];
let host: FakeHost;
const start = async (settings: Record<string, unknown> = {}) => {
  host = {};
  const p = await openPolicy("target-tracking", host);
  open.push(p);
  await p.init({ settings });
  return p;
};
/** One decision at `now` seconds with these metrics. */
const decide = (
  p: PolicyHandle,
  now: number,
  inFlight: number[],
  parameters: Record<string, unknown> = {},
  block: Record<string, unknown> = BLOCK,
  cpu: number[] = [],
) => {
  host.metrics = metrics(inFlight, cpu);
  return p.eval(
    { block_data: block, cluster_data: { id: "c1" }, instances: ids(inFlight.length) },
    parameters,
    { now_ms: now * 1000 },
  );
};

beforeAll(() => ensureBuilt(), 180_000);
afterEach(async () => {
  for (const p of open.splice(0)) await p.close();
});

describe("target tracking on requests in flight", () => {
  test("at the target: skip", async () => {
    const p = await start();
    expect(await decide(p, 0, [4, 4])).toEqual({ skip: true });
    expect(await decide(p, 1, [3, 5])).toEqual({ skip: true });
  });

  test("over the target: upscale by the missing instances", async () => {
    const p = await start();
    // 20 in flight, 4 per instance -> 5 wanted, 2 running -> add 3.
    expect(await decide(p, 0, [10, 10])).toEqual({ skip: false, operation: "upscale", instances_count: 3 });
  });

  test("the target comes from parameters", async () => {
    const p = await start();
    expect(await decide(p, 0, [10, 10], { target_inflight_per_instance: 10 })).toEqual({ skip: true });
    expect(await decide(p, 0, [10, 10], { target_inflight_per_instance: 5 })).toEqual({
      skip: false,
      operation: "upscale",
      instances_count: 2,
    });
  });

  test("clamped to maxInstances", async () => {
    const p = await start();
    expect(await decide(p, 0, [100, 100])).toEqual({ skip: false, operation: "upscale", instances_count: 3 });
    expect(await decide(p, 0, [100, 100, 100, 100, 100])).toEqual({ skip: true });
  });

  test("clamped to minInstances, also when below it with no load", async () => {
    const p = await start();
    expect(await decide(p, 0, [0, 0], {}, { ...BLOCK, minInstances: 2 })).toEqual({ skip: true });
    expect(await decide(p, 0, [], {}, { ...BLOCK, minInstances: 2 })).toEqual({
      skip: false,
      operation: "upscale",
      instances_count: 2,
    });
  });

  test("under the target: downscale removes the least loaded, newest first among equals", async () => {
    const p = await start();
    // 5 in flight -> 2 wanted of 4.
    expect(await decide(p, 0, [3, 0, 2, 0])).toEqual({
      skip: false,
      operation: "downscale",
      instances_list: ["instance-3", "instance-1"],
    });
  });

  test("above maxInstances: downscale to it even under load", async () => {
    const p = await start();
    const answer = await decide(p, 0, [9, 9, 9, 9, 9, 9, 1]);
    expect(answer).toEqual({
      skip: false,
      operation: "downscale",
      instances_list: ["instance-6", "instance-5"],
    });
  });
});

describe("target tracking on CPU", () => {
  test("target_cpu_utilization uses cpu_percent", async () => {
    const p = await start();
    // 2 x 90% against 0.7 -> ceil(1.8 / 0.7) = 3.
    expect(await decide(p, 0, [0, 0], { target_cpu_utilization: 0.7 }, BLOCK, [90, 90])).toEqual({
      skip: false,
      operation: "upscale",
      instances_count: 1,
    });
    // 3 x 20% -> ceil(0.6 / 0.7) = 1 -> remove the two least busy.
    expect(await decide(p, 200, [9, 9, 9], { target_cpu_utilization: 0.7 }, BLOCK, [30, 10, 20])).toEqual({
      skip: false,
      operation: "downscale",
      instances_list: ["instance-1", "instance-2"],
    });
  });
});

describe("cooldowns", () => {
  test("defaults: 30 s between scale-ups, 120 s before a scale-down", async () => {
    const p = await start();
    expect((await decide(p, 0, [10, 10])).operation).toBe("upscale");
    expect(await decide(p, 29, [10, 10])).toEqual({ skip: true });
    expect((await decide(p, 30, [10, 10])).operation).toBe("upscale");
    // Idle right after growing: no shrinking for 120 s after the last scaling.
    expect(await decide(p, 100, [0, 0, 0])).toEqual({ skip: true });
    expect((await decide(p, 150, [0, 0, 0])).operation).toBe("downscale");
    expect(await decide(p, 200, [0, 0])).toEqual({ skip: true });
    expect((await decide(p, 270, [0, 0])).operation).toBe("downscale");
  });

  test("a scale-up right after a scale-down is not held back", async () => {
    const p = await start();
    expect((await decide(p, 0, [0, 0, 0])).operation).toBe("downscale");
    expect((await decide(p, 1, [20])).operation).toBe("upscale");
  });

  test("settings set the cooldowns (seconds, as in the sample spec)", async () => {
    const p = await start({ scale_up_cooldown: 60, scale_down_cooldown: 10 });
    expect((await decide(p, 0, [10, 10])).operation).toBe("upscale");
    expect(await decide(p, 59, [10, 10])).toEqual({ skip: true });
    expect((await decide(p, 60, [10, 10])).operation).toBe("upscale");
    expect(await decide(p, 65, [0, 0, 0])).toEqual({ skip: true });
    expect((await decide(p, 70, [0, 0, 0])).operation).toBe("downscale");
  });

  test("management: get_state shows the decision, reset forgets the cooldowns", async () => {
    const p = await start();
    await decide(p, 0, [10, 10]);
    const state = await p.management("get_state");
    expect(state).toMatchObject({ ok: true, last_upscale_ms: 0, last_scale_ms: 0, last_desired: 5 });
    expect(state.last_decision).toEqual({ skip: false, operation: "upscale", instances_count: 3 });
    expect(await decide(p, 1, [10, 10])).toEqual({ skip: true });
    expect(await p.management("reset")).toEqual({ ok: true });
    expect((await decide(p, 2, [10, 10])).operation).toBe("upscale");
    await expect(p.management("scale_now")).rejects.toThrow("unknown management action 'scale_now'");
  });
});
