import { describe, expect, test } from "bun:test";
import { PolicyError } from "../../src/policy/errors.ts";
import { MemoryContextStore } from "../../src/policy/host.ts";
import type { PolicyKindName } from "../../src/policy/kinds/index.ts";
import { compilePolicy, instantiatePolicy, type PolicyLimits } from "../../src/policy/runtime.ts";
import { admitPolicyModule } from "../../src/policy/wasm/admission.ts";
import { compileWat } from "../support/wat.ts";
import {
  constantPolicy,
  contextPolicy,
  counterPolicy,
  directEchoPolicy,
  endlessLoopPolicy,
  failingPolicy,
  hugeOutputPolicy,
  kernelBombPolicy,
  memoryBombPolicy,
  metricsEchoPolicy,
} from "./watPolicies.ts";

const MiB = 1024 * 1024;
const LB_INPUT = { packet: { session_id: "s-1", seq_no: 1, data: "{}", ts: 1 }, instances: ["i-0", "i-1"] };

const load = async (
  wat: string,
  kind: PolicyKindName = "loadBalancer",
  limits: Partial<PolicyLimits> = {},
) => {
  const admitted = admitPolicyModule(await compileWat(wat), {
    fuel: limits.fuel ?? 100_000,
    memoryBytes: limits.memoryBytes ?? 4 * MiB,
  });
  const policy = await compilePolicy(admitted.instrumented, { uri: `test.${kind}:v1`, kind, limits });
  return instantiatePolicy(policy, { ruleId: `rule-${Math.random()}` });
};

const failure = async (promise: Promise<unknown>): Promise<PolicyError> => {
  try {
    await promise;
  } catch (err) {
    if (err instanceof PolicyError) return err;
    throw err;
  }
  throw new Error("expected the call to fail");
};

describe("policy runtime: contract", () => {
  test("a valid answer passes the kind's contract", async () => {
    const lb = await load(constantPolicy('{"instance_id":"i-1"}'));
    expect(await lb.eval(LB_INPUT)).toEqual({ instance_id: "i-1" });
  });

  test("an instance not offered is a bad output naming the field", async () => {
    const lb = await load(constantPolicy('{"instance_id":"i-9"}'));
    const err = await failure(lb.eval(LB_INPUT));
    expect(err.code).toBe("bad_output");
    expect(err.message).toContain("instance_id: 'i-9' is not one of the instances offered");
    expect(err.uri).toBe("test.loadBalancer:v1");
  });

  test("a wrong shape is a bad output with the schema path", async () => {
    const lb = await load(constantPolicy('{"instance_id":7}'));
    const err = await failure(lb.eval(LB_INPUT));
    expect(err.code).toBe("bad_output");
    expect(err.details?.path).toBe("instance_id");
  });

  test("output that is not JSON is a bad output", async () => {
    const lb = await load(constantPolicy("instance i-1, please"));
    expect((await failure(lb.eval(LB_INPUT))).code).toBe("bad_output");
  });

  test("per-action contracts: resourceAllocator dry_run needs a score in [0, 1]", async () => {
    const ra = await load(constantPolicy('{"selection_score_data":{"score":1.5}}'), "resourceAllocator");
    const input = {
      action: "dry_run",
      payload: { block: {}, cluster: {}, cluster_metrics: {}, healthy_nodes: ["n-1"] },
    };
    const err = await failure(ra.eval(input));
    expect(err.details?.path).toBe("selection_score_data.score");
  });

  test("pre-check output must carry input_data", async () => {
    const pc = await load(constantPolicy('{"allowed":true}'), "preCheck");
    expect((await failure(pc.eval({ block_id: "b" }))).details?.path).toBe("input_data");
  });

  test("an error the policy reports keeps the instance and its state", async () => {
    const bad = await load(failingPolicy("no instances to choose from"));
    const err = await failure(bad.eval(LB_INPUT));
    expect(err.code).toBe("policy_error");
    expect(err.message).toContain("no instances to choose from");
  });

  test("state persists across calls of one instance", async () => {
    const counter = await load(counterPolicy, "eventHandler");
    const event = { block_id: "b", event_name: "e", event_data: {} };
    expect(await counter.eval(event)).toEqual({ calls: 1 } as never);
    expect(await counter.eval(event)).toEqual({ calls: 2 } as never);
  });

  test("management without the export is a clear error", async () => {
    const lb = await load(constantPolicy('{"instance_id":"i-1"}'));
    expect((await failure(lb.management("get_state"))).code).toBe("missing_export");
    const withMgmt = await load(constantPolicy('{"ok":true}', { management: true }), "eventHandler");
    expect(await withMgmt.management("get_state")).toEqual({ ok: true });
  });
});

