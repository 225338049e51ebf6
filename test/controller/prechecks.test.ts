/**
 * Pre-checks with the built-in pre-check policies: a hook without a policy passes its input through,
 * allow-all passes it unchanged, clamp-instances rewrites it, instance-quota refuses over its quota,
 * and a check that cannot be made (unknown policy, wrong kind, trap, broken configuration, no cluster
 * document) refuses the action with 503.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { preCheckRuleId, runPreCheck } from "../../src/controller/prechecks.ts";
import { ApiError } from "../../src/http/errors.ts";
import { PolicyError } from "../../src/policy/errors.ts";
import { type CompiledPolicy, compilePolicy } from "../../src/policy/runtime.ts";
import { PolicySet } from "../../src/policy/set.ts";
import { admitPolicyModule } from "../../src/policy/wasm/admission.ts";
import { constantPolicy, endlessLoopPolicy } from "../policy/watPolicies.ts";
import { compiledBuiltin } from "../support/builtin-policies.ts";
import { testContext } from "../support/controller-context.ts";
import { compileWat } from "../support/wat.ts";

const ALLOW_ALL = "policy.preCheck.allow-all:v0.0.1";
const QUOTA = "policy.preCheck.instance-quota:v0.0.1";
const CLAMP = "policy.preCheck.clamp-instances:v0.0.1";

const watPolicy = async (uri: string, wat: string): Promise<CompiledPolicy> => {
  const admitted = admitPolicyModule(await compileWat(wat), { fuel: 100_000 });
  return compilePolicy(admitted.instrumented, { uri, kind: "preCheck" });
};

/** Built-ins, plus test policies: one that loops forever, one whose output misses `allowed`. */
const resolve = async (uri: string): Promise<CompiledPolicy> => {
  if (uri === "test.preCheck.endless:v1") return watPolicy(uri, endlessLoopPolicy);
  if (uri === "test.preCheck.bad-output:v1") return watPolicy(uri, constantPolicy('{"input_data":{}}'));
  if (uri.startsWith("policy.")) return compiledBuiltin(uri);
  throw new PolicyError("not_found", uri, "no policy is stored under this URI");
};

const policySets: PolicySet[] = [];
afterAll(async () => {
  await Promise.all(policySets.map((p) => p.close()));
});

/** A context whose cluster document is `cluster.doc` (tests change it between calls). */
const setup = (config: Record<string, unknown> = {}) => {
  const cluster = { doc: { id: "cluster-1", status: "live", config } as Record<string, unknown> };
  const policies = new PolicySet(resolve);
  policySets.push(policies);
  const ctx = testContext({
    policies,
    cluster: async () => cluster.doc,
  });
  return { ctx, cluster, policies };
};

const apiError = async (promise: Promise<unknown>): Promise<ApiError> => {
  try {
    await promise;
  } catch (err) {
    if (err instanceof ApiError) return err;
    throw err;
  }
  throw new Error("expected an ApiError");
};

const SCALE = { block_id: "b-1", operation: "upscale", instances_count: 10 };

