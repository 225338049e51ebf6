/**
 * policy.preCheck.instance-quota:v0.0.1 — refuses an action that asks for more instances than
 * `parameters.max_instances`. The counts looked at are `instances_count`, `maxInstances`,
 * `minInstances`, `replicas` (and `config.replicas`), anywhere a few levels into input_data.
 *
 * allowed:  {"allowed": true, "input_data": <unchanged>}
 * refused:  {"allowed": false, "input_data": {"reason", "field", "requested", "limit"}}
 * Without a numeric max_instances there is no quota and everything is allowed.
 */
import { EvalCall, JSON, serveEval } from "../../sdk";
import { findInstanceCounts } from "../../sdk/quota";

function decide(call: EvalCall): JSON.Value | null {
  const limit = call.parameters.get("max_instances");
  if (limit.isNumber) {
    const counts = findInstanceCounts(call.inputData);
    for (let i = 0; i < counts.length; i++) {
      const c = unchecked(counts[i]);
      if (c.value > limit.asNumber()) {
        const reason = JSON.obj()
          .setString(
            "reason",
            "requested instance count " + formatCount(c.value) + " (" + c.path + ") exceeds the quota of " +
              formatCount(limit.asNumber()),
          )
          .setString("field", c.path)
          .setNumber("requested", c.value)
          .setNumber("limit", limit.asNumber());
        return JSON.obj().setBool("allowed", false).set("input_data", reason);
      }
    }
  }
  return JSON.obj().setBool("allowed", true).set("input_data", call.inputData);
}

function formatCount(n: f64): string {
  return n == Math.trunc(n) ? (<i64>n).toString() : n.toString();
}

function evaluate(): i32 {
  return serveEval(decide);
}

export { evaluate as eval };
