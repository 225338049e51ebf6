/**
 * The policy side of the ABI (src/policy/abi.ts): `init`, `eval` and `management` each read one JSON
 * document from the Extism input and write one JSON document (or an error) back.
 *
 * The `serve*` helpers do the reading, checking and writing, so a policy is a handful of functions:
 *
 *   function decide(call: EvalCall): JSON.Value | null { ... return JSON.obj().setString("instance_id", id); }
 *   function evaluate(): i32 { return serveEval(decide); }
 *   export { evaluate as eval };
 *
 * A handler returns its output, or `reject("why")` to fail the call with that message. (A handler
 * on a hot path may instead write its output text itself, with `setOutputBytes` from `sdk/kernel`,
 * and return null: the roundrobin policy outputs answers it wrote once.)
 */
import "./abort";
import * as JSON from "./json";
import { readInputDocument, readInputJson, setError, setOutputJson } from "./kernel";

export { JSON };

// ---- low level --------------------------------------------------------------------------------------

/** The call's input as JSON, or null (see `JSON.errorMessage()`) when it is not valid JSON. */
export function readInput(): JSON.Value | null {
  return readInputJson();
}

/** Writes `v` as the call's output. */
export function output(v: JSON.Value): void {
  setOutputJson(v);
}

/** Sets the call's error and returns 1, so an export can `return fail("...")`. */
export function fail(message: string): i32 {
  setError(message);
  return 1;
}

let rejection: string | null = null;

/** Records why a handler gives up; returns null so a handler can `return reject("...")`. */
export function reject(message: string): JSON.Value | null {
  rejection = message;
  return null;
}

// ---- calls ------------------------------------------------------------------------------------------

/** `eval`'s input: `{"parameters", "input_data", "context"}`. */
export class EvalCall {
  // serveEval fills these from the input when first read (most policies never look at `context`).
  private _parameters: JSON.Value | null;
  private _inputData: JSON.Value | null;
  private _context: JSON.Value | null;
  private input: JSON.Doc | null = null;

  constructor(parameters: JSON.Value, inputData: JSON.Value, context: JSON.Value) {
    this._parameters = parameters;
    this._inputData = inputData;
    this._context = context;
  }

  /** The call for an eval input object, its members read when first asked for. */
  static of(input: JSON.Doc): EvalCall {
    // Made without the constructor (no stores of nulls); a store into an object allocated just now
    // needs no write barrier (see JSON's `fresh`).
    const call = JSON.newZeroed(offsetof<EvalCall>(), idof<EvalCall>());
    store<usize>(call, changetype<usize>(input), offsetof<EvalCall>("input"));
    return changetype<EvalCall>(call);
  }

  /** `parameters` (an object, empty when absent). */
  get parameters(): JSON.Value {
    let v = this._parameters;
    if (v == null) {
      v = objectOrEmpty(JSON.documentMember(this.input!, "parameters"));
      this._parameters = v;
    }
    return v;
  }

  set parameters(v: JSON.Value) {
    this._parameters = v;
  }

  /** `input_data` as sent (JSON null when absent). */
  get inputData(): JSON.Value {
    let v = this._inputData;
    if (v == null) {
      v = JSON.documentMember(this.input!, "input_data");
      this._inputData = v;
    }
    return v;
  }

  set inputData(v: JSON.Value) {
    this._inputData = v;
  }

  /** `context` (an object, empty when absent). */
  get context(): JSON.Value {
    let v = this._context;
    if (v == null) {
      v = objectOrEmpty(JSON.documentMember(this.input!, "context"));
      this._context = v;
    }
    return v;
  }

  set context(v: JSON.Value) {
    this._context = v;
  }

  /** `context.rule_id`: the rule this instance serves. */
  get ruleId(): string {
    return this.context.getString("rule_id");
  }

  /** `context.policy_uri`. */
  get policyUri(): string {
    return this.context.getString("policy_uri");
  }

