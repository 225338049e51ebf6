/**
 * policy.loadBalancer.p2c:v0.0.1 — power of two choices: two distinct instances drawn at random, the
 * one with fewer requests in flight wins (`aios_get_metrics`; missing counts as 0, a tie keeps the
 * first draw). Nearly as good as least-outstanding while tolerating stale metrics better.
 *
 * parameters: seed (number, optional) — the xorshift64* generator's seed; without it the generator
 *             is seeded once from context.now_ms. A new seed value re-seeds, so runs are repeatable.
 */
import { EvalCall, getMetrics, JSON, ManagementCall, ok, reject, serveEval, serveManagement, unknownAction } from "../../sdk";
import { inFlight } from "../../sdk/metrics";

let state: u64 = 0;
let seeded = false;
/** The `seed` parameter the generator was last seeded with (NaN: seeded from the clock). */
let seedParam: f64 = NaN;
let seedUsed: u64 = 0;

function seed(s: u64): void {
  // Mix the seed (splitmix64) so nearby seeds start far apart; xorshift needs a non-zero state.
  let z = s + 0x9e3779b97f4a7c15;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9;
  z = (z ^ (z >> 27)) * 0x94d049bb133111eb;
  z ^= z >> 31;
  state = z != 0 ? z : 0x2545f4914f6cdd1d;
  seedUsed = s;
  seeded = true;
}

function next(): u64 {
  let x = state;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  state = x;
  return x * 0x2545f4914f6cdd1d;
}

function decide(call: EvalCall): JSON.Value | null {
  const list = call.inputData.getArray("instances");
  if (list == null || list.length == 0) {
    return reject("input_data.instances must be a non-empty array of instance ids");
  }
  const s = call.parameters.get("seed");
  if (s.isNumber) {
    if (!seeded || s.asNumber() != seedParam) {
      seedParam = s.asNumber();
      seed(<u64>(<i64>seedParam));
    }
  } else if (!seeded || !isNaN(seedParam)) {
    seedParam = NaN;
    seed(<u64>(<i64>call.nowMs));
  }
  const n = <u64>list.length;
  const a = <i32>(next() % n);
  let chosen = unchecked(list[a]);
  if (n > 1) {
    let b = <i32>(next() % (n - 1));
    if (b >= a) b++;
    const metrics = getMetrics();
    const other = unchecked(list[b]);
    if (inFlight(metrics, other.asString()) < inFlight(metrics, chosen.asString())) chosen = other;
  }
  if (!chosen.isString) return reject("input_data.instances must hold instance id strings");
  return JSON.obj().setString("instance_id", chosen.asString());
}

function manage(call: ManagementCall): JSON.Value | null {
  if (call.action == "get_state") {
    return ok().setBool("seeded", seeded).setNumber("seed", <f64>seedUsed);
  }
  if (call.action == "reset") {
    seeded = false;
    seedParam = NaN;
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
