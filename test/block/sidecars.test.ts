/**
 * The auto-scaler and the health checker with the real built-in policies (target-tracking,
 * unhealthy-retry) against real instances and a recording controller: what each decides, what it
 * sends, and how it keeps decisions within the block's bounds.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createSidecarMgmtApp } from "../../src/block/app.ts";
import { Autoscaler, type AutoscalerPolicy } from "../../src/block/autoscaler.ts";
import { readBlockConfig } from "../../src/block/config.ts";
import { HealthChecker } from "../../src/block/health-checker.ts";
import type { InstanceRef } from "../../src/block/mapper.ts";
import { ControllerClient } from "../../src/controller/client.ts";
import { type ServedInstance, serveInstance } from "../../src/instance/index.ts";
import { PolicyError } from "../../src/policy/errors.ts";
import { instantiatePolicy, type PolicyInstance } from "../../src/policy/runtime.ts";
import { compiledBuiltin } from "../support/builtin-policies.ts";
import { type RecordingController, startRecordingController } from "../support/recording-controller.ts";

let controller: RecordingController;
const served: ServedInstance[] = [];
const policies: PolicyInstance[] = [];
const hangs: ReturnType<typeof Bun.serve>[] = [];

beforeAll(() => {
  controller = startRecordingController();
});
afterAll(async () => {
  for (const s of served) await s.stop();
  for (const h of hangs) await h.stop(true);
  for (const p of policies) await p.close();
  await controller.stop();
});

const policy = async (uri: string, parameters: Record<string, unknown> = {}, settings = {}) => {
  const p = await instantiatePolicy(await compiledBuiltin(uri), { ruleId: `t/${uri}`, parameters, settings });
  policies.push(p);
  return p;
};

const block = (min: number, max: number) =>
  readBlockConfig({ id: "blk-1", minInstances: min, maxInstances: max }, "blk-1");

const ids = (n: number): InstanceRef[] =>
  Array.from({ length: n }, (_, i) => ({ id: `i-${i}`, url: `http://127.0.0.1:1/${i}` }));

/** Block metrics with `in_flight` per instance, as the executor reports them. */
const inflight = (loads: number[]) => async () => ({
  block_metrics: {
    block_id: "blk-1",
    instances: Object.fromEntries(loads.map((n, i) => [`i-${i}`, { in_flight: n }])),
  },
  cluster_metrics: null,
});

const scaler = (p: AutoscalerPolicy | null, loads: number[], min = 1, max = 5) => {
  const client = new ControllerClient(controller.url);
  const a = new Autoscaler({
    block: block(min, max),
    policy: p,
    metrics: inflight(loads),
    scale: (req) => client.scale(req),
  });
  a.setInstances(ids(loads.length));
  return a;
};

describe("Autoscaler with target-tracking", () => {
  test("load over target: upscale sent to the controller's scale action, clamped to maxInstances", async () => {
    controller.actions.length = 0;
    const p = await policy("policy.autoscaler.target-tracking:v0.0.1", { target_inflight_per_instance: 2 });
    // 2 instances with 20 in flight want 10 instances; max 5 allows 3 more.
    const run = await scaler(p, [10, 10], 1, 5).evaluate();
    expect(run.outcome).toBe("scaled");
    expect(run.decision).toMatchObject({ skip: false, operation: "upscale", instances_count: 3 });
    expect(controller.actions).toEqual([
      { action: "scale", data: { block_id: "blk-1", operation: "upscale", instances_count: 3 } },
    ]);
  });

  test("idle instances: downscale names the least loaded, never below minInstances", async () => {
    controller.actions.length = 0;
    const p = await policy(
      "policy.autoscaler.target-tracking:v0.0.1",
      { target_inflight_per_instance: 4 },
      { scale_down_cooldown: 0 },
    );
    const run = await scaler(p, [1, 0, 0, 0], 2, 5).evaluate();
    expect(run.outcome).toBe("scaled");
    expect(controller.actions[0]?.data).toMatchObject({ operation: "downscale" });
    const removed = controller.actions[0]?.data.instances_list as string[];
    expect(removed).toHaveLength(2); // 4 instances, min 2
    expect(removed).not.toContain("i-0"); // the loaded one stays
  });

  test("at the desired count: skipped, nothing sent", async () => {
    controller.actions.length = 0;
    const p = await policy("policy.autoscaler.target-tracking:v0.0.1", { target_inflight_per_instance: 4 });
    const run = await scaler(p, [4, 4], 1, 5).evaluate();
    expect(run.outcome).toBe("skipped");
    expect(controller.actions).toEqual([]);
  });
});

