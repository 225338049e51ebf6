/** The snapshot cluster and metrics clients, as policies reach them through host functions. */
import { describe, expect, test } from "bun:test";
import { compilePolicy, instantiatePolicy } from "../../src/policy/runtime.ts";
import { snapshotClients } from "../../src/policy/snapshot.ts";
import { admitPolicyModule } from "../../src/policy/wasm/admission.ts";
import { compileWat } from "../support/wat.ts";
import { CLUSTER, CLUSTER_METRICS } from "./samples.ts";

const clusters = [
  CLUSTER,
  { ...CLUSTER, id: "cluster-east", regionId: "us-east-1", gpus: { count: 8, memory: 131072 } },
];
const clients = snapshotClients({ clusters, metrics: [CLUSTER_METRICS] });

describe("snapshot clients", () => {
  test("read answers like the specification's clients: ok and data, or ok false and why", () => {
    expect(clients.clusters?.read("cluster-east")).toEqual({ ok: true, data: clusters[1] });
    expect(clients.clusters?.read("nowhere")).toEqual({ ok: false, error: "cluster 'nowhere' not found" });
    expect(clients.metrics?.get(CLUSTER.id)).toEqual({ ok: true, data: CLUSTER_METRICS });
    expect(clients.metrics?.get("cluster-east").ok).toBe(false);
  });

  test("queries run MongoDB filters over the snapshot", () => {
    const ids = (r: ReturnType<NonNullable<typeof clients.clusters>["query"]>) =>
      r.ok ? (r.data as { id: string }[]).map((d) => d.id) : r.error;
    expect(ids(clients.clusters!.query({ "gpus.count": { $gt: 5 } }))).toEqual(["cluster-east"]);
    expect(ids(clients.clusters!.query({ tags: { $in: ["vision"] }, regionId: /^us-west/ }))).toEqual([
      CLUSTER.id,
    ]);
    expect(ids(clients.metrics!.query({ query: { "cluster.gpu.totalFreeMem": { $gte: 30000 } } }))).toEqual([
      CLUSTER.id,
    ]);
    const bad = clients.clusters!.query({ "gpus.count": { $frobnicate: 1 } });
    expect(bad.ok).toBe(false);
    expect(clients.clusters!.query([1, 2]).ok).toBe(false);
  });

  test("a policy calls them through aios_cluster_query and gets the answer as JSON", async () => {
    // Outputs what aios_cluster_query answers for a fixed filter held in its data segment.
    const filter = JSON.stringify({ regionId: "us-east-1" });
    const wat = `(module
      (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
      (import "extism:host/env" "store_u8" (func $store_u8 (param i64 i32)))
      (import "extism:host/env" "length" (func $length (param i64) (result i64)))
      (import "extism:host/env" "output_set" (func $output_set (param i64 i64)))
      (import "extism:host/user" "aios_cluster_query" (func $query (param i64) (result i64)))
      (memory (export "memory") 1)
      (data (i32.const 0) ${JSON.stringify(filter)})
      (func (export "eval") (result i32) (local $off i64) (local $i i32) (local $r i64)
        (local.set $off (call $alloc (i64.const ${filter.length})))
        (block $done (loop $next
          (br_if $done (i32.ge_u (local.get $i) (i32.const ${filter.length})))
          (call $store_u8 (i64.add (local.get $off) (i64.extend_i32_u (local.get $i))) (i32.load8_u (local.get $i)))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br $next)))
        (local.set $r (call $query (local.get $off)))
        (call $output_set (local.get $r) (call $length (local.get $r)))
        (i32.const 0)))`;
    const admitted = admitPolicyModule(await compileWat(wat));
    const policy = await compilePolicy(admitted.instrumented, { uri: "test.query:v1", kind: "eventHandler" });
    const instance = await instantiatePolicy(policy);
    const event = { block_id: "b", event_name: "e", event_data: {} };
    // Without providers the host says so; with the snapshot for this call, the policy sees it.
    expect(await instance.eval(event)).toEqual({
      ok: false,
      error: "the cluster client is not available to policies of this service",
    } as never);
    const out = (await instance.eval(event, { host: clients })) as { ok: boolean; data: { id: string }[] };
    expect(out.ok).toBe(true);
    expect(out.data.map((d) => d.id)).toEqual(["cluster-east"]);
  });
});
