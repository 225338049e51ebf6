/**
 * Placement policies: the cluster allocator (highest-score), the block resource allocator
 * (gpu-free-memory: allocation, scale, reassignment, dry_run) and the allocator server's policy
 * (most-free-gpu), which share their placement rules (wasm-policies/sdk/placement.ts).
 */
import { afterEach, beforeAll, describe, expect, test } from "bun:test";
import { ensureBuilt, openPolicy, type PolicyHandle } from "../../wasm-policies/harness.ts";
import { gpuNode } from "../policy/samples.ts";

/** The specification's sample cluster shape: node-1 with two GPUs, node-2 with one, node-3 CPU only. */
const CLUSTER = {
  id: "cluster-west-vision-001",
  nodes: { count: 3, nodeData: [gpuNode("node-1", 2), gpuNode("node-2", 1), gpuNode("node-3", 0)] },
};

const METRICS = {
  nodes: {
    "node-1": {
      status: "healthy",
      vcpu: { load_15m: 1 },
      memory: { total: 131072, free: 90000 },
      gpus: [
        { id: "0", memory_total: 16384, memory_free: 2000, utilization: 0.9 },
        { id: "1", memory_total: 16384, memory_free: 15000, utilization: 0.1 },
      ],
    },
    "node-2": {
      status: "healthy",
      vcpu: { load_15m: 3 },
      memory: { total: 131072, free: 60000 },
      gpus: [{ id: "0", memory_total: 16384, memory_free: 12000, utilization: 0.3 }],
    },
    "node-3": { status: "healthy", memory: { total: 65536, free: 100000 } },
  },
};

const BLOCK = { id: "detector-yolo-88", minInstances: 1, maxInstances: 3 };
const SAMPLE_PARAMS = { gpus: 1, max_gpu_utilization: 0.8, min_gpu_free_memory: 5000 };
const HEALTHY = ["node-1", "node-2", "node-3"];

const open: PolicyHandle[] = [];
const start = async (name: string, settings: Record<string, unknown> = {}) => {
  const p = await openPolicy(name);
  open.push(p);
  await p.init({ settings });
  return p;
};

const payload = (extra: Record<string, unknown> = {}) => ({
  block: BLOCK,
  cluster: CLUSTER,
  cluster_metrics: METRICS,
  healthy_nodes: HEALTHY,
  ...extra,
});

beforeAll(() => ensureBuilt(), 180_000);
afterEach(async () => {
  for (const p of open.splice(0)) await p.close();
});

describe("highest-score (cluster allocator)", () => {
  const clusters = [{ id: "c1" }, { id: "c2" }, { id: "c3" }, { id: "c4" }];

  test("selection keeps the filtered clusters, the first max_candidates of them", async () => {
    const all = await start("highest-score");
    expect(await all.eval({ action: "selection", filter_result: clusters })).toEqual({ clusters });
    const three = await start("highest-score", { max_candidates: 3 });
    expect(await three.eval({ action: "selection", filter_result: clusters })).toEqual({
      clusters: clusters.slice(0, 3),
    });
  });

  test("an empty filter result is the specification's error", async () => {
    const p = await start("highest-score");
    await expect(p.eval({ action: "selection", filter_result: [] })).rejects.toThrow(
      "no results found in the filter",
    );
  });

  test("post_dry_run returns the highest-scoring entry as is, the first among equals", async () => {
    const p = await start("highest-score");
    const entries = [
      { cluster_id: "c1", score_data: { score: 0.4, node_info: { node_id: "n1", gpus: ["0"] } } },
      {
        cluster_id: "c2",
        score_data: { score: 0.9, node_info: { node_id: "n7", gpus: ["1", "2"] } },
        extra: { a: 1 },
      },
      { cluster_id: "c3", score_data: { score: 0.9, node_info: { node_id: "n2", gpus: [] } } },
    ];
    expect(await p.eval({ action: "post_dry_run", clusters: entries })).toEqual(entries[1] as object);
  });

  test("post_dry_run with every score 0 is an error; unknown actions too", async () => {
    const p = await start("highest-score");
    const zero = [{ cluster_id: "c1", score_data: { score: 0, node_info: null } }];
    await expect(p.eval({ action: "post_dry_run", clusters: zero })).rejects.toThrow(
      "every dry-run score is 0",
    );
    await expect(p.eval({ action: "rank" })).rejects.toThrow("unknown action 'rank'");
  });
});

