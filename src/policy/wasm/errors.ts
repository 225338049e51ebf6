/**
 * The error admission throws for a module it refuses. `code` lets the upload API answer precisely;
 * the message is written for the policy author and says what to change.
 */
export type AdmissionErrorCode =
  /** Not a WebAssembly module the engine accepts, or malformed where admission reads it. */
  | "invalid_module"
  /** A required export (`eval`) is absent. */
  | "missing_export"
  /** A policy export has the wrong kind or type, or a sandbox export name is taken. */
  | "bad_export"
  /** An import the ABI refuses outright (network functions, non-function imports). */
  | "forbidden_import"
  /** An import from a module or of a name the ABI does not know. */
  | "unknown_import"
  /** A WASI import: policies run without WASI. */
  | "wasi_import"
  /** A known kernel or host function imported with another signature. */
  | "bad_import_signature"
  /** A WebAssembly feature the sandbox does not instrument (threads, exceptions, GC, memory64, ...). */
  | "unsupported_feature"
  /** The module's initial memory is over the policy's memory cap. */
  | "memory_exceeded";

export class AdmissionError extends Error {
  override readonly name = "AdmissionError";
  constructor(
    readonly code: AdmissionErrorCode,
    message: string,
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
  }
}

export const refuse = (
  code: AdmissionErrorCode,
  message: string,
  details?: Record<string, unknown>,
): never => {
  throw new AdmissionError(code, message, details);
};

/** Malformed bytes where the engine accepted the module: only reachable through a reader bug. */
export const malformed = (what: string, offset: number): never =>
  refuse("invalid_module", `malformed module: ${what} at byte ${offset}`, { offset });
