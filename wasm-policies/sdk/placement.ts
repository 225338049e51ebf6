/**
 * GPU placement shared by the resource allocator and the allocator server's policy: the cluster
 * document's nodes and GPUs joined with a cluster metrics document, filtered by a requirement, and a
 * choice of node and GPUs.
 *
 * Cluster document (cluster registry): `nodes.nodeData[]` with `id`, `gpus: {count, memory,
 * gpus: [{modelName, memory}]}` (a GPU's id is its index as a string), `vcpus.count`, `memory` (MB).
 *
 * Cluster metrics document:
 *   {"nodes": {"<node_id>": {"status"?, "vcpu": {"load_15m"}, "memory": {"total", "free"},
 *                            "gpus": [{"id": "0", "memory_total", "memory_free", "utilization"}]}}}
 * (`nodes` may also be an array of such entries with `node_id`). Memory is in MB, utilization 0..1
 * (values above 1 are read as percentages). A node or GPU without metrics counts as free: its memory
 * is the cluster document's.
 */
import * as JSON from "./json";

export class Gpu {
  /** Instances of the block already on this GPU (counted for "spread"). */
  assigned: i32 = 0;

  constructor(
    public id: string,
    public modelName: string,
    public memoryTotal: f64,
    public memoryFree: f64,
    public utilization: f64,
  ) {}
}

export class Node {
  /** Instances of the block already on this node (counted for "spread"). */
  assigned: i32 = 0;
  /** Whether the node may receive instances (healthy_nodes, or its metrics status). */
  candidate: boolean = true;

  constructor(
    public id: string,
    public status: string,
    public vcpus: f64,
    public load15m: f64,
    public memoryTotal: f64,
    public memoryFree: f64,
    public gpus: Array<Gpu>,
  ) {}
}

/** What one instance needs. */
export class Requirement {
  /** GPUs per instance; 0 places on CPU only. */
  gpus: i32 = 0;
  /** A GPU qualifies with at least this much free memory (MB). */
  minGpuFreeMemory: f64 = 0;
  /** A GPU qualifies with at most this utilization (0..1). */
  maxGpuUtilization: f64 = 1;
  /** Memory an instance takes on each of its GPUs (MB), consumed when placements are simulated. */
  gpuMemoryPerInstance: f64 = 0;

  /** The free memory a GPU needs to qualify. */
  get neededGpuMemory(): f64 {
    return Math.max(this.minGpuFreeMemory, this.gpuMemoryPerInstance);
  }

  /** Reads `gpus`, `min_gpu_free_memory`, `max_gpu_utilization`, `gpu_memory_per_instance`. */
  static from(params: JSON.Value): Requirement {
    const r = new Requirement();
    r.overlay(params);
    return r;
  }

  /** Overrides the fields present in `params` (e.g. a request's inputs over policy parameters). */
  overlay(params: JSON.Value): Requirement {
    if (params.get("gpus").isNumber) this.gpus = max(0, params.getInt("gpus"));
    if (params.get("min_gpu_free_memory").isNumber) {
      this.minGpuFreeMemory = Math.max(0, params.getNumber("min_gpu_free_memory"));
      // Unless told otherwise an instance is assumed to use the memory it asks to find free.
      if (!params.has("gpu_memory_per_instance")) this.gpuMemoryPerInstance = this.minGpuFreeMemory;
    }
    if (params.get("max_gpu_utilization").isNumber) {
      this.maxGpuUtilization = normalizeUtilization(params.getNumber("max_gpu_utilization"));
    }
    if (params.get("gpu_memory_per_instance").isNumber) {
      this.gpuMemoryPerInstance = Math.max(0, params.getNumber("gpu_memory_per_instance"));
    }
    return this;
  }

  describe(): string {
    if (this.gpus == 0) return "a healthy node (CPU only)";
    let s = this.gpus.toString() + " GPU(s) with at least " + formatNumber(this.neededGpuMemory) + " MB free";
    if (this.maxGpuUtilization < 1) s += " and utilization at most " + formatNumber(this.maxGpuUtilization);
    return s;
  }
}

