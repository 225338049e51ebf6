/**
 * policy.loadBalancer.roundrobin:v0.0.1 — round-robin over the block's instances with the
 * specification's session cache: a session keeps its instance while the instance list stays the same.
 *
 * parameters: cache_sessions (bool, default true)
 * settings:   session_cache_size (default 1000; the oldest session is evicted first; 0 disables caching)
 *
 * It runs on every inference request, so the usual call builds nothing: the instance list is compared
 * with the previous call's as text (no string is made from it), the session id is read as bytes, the
 * answers (one per instance) are written once per membership and output as they are, and the session
 * cache lives outside the garbage collector (sessions.ts). What a call still allocates is the SDK's:
 * the parsed input and the few values read from it.
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
import { setOutputBytes } from "../../sdk/kernel";
import { SessionCache } from "./sessions";

let cacheCapacity: i32 = 1000;
let cursor: i32 = 0;
/** The instance list of the previous call (ids that are non-empty strings), in its order. */
let known = new Array<string>();
/** The `instances` value `known` was made from: an identical list is recognized by its text. */
let knownValue: JSON.Value | null = null;
/**
 * The distinct instances since the cache was last cleared; the cache maps sessions to their index.
 * A reordering (or a list with fewer distinct ids and as many entries) keeps the cache and this table.
 */
let members = new Array<string>();
/** The text of `{"instance_id": member}` for each member, written once: from answerAt[m] to answerAt[m + 1]. */
const answers = new JSON.ByteBuffer();
let answerAt: Array<i32> = [0];
/** Whether each member is in the current list. */
let present = new Array<boolean>();
/** The current list as member indices. */
let order = new Array<i32>();
const sessions = new SessionCache(1000);
/** This call's session id, as UTF-8. */
const sessionId = new JSON.ByteBuffer();

function clearSessions(): void {
  sessions.clear();
  members = new Array<string>();
  answers.reset();
  answerAt = [0];
  present = new Array<boolean>();
}

function setup(call: InitCall): JSON.Value | null {
  const size = call.settings.get("session_cache_size");
  if (size.isNumber) cacheCapacity = max(0, size.asInt());
  if (cacheCapacity != sessions.capacity) sessions.resize(cacheCapacity);
  clearSessions();
  index(known);
  return null;
}

/** Sets `order` and `present` for `list`, adding its new ids to the member table. */
function index(list: Array<string>): void {
  const byId = new Map<string, i32>();
  for (let m = 0; m < members.length; m++) {
    byId.set(unchecked(members[m]), m);
    unchecked((present[m] = false));
  }
  order = new Array<i32>(list.length);
  for (let i = 0; i < list.length; i++) {
    const id = unchecked(list[i]);
    let m: i32;
    if (byId.has(id)) {
      m = byId.get(id);
    } else {
      m = members.length;
      members.push(id);
      JSON.writeTo(answers, JSON.obj().setString("instance_id", id));
      answerAt.push(<i32>answers.len);
      present.push(false);
      byId.set(id, m);
    }
    unchecked((order[i] = m));
    unchecked((present[m] = true));
  }
}

/** Adopts this call's instance list; a change of membership invalidates the session cache. */
function adopt(list: JSON.Value): boolean {
  const previous = knownValue;
  if (previous != null && list.equals(previous)) {
    // The same list (nearly always the same text too): keep this call's, for the next comparison.
    knownValue = list;
    return known.length > 0;
  }
  const previousIds = new Set<string>();
  for (let i = 0; i < known.length; i++) previousIds.add(unchecked(known[i]));
  // Read with at(), which leaves the list as it came, so the next call can compare its text.
  const n = list.length;
  const next = new Array<string>();
  let sameMembers = true;
  for (let i = 0; i < n; i++) {
    const v = list.at(i);
    if (!v.isString || v.asString().length == 0) continue;
    const id = v.asString();
    next.push(id);
    if (!previousIds.has(id)) sameMembers = false;
  }
  if (next.length != known.length) sameMembers = false;
  if (!sameMembers) clearSessions();
  known = next;
  knownValue = list;
  index(next);
  return next.length > 0;
}

/** Writes member `m`'s answer as the call's output; null, for the handler to return. */
function answer(m: i32): JSON.Value | null {
  const from = unchecked(answerAt[m]);
  setOutputBytes(answers.ptr + <usize>from, <usize>(unchecked(answerAt[m + 1]) - from));
  return null;
}

function decide(call: EvalCall): JSON.Value | null {
  const list = call.inputData.get("instances");
  if (!list.isArray || !adopt(list)) return reject("input_data.instances must be a non-empty array of instance ids");
  const useCache = cacheCapacity > 0 && call.parameters.getBool("cache_sessions", true);
  sessionId.reset();
  // A session id that is not a non-empty string is no session.
  const session =
    useCache && call.inputData.get("packet").getStringBytes("session_id", sessionId) && sessionId.len > 0;
  if (session) {
    const cached = sessions.get(sessionId.ptr, sessionId.len);
    // Cleared on membership change, so a cached instance is normally present; checked all the same.
    if (cached >= 0 && unchecked(present[cached])) return answer(cached);
  }
  const n = order.length;
  if (cursor >= n) cursor = 0;
  const m = unchecked(order[cursor]);
  cursor = (cursor + 1) % n;
  if (session) sessions.setLast(m);
  return answer(m);
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
    knownValue = null;
    order = new Array<i32>();
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
