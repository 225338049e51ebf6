/**
 * Inputs shaped as the specification writes them, one per policy kind (and per action), for the
 * contract tests that run every built-in policy through the real runtime.
 */
import type { PolicyKindName } from "../../src/policy/kinds/index.ts";

/** A node of the cluster document with `gpus` A100s (ids "0", "1", ... by index). */
export const gpuNode = (id: string, gpus: number, gpuMemory = 16384) => ({
  id,
  gpus: {
    count: gpus,
    memory: gpus * gpuMemory,
    gpus: Array.from({ length: gpus }, () => ({ modelName: "NVIDIA A100", memory: gpuMemory })),
  },
  vcpus: { count: 32 },
  memory: 131072,
});

export const CLUSTER = {
  id: "cluster-west-vision-001",
  regionId: "us-west-2",
  status: "live",
  nodes: { count: 2, nodeData: [gpuNode("node-1", 2), gpuNode("node-2", 1)] },
  gpus: { count: 3, memory: 49152 },
  tags: ["gpu", "vision"],
};

export const CLUSTER_METRICS = {
  id: CLUSTER.id,
  cluster: { vcpu: { load_15m: 2 }, gpu: { totalFreeMem: 30000 } },
  nodes: {
    "node-1": {
      vcpu: { load_15m: 1 },
      memory: { total: 131072, free: 90000 },
      gpus: [
        { id: "0", memory_total: 16384, memory_free: 2000, utilization: 0.9 },
        { id: "1", memory_total: 16384, memory_free: 15000, utilization: 0.1 },
      ],
    },
    "node-2": {
      vcpu: { load_15m: 3 },
      memory: { total: 131072, free: 60000 },
      gpus: [{ id: "0", memory_total: 16384, memory_free: 12000, utilization: 0.3 }],
    },
  },
};

export const BLOCK = {
  id: "detector-yolo-88",
  blockComponentURI: "model.object-detector:2.0.0-stable",
  minInstances: 1,
  maxInstances: 3,
  instances: [{ instance_id: "instance-0", node_id: "node-1", gpus: ["1"] }],
};

const instances = ["instance-0", "instance-1", "instance-2"];

const allocation = (action: string, extra: Record<string, unknown> = {}) => ({
  action,
  payload: {
    block: BLOCK,
    cluster: CLUSTER,
    cluster_metrics: CLUSTER_METRICS,
    healthy_nodes: ["node-1", "node-2"],
    ...extra,
  },
});

/** Per kind: input_data samples, and the parameters the sample spec gives such a policy. */
export const SAMPLES: Record<PolicyKindName, { inputs: unknown[]; parameters?: Record<string, unknown> }> = {
  loadBalancer: {
    inputs: [
      {
        packet: { session_id: "session-1", seq_no: 1, data: '{"image":"a.jpg"}', ts: 1700000000 },
        instances,
      },
    ],
    parameters: { cache_sessions: true },
  },
  autoscaler: {
    inputs: [{ block_data: BLOCK, cluster_data: CLUSTER, instances }],
    parameters: { target_cpu_utilization: 0.7 },
  },
  stabilityChecker: {
    inputs: [{ health_check_data: { "instance-0": true, "instance-1": false }, instances }],
    parameters: { unhealthy_threshold: 3 },
  },
  clusterAllocator: {
    inputs: [
      { action: "selection", filter_result: [CLUSTER, { ...CLUSTER, id: "cluster-2" }] },
      {
        action: "post_dry_run",
        clusters: [
          { cluster_id: "cluster-2", score_data: { score: 0.4, node_info: { node_id: "n-9", gpus: ["0"] } } },
          {
            cluster_id: CLUSTER.id,
            score_data: { score: 0.9, node_info: { node_id: "node-1", gpus: ["1"] } },
          },
        ],
      },
    ],
  },
  resourceAllocator: {
    inputs: [
      allocation("dry_run"),
      allocation("allocation"),
      allocation("scale", { block_metrics: {} }),
      allocation("reassignment", { block_metrics: {}, instance_id: "instance-0", pod_name: "instance-0" }),
    ],
    parameters: { gpus: 1, max_gpu_utilization: 0.8, min_gpu_free_memory: 5000 },
  },
  clusterStabilityChecker: {
    inputs: [
      {
        cluster_data: CLUSTER,
        nodes_data: [
          { node_id: "node-1", status: "healthy", cpu_utilization_percent: 35 },
          { node_id: "node-2", status: "unhealthy", cpu_utilization_percent: 25 },
        ],
      },
    ],
  },
  preCheck: {
    inputs: [{ block_id: BLOCK.id, instances_count: 2 }],
    parameters: { max_instances: 4 },
  },
  eventHandler: {
    inputs: [{ block_id: BLOCK.id, event_name: "block_started", event_data: { step: 1 } }],
  },
  allocatorServer: {
    inputs: [
      {
        cluster_data: { [CLUSTER.id]: { data: CLUSTER, cluster_metrics: CLUSTER_METRICS } },
        inputs: { gpus: 1, min_gpu_free_memory: 5000 },
      },
    ],
  },
};