export const enum Mode {
  /** Take the GPUs (and node) with the most free memory. */
  Greedy = 0,
  /** Prefer nodes and GPUs holding fewer of the block's instances, then the most free memory. */
  Spread = 1,
}

export function parseMode(s: string): Mode {
  return s == "spread" ? Mode.Spread : Mode.Greedy;
}

export class Placement {
  constructor(
    public node: Node,
    public gpus: Array<Gpu>,
  ) {}

  gpuIds(): Array<string> {
    const ids = new Array<string>(this.gpus.length);
    for (let i = 0; i < this.gpus.length; i++) unchecked((ids[i] = unchecked(this.gpus[i]).id));
    return ids;
  }

  /** `{"node_id", "gpus": [...]}` as the specification's allocators answer. */
  toJson(): JSON.Value {
    return JSON.obj().setString("node_id", this.node.id).set("gpus", JSON.strings(this.gpuIds()));
  }
}

// ---- reading documents ----------------------------------------------------------------------------

export function normalizeUtilization(u: f64): f64 {
  if (!isFinite(u) || u < 0) return 0;
  return u > 1 ? u / 100 : u;
}

/** Statuses that mean a node is up; anything else (or nothing, unless `missingIsHealthy`) is not. */
export function isHealthyStatus(status: string, missingIsHealthy: boolean): boolean {
  if (status.length == 0) return missingIsHealthy;
  const s = status.toLowerCase();
  return (
    s == "healthy" ||
    s == "ready" ||
    s == "live" ||
    s == "active" ||
    s == "online" ||
    s == "up" ||
    s == "ok" ||
    s == "running"
  );
}

/** The metrics entry of `nodeId`, or JSON null. */
function nodeMetrics(metrics: JSON.Value, nodeId: string): JSON.Value {
  const nodes = metrics.get("nodes");
  if (nodes.isObject) return nodes.get(nodeId);
  if (nodes.isArray) {
    for (let i = 0; i < nodes.length; i++) {
      const entry = nodes.at(i);
      if (entry.getString("node_id", entry.getString("id")) == nodeId) return entry;
    }
  }
  return JSON.nul();
}

/** The metrics of GPU `id` (at `index` in the document) among a node's GPU metrics, or JSON null. */
function gpuMetrics(list: JSON.Value, id: string, index: i32): JSON.Value {
  for (let i = 0; i < list.length; i++) {
    const entry = list.at(i);
    const gid = entry.get("id");
    if ((gid.isString && gid.asString() == id) || (gid.isNumber && gid.asInt() == index)) return entry;
  }
  // Entries without ids are taken in order.
  const byIndex = list.at(index);
  return byIndex.isObject && !byIndex.has("id") ? byIndex : JSON.nul();
}

/** The nodes of a cluster document joined with its metrics (JSON null when there are none). */
export function readNodes(cluster: JSON.Value, metrics: JSON.Value): Array<Node> {
  const out = new Array<Node>();
  const nodeData = cluster.get("nodes").get("nodeData");
  for (let i = 0; i < nodeData.length; i++) {
    const doc = nodeData.at(i);
    const id = doc.getString("id", doc.getString("node_id"));
    if (id.length == 0) continue;
    const m = nodeMetrics(metrics, id);
    const memoryTotal = m.get("memory").getNumber("total", doc.getNumber("memory", 0));
    const memoryFree = m.get("memory").getNumber("free", memoryTotal);
    const gpuDocs = doc.get("gpus").get("gpus");
    const gpuCount = max(gpuDocs.length, doc.get("gpus").getInt("count", 0));
    const perGpuDefault = gpuCount > 0 ? doc.get("gpus").getNumber("memory", 0) / <f64>gpuCount : 0;
    const gpuList = m.get("gpus");
    const gpus = new Array<Gpu>();
    for (let g = 0; g < gpuCount; g++) {
      const gdoc = gpuDocs.at(g);
      const gid = g.toString();
      const gm = gpuMetrics(gpuList, gid, g);
      const total = gm.getNumber("memory_total", gdoc.getNumber("memory", perGpuDefault));
      gpus.push(
        new Gpu(
          gid,
          gdoc.getString("modelName"),
          total,
          gm.getNumber("memory_free", total),
          normalizeUtilization(gm.getNumber("utilization", 0)),
        ),
      );
    }
    out.push(
      new Node(
        id,
        m.getString("status"),
        doc.get("vcpus").getNumber("count", 0),
        m.get("vcpu").getNumber("load_15m", 0),
        memoryTotal,
        memoryFree,
        gpus,
      ),
    );
  }
  return out;
}

