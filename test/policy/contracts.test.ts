/**
 * Contract tests: every built-in policy, and the hand-written WebAssembly text load balancer, admitted
 * and run through the real runtime (the same path a service takes), answer the specification's inputs
 * within their kind's contract.
 */
import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import type { PolicyKindName } from "../../src/policy/kinds/index.ts";
import { compilePolicy, instantiatePolicy, type PolicyInstance } from "../../src/policy/runtime.ts";
import { admitPolicyModule } from "../../src/policy/wasm/admission.ts";
import { BUILTIN_POLICIES } from "../../wasm-policies/catalog.ts";
import { compileWat } from "../support/wat.ts";
import { SAMPLES } from "./samples.ts";

const ROOT = new URL("../../", import.meta.url);

const start = async (bytes: Uint8Array, uri: string, kind: PolicyKindName): Promise<PolicyInstance> => {
  const admitted = admitPolicyModule(bytes);
  const policy = await compilePolicy(admitted.instrumented, { uri, kind });
  return instantiatePolicy(policy, {
    ruleId: `${uri}-contract`,
    settings: { block_data: { id: "b" }, cluster_data: { id: "c" } },
    parameters: SAMPLES[kind].parameters ?? {},
  });
};

describe("built-in policies answer the specification's inputs within their contract", () => {
  for (const entry of BUILTIN_POLICIES) {
    test(`${entry.uri} (${entry.kind})`, async () => {
      const bytes = new Uint8Array(readFileSync(new URL(entry.file, ROOT)));
      const policy = await start(bytes, entry.uri, entry.kind);
      for (const input of SAMPLES[entry.kind].inputs) {
        // eval validates the output against the kind (and its cross-checks) or throws a PolicyError.
        const output = await policy.eval(input, { validateInput: true });
        expect(typeof output).toBe("object");
      }
      await policy.close();
    });
  }
});

/** The load balancer contract every implementation must keep, whatever language it is written in. */
const loadBalancerContract = (name: string, load: () => Promise<PolicyInstance>) =>
  describe(`load balancer contract: ${name}`, () => {
    test("answers one of the instances offered, and every instance gets traffic", async () => {
      const lb = await load();
      const instances = ["instance-0", "instance-1", "instance-2"];
      const seen = new Set<string>();
      for (let i = 0; i < 30; i++) {
        const out = await lb.eval<{ instance_id: string }>({
          packet: { session_id: `s-${i}`, seq_no: i, data: "{}", ts: i },
          instances,
        });
        seen.add(out.instance_id);
      }
      expect([...seen].sort()).toEqual(instances);
    });

    test("follows changes of the instance list", async () => {
      const lb = await load();
      for (let i = 0; i < 10; i++) {
        const out = await lb.eval<{ instance_id: string }>({
          packet: { session_id: `t-${i}`, seq_no: i, data: "{}", ts: i },
          instances: i < 5 ? ["a", "b"] : ["c"],
        });
        expect(i < 5 ? ["a", "b"] : ["c"]).toContain(out.instance_id);
      }
    });
  });

const builtinLoadBalancers = BUILTIN_POLICIES.filter((p) => p.kind === "loadBalancer");
for (const entry of builtinLoadBalancers) {
  loadBalancerContract(entry.uri, () =>
    start(new Uint8Array(readFileSync(new URL(entry.file, ROOT))), entry.uri, "loadBalancer"),
  );
}
loadBalancerContract("test/policy/fixtures/roundrobin-lb.wat (hand-written WebAssembly text)", async () =>
  start(
    await compileWat(readFileSync(new URL("./fixtures/roundrobin-lb.wat", import.meta.url), "utf8")),
    "policy.loadBalancer.wat-roundrobin:v1",
    "loadBalancer",
  ),
);
