/**
 * Valid request bodies of every JSON route, from the specification and the README, keyed by
 * "METHOD /path" as Hono lists the route: what the mutating generators start from, so most fuzzed
 * bodies are well-formed JSON of the right shape with one to three fields wrong.
 */
import { SAMPLE_BLOCK_SPEC } from "../support/spec-samples.ts";
import { BLOCK_ID, NODE_ID } from "./env.ts";

export const COMPONENT_URI = "model.fuzz:1.0.0";

export const CLUSTER_SAMPLE = {
  id: "c-sample",
  regionId: "us-west-2",
  status: "live",
  nodes: {
    count: 1,
    nodeData: [
      { id: "node-1", gpus: { count: 2, memory: 32768, gpus: [{ modelName: "A100", memory: 16384 }] } },
    ],
  },
  gpus: { count: 2, memory: 32768, features: ["fp16"] },
  vcpus: { count: 32 },
  memory: 131072,
  storage: { disks: 1, size: 1000 },
  network: { interfaces: 1, txBandwidth: 10, rxBandwidth: 10 },
  config: { publicHostname: "c.example", useGateway: true, urlMap: {}, actionsPolicyMap: {} },
  tags: ["gpu", "production"],
  clusterMetadata: { name: "Sample", countries: ["USA"], additionalInfo: {} },
  reputation: 90,
};

export const COMPONENT_SAMPLE = {
  componentURI: "model.object-detector:2.0.0-stable",
  componentInitData: { weights: "w.pt" },
  componentInitSettings: { batch: 1 },
  componentParameters: { threshold: 0.5 },
  componentMetadata: { name: "detector" },
  tags: ["vision"],
  runtime: { command: ["bun", "instance.ts"] },
};

export const UPDATE_SAMPLES = [
  { $set: { status: "draining", "gpus.count": 4, tags: ["a"] } },
  { $unset: { status: "" } },
  { $inc: { reputation: 1, "nodes.count": 1 } },
  { $push: { tags: "new", "nodes.nodeData": { id: "node-2" } } },
  { $addToSet: { tags: { $each: ["x", "y"] } } },
  { $pull: { tags: "gpu" } },
  { $min: { reputation: 10 }, $max: { memory: 1 } },
  { $rename: { status: "state" } },
  { $mul: { memory: 2 } },
  { $currentDate: { updated: true } },
];

export const QUERY_BODY_SAMPLES = [
  { query: { "gpus.count": { $gt: 1 } }, options: { sort: { id: 1 }, limit: 2, skip: 0 } },
  { query: { tags: { $in: ["gpu"] }, status: "live" }, options: { projection: { id: 1, tags: 1 } } },
  { query: { $or: [{ reputation: { $gte: 50 } }, { "nodes.count": { $exists: true } }] } },
  { query: { id: { $regex: "^c-", $options: "i" } } },
  { query: { tags: { $all: ["gpu"], $size: 2 } }, options: { sort: { reputation: -1 } } },
  { query: { "nodes.nodeData": { $elemMatch: { id: "node-1" } } } },
  { query: { $nor: [{ status: { $ne: "live" } }], reputation: { $type: "number" } } },
  {},
];

export const BLOCK_EVENT_SAMPLE = {
  block_id: BLOCK_ID,
  instance_id: "fuzz-instance-1",
  event_name: "task_done",
  event_data: { seq_no: 1 },
  ts: 1_700_000_000_000,
};

export const EXECUTE_ACTION_SAMPLES = [
  {
    action: "create_block",
    data: {
      id: "fz-new",
      minInstances: 1,
      maxInstances: 3,
      runtime: { command: ["bun", "instance.ts"] },
      policies: { loadBalancer: { policyRuleURI: "policy.loadBalancer.roundrobin:v0.0.1" } },
    },
  },
  { action: "scale", data: { block_id: BLOCK_ID, operation: "upscale", instances_count: 1 } },
  { action: "scale", data: { block_id: BLOCK_ID, operation: "downscale", instances_list: ["x-1"] } },
  { action: "remove_instance", data: { block_id: BLOCK_ID, instance_id: "x-1", replace: true } },
  { action: "reassign_instances", data: { block_id: BLOCK_ID, instance_ids: ["x-1"] } },
  { action: "parameter_update", data: { block_id: BLOCK_ID, parameters: { threshold: 0.4 } } },
  { action: "remove_block", data: { block_id: "fz-none" } },
  { action: "dry_run", data: { block: { id: "demo", minInstances: 1 } } },
  { action: "init_create_status_update", data: { block_id: BLOCK_ID, status: "ready", data: {} } },
  { action: "query_init_container_data", data: { block_id: BLOCK_ID } },
];

export const VDAG_SAMPLES = [
  {
    action: "create_controller",
    payload: {
      vdag_controller_id: "v1",
      vdag_uri: "vdag:1",
      config: { replicas: 1, runtime: { command: ["x"] } },
      search_tags: ["a"],
    },
  },
  { action: "scale_controller", payload: { vdag_controller_id: "v1", replicas: 2 } },
  { action: "remove_controller", payload: { vdag_controller_id: "v1" } },
  { action: "list_controllers" },
];

