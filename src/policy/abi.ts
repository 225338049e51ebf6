/**
 * The policy ABI: what a policy module exports and what it may import. Admission (wasm/admission.ts)
 * checks modules against these tables, the runtime binds them, and the AssemblyScript SDK
 * (wasm-policies/sdk) declares the same names. Everything crosses as JSON in Extism kernel memory.
 */

/** Exports a policy may have. Every one has the Extism export type `() -> i32` (0 = ok). */
export const POLICY_EXPORTS = {
  /** Once per policy instance: `{"rule_id","settings","parameters"}`; its output is ignored. */
  init: { required: false },
  /** Every decision: `{"parameters","input_data","context"}` -> the kind's output. */
  eval: { required: true },
  /** Management commands: `{"action","data"}` -> any JSON object. */
  management: { required: false },
} as const;

export type PolicyExport = keyof typeof POLICY_EXPORTS;

export type WasmValType = "i32" | "i64" | "f32" | "f64";
export interface FunctionSignature {
  params: readonly WasmValType[];
  results: readonly WasmValType[];
}

/** The Extism kernel (`extism:host/env`) functions a policy may import, with their signatures. */
export const KERNEL_MODULE = "extism:host/env";
export const KERNEL_FUNCTIONS: Record<string, FunctionSignature> = {
  alloc: { params: ["i64"], results: ["i64"] },
  free: { params: ["i64"], results: [] },
  length: { params: ["i64"], results: ["i64"] },
  length_unsafe: { params: ["i64"], results: ["i64"] },
  load_u8: { params: ["i64"], results: ["i32"] },
  load_u64: { params: ["i64"], results: ["i64"] },
  store_u8: { params: ["i64", "i32"], results: [] },
  store_u64: { params: ["i64", "i64"], results: [] },
  input_length: { params: [], results: ["i64"] },
  input_offset: { params: [], results: ["i64"] },
  input_load_u8: { params: ["i64"], results: ["i32"] },
  input_load_u64: { params: ["i64"], results: ["i64"] },
  output_set: { params: ["i64", "i64"], results: [] },
  error_set: { params: ["i64"], results: [] },
  config_get: { params: ["i64"], results: ["i64"] },
  var_get: { params: ["i64"], results: ["i64"] },
  var_set: { params: ["i64", "i64"], results: [] },
  log_info: { params: ["i64"], results: [] },
  log_debug: { params: ["i64"], results: [] },
  log_warn: { params: ["i64"], results: [] },
  log_error: { params: ["i64"], results: [] },
};

/** Kernel functions refused at admission, with the reason given to the uploader. */
export const FORBIDDEN_KERNEL_FUNCTIONS: Record<string, string> = {
  http_request: "policies have no network access; the host passes them the data they need",
  http_status_code: "policies have no network access; the host passes them the data they need",
  http_headers: "policies have no network access; the host passes them the data they need",
};

/**
 * aios host functions, imported from `extism:host/user`. Arguments and results are offsets of
 * kernel memory blocks holding UTF-8 JSON (or a plain string where noted); 0 means "nothing".
 *
 * - aios_get_metrics() -> {"block_metrics","cluster_metrics"} from the hosting service
 * - aios_cluster_read(id: string) -> {"ok":true,"data":cluster} | {"ok":false,"error":string}
 * - aios_cluster_query(query: Mongo filter) -> {"ok":true,"data":[cluster...]} | {"ok":false,"error"}
 * - aios_metrics_get(cluster id: string) -> {"ok":true,"data":metrics} | {"ok":false,"error"}
 * - aios_metrics_query(params: object) -> {"ok":true,"data":[metrics...]} | {"ok":false,"error"}
 * - aios_context_get(key: string) -> the stored JSON value, or 0 when the key is unset
 * - aios_context_set(key: string, value: JSON) -> nothing; the context store is kept per policy rule
 *   across calls and instances of the hosting service
 *
 * Two more move the call's JSON without a host round trip per 8 bytes (the kernel's input_load_u64 and
 * store_u64 cost about 0.1 µs each, several µs for one load-balancer input); they need the module to
 * export its linear memory as `memory`:
 * - aios_input_read(dst: ptr in linear memory) -> the input's length; copies the whole input to dst
 *   (size the buffer with the kernel's input_length first)
 * - aios_output_write(src: ptr, len) -> nothing; the call's output is those bytes (instead of a kernel
 *   block set with output_set)
 * - aios_block_read(block: kernel offset, dst: ptr) -> the block's length; copies a whole kernel block
 *   (a host function's answer) to dst (size the buffer with the kernel's length first)
 *
 * Logging uses the kernel's log_info/log_debug/log_warn/log_error.
 */
export const HOST_MODULE = "extism:host/user";
export const HOST_FUNCTIONS: Record<string, FunctionSignature> = {
  aios_get_metrics: { params: [], results: ["i64"] },
  aios_cluster_read: { params: ["i64"], results: ["i64"] },
  aios_cluster_query: { params: ["i64"], results: ["i64"] },
  aios_metrics_get: { params: ["i64"], results: ["i64"] },
  aios_metrics_query: { params: ["i64"], results: ["i64"] },
  aios_context_get: { params: ["i64"], results: ["i64"] },
  aios_context_set: { params: ["i64", "i64"], results: [] },
  aios_input_read: { params: ["i64"], results: ["i64"] },
  aios_output_write: { params: ["i64", "i64"], results: [] },
  aios_block_read: { params: ["i64", "i64"], results: ["i64"] },
};

/**
 * Names the instrumentation adds. The sandbox module replaces the kernel's `alloc` import with its
 * own (same signature) so kernel memory a policy allocates counts against its memory cap.
 */
export const SANDBOX_MODULE = "aios:sandbox";
export const SANDBOX_EXPORTS = {
  /** Mutable i32 global: fuel left; the host resets it before every exported call. */
  fuel: "aios_fuel",
  /** Mutable i32 global: why the last trap happened (TRAP_REASON), set just before trapping. */
  trap: "aios_trap",
} as const;

export const TRAP_REASON = { none: 0, fuel: 1, memory: 2 } as const;

/** Defaults for a policy's sandbox; each policy may set its own at upload. */
export const SANDBOX_DEFAULTS = {
  /** Fuel units (one per function entry and loop iteration) per exported call. */
  fuel: 10_000_000,
  /** Cap of the policy's linear memory and of the kernel memory it allocates per call, in bytes. */
  memoryBytes: 64 * 1024 * 1024,
  /** Largest output a call may return, in bytes. */
  outputBytes: 1024 * 1024,
} as const;

export const WASM_PAGE_BYTES = 65536;
