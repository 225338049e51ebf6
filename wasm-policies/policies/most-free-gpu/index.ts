/**
 * policy.allocator.most-free-gpu:v0.0.1 — the resource allocator server's policy: across the
 * candidate clusters, the node whose best GPUs have the most free memory and fit the request (for
 * `gpus` 0, the node with the most free memory). Placement rules are the resource allocator's
 * (sdk/placement.ts); nodes whose metrics status is not healthy are skipped.
 *
 * input_data: {"cluster_data": {"<cluster_id>": {"data": cluster doc, "cluster_metrics": metrics doc}},
 *              "inputs": {"gpus"?, "min_gpu_free_memory"?, "max_gpu_utilization"?}}
 * parameters: the same three as defaults for what `inputs` leaves out.
 * output:     {"cluster_id", "node_id", "gpus": [...]}, or an error naming the requirement.
 */
import { EvalCall, JSON, reject, serveEval } from "../../sdk";
import { choose, explainNoFit, Mode, Node, Requirement, readNodes, restrictByStatus } from "../../sdk/placement";

function decide(call: EvalCall): JSON.Value | null {
  const clusters = call.inputData.get("cluster_data");
  if (!clusters.isObject) return reject("input_data.cluster_data must be an object of cluster id -> {data, cluster_metrics}");
  const req = Requirement.from(call.parameters).overlay(call.inputData.get("inputs"));
  let bestCluster = "";
  let best: JSON.Value = JSON.nul();
  let bestFree: f64 = -1;
  const everyNode = new Array<Node>();
  for (let i = 0; i < clusters.length; i++) {
    const entry = clusters.valueAt(i);
    const nodes = readNodes(entry.get("data"), entry.get("cluster_metrics"));
    restrictByStatus(nodes);
    for (let n = 0; n < nodes.length; n++) everyNode.push(unchecked(nodes[n]));
    const p = choose(nodes, req, Mode.Greedy, "");
    if (p == null) continue;
    let free: f64 = 0;
    if (req.gpus == 0) free = p.node.memoryFree;
    else for (let g = 0; g < p.gpus.length; g++) free += unchecked(p.gpus[g]).memoryFree;
    if (free > bestFree) {
      bestFree = free;
      bestCluster = clusters.keyAt(i);
      best = p.toJson();
    }
  }
  if (bestCluster.length == 0) {
    return reject(explainNoFit(everyNode, req, " in " + clusters.length.toString() + " cluster(s)"));
  }
  return JSON.obj().setString("cluster_id", bestCluster).set("node_id", best.get("node_id")).set("gpus", best.get("gpus"));
}

function evaluate(): i32 {
  return serveEval(decide);
}

export { evaluate as eval };
