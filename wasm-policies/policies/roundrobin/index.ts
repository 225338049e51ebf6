/**
 * policy.loadBalancer.roundrobin:v0.0.1 — round-robin over the block's instances with the
 * specification's session cache: a session keeps its instance while the instance list stays the same.
 *
 * parameters: cache_sessions (bool, default true)
 * settings:   session_cache_size (default 1000; the oldest session is evicted first; 0 disables caching)
 */
import {
  EvalCall,
  InitCall,
  JSON,
  ManagementCall,
  ok,
  reject,
  serveEval,
  serveInit,
  serveManagement,
  unknownAction,
} from "../../sdk";

let cacheCapacity: i32 = 1000;
let cursor: i32 = 0;
/** The instance list of the previous call; the cache is valid for this membership only. */
let known = new Array<string>();
const sessions = new Map<string, string>();
/** Cached session ids in insertion order: a ring of `cacheCapacity` once full, oldest at `ringHead`. */
let ring = new Array<string>();
let ringHead: i32 = 0;

function clearSessions(): void {
  sessions.clear();
  ring = new Array<string>();
  ringHead = 0;
}

function setup(call: InitCall): JSON.Value | null {
  const size = call.settings.get("session_cache_size");
  if (size.isNumber) cacheCapacity = max(0, size.asInt());
  clearSessions();
  return null;
}

/** Adopts this call's instance list; a change of membership invalidates the session cache. */
function adopt(list: Array<JSON.Value>): boolean {
  const n = list.length;
  if (n == known.length) {
    let same = true;
    for (let i = 0; i < n; i++) {
      if (unchecked(list[i]).asString() != unchecked(known[i])) {
        same = false;
        break;
      }
    }
    if (same) return n > 0;
  }
  const previous = new Set<string>();
  for (let i = 0; i < known.length; i++) previous.add(unchecked(known[i]));
  const next = new Array<string>();
  let sameMembers = true;
  for (let i = 0; i < n; i++) {
    const v = unchecked(list[i]);
    if (!v.isString || v.asString().length == 0) continue;
    const id = v.asString();
    next.push(id);
    if (!previous.has(id)) sameMembers = false;
  }
  if (next.length != known.length) sameMembers = false;
  if (!sameMembers) clearSessions();
  known = next;
  return next.length > 0;
}

function remember(sid: string, id: string): void {
  if (sessions.has(sid)) {
    sessions.set(sid, id);
    return;
  }
  if (ring.length < cacheCapacity) {
    ring.push(sid);
  } else {
    sessions.delete(unchecked(ring[ringHead]));
    unchecked((ring[ringHead] = sid));
    ringHead = (ringHead + 1) % cacheCapacity;
  }
  sessions.set(sid, id);
}

function answer(id: string): JSON.Value {
  return JSON.obj().setString("instance_id", id);
}

function decide(call: EvalCall): JSON.Value | null {
  const list = call.inputData.getArray("instances");
  if (list == null || !adopt(list)) return reject("input_data.instances must be a non-empty array of instance ids");
  const useCache = cacheCapacity > 0 && call.parameters.getBool("cache_sessions", true);
  const sid = useCache ? call.inputData.get("packet").getString("session_id") : "";
  if (sid.length > 0 && sessions.has(sid)) {
    const cached = sessions.get(sid);
    // Cleared on membership change, so a cached instance is normally present; checked all the same.
    if (known.includes(cached)) return answer(cached);
  }
  const n = known.length;
  if (cursor >= n) cursor = 0;
  const id = unchecked(known[cursor]);
  cursor = (cursor + 1) % n;
  if (sid.length > 0) remember(sid, id);
  return answer(id);
}

function manage(call: ManagementCall): JSON.Value | null {
  if (call.action == "get_state") {
    return ok()
      .setNumber("cursor", cursor)
      .set("instances", JSON.strings(known))
      .setNumber("cached_sessions", sessions.size)
      .setNumber("session_cache_size", cacheCapacity);
  }
  if (call.action == "reset") {
    clearSessions();
    cursor = 0;
    known = new Array<string>();
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
