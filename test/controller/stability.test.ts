/**
 * The stability checker: the unhealthy-ratio policy judging the scanner's node data with the cluster
 * document, the fallback without a policy, the webhook called once per turn to unstable (and never
 * failing a check), and management commands forwarded to the policy.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { type NodeStatusLike, StabilityChecker, toNodesData } from "../../src/controller/stability.ts";
import { ApiError } from "../../src/http/errors.ts";
import { PolicyError } from "../../src/policy/errors.ts";
import { type CompiledPolicy, compilePolicy } from "../../src/policy/runtime.ts";
import { PolicySet } from "../../src/policy/set.ts";
import { admitPolicyModule } from "../../src/policy/wasm/admission.ts";
import type { NodeStatus } from "../../src/runtime/types.ts";
import { compiledBuiltin } from "../support/builtin-policies.ts";
import { testContext } from "../support/controller-context.ts";
import { compileWat } from "../support/wat.ts";

const RATIO = "policy.clusterStability.unhealthy-ratio:v0.0.1";
const ECHO = "test.clusterStability.mgmt-echo:v1";

/** `eval` and `management` both echo their input: management answers `{"action", "data"}` as given. */
const ECHO_WAT = `(module
  (import "extism:host/user" "aios_input_read" (func $input_read (param i64) (result i64)))
  (import "extism:host/user" "aios_output_write" (func $output_write (param i64 i64)))
  (memory (export "memory") 1)
  (func $echo (result i32) (local $n i64)
    (local.set $n (call $input_read (i64.const 1024)))
    (call $output_write (i64.const 1024) (local.get $n))
    (i32.const 0))
  (export "eval" (func $echo))
  (export "management" (func $echo)))`;

const resolve = async (uri: string): Promise<CompiledPolicy> => {
  if (uri === ECHO) {
    const admitted = admitPolicyModule(await compileWat(ECHO_WAT), { fuel: 100_000 });
    return compilePolicy(admitted.instrumented, { uri, kind: "clusterStabilityChecker" });
  }
  return compiledBuiltin(uri);
};

const cleanups: (() => Promise<void> | void)[] = [];
afterAll(async () => {
  for (const c of cleanups) await c();
});

const node = (nodeId: string, healthy: boolean, extra: Partial<NodeStatus> = {}): NodeStatusLike => ({
  nodeId,
  healthy,
  cpu_utilization_percent: 35,
  memory: { total: 16384, allocatable: 10240, usage_percent: 37.5 },
  disk: { total: 512000, allocatable: 409600, usage_percent: 20 },
  ...extra,
});

/** A checker over a cluster document and node list the test changes between checks. */
const setup = (
  config: Record<string, unknown> = {},
  options: { webhookUrl?: string; webhookTimeoutMs?: number } = {},
) => {
  const state = {
    cluster: { id: "cluster-1", status: "live", config } as Record<string, unknown>,
    nodes: [] as NodeStatusLike[],
  };
  const policies = new PolicySet(resolve);
  cleanups.push(() => policies.close());
  const ctx = testContext({
    policies,
    cluster: async () => state.cluster,
  });
  const checker = new StabilityChecker(ctx, { ...options, nodesData: async () => state.nodes });
  return { ctx, state, checker, policies };
};

/** A webhook receiver recording each POST body. */
const webhookServer = (
  respond: (req: Request) => Response | Promise<Response> = () => new Response("ok"),
) => {
  const calls: Record<string, unknown>[] = [];
  const server = Bun.serve({
    port: 0,
    hostname: "127.0.0.1",
    async fetch(req) {
      calls.push((await req.json()) as Record<string, unknown>);
      return respond(req);
    },
  });
  cleanups.push(() => server.stop(true));
  return { url: `http://127.0.0.1:${server.port}/hook`, calls };
};

