/**
 * Small hand-written policies for runtime tests: each is WAT against the Extism kernel ABI, so the
 * tests depend on nothing but wabt.
 */
const KERNEL = `
  (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
  (import "extism:host/env" "store_u8" (func $store_u8 (param i64 i32)))
  (import "extism:host/env" "output_set" (func $output_set (param i64 i64)))
  (import "extism:host/env" "error_set" (func $error_set (param i64)))`;

/** Copies `len` bytes of linear memory at `src` into a new kernel block; returns its offset. */
const COPY_OUT = `
  (func $copy_out (param $src i32) (param $len i32) (result i64)
    (local $off i64) (local $i i32)
    (local.set $off (call $alloc (i64.extend_i32_u (local.get $len))))
    (block $done (loop $next
      (br_if $done (i32.ge_u (local.get $i) (local.get $len)))
      (call $store_u8 (i64.add (local.get $off) (i64.extend_i32_u (local.get $i)))
        (i32.load8_u (i32.add (local.get $src) (local.get $i))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $next)))
    (local.get $off))`;

const escapeWat = (s: string) =>
  Array.from(new TextEncoder().encode(s), (b) => `\\${b.toString(16).padStart(2, "0")}`).join("");

/** A policy whose `eval` (and optional `management`) answers `output` as is, after `before`. */
export const constantPolicy = (output: string, options: { before?: string; management?: boolean } = {}) => {
  const len = new TextEncoder().encode(output).length;
  const answer = `${options.before ?? ""}
    (call $output_set (call $copy_out (i32.const 0) (i32.const ${len})) (i64.const ${len}))
    (i32.const 0)`;
  return `(module ${KERNEL}
  (memory (export "memory") 1)
  (data (i32.const 0) "${escapeWat(output)}")
  ${COPY_OUT}
  (func (export "eval") (result i32) ${answer})
  ${options.management ? `(func (export "management") (result i32) ${answer})` : ""})`;
};

/** A policy that reports `message` through the Extism error and returns 1. */
export const failingPolicy = (message: string) => {
  const len = new TextEncoder().encode(message).length;
  return `(module ${KERNEL}
  (memory (export "memory") 1)
  (data (i32.const 0) "${escapeWat(message)}")
  ${COPY_OUT}
  (func (export "eval") (result i32)
    (call $error_set (call $copy_out (i32.const 0) (i32.const ${len})))
    (i32.const 1)))`;
};

/** An `eval` that never returns. */
export const endlessLoopPolicy = `(module
  (memory (export "memory") 1)
  (func (export "eval") (result i32) (loop $forever (br $forever)) (i32.const 0)))`;

/** An `eval` that grows its linear memory until refused. */
export const memoryBombPolicy = `(module
  (memory (export "memory") 1)
  (func (export "eval") (result i32)
    (loop $more (br_if $more (i32.ne (memory.grow (i32.const 16)) (i32.const -1))))
    (i32.const 0)))`;

/** An `eval` that asks the kernel for `bytes` of memory. */
export const kernelBombPolicy = (bytes: number) => `(module ${KERNEL}
  (memory (export "memory") 1)
  (func (export "eval") (result i32) (drop (call $alloc (i64.const ${bytes}))) (i32.const 0)))`;

/** An `eval` that outputs `bytes` zero bytes. */
export const hugeOutputPolicy = (bytes: number) => `(module ${KERNEL}
  (memory (export "memory") 1)
  (func (export "eval") (result i32)
    (call $output_set (call $alloc (i64.const ${bytes})) (i64.const ${bytes}))
    (i32.const 0)))`;

/**
 * A policy counting its calls in linear memory and echoing the count, and calling the host's
 * aios_get_metrics when `metrics` is set: proves state is kept across calls and host functions work.
 */
export const counterPolicy = `(module ${KERNEL}
  (memory (export "memory") 1)
  (global $calls (mut i32) (i32.const 0))
  ${COPY_OUT}
  ;; {"calls":N} with N a single digit (tests stay below 10 calls)
  (data (i32.const 0) "{\\"calls\\":0}")
  (func (export "eval") (result i32)
    (global.set $calls (i32.add (global.get $calls) (i32.const 1)))
    (i32.store8 (i32.const 9) (i32.add (i32.const 48) (global.get $calls)))
    (call $output_set (call $copy_out (i32.const 0) (i32.const 11)) (i64.const 11))
    (i32.const 0)))`;

/** Imports from WASI: refused at admission. */
export const wasiPolicy = `(module
  (import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "eval") (result i32) (i32.const 0)))`;

/** No `eval` export: refused at admission. */
export const noEvalPolicy = `(module
  (memory (export "memory") 1)
  (func (export "management") (result i32) (i32.const 0)))`;

/** Outputs what the host's aios_get_metrics returns, as is. */
export const metricsEchoPolicy = `(module ${KERNEL}
  (import "extism:host/env" "length" (func $length (param i64) (result i64)))
  (import "extism:host/user" "aios_get_metrics" (func $metrics (result i64)))
  (memory (export "memory") 1)
  (func (export "eval") (result i32) (local $m i64)
    (local.set $m (call $metrics))
    (call $output_set (local.get $m) (call $length (local.get $m)))
    (i32.const 0)))`;

/**
 * Stores its whole input in the context store under "last" when the key is unset, then outputs
 * what the store holds: the first input it ever saw for its rule.
 */
export const contextPolicy = `(module ${KERNEL}
  (import "extism:host/env" "length" (func $length (param i64) (result i64)))
  (import "extism:host/env" "input_offset" (func $input_offset (result i64)))
  (import "extism:host/user" "aios_context_get" (func $ctx_get (param i64) (result i64)))
  (import "extism:host/user" "aios_context_set" (func $ctx_set (param i64 i64)))
  (memory (export "memory") 1)
  (data (i32.const 0) "last")
  ${COPY_OUT}
  (func (export "eval") (result i32) (local $v i64)
    (local.set $v (call $ctx_get (call $copy_out (i32.const 0) (i32.const 4))))
    (if (i64.eqz (local.get $v)) (then
      (call $ctx_set (call $copy_out (i32.const 0) (i32.const 4)) (call $input_offset))
      (local.set $v (call $ctx_get (call $copy_out (i32.const 0) (i32.const 4))))))
    (call $output_set (local.get $v) (call $length (local.get $v)))
    (i32.const 0)))`;

/** Echoes its input through aios_input_read and aios_output_write (no kernel blocks). */
export const directEchoPolicy = `(module
  (import "extism:host/env" "input_length" (func $input_length (result i64)))
  (import "extism:host/user" "aios_input_read" (func $input_read (param i64) (result i64)))
  (import "extism:host/user" "aios_output_write" (func $output_write (param i64 i64)))
  (memory (export "memory") 1)
  (func (export "eval") (result i32) (local $n i64)
    (local.set $n (call $input_read (i64.const 1024)))
    (call $output_write (i64.const 1024) (local.get $n))
    (i32.const 0)))`;