/** Marks as candidates only the nodes named in `healthy` (an array of ids). */
export function restrictTo(nodes: Array<Node>, healthy: JSON.Value): void {
  const ids = new Set<string>();
  for (let i = 0; i < healthy.length; i++) ids.add(healthy.at(i).asString());
  for (let i = 0; i < nodes.length; i++) {
    const n = unchecked(nodes[i]);
    n.candidate = ids.has(n.id);
  }
}

/** Marks as candidates only nodes whose metrics status is healthy (or absent). */
export function restrictByStatus(nodes: Array<Node>): void {
  for (let i = 0; i < nodes.length; i++) {
    const n = unchecked(nodes[i]);
    n.candidate = isHealthyStatus(n.status, true);
  }
}

/** Counts the block's existing instances (`block.instances[]` with `node_id`, `gpus`) per node/GPU. */
export function countAssigned(nodes: Array<Node>, instances: JSON.Value, skipInstanceId: string): void {
  for (let i = 0; i < instances.length; i++) {
    const inst = instances.at(i);
    if (skipInstanceId.length > 0 && inst.getString("instance_id") == skipInstanceId) continue;
    const node = findNode(nodes, inst.getString("node_id"));
    if (node == null) continue;
    node.assigned++;
    const gpus = inst.get("gpus");
    for (let g = 0; g < gpus.length; g++) {
      const gv = gpus.at(g);
      const gid = gv.isNumber ? gv.asInt().toString() : gv.asString();
      for (let k = 0; k < node.gpus.length; k++) {
        const gpu = unchecked(node.gpus[k]);
        if (gpu.id == gid) gpu.assigned++;
      }
    }
  }
}

export function findNode(nodes: Array<Node>, id: string): Node | null {
  for (let i = 0; i < nodes.length; i++) if (unchecked(nodes[i]).id == id) return unchecked(nodes[i]);
  return null;
}

// ---- choosing -------------------------------------------------------------------------------------

function gpuQualifies(g: Gpu, req: Requirement): boolean {
  return g.memoryFree >= req.neededGpuMemory && g.utilization <= req.maxGpuUtilization;
}

/** The GPUs of `node` that qualify, best first for `mode`. */
function rankGpus(node: Node, req: Requirement, mode: Mode): Array<Gpu> {
  const list = new Array<Gpu>();
  for (let i = 0; i < node.gpus.length; i++) {
    const g = unchecked(node.gpus[i]);
    if (gpuQualifies(g, req)) list.push(g);
  }
  // Insertion sort: a node has a handful of GPUs, and it keeps equal GPUs in index order.
  for (let i = 1; i < list.length; i++) {
    const g = unchecked(list[i]);
    let j = i - 1;
    while (j >= 0 && gpuBefore(g, unchecked(list[j]), mode)) {
      unchecked((list[j + 1] = list[j]));
      j--;
    }
    unchecked((list[j + 1] = g));
  }
  return list;
}

