/**
 * policy.resourceAllocator.gpu-free-memory:v0.0.1 — places a block's instances on the GPUs of healthy
 * nodes by free memory and utilization (placement rules: sdk/placement.ts).
 *
 * parameters: gpus (GPUs per instance, default 0 = CPU only), min_gpu_free_memory (MB, default 0),
 *             max_gpu_utilization (0..1, default 1), gpu_memory_per_instance (MB, default
 *             min_gpu_free_memory: what each instance takes from its GPUs in a dry run)
 * settings:   selection_mode: "greedy" (default: the node and GPUs with the most free memory) or
 *             "spread" (nodes and GPUs holding fewer of the block's instances first)
 *
 * input_data: {"action": "dry_run" | "allocation" | "scale" | "reassignment", "payload": {"block",
 * "cluster", "cluster_metrics", "healthy_nodes", "block_metrics"?, "instance_id"?, "pod_name"?}}.
 * Only `healthy_nodes` are candidates. The block's current instances, when its document lists them
 * (`instances: [{"instance_id", "node_id", "gpus"}]`), guide "spread" and reassignment.
 *
 * allocation, scale, reassignment -> {"node_id", "gpus": [...]}; reassignment avoids the instance's
 *   current node when another fits. Nothing fits -> an error naming the requirement.
 * dry_run -> {"selection_score_data": {"score": placed / maxInstances, "node_info": first placement or
 *   null}}, simulating maxInstances placements that each use gpu_memory_per_instance on their GPUs.
 */
import { EvalCall, InitCall, JSON, logWarn, reject, serveEval, serveInit } from "../../sdk";
import {
  choose,
  commit,
  countAssigned,
  explainNoFit,
  findNode,
  Mode,
  Node,
  Placement,
  parseMode,
  Requirement,
  readNodes,
  restrictTo,
} from "../../sdk/placement";

let mode: Mode = Mode.Greedy;

function setup(call: InitCall): JSON.Value | null {
  const s = call.settings.getString("selection_mode", "greedy");
  if (s != "greedy" && s != "spread") logWarn("gpu-free-memory: unknown selection_mode '" + s + "', using greedy");
  mode = parseMode(s);
  return null;
}

function dryRun(block: JSON.Value, nodes: Array<Node>, req: Requirement): JSON.Value {
  const wanted = max(1, block.getInt("maxInstances", block.getInt("minInstances", 1)));
  let first: Placement | null = null;
  let placed = 0;
  for (; placed < wanted; placed++) {
    const p = choose(nodes, req, mode, "");
    if (p == null) break;
    if (first == null) first = p;
    commit(p, req);
  }
  const score = JSON.obj().setNumber("score", <f64>placed / <f64>wanted);
  score.set("node_info", first != null ? first.toJson() : JSON.nul());
  return JSON.obj().set("selection_score_data", score);
}

function decide(call: EvalCall): JSON.Value | null {
  const action = call.inputData.getString("action");
  const payload = call.inputData.get("payload");
  if (!payload.isObject) return reject("input_data.payload must be an object");
  const known = action == "dry_run" || action == "allocation" || action == "scale" || action == "reassignment";
  if (!known) return reject("unknown action '" + action + "' (known: dry_run, allocation, scale, reassignment)");

  const req = Requirement.from(call.parameters);
  const nodes = readNodes(payload.get("cluster"), payload.get("cluster_metrics"));
  const healthy = payload.get("healthy_nodes");
  if (healthy.isArray) restrictTo(nodes, healthy);
  const block = payload.get("block");
  const instanceId = action == "reassignment" ? payload.getString("instance_id") : "";
  // The moving instance does not count where it is now.
  countAssigned(nodes, block.get("instances"), instanceId);

  if (action == "dry_run") return dryRun(block, nodes, req);

  let avoid = "";
  if (instanceId.length > 0) {
    const listed = block.get("instances");
    for (let i = 0; i < listed.length; i++) {
      if (listed.at(i).getString("instance_id") == instanceId) avoid = listed.at(i).getString("node_id");
    }
    if (avoid.length > 0 && findNode(nodes, avoid) == null) avoid = "";
  }
  const p = choose(nodes, req, mode, avoid);
  if (p == null) return reject(explainNoFit(nodes, req, ""));
  return p.toJson();
}

function initialize(): i32 {
  return serveInit(setup);
}

function evaluate(): i32 {
  return serveEval(decide);
}

export { initialize as init, evaluate as eval };
