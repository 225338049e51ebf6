/**
 * policy.clusterAllocator.highest-score:v0.0.1 — the specification's cluster allocator.
 *
 * {"action": "selection", "filter_result": [cluster docs]} -> {"clusters": [...]}: the filtered
 *   clusters in order, the first `settings.max_candidates` of them when set; an empty filter result is
 *   the error "no results found in the filter".
 * {"action": "post_dry_run", "clusters": [{"score_data": {"score", "node_info"}, ...}]} -> the entry
 *   with the highest score, as is (the first among equals). When every score is 0 no cluster can run
 *   the block, which is an error rather than a doomed allocation.
 */
import { EvalCall, InitCall, JSON, reject, serveEval, serveInit } from "../../sdk";

let maxCandidates: i32 = 0; // 0: no limit

function setup(call: InitCall): JSON.Value | null {
  const v = call.settings.get("max_candidates");
  maxCandidates = v.isNumber ? max(0, v.asInt()) : 0;
  return null;
}

function selection(input: JSON.Value): JSON.Value | null {
  const found = input.getArray("filter_result");
  if (found == null) return reject("input_data.filter_result must be an array of clusters");
  if (found.length == 0) return reject("no results found in the filter");
  const keep = maxCandidates > 0 ? min(maxCandidates, found.length) : found.length;
  return JSON.obj().set("clusters", JSON.arrayOf(found.slice(0, keep)));
}

function postDryRun(input: JSON.Value): JSON.Value | null {
  const entries = input.getArray("clusters");
  if (entries == null || entries.length == 0) return reject("input_data.clusters must be a non-empty array");
  let best = -1;
  let bestScore: f64 = -1;
  for (let i = 0; i < entries.length; i++) {
    const score = unchecked(entries[i]).get("score_data").get("score");
    if (score.isNumber && score.asNumber() > bestScore) {
      bestScore = score.asNumber();
      best = i;
    }
  }
  if (best < 0) return reject("no cluster has a numeric score_data.score");
  if (bestScore <= 0) return reject("no cluster can accommodate the block: every dry-run score is 0");
  return unchecked(entries[best]);
}

function decide(call: EvalCall): JSON.Value | null {
  const action = call.inputData.getString("action");
  if (action == "selection") return selection(call.inputData);
  if (action == "post_dry_run") return postDryRun(call.inputData);
  return reject("unknown action '" + action + "' (known: selection, post_dry_run)");
}

function initialize(): i32 {
  return serveInit(setup);
}

function evaluate(): i32 {
  return serveEval(decide);
}

export { initialize as init, evaluate as eval };
