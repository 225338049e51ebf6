/**
 * Moving bytes between the policy's linear memory and the host. The call's input and output go
 * through the aios host functions `aios_input_read` / `aios_output_write`: one call each, straight
 * from and into linear memory. Everything else (host function arguments and results, errors, logs)
 * uses Extism kernel blocks, where every access is a round trip to the host (in the JS SDK a few
 * hundred nanoseconds), so those transfers go eight bytes at a time, the tail as one overlapping u64;
 * the as-pdk helpers go byte by byte on the way out.
 */
import {
  alloc,
  error_set,
  free,
  input_length,
  length,
  log_debug,
  log_error,
  log_info,
  log_warn,
  store_u64,
  store_u8,
} from "@extism/as-pdk/lib/env";
import * as JSON from "./json";

// @ts-ignore: decorator
@external("extism:host/user", "aios_input_read")
declare function aios_input_read(dst: u64): u64;
// @ts-ignore: decorator
@external("extism:host/user", "aios_output_write")
declare function aios_output_write(src: u64, len: u64): void;

// @ts-ignore: decorator
@external("extism:host/user", "aios_block_read")
declare function aios_block_read(block: u64, dst: u64): u64;

/** Scratch for incoming bytes (input, host results); reused across calls. */
let inPtr: usize = 0;
let inCap: usize = 0;

function ensureIn(n: usize): usize {
  if (n > inCap || (inCap > 1 << 20 && n < 1 << 16)) {
    // Grow on demand; give back an unusually large buffer once small inputs return.
    if (inPtr != 0) heap.free(inPtr);
    let cap: usize = 1024;
    while (cap < n) cap <<= 1;
    inPtr = heap.alloc(cap);
    inCap = cap;
  }
  return inPtr;
}

/** Copies the call's input into scratch; returns its length. */
function copyInput(): usize {
  const dst = ensureIn(<usize>input_length());
  return <usize>aios_input_read(<u64>dst);
}

/** Parses the call's input; null with `JSON.errorMessage()` when it is not valid JSON. */
export function readInputJson(): JSON.Value | null {
  const n = copyInput();
  return JSON.parseBytes(inPtr, <i32>n);
}

/** Parses the call's input into a document (see `JSON.parseDocument`); null when it is not JSON. */
export function readInputDocument(): JSON.Doc | null {
  const n = copyInput();
  return JSON.parseDocument(inPtr, <i32>n);
}

/** The call's input as text. */
export function readInputText(): string {
  const n = copyInput();
  return String.UTF8.decodeUnsafe(inPtr, n);
}

/** Copies the kernel block at `offset` into scratch; returns its length. */
function loadBlock(offset: u64): usize {
  // One host call for the whole block (a metrics answer is ~1 kB: 100+ load_u64 round trips otherwise).
  const n = <usize>length(offset);
  return <usize>aios_block_read(offset, <u64>ensureIn(n));
}

/** Parses the JSON in a kernel block and frees the block; null when absent or malformed. */
export function takeBlockJson(offset: u64): JSON.Value | null {
  if (offset == 0) return null;
  const n = loadBlock(offset);
  free(offset);
  return JSON.parseBytes(inPtr, <i32>n);
}

/** Copies `len` bytes at `ptr` into a new kernel block. */
export function storeBytes(ptr: usize, len: usize): u64 {
  const offset = alloc(<u64>len);
  if (len < 8) {
    for (let i: usize = 0; i < len; i++) store_u8(offset + <u64>i, load<u8>(ptr + i));
    return offset;
  }
  let i: usize = 0;
  for (; i + 8 <= len; i += 8) store_u64(offset + <u64>i, load<u64>(ptr + i));
  // The tail as one overlapping u64 ending at the last byte.
  if (i < len) store_u64(offset + <u64>(len - 8), load<u64>(ptr + len - 8));
  return offset;
}

/** A new kernel block holding `s` as UTF-8. */
export function storeString(s: string): u64 {
  const buf = String.UTF8.encode(s);
  return storeBytes(changetype<usize>(buf), <usize>buf.byteLength);
}

const outBuf = new JSON.ByteBuffer();

/** A new kernel block holding the JSON text of `v`. */
export function storeJson(v: JSON.Value): u64 {
  outBuf.reset();
  JSON.writeTo(outBuf, v);
  return storeBytes(outBuf.ptr, outBuf.len);
}

/** Sets the call's output to the JSON text of `v`. */
export function setOutputJson(v: JSON.Value): void {
  outBuf.reset();
  JSON.writeTo(outBuf, v);
  aios_output_write(<u64>outBuf.ptr, <u64>outBuf.len);
}

/** Sets the call's output to the `len` bytes at `ptr` (JSON text the caller vouches for). */
export function setOutputBytes(ptr: usize, len: usize): void {
  aios_output_write(<u64>ptr, <u64>len);
}

/** Sets the call's output to `s`. */
export function setOutputString(s: string): void {
  const buf = String.UTF8.encode(s);
  aios_output_write(<u64>changetype<usize>(buf), <u64>buf.byteLength);
}

/** Sets the call's error; the host reports it instead of the output. */
export function setError(message: string): void {
  error_set(storeString(message));
}

export const enum LogLevel {
  Debug = 0,
  Info = 1,
  Warn = 2,
  Error = 3,
}

export function log(level: LogLevel, message: string): void {
  const offset = storeString(message);
  if (level == LogLevel.Debug) log_debug(offset);
  else if (level == LogLevel.Info) log_info(offset);
  else if (level == LogLevel.Warn) log_warn(offset);
  else log_error(offset);
  free(offset);
}
