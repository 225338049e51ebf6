/**
 * policy.loadBalancer.least-outstanding:v0.0.1 — sends each packet to the instance with the fewest
 * requests in flight (`aios_get_metrics`: block_metrics.instances.<id>.in_flight; missing counts as 0).
 * Ties rotate, so equally idle instances share the work instead of the first one taking it all.
 *
 * parameters: none; settings: none.
 */
import { EvalCall, getMetrics, JSON, ManagementCall, ok, reject, serveEval, serveManagement, unknownAction } from "../../sdk";
import { inFlight } from "../../sdk/metrics";

let cursor: i32 = 0;
let lastChoice = "";

function decide(call: EvalCall): JSON.Value | null {
  const list = call.inputData.getArray("instances");
  if (list == null || list.length == 0) {
    return reject("input_data.instances must be a non-empty array of instance ids");
  }
  const metrics = getMetrics();
  let best = f64.MAX_VALUE;
  const tied = new Array<string>();
  for (let i = 0; i < list.length; i++) {
    const v = unchecked(list[i]);
    if (!v.isString) continue;
    const id = v.asString();
    const load = inFlight(metrics, id);
    if (load < best) {
      best = load;
      tied.length = 0;
      tied.push(id);
    } else if (load == best) {
      tied.push(id);
    }
  }
  if (tied.length == 0) return reject("input_data.instances must be a non-empty array of instance ids");
  const id = unchecked(tied[cursor % tied.length]);
  cursor = (cursor + 1) & 0x3fffffff;
  lastChoice = id;
  return JSON.obj().setString("instance_id", id);
}

function manage(call: ManagementCall): JSON.Value | null {
  if (call.action == "get_state") return ok().setNumber("cursor", cursor).setString("last_choice", lastChoice);
  if (call.action == "reset") {
    cursor = 0;
    lastChoice = "";
    return ok();
  }
  return unknownAction(call.action, "get_state, reset");
}

function evaluate(): i32 {
  return serveEval(decide);
}

function management(): i32 {
  return serveManagement(manage);
}

export { evaluate as eval, management };