describe("runPreCheck", () => {
  test("a hook without a policy returns the input itself", async () => {
    const { ctx } = setup();
    expect(await runPreCheck(ctx, "scale_block", SCALE)).toBe(SCALE);
    const { ctx: nullCtx } = setup({ preCheckPolicies: { scale_block: null } });
    expect(await runPreCheck(nullCtx, "scale_block", SCALE)).toBe(SCALE);
  });

  test("allow-all passes the input through unchanged", async () => {
    const { ctx, policies } = setup({ preCheckPolicies: { add_block: { policyRuleURI: ALLOW_ALL } } });
    const input = { block: { id: "b-2", minInstances: 50, nested: [1, { a: "x" }] } };
    expect(await runPreCheck(ctx, "add_block", input)).toEqual(input);
    // The instance is kept for the hook's rule id.
    expect((await policies.current(preCheckRuleId("add_block")))?.uri).toBe(ALLOW_ALL);
  });

  test("clamp-instances rewrites the counts: what it returns is what runs", async () => {
    const { ctx } = setup({
      preCheckPolicies: { scale_block: { policyRuleURI: CLAMP, parameters: { max_instances: 3 } } },
    });
    expect(await runPreCheck(ctx, "scale_block", SCALE)).toEqual({ ...SCALE, instances_count: 3 });
    const small = { ...SCALE, instances_count: 2 };
    expect(await runPreCheck(ctx, "scale_block", small)).toEqual(small);
  });

  test("instance-quota refuses over its quota with 403 naming the hook, policy and reason", async () => {
    const { ctx } = setup({
      preCheckPolicies: { scale_block: { policyRuleURI: QUOTA, parameters: { max_instances: 4 } } },
    });
    const err = await apiError(runPreCheck(ctx, "scale_block", { ...SCALE, instances_count: 5 }));
    expect(err.status as number).toBe(403);
    expect(err.code).toBe("precheck_refused");
    expect(err.message).toContain("scale_block");
    expect(err.message).toContain(QUOTA);
    expect(err.message).toContain("exceeds the quota of 4");
    expect(err.details).toMatchObject({
      hook: "scale_block",
      policy: QUOTA,
      reason: { field: "instances_count", requested: 5, limit: 4 },
    });
    expect(err.toBody().error.code).toBe("precheck_refused");
    // At the quota: allowed, unchanged.
    expect(await runPreCheck(ctx, "scale_block", { ...SCALE, instances_count: 4 })).toEqual({
      ...SCALE,
      instances_count: 4,
    });
  });

  test("only the configured hook is checked", async () => {
    const { ctx } = setup({
      preCheckPolicies: { scale_block: { policyRuleURI: QUOTA, parameters: { max_instances: 1 } } },
    });
    const spec = { id: "b-3", minInstances: 9 };
    expect(await runPreCheck(ctx, "add_block", spec)).toBe(spec);
    await expect(runPreCheck(ctx, "scale_block", SCALE)).rejects.toThrow(/refused/);
  });

  test("a change of the cluster's configuration applies to the next action", async () => {
    const { ctx, cluster } = setup({
      preCheckPolicies: { scale_block: { policyRuleURI: QUOTA, parameters: { max_instances: 4 } } },
    });
    await expect(runPreCheck(ctx, "scale_block", SCALE)).rejects.toThrow(/quota of 4/);
    cluster.doc = {
      ...cluster.doc,
      config: {
        preCheckPolicies: { scale_block: { policyRuleURI: QUOTA, parameters: { max_instances: 20 } } },
      },
    };
    expect(await runPreCheck(ctx, "scale_block", SCALE)).toEqual(SCALE);
  });

  test("an unknown hook is a TypeError", async () => {
    const { ctx } = setup();
    await expect(runPreCheck(ctx, "scale_everything", {})).rejects.toBeInstanceOf(TypeError);
  });

  describe("fails closed with 503 when the check cannot be made", () => {
    const unavailable = async (config: Record<string, unknown>, hook = "scale_block") => {
      const { ctx } = setup(config);
      const err = await apiError(runPreCheck(ctx, hook, SCALE));
      expect(err.status).toBe(503);
      expect(err.code).toBe("precheck_unavailable");
      expect(err.message).toContain(hook);
      expect(err.details).toMatchObject({ hook });
      return err;
    };

    test("an unknown policy", async () => {
      const err = await unavailable({
        preCheckPolicies: { scale_block: { policyRuleURI: "policy.preCheck.nope:v9" } },
      });
      expect(err.message).toContain("policy.preCheck.nope:v9");
      expect(err.details).toMatchObject({ policy: "policy.preCheck.nope:v9" });
    });

    test("a policy of another kind", async () => {
      const err = await unavailable(
        {
          preCheckPolicies: {
            remove_node: { policyRuleURI: "policy.clusterStability.unhealthy-ratio:v0.0.1" },
          },
        },
        "remove_node",
      );
      expect(err.message).toContain("not a preCheck policy");
    });

    test("a policy that runs out of fuel", async () => {
      const err = await unavailable({
        preCheckPolicies: { scale_block: { policyRuleURI: "test.preCheck.endless:v1" } },
      });
      expect(err.message).toMatch(/fuel/);
    });

    test("a policy whose output breaks the contract", async () => {
      const err = await unavailable({
        preCheckPolicies: { scale_block: { policyRuleURI: "test.preCheck.bad-output:v1" } },
      });
      expect(err.message).toContain("allowed");
    });

    test("a malformed configuration entry, named by its path", async () => {
      const err = await unavailable({ preCheckPolicies: { scale_block: { policy: ALLOW_ALL } } });
      expect(err.message).toContain("config.preCheckPolicies.scale_block.policyRuleURI");
    });

    test("no cluster document", async () => {
      const { ctx } = setup();
      ctx.cluster = async () => {
        throw new Error("cannot reach the registry");
      };
      const err = await apiError(runPreCheck(ctx, "add_node", { node: "n-1" }));
      expect(err.status).toBe(503);
      expect(err.message).toContain("cannot reach the registry");
    });
  });
});
