/**
 * policy.eventHandler.failure-counter:v0.0.1 — a block events processor policy: counts each block's
 * events by name in the rule's context store (`aios_context_get`/`set`, key
 * "events:<block_id>:<event_name>"), so counts survive restarts and are shared by the processor's
 * replicas. When an event named in `parameters.failure_events` (default ["instance_failure"]) reaches
 * `parameters.threshold` (default 3) and its event_data names an `instance_id`, the policy asks for
 * that instance's replacement and the count starts again.
 *
 * input_data: {"block_id", "event_name", "event_data"}
 * output:     {"handled": true, "count": n, "actions": [{"action": "replace_instance", "block_id",
 *             "instance_id", "reason"}]}
 * management: get_state / reset with data {"block_id", "event_name"}.
 */
import {
  contextGet,
  contextSet,
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

function keyOf(blockId: string, eventName: string): string {
  return "events:" + blockId + ":" + eventName;
}

function storedCount(key: string): i32 {
  const v = contextGet(key);
  return v != null ? max(0, v.asInt(0)) : 0;
}

function decide(call: EvalCall): JSON.Value | null {
  const blockId = call.inputData.get("block_id");
  const eventName = call.inputData.get("event_name");
  if (!blockId.isString || !eventName.isString) {
    return reject("input_data must name the event: {\"block_id\", \"event_name\", \"event_data\"}");
  }
  const key = keyOf(blockId.asString(), eventName.asString());
  const count = storedCount(key) + 1;
  const failureEvents = call.parameters.has("failure_events")
    ? stringList(call.parameters.get("failure_events"))
    : ["instance_failure"];
  const threshold = max(1, call.parameters.getInt("threshold", 3));
  const actions = JSON.arr();
  const instanceId = call.inputData.get("event_data").get("instance_id");
  if (failureEvents.includes(eventName.asString()) && count >= threshold && instanceId.isString) {
    actions.push(
      JSON.obj()
        .setString("action", "replace_instance")
        .setString("block_id", blockId.asString())
        .setString("instance_id", instanceId.asString())
        .setString("reason", "event '" + eventName.asString() + "' received " + count.toString() + " times"),
    );
    contextSet(key, JSON.num(0));
  } else {
    contextSet(key, JSON.num(count));
  }
  return JSON.obj().setBool("handled", true).setNumber("count", count).set("actions", actions);
}

function manage(call: ManagementCall): JSON.Value | null {
  if (call.action != "get_state" && call.action != "reset") return unknownAction(call.action, "get_state, reset");
  const blockId = call.data.getString("block_id");
  const eventName = call.data.getString("event_name");
  if (blockId.length == 0 || eventName.length == 0) {
    return reject(call.action + " needs data {\"block_id\", \"event_name\"}: counts live in the context store by key");
  }
  const key = keyOf(blockId, eventName);
  if (call.action == "reset") {
    contextSet(key, JSON.num(0));
    return ok().setString("key", key);
  }
  return ok().setString("key", key).setNumber("count", storedCount(key));
}

function evaluate(): i32 {
  return serveEval(decide);
}

function management(): i32 {
  return serveManagement(manage);
}

export { evaluate as eval, management };