describe("toNodesData", () => {
  test("maps the runtime's NodeStatus to the specification's nodes_data", () => {
    expect(toNodesData([node("n-1", true), node("n-2", false, { reason: "not ready" })])).toEqual([
      {
        node_id: "n-1",
        status: "healthy",
        cpu_utilization_percent: 35,
        memory: { total: 16384, allocatable: 10240, usage_percent: 37.5 },
        disk: { total: 512000, allocatable: 409600, usage_percent: 20 },
      },
      {
        node_id: "n-2",
        status: "unhealthy",
        cpu_utilization_percent: 35,
        memory: { total: 16384, allocatable: 10240, usage_percent: 37.5 },
        disk: { total: 512000, allocatable: 409600, usage_percent: 20 },
        reason: "not ready",
      },
    ]);
    expect(toNodesData([{ nodeId: "n-3", healthy: true }])).toEqual([
      { node_id: "n-3", status: "healthy", cpu_utilization_percent: null, memory: null, disk: null },
    ]);
  });
});

describe("StabilityChecker with the unhealthy-ratio policy", () => {
  test("judges the nodes data against the threshold, with the cluster document's nodes", async () => {
    const { state, checker } = setup({
      stabilityCheckerPolicy: { policyRuleURI: RATIO, parameters: { max_unhealthy_ratio: 0.5 } },
    });
    state.nodes = [node("n-1", true), node("n-2", true), node("n-3", false)];
    const stable = await checker.check();
    expect(stable.policy).toBe(RATIO);
    expect(stable.is_stable).toBe(true);
    expect(stable.stability_check_data).toMatchObject({
      unhealthy_nodes: ["n-3"],
      missing_nodes: [],
      total_nodes: 3,
      threshold: 0.5,
    });
    expect(stable.stability_check_data.unhealthy_ratio).toBeCloseTo(1 / 3);
    expect(stable.nodes.map((n) => n.status)).toEqual(["healthy", "healthy", "unhealthy"]);
    expect(Date.parse(stable.checked_at)).not.toBeNaN();

    // A node the cluster document lists and the scanner did not report counts as unhealthy: 2 of 4.
    state.cluster = { ...state.cluster, nodes: { count: 4, nodeData: [{ id: "n-1" }, { id: "n-4" }] } };
    const half = await checker.check();
    expect(half.stability_check_data).toMatchObject({ missing_nodes: ["n-4"], total_nodes: 4 });
    expect(half.is_stable).toBe(true);

    state.nodes = [node("n-1", true), node("n-2", false), node("n-3", false)];
    const unstable = await checker.check();
    expect(unstable.is_stable).toBe(false);
    expect(unstable.stability_check_data.unhealthy_ratio).toBe(0.75);
    expect(checker.last).toEqual(unstable);
  });

  test("the webhook is called once on the turn to unstable, not while it stays unstable", async () => {
    const hook = webhookServer();
    const { state, checker } = setup({
      stabilityCheckerPolicy: { policyRuleURI: RATIO, parameters: { max_unhealthy_ratio: 0.25 } },
      stabilityWebhook: hook.url,
    });
    state.nodes = [node("n-1", true), node("n-2", true)];
    expect((await checker.check()).is_stable).toBe(true);
    await checker.flush();
    expect(hook.calls).toHaveLength(0);
    expect(checker.lastWebhook).toBeNull();

    state.nodes = [node("n-1", true), node("n-2", false)];
    const turned = await checker.check();
    expect(turned.is_stable).toBe(false);
    await checker.flush();
    expect(hook.calls).toHaveLength(1);
    expect(hook.calls[0]).toMatchObject({
      event: "cluster_unstable",
      cluster_id: "cluster-1",
      is_stable: false,
      policy: RATIO,
      checked_at: turned.checked_at,
      stability_check_data: { unhealthy_nodes: ["n-2"] },
    });
    expect(checker.lastWebhook).toMatchObject({ url: hook.url, ok: true, status: 200 });

    await checker.check();
    await checker.check();
    await checker.flush();
    expect(hook.calls).toHaveLength(1);

    // Stable again, then unstable again: a new turn, a new call.
    state.nodes = [node("n-1", true), node("n-2", true)];
    expect((await checker.check()).is_stable).toBe(true);
    state.nodes = [node("n-1", false), node("n-2", true)];
    await checker.check();
    await checker.flush();
    expect(hook.calls).toHaveLength(2);
  });

  test("a first check that is unstable calls the webhook given as an option", async () => {
    const hook = webhookServer();
    const { state, checker } = setup(
      { stabilityCheckerPolicy: { policyRuleURI: RATIO } },
      { webhookUrl: hook.url },
    );
    state.nodes = [node("n-1", false)];
    expect((await checker.check()).is_stable).toBe(false);
    await checker.flush();
    expect(hook.calls).toHaveLength(1);
  });

  test("a webhook that fails or hangs never fails the check; the outcome is recorded", async () => {
    const failing = webhookServer(() => new Response("nope", { status: 500 }));
    const { state, checker } = setup({}, { webhookUrl: failing.url });
    state.nodes = [node("n-1", false)];
    expect((await checker.check()).is_stable).toBe(false);
    await checker.flush();
    expect(checker.lastWebhook).toMatchObject({ url: failing.url, ok: false, status: 500 });

    const hanging = webhookServer(() => new Promise<Response>(() => {}));
    const slow = setup({ stabilityWebhook: hanging.url }, { webhookTimeoutMs: 100 });
    slow.state.nodes = [node("n-1", false)];
    const started = Date.now();
    expect((await slow.checker.check()).is_stable).toBe(false);
    await slow.checker.flush();
    expect(Date.now() - started).toBeLessThan(3000);
    expect(slow.checker.lastWebhook?.ok).toBe(false);
    expect(slow.checker.lastWebhook?.error).toMatch(/time|abort/i);

    const invalid = setup({ stabilityWebhook: "ftp://example.invalid/hook" });
    invalid.state.nodes = [];
    expect((await invalid.checker.check()).is_stable).toBe(false);
    await invalid.checker.flush();
    expect(invalid.checker.lastWebhook).toMatchObject({ ok: false, error: expect.stringContaining("http") });
  });

  test("a failing check rejects and does not count as a turn", async () => {
    const hook = webhookServer();
    const { state, checker } = setup({
      stabilityCheckerPolicy: { policyRuleURI: "policy.clusterStability.missing:v1" },
      stabilityWebhook: hook.url,
    });
    state.nodes = [node("n-1", false)];
    await expect(checker.check()).rejects.toThrow(/missing/);
    expect(checker.last).toBeNull();
    state.cluster = {
      ...state.cluster,
      config: { stabilityCheckerPolicy: { policyRuleURI: RATIO }, stabilityWebhook: hook.url },
    };
    expect((await checker.check()).is_stable).toBe(false);
    await checker.flush();
    expect(hook.calls).toHaveLength(1);
  });
});

