/**
 * Errors of running a policy. Each names the policy URI and says what went wrong in terms a policy
 * author can act on; hosts choose their fallback by `code` (the executor falls back to round-robin on
 * any of them, the controller refuses the action).
 */
export type PolicyErrorCode =
  /** No policy is stored under the URI. */
  | "not_found"
  /** The policy's kind does not match what the caller needs. */
  | "wrong_kind"
  /** The module lacks the export being called. */
  | "missing_export"
  /** The host's input does not match the kind's contract (a host bug, or bad data passed through). */
  | "bad_input"
  /** The call used its whole fuel budget (an endless or too long loop). */
  | "fuel_exhausted"
  /** The policy tried to grow its linear memory or allocate kernel memory past its cap. */
  | "memory_exceeded"
  /** Any other WebAssembly trap (unreachable, out of bounds, stack overflow, ...). */
  | "trap"
  /** The policy reported an error itself (Extism error_set). */
  | "policy_error"
  /** The output is larger than the host accepts. */
  | "output_too_large"
  /** The output is not JSON, or not of the kind's shape (details.path names where). */
  | "bad_output";

export class PolicyError extends Error {
  override readonly name = "PolicyError";
  constructor(
    readonly code: PolicyErrorCode,
    readonly uri: string,
    message: string,
    readonly details?: Record<string, unknown>,
  ) {
    super(`policy ${uri}: ${message}`);
  }
}

export const isPolicyError = (err: unknown): err is PolicyError => err instanceof PolicyError;