export const TASK_SAMPLE = {
  session_id: "s-1",
  seq_no: 1,
  data: { text: "hello" },
  ts: 1_700_000_000.5,
  output_ptr: "",
  frame_ptr: "AAEC",
  files: [{ metadata: '{"type":"text"}', file_data: "YWJj" }],
};

const BLOCK_SPEC_SAMPLES = [
  SAMPLE_BLOCK_SPEC,
  {
    head: { templateUri: "Parser/V1", parameters: {} },
    body: { spec: { values: { blockComponentURI: COMPONENT_URI, minInstances: 1, maxInstances: 2 } } },
  },
];

const MGMT_SAMPLES = [
  { mgmt_action: "get_instances", mgmt_data: {} },
  { mgmt_action: "policy_info" },
  { mgmt_action: "run_now", mgmt_data: {} },
  { mgmt_action: "custom_action", mgmt_data: { x: 1 } },
];

/** Request body samples by service name and "METHOD /path". */
export const BODY_SAMPLES: Record<string, Record<string, unknown[]>> = {
  registry: {
    "POST /clusters": [CLUSTER_SAMPLE],
    "PUT /clusters/:id": [CLUSTER_SAMPLE],
    "PATCH /clusters/:id": UPDATE_SAMPLES,
    "POST /clusters/query": QUERY_BODY_SAMPLES,
    "POST /components": [COMPONENT_SAMPLE],
    "PUT /components/:id": [COMPONENT_SAMPLE],
    "PATCH /components/:id": UPDATE_SAMPLES,
    "POST /components/query": QUERY_BODY_SAMPLES,
    "POST /cluster/query": QUERY_BODY_SAMPLES,
    "PUT /cluster/:id": [{ id: "c-1", vcpu: { load_15m: 1.5 }, gpu: { totalFreeMem: 9000 } }],
  },
  "global metrics": {
    "POST /cluster/query": QUERY_BODY_SAMPLES,
    "PUT /cluster/:id": [{ vcpu: { load_15m: 1.5 }, nodes: { n1: { status: "healthy" } } }],
  },
  controller: {
    "POST /executeAction": EXECUTE_ACTION_SAMPLES,
    "POST /vdag-controller": VDAG_SAMPLES,
    "POST /cluster-actions/add-node": [{ id: "node-new", gpus: { count: 1 }, memory: 10 }],
    "PATCH /cluster-actions/update-cluster": UPDATE_SAMPLES,
    "POST /blocks/query": QUERY_BODY_SAMPLES,
    "PUT /block/update/:id": UPDATE_SAMPLES,
    "PUT /nodes_status/:id": [{ status: "healthy" }, { status: "unhealthy" }, { status: null }],
    "POST /mgmt": [
      { block_id: BLOCK_ID, service: "executor", mgmt_action: "get_instances", mgmt_data: {} },
      { block_id: BLOCK_ID, service: "instances", mgmt_action: "get_parameters" },
      { service: "stability_checker", mgmt_action: "get_last_result" },
    ],
    "POST /events": [BLOCK_EVENT_SAMPLE],
    "ALL /block/:id/*": MGMT_SAMPLES,
  },
  gateway: {
    "POST /api/createBlock": BLOCK_SPEC_SAMPLES,
    "POST /api/blocks/:id/scale": [{ instances: 1 }, { delta: 1 }, { delta: -1 }],
    "POST /api/policies": [{}],
  },
  "block executor mgmt": { "POST /mgmt": MGMT_SAMPLES },
  "block auto-scaler mgmt": { "POST /mgmt": MGMT_SAMPLES },
  "block health-checker mgmt": { "POST /mgmt": MGMT_SAMPLES },
  "block mapper": {
    "PUT /instances": [
      { instances: [{ id: "i-1", url: "http://127.0.0.1:1" }] },
      [{ instance_id: "i-2", url: "https://h:8000" }],
      { data: { instances: [] } },
    ],
    "POST /instances": [{ id: "i-1", url: "http://127.0.0.1:1" }],
  },
  instance: {
    "POST /task": [TASK_SAMPLE, { ...TASK_SAMPLE, data: { refuse: true } }],
    "POST /mgmt": [
      { mgmt_action: "get_parameters" },
      { mgmt_action: "parameter_update", mgmt_data: { threshold: 0.3 } },
      { mgmt_action: "refuse", mgmt_data: {} },
      { mgmt_action: "custom", mgmt_data: [1, 2] },
    ],
  },
};

/** Path segments that name something that exists in each service, so fuzzing reaches past the 404. */
export const KNOWN_SEGMENTS: Record<string, string[]> = {
  registry: [
    "c-1",
    COMPONENT_URI,
    encodeURIComponent(COMPONENT_URI),
    "policy.loadBalancer.roundrobin:v0.0.1",
  ],
  "global metrics": ["c-1"],
  controller: [BLOCK_ID, NODE_ID, "fuzz-instance-1"],
  gateway: [BLOCK_ID, "uPlot.min.css", "app.js"],
  "block mapper": ["fuzz-instance-1", "i-1"],
};