  /** `context.kind`. */
  get kind(): string {
    return this.context.getString("kind");
  }

  /** `context.now_ms`: the host's clock (policies have no other), 0 when the host sent none. */
  get nowMs(): f64 {
    return this.context.getNumber("now_ms", 0);
  }
}

/** `init`'s input: `{"rule_id", "settings", "parameters"}`. */
export class InitCall {
  constructor(
    public ruleId: string,
    public settings: JSON.Value,
    public parameters: JSON.Value,
  ) {}
}

/** `management`'s input: `{"action", "data"}`. */
export class ManagementCall {
  constructor(
    public action: string,
    public data: JSON.Value,
  ) {}
}

export type EvalHandler = (call: EvalCall) => JSON.Value | null;
export type InitHandler = (call: InitCall) => JSON.Value | null;
export type ManagementHandler = (call: ManagementCall) => JSON.Value | null;

function objectOrEmpty(v: JSON.Value): JSON.Value {
  return v.isObject ? v : JSON.obj();
}

/** Reads the input as a JSON object; null after setting the error. */
function readObject(exportName: string): JSON.Value | null {
  const input = readInputJson();
  if (input == null) {
    setError(exportName + ": input is not valid JSON: " + JSON.errorMessage());
    return null;
  }
  if (!input.isObject) {
    setError(exportName + ": input must be a JSON object");
    return null;
  }
  return input;
}

/** Writes the handler's answer, or its rejection; returns the export's result. */
function finish(result: JSON.Value | null): i32 {
  if (result != null) {
    setOutputJson(result);
    rejection = null;
    return 0;
  }
  const why = rejection;
  rejection = null;
  // A null answer without a rejection is a handler with nothing to say (e.g. init).
  if (why == null) return 0;
  setError(why);
  return 1;
}

/**
 * Runs an `eval` handler. `parameters` and `context` are always objects (empty when absent);
 * `input_data` is passed as sent (JSON null when absent).
 */
export function serveEval(handler: EvalHandler): i32 {
  // No value is made for the input itself: only for the members the handler reads.
  const input = readInputDocument();
  if (input == null) {
    setError("eval: input is not valid JSON: " + JSON.errorMessage());
    return 1;
  }
  if (!JSON.isObjectDocument(input)) {
    setError("eval: input must be a JSON object");
    return 1;
  }
  rejection = null;
  return finish(handler(EvalCall.of(input)));
}

/** Runs an `init` handler; `settings` and `parameters` are objects (empty when absent). */
export function serveInit(handler: InitHandler): i32 {
  const input = readObject("init");
  if (input == null) return 1;
  rejection = null;
  const call = new InitCall(
    input.getString("rule_id"),
    objectOrEmpty(input.get("settings")),
    objectOrEmpty(input.get("parameters")),
  );
  return finish(handler(call));
}

/** Runs a `management` handler; `action` must be a string, `data` is an object (empty when absent). */
export function serveManagement(handler: ManagementHandler): i32 {
  const input = readObject("management");
  if (input == null) return 1;
  const action = input.get("action");
  if (!action.isString) return fail("management: 'action' must be a string");
  rejection = null;
  return finish(handler(new ManagementCall(action.asString(), objectOrEmpty(input.get("data")))));
}

/** The answer to a management action a policy does not know. */
export function unknownAction(action: string, known: string): JSON.Value | null {
  return reject("unknown management action '" + action + "' (known: " + known + ")");
}

/** `{"ok": true}`, to which a management answer adds its fields. */
export function ok(): JSON.Value {
  return JSON.obj().setBool("ok", true);
}

// ---- small helpers policies share ---------------------------------------------------------------------

/** The strings of an array value (non-strings skipped). */
export function stringList(v: JSON.Value): Array<string> {
  const items = v.items();
  const out = new Array<string>();
  for (let i = 0; i < items.length; i++) {
    const item = unchecked(items[i]);
    if (item.isString) out.push(item.asString());
  }
  return out;
}

