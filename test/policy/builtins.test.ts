/** Seeding the policy store with the built-in policies, as `aios up` does at start. */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { installBuiltinPolicies } from "../../src/policy/builtins.ts";
import { PolicyError } from "../../src/policy/errors.ts";
import { instantiatePolicy } from "../../src/policy/runtime.ts";
import { PolicyStore } from "../../src/policy/store.ts";
import { openStore, type Store } from "../../src/store/index.ts";
import { BUILTIN_POLICIES } from "../../wasm-policies/catalog.ts";

setDefaultTimeout(120_000);

describe("installBuiltinPolicies", () => {
  let store: Store;
  beforeAll(async () => {
    store = await openStore({});
  });
  afterAll(async () => {
    await store?.close();
  });

  test("stores every built-in with its kind, then leaves them as they are", async () => {
    const policies = new PolicyStore(store);
    const first = await installBuiltinPolicies(policies);
    expect(first.installed.sort()).toEqual(BUILTIN_POLICIES.map((p) => p.uri).sort());
    const stored = await policies.list();
    for (const entry of BUILTIN_POLICIES) {
      expect(stored.find((p) => p.uri === entry.uri)).toMatchObject({
        kind: entry.kind,
        description: entry.description,
      });
    }
    const again = await installBuiltinPolicies(policies);
    expect(again.installed).toEqual([]);
    expect(again.unchanged).toHaveLength(BUILTIN_POLICIES.length);
    // A stored policy runs: the round-robin balancer, loaded from the store by URI.
    const lb = await instantiatePolicy(await policies.compiled("policy.loadBalancer.roundrobin:v0.0.1"));
    const out = await lb.eval<{ instance_id: string }>({
      packet: { session_id: "s", seq_no: 1, data: "{}", ts: 1 },
      instances: ["i-0", "i-1"],
    });
    expect(["i-0", "i-1"]).toContain(out.instance_id);
  });

  test("loading a URI nothing is stored under is a not_found PolicyError naming it", async () => {
    const err = await new PolicyStore(store).compiled("policy.loadBalancer.nowhere:v9").catch((e) => e);
    expect(err).toBeInstanceOf(PolicyError);
    expect(err.code).toBe("not_found");
    expect(err.message).toContain("policy.loadBalancer.nowhere:v9");
  });
});