describe("StabilityChecker without a policy", () => {
  test("stable iff there are nodes and every one is healthy, and says policy: null", async () => {
    const { state, checker } = setup();
    state.nodes = [node("n-1", true), node("n-2", true)];
    const stable = await checker.check();
    expect(stable).toMatchObject({ is_stable: true, policy: null });
    expect(stable.stability_check_data).toMatchObject({ unhealthy_nodes: [], total_nodes: 2 });

    state.nodes = [node("n-1", true), node("n-2", false)];
    const unstable = await checker.check();
    expect(unstable).toMatchObject({ is_stable: false, policy: null });
    expect(unstable.stability_check_data).toMatchObject({ unhealthy_nodes: ["n-2"] });

    state.nodes = [];
    expect((await checker.check()).is_stable).toBe(false);
  });

  test("management answers 404", async () => {
    const { checker } = setup();
    const err = await checker.management("get_state").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect((err as ApiError).status).toBe(404);
    expect((err as ApiError).code).toBe("no_stability_policy");
  });
});

describe("StabilityChecker.management", () => {
  test("forwards the action and data to the policy's management export", async () => {
    const { checker, policies } = setup({ stabilityCheckerPolicy: { policyRuleURI: ECHO } });
    expect(await checker.management("set_threshold", { max_unhealthy_ratio: 0.1 })).toEqual({
      action: "set_threshold",
      data: { max_unhealthy_ratio: 0.1 },
    });
    // The same instance serves checks and management (its state is shared).
    expect((await policies.current("stability"))?.uri).toBe(ECHO);
  });

  test("a policy without a management export reports it", async () => {
    const { checker } = setup({ stabilityCheckerPolicy: { policyRuleURI: RATIO } });
    const err = await checker.management("get_state").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PolicyError);
    expect((err as PolicyError).code).toBe("missing_export");
  });
});
