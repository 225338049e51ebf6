/**
 * Hand-written allocatorServer policies (WebAssembly text) for the allocator tests: each answers a
 * fixed `cluster_id` plus what the test needs to see, so the tests depend on nothing but wabt.
 */
import { PolicyStore } from "../../src/policy/store.ts";
import type { Store } from "../../src/store/index.ts";
import { compileWat } from "../support/wat.ts";

const KERNEL = `
  (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
  (import "extism:host/env" "store_u8" (func $store_u8 (param i64 i32)))
  (import "extism:host/env" "length" (func $length (param i64) (result i64)))
  (import "extism:host/env" "input_length" (func $input_length (result i64)))
  (import "extism:host/user" "aios_input_read" (func $input_read (param i64) (result i64)))
  (import "extism:host/user" "aios_output_write" (func $output_write (param i64 i64)))
  (import "extism:host/user" "aios_block_read" (func $block_read (param i64 i64) (result i64)))`;

const bytesOf = (s: string) => new TextEncoder().encode(s);
const escapeWat = (s: string) =>
  Array.from(bytesOf(s), (b) => `\\${b.toString(16).padStart(2, "0")}`).join("");

/** Copies `len` bytes of linear memory at `src` into a new kernel block (a host function argument). */
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

/**
 * `{"cluster_id": clusterId, <field>: <JSON>}`: the prefix sits at 0, `body` writes its JSON right
 * after it and leaves its length on the stack; then "}" closes the object.
 */
const answering = (clusterId: string, field: string, body: string, extra = "") => {
  const prefix = `{"cluster_id":"${clusterId}","${field}":`;
  const p = bytesOf(prefix).length;
  return `(module ${KERNEL}
  ${extra}
  (memory (export "memory") 512)
  (data (i32.const 0) "${escapeWat(prefix)}")
  ${COPY_OUT}
  (func (export "eval") (result i32) (local $n i32)
    (local.set $n ${body.replaceAll("$P", String(p))})
    (i32.store8 (i32.add (i32.const ${p}) (local.get $n)) (i32.const 125))
    (call $output_write (i64.const 0) (i64.extend_i32_u (i32.add (i32.const ${p + 1}) (local.get $n))))
    (i32.const 0)))`;
};

/** Answers `clusterId` with `"echo"`: the whole eval input (`parameters`, `input_data`, `context`). */
export const echoPolicy = (clusterId: string) =>
  answering(clusterId, "echo", "(i32.wrap_i64 (call $input_read (i64.const $P)))");

export type HostFunction =
  | "aios_cluster_read"
  | "aios_cluster_query"
  | "aios_metrics_get"
  | "aios_metrics_query";

/** Answers `clusterId` with `"host"`: what host function `fn` returned for the argument `arg`. */
export const hostCallPolicy = (clusterId: string, fn: HostFunction, arg: string) => {
  const argBytes = bytesOf(arg).length;
  // The argument sits high in memory, copied to a kernel block for the call.
  return answering(
    clusterId,
    "host",
    `(i32.wrap_i64 (call $block_read (call $host (call $copy_out (i32.const 30000000) (i32.const ${argBytes}))) (i64.const $P)))`,
    `(import "extism:host/user" "${fn}" (func $host (param i64) (result i64)))
  (data (i32.const 30000000) "${escapeWat(arg)}")`,
  );
};

/** Answers `clusterId` after `iterations` turns of an empty loop (one unit of fuel each). */
export const slowPolicy = (clusterId: string, iterations: number) =>
  answering(
    clusterId,
    "spun",
    `(block (result i32)
      (loop $spin
        (local.set $n (i32.add (local.get $n) (i32.const 1)))
        (br_if $spin (i32.lt_u (local.get $n) (i32.const ${iterations}))))
      (i32.store8 (i32.const $P) (i32.const 49))
      (i32.const 1))`,
  );

/** Reports `message` as its error (the Extism error) instead of answering. */
export const failingAllocatorPolicy = (message: string) => `(module
  (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
  (import "extism:host/env" "store_u8" (func $store_u8 (param i64 i32)))
  (import "extism:host/env" "error_set" (func $error_set (param i64)))
  (memory (export "memory") 1)
  (data (i32.const 0) "${escapeWat(message)}")
  ${COPY_OUT}
  (func (export "eval") (result i32)
    (call $error_set (call $copy_out (i32.const 0) (i32.const ${bytesOf(message).length})))
    (i32.const 1)))`;

/** Compiles WAT and stores it as an allocatorServer (or `kind`) policy under `uri`. */
export const uploadWat = async (
  store: Store,
  uri: string,
  wat: string,
  options: { kind?: "allocatorServer" | "loadBalancer"; fuel?: number } = {},
): Promise<void> => {
  const bytes = await compileWat(wat);
  await new PolicyStore(store).upload(uri, bytes, {
    kind: options.kind ?? "allocatorServer",
    ...(options.fuel ? { fuel: options.fuel } : {}),
  });
};
