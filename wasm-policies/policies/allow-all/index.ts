/**
 * policy.preCheck.allow-all:v0.0.1 — a pre-check that allows every action unchanged:
 * {"allowed": true, "input_data": <the input_data as given>}. Parameters: none.
 */
import { EvalCall, JSON, serveEval } from "../../sdk";

function decide(call: EvalCall): JSON.Value | null {
  return JSON.obj().setBool("allowed", true).set("input_data", call.inputData);
}

function evaluate(): i32 {
  return serveEval(decide);
}

export { evaluate as eval };