describe("gpu-free-memory (resource allocator)", () => {
  test("allocation: the GPU with the most free memory among those that qualify", async () => {
    const p = await start("gpu-free-memory", { selection_mode: "greedy" });
    // node-1 GPU 0 is too busy and too full; node-1 GPU 1 has 15000 MB free.
    expect(await p.eval({ action: "allocation", payload: payload() }, SAMPLE_PARAMS)).toEqual({
      node_id: "node-1",
      gpus: ["1"],
    });
  });

  test("GPU filters: free memory and utilization", async () => {
    const p = await start("gpu-free-memory");
    const allocate = (params: Record<string, unknown>, metrics: unknown = METRICS) =>
      p.eval({ action: "allocation", payload: payload({ cluster_metrics: metrics }) }, params);
    expect(await allocate({ gpus: 1, min_gpu_free_memory: 13000 })).toEqual({
      node_id: "node-1",
      gpus: ["1"],
    });
    await expect(allocate({ gpus: 1, min_gpu_free_memory: 15001 })).rejects.toThrow("at least 15001 MB free");
    await expect(allocate({ gpus: 1, max_gpu_utilization: 0.05 })).rejects.toThrow(
      "utilization at most 0.05",
    );
    // The freest GPU is busy: the next one that qualifies wins.
    const busy = structuredClone(METRICS);
    busy.nodes["node-1"].gpus[1] = { id: "1", memory_total: 16384, memory_free: 15000, utilization: 0.85 };
    expect(await allocate(SAMPLE_PARAMS, busy)).toEqual({ node_id: "node-2", gpus: ["0"] });
    // Utilization given as a percentage is read as one.
    expect(await allocate({ gpus: 1, max_gpu_utilization: 20 })).toEqual({ node_id: "node-1", gpus: ["1"] });
  });

  test("only healthy nodes are candidates", async () => {
    const p = await start("gpu-free-memory");
    expect(
      await p.eval(
        { action: "allocation", payload: payload({ healthy_nodes: ["node-2", "node-3"] }) },
        SAMPLE_PARAMS,
      ),
    ).toEqual({
      node_id: "node-2",
      gpus: ["0"],
    });
  });

  test("no fit: an error naming the requirement", async () => {
    const p = await start("gpu-free-memory");
    const err = p.eval({ action: "scale", payload: payload() }, { gpus: 2, min_gpu_free_memory: 5000 });
    await expect(err).rejects.toThrow(
      "no node satisfies the requirement of 2 GPU(s) with at least 5000 MB free (3 healthy node(s) of 3 considered; the best, node-1, has 1 qualifying GPU(s))",
    );
  });

  test("several GPUs per instance; CPU-only instances go to the node with the most free memory", async () => {
    const p = await start("gpu-free-memory");
    expect(await p.eval({ action: "allocation", payload: payload() }, { gpus: 2 })).toEqual({
      node_id: "node-1",
      gpus: ["1", "0"],
    });
    expect(await p.eval({ action: "allocation", payload: payload() }, { gpus: 0 })).toEqual({
      node_id: "node-3",
      gpus: [],
    });
  });

  test("nodes and GPUs without metrics count as free, sized from the cluster document", async () => {
    const p = await start("gpu-free-memory");
    const answer = await p.eval(
      { action: "allocation", payload: payload({ cluster_metrics: null }) },
      { gpus: 1, min_gpu_free_memory: 16000 },
    );
    expect(answer).toEqual({ node_id: "node-1", gpus: ["0"] });
  });

  test("spread prefers nodes holding fewer of the block's instances", async () => {
    const block = {
      ...BLOCK,
      instances: [
        { instance_id: "instance-0", node_id: "node-1", gpus: ["1"] },
        { instance_id: "instance-1", node_id: "node-1", gpus: ["0"] },
      ],
    };
    const greedy = await start("gpu-free-memory", { selection_mode: "greedy" });
    const spread = await start("gpu-free-memory", { selection_mode: "spread" });
    const params = { gpus: 1, min_gpu_free_memory: 1000 };
    expect(await greedy.eval({ action: "scale", payload: payload({ block }) }, params)).toEqual({
      node_id: "node-1",
      gpus: ["1"],
    });
    expect(await spread.eval({ action: "scale", payload: payload({ block }) }, params)).toEqual({
      node_id: "node-2",
      gpus: ["0"],
    });
  });

  test("reassignment avoids the instance's current node when another fits", async () => {
    const p = await start("gpu-free-memory");
    const block = { ...BLOCK, instances: [{ instance_id: "instance-0", node_id: "node-1", gpus: ["1"] }] };
    const move = (healthy: string[]) =>
      p.eval(
        {
          action: "reassignment",
          payload: payload({ block, healthy_nodes: healthy, instance_id: "instance-0", pod_name: "pod-0" }),
        },
        SAMPLE_PARAMS,
      );
    expect(await move(HEALTHY)).toEqual({ node_id: "node-2", gpus: ["0"] });
    // Nowhere else fits: the current node is better than nothing.
    expect(await move(["node-1", "node-3"])).toEqual({ node_id: "node-1", gpus: ["1"] });
  });

  test("dry_run scores maxInstances simulated placements, consuming GPU memory", async () => {
    const p = await start("gpu-free-memory");
    // 5000 MB each: node-1 GPU 1 (15000) takes 3, node-2 (12000) takes 2 -> 3 of 3.
    const full = await p.eval({ action: "dry_run", payload: payload() }, SAMPLE_PARAMS);
    expect(full).toEqual({
      selection_score_data: { score: 1, node_info: { node_id: "node-1", gpus: ["1"] } },
    });
    // 8000 MB each with maxInstances 4: node-1 GPU 1 takes 1, node-2 takes 1 -> 2 of 4.
    const half = await p.eval(
      { action: "dry_run", payload: payload({ block: { ...BLOCK, maxInstances: 4 } }) },
      { ...SAMPLE_PARAMS, gpu_memory_per_instance: 8000 },
    );
    expect(half.selection_score_data.score).toBe(0.5);
    // Nothing fits: score 0 and no node.
    const none = await p.eval({ action: "dry_run", payload: payload() }, { gpus: 4 });
    expect(none).toEqual({ selection_score_data: { score: 0, node_info: null } });
  });

  test("unknown actions and payloads are errors", async () => {
    const p = await start("gpu-free-memory");
    await expect(p.eval({ action: "assignment", payload: payload() })).rejects.toThrow(
      "unknown action 'assignment'",
    );
    await expect(p.eval({ action: "allocation" })).rejects.toThrow("payload must be an object");
  });
});

