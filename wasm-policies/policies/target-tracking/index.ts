/**
 * policy.autoscaler.target-tracking:v0.0.1 — target tracking: keeps the load per instance near a
 * target by asking for ceil(load / target) instances, clamped to the block's [minInstances,
 * maxInstances].
 *
 * Load comes from `aios_get_metrics` (block_metrics.instances.<id>): requests in flight per instance
 * (`parameters.target_inflight_per_instance`, default 4), or, when `parameters.target_cpu_utilization`
 * (0..1) is set, CPU utilization (`cpu_percent`, 0..100). Instances without metrics count as idle.
 *
 * Cooldowns (`settings.scale_up_cooldown`, default 30 s; `settings.scale_down_cooldown`, default 120 s)
 * follow common practice: another scale-up waits scale_up_cooldown after the last scale-up; a
 * scale-down waits scale_down_cooldown after the last scaling of either kind (no shrinking right after
 * growing); a scale-up right after a scale-down is not held back. Time is `context.now_ms`.
 *
 * Output, as the specification's: {"skip": true} | {"skip": false, "operation": "upscale",
 * "instances_count": <instances to add>} | {"skip": false, "operation": "downscale", "instances_list":
 * [<ids to remove, least loaded first>]}.
 */
import {
  EvalCall,
  getMetrics,
  InitCall,
  JSON,
  logDebug,
  ManagementCall,
  ok,
  serveEval,
  serveInit,
  serveManagement,
  stringList,
  unknownAction,
} from "../../sdk";
import { cpuUtilization, inFlight } from "../../sdk/metrics";

let upCooldownMs: f64 = 30_000;
let downCooldownMs: f64 = 120_000;
/** -1: never scaled. */
let lastUpMs: f64 = -1;
let lastScaleMs: f64 = -1;
let lastDecision: JSON.Value = JSON.nul();
let lastDesired: i32 = -1;

function seconds(settings: JSON.Value, key: string, def: f64): f64 {
  const v = settings.get(key);
  return v.isNumber && v.asNumber() >= 0 ? v.asNumber() * 1000 : def;
}

function setup(call: InitCall): JSON.Value | null {
  upCooldownMs = seconds(call.settings, "scale_up_cooldown", 30_000);
  downCooldownMs = seconds(call.settings, "scale_down_cooldown", 120_000);
  return null;
}

function skip(reason: string): JSON.Value {
  logDebug("autoscaler: skip: " + reason);
  return JSON.obj().setBool("skip", true);
}

/** Instance ids with their load, sorted least loaded first (later instances first among equals). */
class Loaded {
  constructor(
    public id: string,
    public load: f64,
    public index: i32,
  ) {}
}

function decide(call: EvalCall): JSON.Value | null {
  const block = call.inputData.get("block_data");
  const ids = stringList(call.inputData.get("instances"));
  const current = ids.length;
  const minInstances = max(0, block.getInt("minInstances", 1));
  const maxRaw = block.get("maxInstances");
  const maxInstances = max(minInstances, maxRaw.isNumber ? maxRaw.asInt() : i32.MAX_VALUE);
  const now = call.nowMs;

  const metrics = getMetrics();
  const cpuTarget = call.parameters.getNumber("target_cpu_utilization", 0);
  const useCpu = cpuTarget > 0;
  const target = useCpu ? cpuTarget : call.parameters.getNumber("target_inflight_per_instance", 4);
  const loads = new Array<Loaded>(current);
  let total: f64 = 0;
  for (let i = 0; i < current; i++) {
    const id = unchecked(ids[i]);
    const load = useCpu ? cpuUtilization(metrics, id) : inFlight(metrics, id);
    total += load;
    unchecked((loads[i] = new Loaded(id, load, i)));
  }

  // A little slack so 8.0000001 / 4 does not ask for a third instance.
  let desired = target > 0 ? <i32>Math.ceil(total / target - 1e-9) : current;
  desired = min(max(desired, minInstances), maxInstances);
  lastDesired = desired;

  let answer: JSON.Value;
  if (desired > current) {
    if (lastUpMs >= 0 && now - lastUpMs < upCooldownMs) {
      answer = skip("scale-up cooldown");
    } else {
      lastUpMs = now;
      lastScaleMs = now;
      answer = JSON.obj()
        .setBool("skip", false)
        .setString("operation", "upscale")
        .setNumber("instances_count", desired - current);
    }
  } else if (desired < current) {
    if (lastScaleMs >= 0 && now - lastScaleMs < downCooldownMs) {
      answer = skip("scale-down cooldown");
    } else {
      lastScaleMs = now;
      // Least loaded first; among equals the later (newer) instance goes first.
      loads.sort((a: Loaded, b: Loaded): i32 => {
        if (a.load != b.load) return a.load < b.load ? -1 : 1;
        return b.index - a.index;
      });
      const remove = JSON.arr();
      for (let i = 0; i < current - desired; i++) remove.pushString(unchecked(loads[i]).id);
      answer = JSON.obj().setBool("skip", false).setString("operation", "downscale").set("instances_list", remove);
    }
  } else {
    answer = skip("at the desired count");
  }
  lastDecision = answer;
  return answer;
}

function manage(call: ManagementCall): JSON.Value | null {
  if (call.action == "get_state") {
    return ok()
      .setNumber("last_upscale_ms", lastUpMs)
      .setNumber("last_scale_ms", lastScaleMs)
      .setNumber("last_desired", lastDesired)
      .set("last_decision", lastDecision)
      .setNumber("scale_up_cooldown", upCooldownMs / 1000)
      .setNumber("scale_down_cooldown", downCooldownMs / 1000);
  }
  if (call.action == "reset") {
    lastUpMs = -1;
    lastScaleMs = -1;
    lastDesired = -1;
    lastDecision = JSON.nul();
    return ok();
  }
  return unknownAction(call.action, "get_state, reset");
}

function initialize(): i32 {
  return serveInit(setup);
}

function evaluate(): i32 {
  return serveEval(decide);
}

function management(): i32 {
  return serveManagement(manage);
}

export { initialize as init, evaluate as eval, management };
