/**
 * policy.stabilityChecker.unhealthy-retry:v0.0.1 — the block health checker's policy: counts each
 * instance's consecutive failed health checks (a healthy check resets the count) and, when an instance
 * reaches `parameters.unhealthy_threshold` (default 3), asks the host to replace it and starts
 * counting again. Policies decide, the host acts:
 *
 *   {"actions": [{"action": "replace_instance", "instance_id", "reason"}], "unhealthy": [ids failing now]}
 *
 * input_data: {"health_check_data": {"<id>": true|false}, "instances": [ids]}. Counters of instances
 * no longer in `instances` are dropped.
 */
import {
  EvalCall,
  JSON,
  ManagementCall,
  ok,
  reject,
  serveEval,
  serveManagement,
  stringList,
  unknownAction,
} from "../../sdk";

const failures = new Map<string, i32>();

function isHealthy(v: JSON.Value): boolean {
  if (v.isBool) return v.asBool();
  // Tolerated: {"healthy": bool} per instance.
  if (v.isObject) return v.getBool("healthy", false);
  return false;
}

function decide(call: EvalCall): JSON.Value | null {
  const data = call.inputData.get("health_check_data");
  if (!data.isObject) return reject("input_data.health_check_data must be an object of instance id -> bool");
  const threshold = max(1, call.parameters.getInt("unhealthy_threshold", 3));
  const actions = JSON.arr();
  const unhealthy = JSON.arr();
  for (let i = 0; i < data.length; i++) {
    const id = data.keyAt(i);
    if (isHealthy(data.valueAt(i))) {
      failures.delete(id);
      continue;
    }
    unhealthy.pushString(id);
    const count = (failures.has(id) ? failures.get(id) : 0) + 1;
    if (count >= threshold) {
      actions.push(
        JSON.obj()
          .setString("action", "replace_instance")
          .setString("instance_id", id)
          .setString("reason", "unhealthy for " + count.toString() + " consecutive health checks"),
      );
      failures.delete(id);
    } else {
      failures.set(id, count);
    }
  }
  // Forget instances that are gone, so counters do not pile up as instances come and go.
  const listed = call.inputData.get("instances");
  if (listed.isArray) {
    const present = new Set<string>();
    const ids = stringList(listed);
    for (let i = 0; i < ids.length; i++) present.add(unchecked(ids[i]));
    const tracked = failures.keys();
    for (let i = 0; i < tracked.length; i++) {
      const id = unchecked(tracked[i]);
      if (!present.has(id) && !data.has(id)) failures.delete(id);
    }
  }
  return JSON.obj().set("actions", actions).set("unhealthy", unhealthy);
}

function manage(call: ManagementCall): JSON.Value | null {
  if (call.action == "get_state") {
    const counts = JSON.obj();
    const ids = failures.keys();
    for (let i = 0; i < ids.length; i++) counts.setNumber(unchecked(ids[i]), failures.get(unchecked(ids[i])));
    return ok().set("consecutive_failures", counts);
  }
  if (call.action == "reset") {
    failures.clear();
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