function gpuBefore(a: Gpu, b: Gpu, mode: Mode): boolean {
  if (mode == Mode.Spread && a.assigned != b.assigned) return a.assigned < b.assigned;
  if (a.memoryFree != b.memoryFree) return a.memoryFree > b.memoryFree;
  return a.utilization < b.utilization;
}

/** A placement on one node with its score (higher is better), or null when the node cannot take it. */
class Candidate {
  constructor(
    public placement: Placement,
    public primary: f64,
    public secondary: f64,
  ) {}
}

function candidateOn(node: Node, req: Requirement, mode: Mode): Candidate | null {
  if (req.gpus == 0) {
    const spreadKey = mode == Mode.Spread ? -<f64>node.assigned : 0;
    return new Candidate(new Placement(node, new Array<Gpu>()), spreadKey, node.memoryFree);
  }
  const ranked = rankGpus(node, req, mode);
  if (ranked.length < req.gpus) return null;
  const chosen = ranked.slice(0, req.gpus);
  let free: f64 = 0;
  for (let i = 0; i < chosen.length; i++) free += unchecked(chosen[i]).memoryFree;
  const spreadKey = mode == Mode.Spread ? -<f64>node.assigned : 0;
  return new Candidate(new Placement(node, chosen), spreadKey, free);
}

/**
 * The best placement of one instance among candidate nodes, or null. `avoidNodeId` (reassignment)
 * is used only when no other node fits.
 */
export function choose(nodes: Array<Node>, req: Requirement, mode: Mode, avoidNodeId: string): Placement | null {
  const first = chooseAmong(nodes, req, mode, avoidNodeId);
  if (first != null || avoidNodeId.length == 0) return first;
  return chooseAmong(nodes, req, mode, "");
}

function chooseAmong(nodes: Array<Node>, req: Requirement, mode: Mode, skipId: string): Placement | null {
  let best: Candidate | null = null;
  for (let i = 0; i < nodes.length; i++) {
    const node = unchecked(nodes[i]);
    if (!node.candidate || (skipId.length > 0 && node.id == skipId)) continue;
    const c = candidateOn(node, req, mode);
    if (c == null) continue;
    // Strictly better only: among equals the first node in document order wins.
    if (
      best == null ||
      c.primary > best.primary ||
      (c.primary == best.primary && c.secondary > best.secondary)
    ) {
      best = c;
    }
  }
  return best != null ? best.placement : null;
}

/** Records a placement in the simulated state: its GPUs lose the instance's memory. */
export function commit(p: Placement, req: Requirement): void {
  p.node.assigned++;
  for (let i = 0; i < p.gpus.length; i++) {
    const g = unchecked(p.gpus[i]);
    g.assigned++;
    g.memoryFree -= req.gpuMemoryPerInstance;
  }
}

/** Why nothing fits, naming the requirement and what the nodes offer. */
export function explainNoFit(nodes: Array<Node>, req: Requirement, scope: string): string {
  let candidates = 0;
  let bestCount = -1;
  let bestNode = "";
  for (let i = 0; i < nodes.length; i++) {
    const n = unchecked(nodes[i]);
    if (!n.candidate) continue;
    candidates++;
    let count = 0;
    for (let g = 0; g < n.gpus.length; g++) if (gpuQualifies(unchecked(n.gpus[g]), req)) count++;
    if (count > bestCount) {
      bestCount = count;
      bestNode = n.id;
    }
  }
  let s = "no node satisfies the requirement of " + req.describe() + " (" + candidates.toString();
  s += " healthy node(s) of " + nodes.length.toString() + scope + " considered";
  if (req.gpus > 0 && candidates > 0) {
    s += "; the best, " + bestNode + ", has " + bestCount.toString() + " qualifying GPU(s)";
  }
  return s + ")";
}

/** Integers without a fraction, others as AssemblyScript prints them. */
export function formatNumber(n: f64): string {
  if (n == Math.trunc(n) && Math.abs(n) < 1e15) return (<i64>n).toString();
  return n.toString();
}