describe("policy runtime: host functions", () => {
  test("aios_get_metrics answers with the host's metrics", async () => {
    const admitted = admitPolicyModule(await compileWat(metricsEchoPolicy));
    const policy = await compilePolicy(admitted.instrumented, {
      uri: "test.events:v1",
      kind: "eventHandler",
    });
    const metrics = { block_metrics: { instances: { "i-0": { in_flight: 2 } } }, cluster_metrics: {} };
    const handler = await instantiatePolicy(policy, { host: { getMetrics: () => metrics } });
    expect(await handler.eval({ block_id: "b", event_name: "e", event_data: {} })).toEqual(metrics as never);
  });

  test("the context store keeps a value per rule across instances", async () => {
    const admitted = admitPolicyModule(await compileWat(contextPolicy));
    const policy = await compilePolicy(admitted.instrumented, { uri: "test.ctx:v1", kind: "eventHandler" });
    const context = new MemoryContextStore();
    const first = await instantiatePolicy(policy, { ruleId: "rule-a", host: { context } });
    const event = (n: number) => ({ block_id: "b", event_name: `e${n}`, event_data: {} });
    const seen1 = (await first.eval(event(1))) as { input_data: { event_name: string } };
    expect(seen1.input_data.event_name).toBe("e1");
    const second = await instantiatePolicy(policy, { ruleId: "rule-a", host: { context } });
    const seen2 = (await second.eval(event(2))) as { input_data: { event_name: string } };
    expect(seen2.input_data.event_name).toBe("e1");
    const other = await instantiatePolicy(policy, { ruleId: "rule-b", host: { context } });
    const seen3 = (await other.eval(event(3))) as { input_data: { event_name: string } };
    expect(seen3.input_data.event_name).toBe("e3");
  });
});

describe("policy runtime: direct input and output", () => {
  test("aios_input_read and aios_output_write move the call's JSON through linear memory", async () => {
    const echo = await load(directEchoPolicy, "eventHandler");
    const event = { block_id: "b-1", event_name: "started", event_data: { step: 1 } };
    const out = (await echo.eval(event, { parameters: { p: 1 } })) as Record<string, unknown>;
    expect(out.input_data).toEqual(event);
    expect(out.parameters).toEqual({ p: 1 });
    expect((out.context as Record<string, unknown>).kind).toBe("eventHandler");
  });

  test("concurrent calls on one instance each get their own answer", async () => {
    const echo = await load(directEchoPolicy, "eventHandler");
    const events = Array.from({ length: 50 }, (_, i) => ({
      block_id: `b-${i}`,
      event_name: "e",
      event_data: { i },
    }));
    const outs = (await Promise.all(events.map((e) => echo.eval(e)))) as { input_data: unknown }[];
    expect(outs.map((o) => o.input_data)).toEqual(events);
  });

  test("an output over the limit written directly is refused", async () => {
    const echo = await load(directEchoPolicy, "eventHandler", { outputBytes: 1024 });
    const big = { block_id: "b", event_name: "e", event_data: { blob: "x".repeat(2000) } };
    expect((await failure(echo.eval(big))).code).toBe("output_too_large");
  });

  test("validateInput refuses input_data outside the kind's contract", async () => {
    const echo = await load(directEchoPolicy, "eventHandler");
    const err = await failure(echo.eval({ block_id: 7 }, { validateInput: true }));
    expect(err.code).toBe("bad_input");
    expect(err.details?.path).toBe("block_id");
  });
});

describe("policy runtime: hostile policies", () => {
  test("an endless loop fails with fuel exhausted and the process answers at once", async () => {
    const spinner = await load(endlessLoopPolicy, "loadBalancer", { fuel: 1_000_000 });
    const healthy = await load(constantPolicy('{"instance_id":"i-0"}'));
    const started = performance.now();
    const err = await failure(spinner.eval(LB_INPUT));
    expect(err.code).toBe("fuel_exhausted");
    expect(err.message).toContain("ran out of fuel");
    expect(performance.now() - started).toBeLessThan(5000);
    expect(await healthy.eval(LB_INPUT)).toEqual({ instance_id: "i-0" });
    // The spinner's instance is re-created and fails the same way, not worse.
    expect((await failure(spinner.eval(LB_INPUT))).code).toBe("fuel_exhausted");
  });

  test("endless recursion fails as a trap or out of fuel, never takes the process down", async () => {
    const recursive = `(module (memory (export "memory") 1)
      (func $down (result i32) (call $down))
      (func (export "eval") (result i32) (call $down)))`;
    const deep = await load(recursive, "loadBalancer", { fuel: 50_000_000 });
    const err = await failure(deep.eval(LB_INPUT));
    expect(["trap", "fuel_exhausted"]).toContain(err.code);
    const healthy = await load(constantPolicy('{"instance_id":"i-1"}'));
    expect(await healthy.eval(LB_INPUT)).toEqual({ instance_id: "i-1" });
  });

  test("growing linear memory past the cap fails with memory exceeded", async () => {
    const bomb = await load(memoryBombPolicy, "loadBalancer", { memoryBytes: 2 * MiB });
    const err = await failure(bomb.eval(LB_INPUT));
    expect(err.code).toBe("memory_exceeded");
    expect(err.message).toContain("cap of 2 MiB");
  });

  test("allocating kernel memory past the cap fails with memory exceeded", async () => {
    const bomb = await load(kernelBombPolicy(2_000_000_000), "loadBalancer", { memoryBytes: 4 * MiB });
    expect((await failure(bomb.eval(LB_INPUT))).code).toBe("memory_exceeded");
  });

  test("a huge output is refused", async () => {
    const loud = await load(hugeOutputPolicy(3 * MiB), "loadBalancer", { outputBytes: MiB });
    const err = await failure(loud.eval(LB_INPUT));
    expect(err.code).toBe("output_too_large");
    expect(err.details?.bytes).toBe(3 * MiB);
  });

  test("kernel blocks are freed after each call", async () => {
    // 40 calls of 1 MiB each stay under a 4 MiB per-call cap: nothing accumulates across calls.
    const loud = await load(hugeOutputPolicy(MiB), "loadBalancer", {
      memoryBytes: 4 * MiB,
      outputBytes: 2 * MiB,
    });
    for (let i = 0; i < 40; i++) expect((await failure(loud.eval(LB_INPUT))).code).toBe("bad_output");
  });
});