describe("most-free-gpu (allocator server)", () => {
  const other = {
    id: "cluster-east",
    nodes: { count: 1, nodeData: [gpuNode("east-1", 1, 40960)] },
  };
  const otherMetrics = {
    nodes: {
      "east-1": {
        status: "healthy",
        gpus: [{ id: "0", memory_total: 40960, memory_free: 30000, utilization: 0.2 }],
      },
    },
  };
  const input = (inputs: Record<string, unknown>) => ({
    cluster_data: {
      "cluster-west": { data: CLUSTER, cluster_metrics: METRICS },
      "cluster-east": { data: other, cluster_metrics: otherMetrics },
    },
    inputs,
  });

  test("picks the cluster and node with the most free GPU memory that fits", async () => {
    const p = await start("most-free-gpu");
    expect(await p.eval(input({ gpus: 1, min_gpu_free_memory: 5000 }))).toEqual({
      cluster_id: "cluster-east",
      node_id: "east-1",
      gpus: ["0"],
    });
    // Two GPUs: only cluster-west's node-1 has two.
    expect(await p.eval(input({ gpus: 2 }))).toEqual({
      cluster_id: "cluster-west",
      node_id: "node-1",
      gpus: ["1", "0"],
    });
  });

  test("gpus 0: the node with the most free memory; unhealthy nodes are skipped", async () => {
    const p = await start("most-free-gpu");
    // east-1 reports no memory: free as the cluster document's 131072 MB.
    expect(await p.eval(input({ gpus: 0 }))).toEqual({
      cluster_id: "cluster-east",
      node_id: "east-1",
      gpus: [],
    });
    const down = input({ gpus: 0 });
    down.cluster_data["cluster-east"].cluster_metrics = {
      nodes: { "east-1": { ...otherMetrics.nodes["east-1"], status: "unhealthy" } },
    };
    expect(await p.eval(down)).toEqual({ cluster_id: "cluster-west", node_id: "node-3", gpus: [] });
  });

  test("parameters give defaults that inputs override", async () => {
    const p = await start("most-free-gpu");
    expect(await p.eval(input({}), { gpus: 2 })).toEqual({
      cluster_id: "cluster-west",
      node_id: "node-1",
      gpus: ["1", "0"],
    });
    expect(await p.eval(input({ gpus: 1 }), { gpus: 2 })).toEqual({
      cluster_id: "cluster-east",
      node_id: "east-1",
      gpus: ["0"],
    });
  });

  test("nothing fits: an error naming the requirement", async () => {
    const p = await start("most-free-gpu");
    await expect(p.eval(input({ gpus: 1, min_gpu_free_memory: 35000 }))).rejects.toThrow(
      "no node satisfies the requirement of 1 GPU(s) with at least 35000 MB free",
    );
    await expect(p.eval({ inputs: {} })).rejects.toThrow("cluster_data must be an object");
  });
});