describe("Autoscaler bounds and failures", () => {
  const double = (answer: () => unknown): AutoscalerPolicy =>
    ({
      uri: "policy.autoscaler.double:v1",
      eval: async () => answer(),
      management: async () => ({}),
    }) as unknown as AutoscalerPolicy;

  test("a downscale of unknown instances or below the minimum is trimmed; nothing left is at_bounds", async () => {
    controller.actions.length = 0;
    const a = scaler(
      double(() => ({ skip: false, operation: "downscale", instances_list: ["ghost", "i-1", "i-1", "i-2"] })),
      [0, 0, 0],
      2,
      5,
    );
    expect((await a.evaluate()).request).toEqual({
      block_id: "blk-1",
      operation: "downscale",
      instances_list: ["i-1"],
    });
    const full = scaler(
      double(() => ({ skip: false, operation: "upscale", instances_count: 2 })),
      [0, 0],
      1,
      2,
    );
    const run = await full.evaluate();
    expect(run.outcome).toBe("at_bounds");
    expect(controller.actions).toHaveLength(1);
  });

  test("a policy error and a controller refusal are recorded runs, not crashes", async () => {
    const failing = scaler(
      double(() => {
        throw new PolicyError("trap", "policy.autoscaler.double:v1", "eval trapped");
      }),
      [1],
    );
    const failed = await failing.evaluate();
    expect(failed.outcome).toBe("policy_error");
    expect(failed.error).toStartWith("trap: ");
    controller.failWith = 409;
    try {
      const refused = scaler(
        double(() => ({ skip: false, operation: "upscale", instances_count: 1 })),
        [1],
      );
      const run = await refused.evaluate();
      expect(run.outcome).toBe("controller_error");
      expect(run.error).toContain("refused by the test");
    } finally {
      controller.failWith = null;
    }
    expect(failing.history).toHaveLength(1);
  });

  test("its /mgmt: policy_info with the runs, run_now, and the policy's own actions", async () => {
    const p = await policy("policy.autoscaler.target-tracking:v0.0.1");
    const a = scaler(p, [0]);
    const app = createSidecarMgmtApp(a, "auto-scaler", () => ids(1));
    const mgmt = async (mgmt_action: string) =>
      (await app.request("/mgmt", {
        method: "POST",
        body: JSON.stringify({ mgmt_action, mgmt_data: {} }),
      })) as Response;
    expect(await (await mgmt("run_now")).json()).toMatchObject({ outcome: "skipped", instances: 1 });
    expect(await (await mgmt("policy_info")).json()).toMatchObject({
      policy: "policy.autoscaler.target-tracking:v0.0.1",
      history: [{ outcome: "skipped" }],
    });
    expect(await (await mgmt("get_state")).json()).toMatchObject({ last_desired: 1 });
    // The policy refuses what it does not know (a 4xx naming its actions).
    const unknown = await mgmt("no_such_action");
    expect(unknown.status).toBe(422);
    expect(JSON.stringify(await unknown.json())).toContain("get_state");
  });
});

describe("HealthChecker with unhealthy-retry", () => {
  let healthy: ServedInstance;
  let sick: ServedInstance;
  let hanging: InstanceRef;
  let gone: InstanceRef;

  beforeAll(async () => {
    const env = { AIOS_INSTANCE_ID: "x" };
    healthy = await serveInstance({ onTask: () => 1 }, { env, hostname: "127.0.0.1" });
    sick = await serveInstance({ onTask: () => 1, health: () => false }, { env, hostname: "127.0.0.1" });
    served.push(healthy, sick);
    const hang = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: () => new Promise<Response>(() => {}) });
    hangs.push(hang);
    hanging = { id: "hanging", url: `http://127.0.0.1:${hang.port}` };
    const closed = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: () => new Response("") });
    gone = { id: "gone", url: `http://127.0.0.1:${closed.port}` };
    await closed.stop(true);
  });

  test("non-200, timeout and unreachable are unhealthy; after the threshold each is replaced", async () => {
    controller.actions.length = 0;
    const p = await policy("policy.stabilityChecker.unhealthy-retry:v0.0.1", { unhealthy_threshold: 2 });
    const checker = new HealthChecker({
      block: block(1, 5),
      policy: p,
      timeoutMs: 200,
      controller: new ControllerClient(controller.url),
    });
    checker.setInstances([{ id: "healthy", url: healthy.url }, { id: "sick", url: sick.url }, hanging, gone]);
    const first = await checker.check();
    expect(first.health_check_data).toEqual({ healthy: true, sick: false, hanging: false, gone: false });
    expect(first.probes.sick).toMatchObject({ status: 503 });
    expect(first.probes.hanging?.reason).toBe("no answer within 200 ms");
    expect(first.probes.gone?.reason).toStartWith("unreachable");
    expect(first.actions).toEqual([]);
    expect(controller.actions).toEqual([]);

    const second = await checker.check();
    expect(second.actions.map((a) => [a.instance_id, a.outcome])).toEqual([
      ["sick", "done"],
      ["hanging", "done"],
      ["gone", "done"],
    ]);
    expect(controller.actions.map((a) => a.action)).toEqual([
      "remove_instance",
      "remove_instance",
      "remove_instance",
    ]);
    expect(controller.actions[0]?.data).toMatchObject({
      block_id: "blk-1",
      instance_id: "sick",
      replace: true,
    });
  });

  test("an action naming an instance outside the block, or unknown, is refused and not sent", async () => {
    controller.actions.length = 0;
    const checker = new HealthChecker({
      block: block(1, 5),
      policy: {
        uri: "policy.stabilityChecker.double:v1",
        eval: async () => ({
          actions: [
            { action: "replace_instance", instance_id: "elsewhere" },
            { action: "reboot_node", instance_id: "healthy" },
          ],
        }),
        management: async () => ({}),
      } as unknown as PolicyInstance,
      controller: new ControllerClient(controller.url),
    });
    checker.setInstances([{ id: "healthy", url: healthy.url }]);
    const run = await checker.check();
    expect(run.actions.map((a) => a.outcome)).toEqual(["refused", "refused"]);
    expect(run.actions[1]?.error).toContain("unknown action 'reboot_node'");
    expect(controller.actions).toEqual([]);
  });
});
