/**
 * policy.preCheck.clamp-instances:v0.0.1 — allows every action, but lowers instance counts above
 * `parameters.max_instances` to it: `instances_count`, `maxInstances`, `minInstances`, `replicas`
 * (and `config.replicas`), anywhere a few levels into input_data.
 *
 * output: {"allowed": true, "input_data": <input_data with the counts clamped>}; without a numeric
 * max_instances input_data is passed through unchanged.
 */
import { EvalCall, JSON, logInfo, serveEval } from "../../sdk";
import { findInstanceCounts } from "../../sdk/quota";

function decide(call: EvalCall): JSON.Value | null {
  const limit = call.parameters.get("max_instances");
  if (limit.isNumber) {
    const max = Math.max(0, limit.asNumber());
    const counts = findInstanceCounts(call.inputData);
    for (let i = 0; i < counts.length; i++) {
      const c = unchecked(counts[i]);
      if (c.value > max) {
        c.owner.setNumber(c.key, max);
        logInfo("clamp-instances: " + c.path + " lowered to " + max.toString());
      }
    }
  }
  return JSON.obj().setBool("allowed", true).set("input_data", call.inputData);
}

function evaluate(): i32 {
  return serveEval(decide);
}

export { evaluate as eval };
