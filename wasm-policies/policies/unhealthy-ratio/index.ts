/**
 * policy.clusterStability.unhealthy-ratio:v0.0.1 — the cluster controller's stability checker: the
 * cluster is stable while unhealthy nodes / all nodes <= `parameters.max_unhealthy_ratio` (default
 * 0.25).
 *
 * input_data: {"cluster_data": cluster doc, "nodes_data": [{"node_id", "status", ...}]} from the
 * infrastructure scanner. A node is healthy when its status is healthy/ready/live/active/online/up/ok/
 * running; a node of the cluster document the scanner did not report counts as unhealthy (missing).
 *
 * output: {"is_stable", "stability_check_data": {"unhealthy_nodes", "missing_nodes", "unhealthy_ratio",
 * "threshold", "total_nodes"}}; no nodes at all is not stable.
 */
import { EvalCall, JSON, reject, serveEval } from "../../sdk";
import { isHealthyStatus } from "../../sdk/placement";

function decide(call: EvalCall): JSON.Value | null {
  const reported = call.inputData.getArray("nodes_data");
  if (reported == null) return reject("input_data.nodes_data must be an array of {node_id, status}");
  const threshold = call.parameters.getNumber("max_unhealthy_ratio", 0.25);
  const seen = new Set<string>();
  const unhealthy = JSON.arr();
  const missing = JSON.arr();
  let total = 0;
  for (let i = 0; i < reported.length; i++) {
    const node = unchecked(reported[i]);
    const id = node.getString("node_id", node.getString("id"));
    if (id.length == 0 || seen.has(id)) continue;
    seen.add(id);
    total++;
    if (!isHealthyStatus(node.getString("status"), false)) unhealthy.pushString(id);
  }
  const known = call.inputData.get("cluster_data").get("nodes").get("nodeData");
  for (let i = 0; i < known.length; i++) {
    const id = known.at(i).getString("id");
    if (id.length == 0 || seen.has(id)) continue;
    seen.add(id);
    total++;
    unhealthy.pushString(id);
    missing.pushString(id);
  }
  const ratio: f64 = total > 0 ? <f64>unhealthy.length / <f64>total : 1;
  const data = JSON.obj()
    .set("unhealthy_nodes", unhealthy)
    .set("missing_nodes", missing)
    .setNumber("unhealthy_ratio", ratio)
    .setNumber("threshold", threshold)
    .setNumber("total_nodes", total);
  if (total == 0) data.setString("reason", "no nodes reported");
  return JSON.obj().setBool("is_stable", total > 0 && ratio <= threshold).set("stability_check_data", data);
}

function evaluate(): i32 {
  return serveEval(decide);
}

export { evaluate as eval };
