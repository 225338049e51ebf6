/**
 * A small JSON value model for policies: strict RFC 8259 parsing straight from UTF-8 bytes, and
 * stringifying straight into UTF-8 bytes, so policy input and output never take a detour through a
 * whole-document UTF-16 string. Parsing never traps on bad input: it returns null and keeps the reason
 * (`JSON.errorMessage()`), because a malformed request must become an error, not a dead instance.
 *
 * Reading is forgiving by design: `get(key)` on a missing key or a non-object answers the shared JSON
 * null, and the typed getters take a default, so policy code reads like the Python policies it replaces.
 *
 * Policies use it as a namespace: `import { JSON } from "../../sdk"` (the SDK does `import * as JSON`),
 * then `JSON.Value`, `JSON.parse`, `JSON.obj()`... Inside this file `boolean` stands for `bool`,
 * which the `bool()` builder shadows.
 */
import { exactDecimal } from "./decimal";

export const enum Kind {
  Null = 0,
  Bool = 1,
  Number = 2,
  String = 3,
  Array = 4,
  Object = 5,
}

/**
 * Deeper documents are refused rather than risking the call stack: the parser recurses, and under
 * Bun about 400 levels already exhaust the host's stack. Policy documents nest a dozen levels at most.
 */
export const MAX_DEPTH: i32 = 128;

/** Objects with more members than this get a key -> index map on first lookup. */
const INDEX_THRESHOLD: i32 = 8;

export class Value {
  kind: i32;

  constructor(kind: i32) {
    this.kind = kind;
  }

  get isNull(): boolean {
    return this.kind == Kind.Null;
  }
  get isBool(): boolean {
    return this.kind == Kind.Bool;
  }
  get isNumber(): boolean {
    return this.kind == Kind.Number;
  }
  get isString(): boolean {
    return this.kind == Kind.String;
  }
  get isArray(): boolean {
    return this.kind == Kind.Array;
  }
  get isObject(): boolean {
    return this.kind == Kind.Object;
  }

  // ---- scalars -------------------------------------------------------------------------------

  asBool(def: boolean = false): boolean {
    return this.kind == Kind.Bool ? changetype<BoolValue>(this).value : def;
  }

  asNumber(def: f64 = 0): f64 {
    return this.kind == Kind.Number ? changetype<NumberValue>(this).value : def;
  }

  /** The number truncated to i32 (saturating), or `def` when this is not a finite number. */
  asInt(def: i32 = 0): i32 {
    if (this.kind != Kind.Number) return def;
    const n = changetype<NumberValue>(this).value;
    if (!isFinite(n)) return def;
    if (n >= 2147483647) return i32.MAX_VALUE;
    if (n <= -2147483648) return i32.MIN_VALUE;
    return <i32>n;
  }

  asString(def: string = ""): string {
    return this.kind == Kind.String ? changetype<StringValue>(this).value : def;
  }

  // ---- arrays and objects ----------------------------------------------------------------------

  /** Items of an array, members of an object, 0 otherwise. */
  get length(): i32 {
    if (this.kind == Kind.Array) return changetype<ArrayValue>(this).list.length;
    if (this.kind == Kind.Object) return changetype<ObjectValue>(this).count;
    return 0;
  }

  /** The array's items (live, not a copy), or a new empty array for anything else. */
  items(): Array<Value> {
    return this.kind == Kind.Array ? changetype<ArrayValue>(this).list : new Array<Value>();
  }

  /** Item `i` of an array, or JSON null when out of range or not an array. */
  at(i: i32): Value {
    if (this.kind != Kind.Array) return NULL;
    const items = changetype<ArrayValue>(this).list;
    return i >= 0 && i < items.length ? unchecked(items[i]) : NULL;
  }

  /** Appends to an array (no-op otherwise); returns this for chaining. */
  push(v: Value): Value {
    if (this.kind == Kind.Array) changetype<ArrayValue>(this).list.push(v);
    return this;
  }

  pushString(s: string): Value {
    return this.push(str(s));
  }

  pushNumber(n: f64): Value {
    return this.push(num(n));
  }

  /** The object's keys in document order (a copy), or an empty array. */
  keys(): Array<string> {
    if (this.kind != Kind.Object) return new Array<string>();
    const o = changetype<ObjectValue>(this);
    const out = new Array<string>(o.count);
    for (let i = 0; i < o.count; i++) unchecked((out[i] = unchecked(o.keySlots[i])));
    return out;
  }

  /** The object's values in key order (a copy), or an empty array. */
  values(): Array<Value> {
    if (this.kind != Kind.Object) return new Array<Value>();
    const o = changetype<ObjectValue>(this);
    const out = new Array<Value>(o.count);
    for (let i = 0; i < o.count; i++) unchecked((out[i] = unchecked(o.valueSlots[i])));
    return out;
  }

  /** Key `i` of an object (document order), or "" when out of range. */
  keyAt(i: i32): string {
    if (this.kind != Kind.Object) return "";
    const o = changetype<ObjectValue>(this);
    return i >= 0 && i < o.count ? unchecked(o.keySlots[i]) : "";
  }

  /** Value `i` of an object (document order), or JSON null when out of range. */
  valueAt(i: i32): Value {
    if (this.kind != Kind.Object) return NULL;
    const o = changetype<ObjectValue>(this);
    return i >= 0 && i < o.count ? unchecked(o.valueSlots[i]) : NULL;
  }

  has(key: string): boolean {
    return this.kind == Kind.Object && changetype<ObjectValue>(this).indexOf(key) >= 0;
  }

  /** Member `key` of an object, or JSON null when absent or not an object (see `has`). */
  get(key: string): Value {
    if (this.kind != Kind.Object) return NULL;
    const o = changetype<ObjectValue>(this);
    const i = o.indexOf(key);
    return i >= 0 ? unchecked(o.valueSlots[i]) : NULL;
  }

  getString(key: string, def: string = ""): string {
    return this.get(key).asString(def);
  }

  getNumber(key: string, def: f64 = 0): f64 {
    return this.get(key).asNumber(def);
  }

  getInt(key: string, def: i32 = 0): i32 {
    return this.get(key).asInt(def);
  }

  getBool(key: string, def: boolean = false): boolean {
    return this.get(key).asBool(def);
  }

  /** Member `key` when it is an object, else null. */
  getObject(key: string): Value | null {
    const v = this.get(key);
    return v.kind == Kind.Object ? v : null;
  }

  /** Member `key`'s items when it is an array, else null. */
  getArray(key: string): Array<Value> | null {
    const v = this.get(key);
    return v.kind == Kind.Array ? changetype<ArrayValue>(v).list : null;
  }

  /** Sets member `key` of an object (replacing in place, keeping order); returns this. */
  set(key: string, v: Value): Value {
    if (this.kind == Kind.Object) changetype<ObjectValue>(this).put(key, v);
    return this;
  }

  setString(key: string, s: string): Value {
    return this.set(key, str(s));
  }

  setNumber(key: string, n: f64): Value {
    return this.set(key, num(n));
  }

  setBool(key: string, b: boolean): Value {
    return this.set(key, bool(b));
  }

  /** Removes member `key`; true when it was there. */
  remove(key: string): boolean {
    return this.kind == Kind.Object && changetype<ObjectValue>(this).remove(key);
  }

  /** A deep copy (scalars are immutable and shared). */
  clone(): Value {
    if (this.kind == Kind.Array) {
      const src = changetype<ArrayValue>(this).list;
      const out = new Array<Value>(src.length);
      for (let i = 0; i < src.length; i++) unchecked((out[i] = unchecked(src[i]).clone()));
      return new ArrayValue(out);
    }
    if (this.kind == Kind.Object) {
      const o = changetype<ObjectValue>(this);
      const copy = new ObjectValue(o.count);
      for (let i = 0; i < o.count; i++) copy.append(unchecked(o.keySlots[i]), unchecked(o.valueSlots[i]).clone());
      return copy;
    }
    return this;
  }

  /** Structural equality (object key order ignored; numbers by value). */
  equals(other: Value): boolean {
    if (this.kind != other.kind) return false;
    switch (this.kind) {
      case Kind.Null:
        return true;
      case Kind.Bool:
        return this.asBool() == other.asBool();
      case Kind.Number:
        return this.asNumber() == other.asNumber();
      case Kind.String:
        return this.asString() == other.asString();
      case Kind.Array: {
        const a = changetype<ArrayValue>(this).list;
        const b = changetype<ArrayValue>(other).list;
        if (a.length != b.length) return false;
        for (let i = 0; i < a.length; i++) if (!unchecked(a[i]).equals(unchecked(b[i]))) return false;
        return true;
      }
      default: {
        const a = changetype<ObjectValue>(this);
        const b = changetype<ObjectValue>(other);
        if (a.count != b.count) return false;
        for (let i = 0; i < a.count; i++) {
          const j = b.indexOf(unchecked(a.keySlots[i]));
          if (j < 0 || !unchecked(a.valueSlots[i]).equals(unchecked(b.valueSlots[j]))) return false;
        }
        return true;
      }
    }
  }

  /** Compact JSON text. */
  toString(): string {
    return stringify(this);
  }
}

class BoolValue extends Value {
  value: boolean;
  constructor(value: boolean) {
    super(Kind.Bool);
    this.value = value;
  }
}

class NumberValue extends Value {
  value: f64;
  constructor(value: f64) {
    super(Kind.Number);
    this.value = value;
  }
}

class StringValue extends Value {
  value: string;
  constructor(value: string) {
    super(Kind.String);
    this.value = value;
  }
}

class ArrayValue extends Value {
  list: Array<Value>;
  constructor(list: Array<Value>) {
    super(Kind.Array);
    this.list = list;
  }
}

/** Members in two parallel static arrays: three allocations for a parsed object of any size. */
class ObjectValue extends Value {
  keySlots: StaticArray<string>;
  valueSlots: StaticArray<Value>;
  count: i32 = 0;
  /** Built lazily for big objects; null while the linear scan is cheaper. */
  index: Map<string, i32> | null = null;

  constructor(capacity: i32) {
    super(Kind.Object);
    this.keySlots = new StaticArray<string>(capacity);
    this.valueSlots = new StaticArray<Value>(capacity);
  }

  indexOf(key: string): i32 {
    const n = this.count;
    if (n <= INDEX_THRESHOLD) {
      const keys = this.keySlots;
      for (let i = 0; i < n; i++) if (unchecked(keys[i]) == key) return i;
      return -1;
    }
    let index = this.index;
    if (index == null) {
      index = new Map<string, i32>();
      for (let i = 0; i < n; i++) index.set(unchecked(this.keySlots[i]), i);
      this.index = index;
    }
    return index.has(key) ? index.get(key) : -1;
  }

  /** Adds a member without looking for an existing one (the caller knows it is new). */
  append(key: string, v: Value): void {
    const i = this.count;
    if (i == this.keySlots.length) {
      const cap = i < 4 ? 4 : i << 1;
      const keys = new StaticArray<string>(cap);
      const values = new StaticArray<Value>(cap);
      for (let j = 0; j < i; j++) {
        unchecked((keys[j] = unchecked(this.keySlots[j])));
        unchecked((values[j] = unchecked(this.valueSlots[j])));
      }
      this.keySlots = keys;
      this.valueSlots = values;
    }
    unchecked((this.keySlots[i] = key));
    unchecked((this.valueSlots[i] = v));
    this.count = i + 1;
    const index = this.index;
    if (index != null) index.set(key, i);
  }

  put(key: string, v: Value): void {
    const i = this.indexOf(key);
    if (i >= 0) unchecked((this.valueSlots[i] = v));
    else this.append(key, v);
  }

  remove(key: string): boolean {
    const i = this.indexOf(key);
    if (i < 0) return false;
    for (let j = i + 1; j < this.count; j++) {
      unchecked((this.keySlots[j - 1] = unchecked(this.keySlots[j])));
      unchecked((this.valueSlots[j - 1] = unchecked(this.valueSlots[j])));
    }
    this.count--;
    // Drop the references the shift left behind in the last slot.
    unchecked((this.keySlots[this.count] = ""));
    unchecked((this.valueSlots[this.count] = NULL));
    this.index = null;
    return true;
  }
}

// ---- builders ----------------------------------------------------------------------------------

const NULL: Value = new Value(Kind.Null);
const TRUE: Value = new BoolValue(true);
const FALSE: Value = new BoolValue(false);
const EMPTY_STRING: Value = new StringValue("");

// Small non-negative integers (counts, sequence numbers, ports) are shared; numbers are immutable.
const SMALL_INTS: i32 = 256;
const smallInts = new StaticArray<NumberValue | null>(SMALL_INTS);

function smallInt(n: i32): Value {
  let v = unchecked(smallInts[n]);
  if (v == null) {
    v = new NumberValue(<f64>n);
    unchecked((smallInts[n] = v));
  }
  return v;
}

export function nul(): Value {
  return NULL;
}

export function bool(b: boolean): Value {
  return b ? TRUE : FALSE;
}

export function num(n: f64): Value {
  // Not for -0, which must stay -0.
  if (n >= 0 && n < <f64>SMALL_INTS && n == Math.trunc(n) && !(n == 0 && 1 / n < 0)) return smallInt(<i32>n);
  return new NumberValue(n);
}

export function str(s: string): Value {
  return s.length == 0 ? EMPTY_STRING : new StringValue(s);
}

export function arr(): Value {
  return new ArrayValue(new Array<Value>());
}

export function obj(): Value {
  return new ObjectValue(4);
}

/** An array of strings, e.g. instance ids. */
export function strings(list: Array<string>): Value {
  const items = new Array<Value>(list.length);
  for (let i = 0; i < list.length; i++) unchecked((items[i] = new StringValue(unchecked(list[i]))));
  return new ArrayValue(items);
}

/** Wraps existing values as an array (the array is used, not copied). */
export function arrayOf(items: Array<Value>): Value {
  return new ArrayValue(items);
}

// ---- parsing -----------------------------------------------------------------------------------

// Parser state lives in globals: parsing is never re-entered, and globals are cheaper than a
// parser object threaded through every call.
let src: usize = 0;
let pos: usize = 0;
let end: usize = 0;
let depth: i32 = 0;
let failed: boolean = false;
let error: string = "";

/** Why the last `parse` returned null. */
export function errorMessage(): string {
  return error;
}

/** Parses JSON text; null (with `errorMessage()`) when it is not exactly one valid JSON value. */
export function parse(text: string): Value | null {
  const buf = String.UTF8.encode(text);
  return parseBytes(changetype<usize>(buf), buf.byteLength);
}

/** Parses `len` UTF-8 bytes at `ptr` (which must stay valid during the call). */
export function parseBytes(ptr: usize, len: i32): Value | null {
  src = ptr;
  pos = ptr;
  end = ptr + <usize>len;
  depth = 0;
  failed = false;
  error = "";
  // A failed parse may have left members on the stacks.
  keyStack.length = 0;
  valueStack.length = 0;
  skipSpace();
  if (pos >= end) return fail("unexpected end of input, expected a JSON value");
  const v = parseValue();
  if (failed) return null;
  skipSpace();
  if (pos < end) return fail("unexpected " + describeByte() + " after the JSON value");
  return v;
}

function fail(message: string): Value | null {
  if (!failed) {
    failed = true;
    error = "invalid JSON at byte " + (<i32>(pos - src)).toString() + ": " + message;
  }
  return null;
}

function describeByte(): string {
  if (pos >= end) return "end of input";
  const c = <i32>load<u8>(pos);
  if (c >= 0x20 && c < 0x7f) return "'" + String.fromCharCode(c) + "'";
  return "byte 0x" + c.toString(16);
}

// @ts-ignore: decorator
@inline
function skipSpace(): void {
  let p = pos;
  while (p < end) {
    const c = load<u8>(p);
    // Most bytes met here are not blanks: one comparison settles them.
    if (c > 0x20 || (c != 0x20 && c != 0x0a && c != 0x0d && c != 0x09)) break;
    p++;
  }
  pos = p;
}

function parseValue(): Value | null {
  const c = <i32>load<u8>(pos);
  switch (c) {
    case 0x7b: // {
      return parseObject();
    case 0x5b: // [
      return parseArray();
    case 0x22: // "
      return parseString();
    case 0x74: // t
      return literal("true", TRUE);
    case 0x66: // f
      return literal("false", FALSE);
    case 0x6e: // n
      return literal("null", NULL);
    default:
      if (c == 0x2d || (c >= 0x30 && c <= 0x39)) return parseNumber();
      return fail("unexpected " + describeByte() + ", expected a JSON value");
  }
}

function literal(word: string, v: Value): Value | null {
  const n = <usize>word.length;
  if (end - pos < n) return fail("unexpected end of input in literal '" + word + "'");
  for (let i: usize = 0; i < n; i++) {
    if (<i32>load<u8>(pos + i) != word.charCodeAt(<i32>i)) {
      pos += i;
      return fail("invalid literal, expected '" + word + "'");
    }
  }
  pos += n;
  return v;
}

// Members and items being parsed wait on these stacks (globals, so the collector sees them) and are
// copied into exactly sized storage when their object or array closes: no growing, no slack.
const keyStack = new Array<string>();
const valueStack = new Array<Value>();

function parseObject(): Value | null {
  if (++depth > MAX_DEPTH) return fail("nesting deeper than " + MAX_DEPTH.toString() + " levels");
  pos++; // {
  skipSpace();
  if (pos < end && load<u8>(pos) == 0x7d) {
    pos++;
    depth--;
    return new ObjectValue(0);
  }
  // Arrays push items without names, so each stack has its own base.
  const keyBase = keyStack.length;
  const base = valueStack.length;
  while (true) {
    skipSpace();
    if (pos >= end) return fail("unexpected end of input in an object");
    if (load<u8>(pos) != 0x22) return fail("unexpected " + describeByte() + ", expected a member name");
    const key = parseString();
    if (key == null) return null;
    skipSpace();
    if (pos >= end || load<u8>(pos) != 0x3a) return fail("unexpected " + describeByte() + ", expected ':'");
    pos++;
    skipSpace();
    if (pos >= end) return fail("unexpected end of input, expected a member value");
    const v = parseValue();
    if (v == null) return null;
    keyStack.push(changetype<StringValue>(key).value);
    valueStack.push(v);
    skipSpace();
    if (pos >= end) return fail("unexpected end of input in an object");
    const c = load<u8>(pos);
    pos++;
    if (c == 0x2c) continue;
    if (c == 0x7d) break;
    pos--;
    return fail("unexpected " + describeByte() + ", expected ',' or '}'");
  }
  const n = valueStack.length - base;
  const o = new ObjectValue(n);
  // put() keeps one member per name, the last value winning (as JavaScript's JSON.parse does).
  for (let i = 0; i < n; i++) o.put(unchecked(keyStack[keyBase + i]), unchecked(valueStack[base + i]));
  keyStack.length = keyBase;
  valueStack.length = base;
  depth--;
  return o;
}

function parseArray(): Value | null {
  if (++depth > MAX_DEPTH) return fail("nesting deeper than " + MAX_DEPTH.toString() + " levels");
  pos++; // [
  skipSpace();
  if (pos < end && load<u8>(pos) == 0x5d) {
    pos++;
    depth--;
    return new ArrayValue(new Array<Value>());
  }
  const base = valueStack.length;
  while (true) {
    skipSpace();
    if (pos >= end) return fail("unexpected end of input in an array");
    const v = parseValue();
    if (v == null) return null;
    valueStack.push(v);
    skipSpace();
    if (pos >= end) return fail("unexpected end of input in an array");
    const c = load<u8>(pos);
    pos++;
    if (c == 0x2c) continue;
    if (c == 0x5d) break;
    pos--;
    return fail("unexpected " + describeByte() + ", expected ',' or ']'");
  }
  const n = valueStack.length - base;
  const list = new Array<Value>(n);
  for (let i = 0; i < n; i++) unchecked((list[i] = unchecked(valueStack[base + i])));
  valueStack.length = base;
  depth--;
  return new ArrayValue(list);
}

// Scratch UTF-16 buffer for strings with escapes or non-ASCII text; grows, never shrinks.
let scratch: usize = 0;
let scratchCap: usize = 0;

function ensureScratch(units: usize): void {
  const bytes = units << 1;
  if (bytes <= scratchCap) return;
  let cap = scratchCap < 1024 ? <usize>1024 : scratchCap;
  while (cap < bytes) cap <<= 1;
  scratch = scratch == 0 ? heap.alloc(cap) : heap.realloc(scratch, cap);
  scratchCap = cap;
}

// Short ASCII strings repeat from call to call (member names, instance ids, rule ids), so parsed
// ones are kept in a small direct-mapped cache and reused: string values are immutable, and a
// cache hit saves two allocations. A collision simply replaces the slot.
const INTERN_SLOTS: u32 = 512;
const INTERN_MAX_LENGTH: i32 = 48;
const interned = new StaticArray<StringValue | null>(<i32>INTERN_SLOTS);

function internAscii(ptr: usize, n: i32): StringValue {
  // The slot comes from the length and the first and last eight bytes: cheap, and a collision only
  // costs a miss since the whole string is compared.
  let h: u64 = <u64>n * 0x9e3779b97f4a7c15;
  if (n >= 8) {
    h ^= load<u64>(ptr) * 0xff51afd7ed558ccd;
    h ^= load<u64>(ptr + <usize>n - 8) * 0xc4ceb9fe1a85ec53;
  } else {
    for (let i = 0; i < n; i++) h = (h ^ <u64>load<u8>(ptr + <usize>i)) * 0x100000001b3;
  }
  const slot = <i32>((h ^ (h >> 29)) & (INTERN_SLOTS - 1));
  const hit = unchecked(interned[slot]);
  if (hit != null) {
    const s = hit.value;
    if (s.length == n) {
      const chars = changetype<usize>(s);
      let i = 0;
      while (i < n && load<u16>(chars + (<usize>i << 1)) == <u16>load<u8>(ptr + <usize>i)) i++;
      if (i == n) return hit;
    }
  }
  const v = new StringValue(asciiString(ptr, n));
  unchecked((interned[slot] = v));
  return v;
}

// SWAR masks: eight bytes tested at once for a quote, a backslash, a control or a non-ASCII byte.
const ONES: u64 = 0x0101010101010101;
const HIGHS: u64 = 0x8080808080808080;

// @ts-ignore: decorator
@inline
function hasSpecialByte(x: u64): boolean {
  const quote = x ^ (ONES * 0x22);
  const slash = x ^ (ONES * 0x5c);
  const special =
    ((quote - ONES) & ~quote) | ((slash - ONES) & ~slash) | (x - ONES * 0x20) | x;
  return (special & HIGHS) != 0;
}

/** Parses a string at `pos` (on its opening quote); null on error. */
function parseString(): Value | null {
  const start = pos + 1;
  let p = start;
  const stop = end;
  // Fast path: plain ASCII without escapes (ids, keys), scanned eight bytes at a time.
  while (p + 8 <= stop && !hasSpecialByte(load<u64>(p))) p += 8;
  while (p < stop) {
    const c = load<u8>(p);
    if (c == 0x22) {
      const n = <i32>(p - start);
      pos = p + 1;
      if (n == 0) return EMPTY_STRING;
      return n <= INTERN_MAX_LENGTH ? internAscii(start, n) : new StringValue(asciiString(start, n));
    }
    if (c == 0x5c || c < 0x20 || c >= 0x80) break;
    p++;
  }
  if (p >= stop) {
    pos = p;
    return fail("unterminated string");
  }
  const s = parseStringSlow(start);
  return s == null ? null : new StringValue(s);
}

function asciiString(ptr: usize, n: i32): string {
  if (n == 0) return "";
  const out = changetype<string>(__new(<usize>n << 1, idof<string>()));
  const dst = changetype<usize>(out);
  let i = 0;
  // Four bytes widened to four UTF-16 units per step.
  for (; i + 4 <= n; i += 4) {
    const x = <u64>load<u32>(ptr + <usize>i);
    const wide = (x & 0xff) | ((x & 0xff00) << 8) | ((x & 0xff0000) << 16) | ((x & 0xff000000) << 24);
    store<u64>(dst + (<usize>i << 1), wide);
  }
  for (; i < n; i++) store<u16>(dst + (<usize>i << 1), load<u8>(ptr + <usize>i));
  return out;
}

function hexDigit(c: i32): i32 {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x61 && c <= 0x66) return c - 0x61 + 10;
  if (c >= 0x41 && c <= 0x46) return c - 0x41 + 10;
  return -1;
}

/** Decodes escapes and UTF-8 (validating it) into the scratch buffer. */
function parseStringSlow(start: usize): string | null {
  // A string never has more UTF-16 units than its UTF-8 bytes.
  let p = start;
  ensureScratch(end - start);
  let out: usize = 0; // UTF-16 units written
  while (true) {
    if (p >= end) {
      pos = p;
      fail("unterminated string");
      return null;
    }
    const c = <u32>load<u8>(p);
    if (c == 0x22) {
      pos = p + 1;
      return String.UTF16.decodeUnsafe(scratch, out << 1);
    }
    if (c < 0x20) {
      pos = p;
      fail("control character 0x" + c.toString(16) + " in a string must be escaped");
      return null;
    }
    if (c == 0x5c) {
      if (p + 1 >= end) {
        pos = p;
        fail("unterminated escape");
        return null;
      }
      const e = <u32>load<u8>(p + 1);
      let unit: u32 = 0;
      switch (e) {
        case 0x22:
          unit = 0x22;
          break;
        case 0x5c:
          unit = 0x5c;
          break;
        case 0x2f:
          unit = 0x2f;
          break;
        case 0x62:
          unit = 0x08;
          break;
        case 0x66:
          unit = 0x0c;
          break;
        case 0x6e:
          unit = 0x0a;
          break;
        case 0x72:
          unit = 0x0d;
          break;
        case 0x74:
          unit = 0x09;
          break;
        case 0x75: {
          if (end - p < 6) {
            pos = p;
            fail("truncated \\u escape");
            return null;
          }
          let v: i32 = 0;
          for (let i: usize = 2; i < 6; i++) {
            const h = hexDigit(<i32>load<u8>(p + i));
            if (h < 0) {
              pos = p;
              fail("invalid \\u escape, expected 4 hex digits");
              return null;
            }
            v = (v << 4) | h;
          }
          // A \uD83D\uDE00 pair is two escapes; writing the units as given joins them in UTF-16.
          store<u16>(scratch + (out << 1), <u16>v);
          out++;
          p += 6;
          continue;
        }
        default:
          pos = p;
          fail("invalid escape '\\" + String.fromCharCode(<i32>e) + "'");
          return null;
      }
      store<u16>(scratch + (out << 1), <u16>unit);
      out++;
      p += 2;
      continue;
    }
    if (c < 0x80) {
      store<u16>(scratch + (out << 1), <u16>c);
      out++;
      p++;
      continue;
    }
    // Multi-byte UTF-8: validate strictly (no overlongs, no surrogates, <= U+10FFFF).
    let cp: u32 = 0;
    let need: i32 = 0;
    let min: u32 = 0;
    if (c >= 0xc2 && c <= 0xdf) {
      cp = c & 0x1f;
      need = 1;
      min = 0x80;
    } else if (c >= 0xe0 && c <= 0xef) {
      cp = c & 0x0f;
      need = 2;
      min = 0x800;
    } else if (c >= 0xf0 && c <= 0xf4) {
      cp = c & 0x07;
      need = 3;
      min = 0x10000;
    } else {
      pos = p;
      fail("invalid UTF-8 byte 0x" + c.toString(16));
      return null;
    }
    if (end - p <= <usize>need) {
      pos = p;
      fail("truncated UTF-8 sequence");
      return null;
    }
    for (let i = 1; i <= need; i++) {
      const b = <u32>load<u8>(p + <usize>i);
      if ((b & 0xc0) != 0x80) {
        pos = p;
        fail("invalid UTF-8 continuation byte");
        return null;
      }
      cp = (cp << 6) | (b & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
      pos = p;
      fail("invalid UTF-8 sequence");
      return null;
    }
    if (cp >= 0x10000) {
      const v = cp - 0x10000;
      store<u16>(scratch + (out << 1), <u16>(0xd800 | (v >> 10)));
      store<u16>(scratch + ((out + 1) << 1), <u16>(0xdc00 | (v & 0x3ff)));
      out += 2;
    } else {
      store<u16>(scratch + (out << 1), <u16>cp);
      out++;
    }
    p += <usize>need + 1;
  }
}

// Exact powers of ten for the fast path (all exactly representable as f64).
const POW10: StaticArray<f64> = [
  1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18,
  1e19, 1e20, 1e21, 1e22,
];

function isDigit(c: u32): boolean {
  return c - 0x30 < 10;
}

function parseNumber(): Value | null {
  const start = pos;
  let p = pos;
  let negative = false;
  if (load<u8>(p) == 0x2d) {
    negative = true;
    p++;
  }
  if (p >= end || !isDigit(load<u8>(p))) {
    pos = p;
    return fail("a number needs digits after '-'");
  }
  // Significant digits go into `mantissa` while 19 fit in a u64; the rest only shift the exponent.
  let mantissa: u64 = 0;
  let significant: i32 = 0;
  let truncated = false;
  let exp10: i32 = 0;
  if (load<u8>(p) == 0x30) {
    p++;
    if (p < end && isDigit(load<u8>(p))) {
      pos = p;
      return fail("leading zeros are not allowed in numbers");
    }
  } else {
    while (p < end) {
      const c = <u32>load<u8>(p);
      if (!isDigit(c)) break;
      if (significant < 19) {
        mantissa = mantissa * 10 + <u64>(c - 0x30);
        significant++;
      } else {
        if (c != 0x30) truncated = true;
        exp10++;
      }
      p++;
    }
  }
  if (p < end && load<u8>(p) == 0x2e) {
    p++;
    if (p >= end || !isDigit(load<u8>(p))) {
      pos = p;
      return fail("a number needs digits after '.'");
    }
    while (p < end) {
      const c = <u32>load<u8>(p);
      if (!isDigit(c)) break;
      if (significant < 19) {
        mantissa = mantissa * 10 + <u64>(c - 0x30);
        if (mantissa != 0) significant++;
        exp10--;
      } else if (c != 0x30) {
        truncated = true;
      }
      p++;
    }
  }
  if (p < end && (load<u8>(p) | 0x20) == 0x65) {
    p++;
    let expNegative = false;
    if (p < end && (load<u8>(p) == 0x2b || load<u8>(p) == 0x2d)) {
      expNegative = load<u8>(p) == 0x2d;
      p++;
    }
    if (p >= end || !isDigit(load<u8>(p))) {
      pos = p;
      return fail("a number needs digits in its exponent");
    }
    let e: i32 = 0;
    while (p < end) {
      const c = <u32>load<u8>(p);
      if (!isDigit(c)) break;
      if (e < 100000) e = e * 10 + <i32>(c - 0x30);
      p++;
    }
    exp10 += expNegative ? -e : e;
  }
  pos = p;
  if (!negative && exp10 == 0 && mantissa < <u64>SMALL_INTS) return smallInt(<i32>mantissa);
  let value: f64;
  if (!truncated && mantissa <= 9007199254740992 && exp10 >= -22 && exp10 <= 22) {
    // An exact mantissa and an exact power of ten: one correctly rounded operation (Clinger).
    const m = <f64>mantissa;
    value = exp10 < 0 ? m / unchecked(POW10[-exp10]) : m * unchecked(POW10[exp10]);
    if (negative) value = -value;
  } else {
    // Rare: many digits or a large exponent, where one floating-point operation is not exact.
    const digits = negative ? start + 1 : start;
    value = exactDecimal(digits, p - digits);
    if (negative) value = -value;
  }
  return new NumberValue(value);
}

// ---- stringifying ------------------------------------------------------------------------------

/** A growable UTF-8 byte buffer; reused, so output costs no allocation once warm. */
export class ByteBuffer {
  ptr: usize = 0;
  len: usize = 0;
  cap: usize = 0;

  reset(): void {
    // Give back memory after an unusually large document.
    if (this.cap > 1 << 20) {
      heap.free(this.ptr);
      this.ptr = 0;
      this.cap = 0;
    }
    this.len = 0;
  }

  // @ts-ignore: decorator
  @inline
  ensure(extra: usize): void {
    if (this.len + extra > this.cap) this.grow(extra);
  }

  grow(extra: usize): void {
    let cap = this.cap < 256 ? <usize>256 : this.cap;
    while (cap < this.len + extra) cap <<= 1;
    this.ptr = this.ptr == 0 ? heap.alloc(cap) : heap.realloc(this.ptr, cap);
    this.cap = cap;
  }

  // @ts-ignore: decorator
  @inline
  byte(b: u32): void {
    this.ensure(1);
    store<u8>(this.ptr + this.len, <u8>b);
    this.len++;
  }

  /** Appends ASCII text (no escaping). */
  ascii(s: string): void {
    const n = <usize>s.length;
    this.ensure(n);
    const dst = this.ptr + this.len;
    const from = changetype<usize>(s);
    for (let i: usize = 0; i < n; i++) store<u8>(dst + i, <u8>load<u16>(from + (i << 1)));
    this.len += n;
  }

  toString(): string {
    return String.UTF8.decodeUnsafe(this.ptr, this.len);
  }
}

const HEX = "0123456789abcdef";

function writeString(buf: ByteBuffer, s: string): void {
  const n = <usize>s.length;
  // Worst case per UTF-16 unit is 6 bytes (\u001f or a lone surrogate's escape).
  buf.ensure(n * 6 + 2);
  let dst = buf.ptr + buf.len;
  store<u8>(dst++, 0x22);
  const from = changetype<usize>(s);
  for (let i: usize = 0; i < n; i++) {
    const c = <u32>load<u16>(from + (i << 1));
    if (c < 0x80) {
      if (c >= 0x20 && c != 0x22 && c != 0x5c) {
        store<u8>(dst++, <u8>c);
        continue;
      }
      store<u8>(dst++, 0x5c);
      if (c == 0x22 || c == 0x5c) store<u8>(dst++, <u8>c);
      else if (c == 0x0a) store<u8>(dst++, 0x6e);
      else if (c == 0x0d) store<u8>(dst++, 0x72);
      else if (c == 0x09) store<u8>(dst++, 0x74);
      else if (c == 0x08) store<u8>(dst++, 0x62);
      else if (c == 0x0c) store<u8>(dst++, 0x66);
      else dst = writeUnicodeEscape(dst, c);
    } else if (c < 0x800) {
      store<u8>(dst++, <u8>(0xc0 | (c >> 6)));
      store<u8>(dst++, <u8>(0x80 | (c & 0x3f)));
    } else if (c >= 0xd800 && c <= 0xdfff) {
      const next = i + 1 < n ? <u32>load<u16>(from + ((i + 1) << 1)) : 0;
      if (c <= 0xdbff && next >= 0xdc00 && next <= 0xdfff) {
        const cp = 0x10000 + (((c & 0x3ff) << 10) | (next & 0x3ff));
        store<u8>(dst++, <u8>(0xf0 | (cp >> 18)));
        store<u8>(dst++, <u8>(0x80 | ((cp >> 12) & 0x3f)));
        store<u8>(dst++, <u8>(0x80 | ((cp >> 6) & 0x3f)));
        store<u8>(dst++, <u8>(0x80 | (cp & 0x3f)));
        i++;
      } else {
        // A lone surrogate has no UTF-8 form: keep it as an escape, as JavaScript does.
        store<u8>(dst++, 0x5c);
        dst = writeUnicodeEscape(dst, c);
      }
    } else {
      store<u8>(dst++, <u8>(0xe0 | (c >> 12)));
      store<u8>(dst++, <u8>(0x80 | ((c >> 6) & 0x3f)));
      store<u8>(dst++, <u8>(0x80 | (c & 0x3f)));
    }
  }
  store<u8>(dst++, 0x22);
  buf.len = dst - buf.ptr;
}

/** Writes `uXXXX` (the backslash is already written). */
function writeUnicodeEscape(dst: usize, c: u32): usize {
  store<u8>(dst++, 0x75);
  store<u8>(dst++, <u8>HEX.charCodeAt((c >> 12) & 0xf));
  store<u8>(dst++, <u8>HEX.charCodeAt((c >> 8) & 0xf));
  store<u8>(dst++, <u8>HEX.charCodeAt((c >> 4) & 0xf));
  store<u8>(dst++, <u8>HEX.charCodeAt(c & 0xf));
  return dst;
}

function writeNumber(buf: ByteBuffer, n: f64): void {
  if (!isFinite(n)) {
    // JSON has no NaN or Infinity.
    buf.ascii("null");
    return;
  }
  if (n == Math.trunc(n) && Math.abs(n) < 9007199254740992.0) {
    let v = <i64>n;
    if (v == 0) {
      buf.byte(0x30);
      return;
    }
    buf.ensure(21);
    if (v < 0) {
      buf.byte(0x2d);
      v = -v;
    }
    // Digits are written backwards into place.
    let digits: usize = 0;
    let t = v;
    while (t > 0) {
      t /= 10;
      digits++;
    }
    let dst = buf.ptr + buf.len + digits;
    while (v > 0) {
      store<u8>(--dst, <u8>(0x30 + <i32>(v % 10)));
      v /= 10;
    }
    buf.len += digits;
    return;
  }
  buf.ascii(n.toString());
}

function writeValue(buf: ByteBuffer, v: Value): void {
  switch (v.kind) {
    case Kind.Null:
      buf.ascii("null");
      return;
    case Kind.Bool:
      buf.ascii(changetype<BoolValue>(v).value ? "true" : "false");
      return;
    case Kind.Number:
      writeNumber(buf, changetype<NumberValue>(v).value);
      return;
    case Kind.String:
      writeString(buf, changetype<StringValue>(v).value);
      return;
    case Kind.Array: {
      const items = changetype<ArrayValue>(v).list;
      buf.byte(0x5b);
      for (let i = 0; i < items.length; i++) {
        if (i > 0) buf.byte(0x2c);
        writeValue(buf, unchecked(items[i]));
      }
      buf.byte(0x5d);
      return;
    }
    default: {
      const o = changetype<ObjectValue>(v);
      const keys = o.keySlots;
      const values = o.valueSlots;
      buf.byte(0x7b);
      for (let i = 0; i < o.count; i++) {
        if (i > 0) buf.byte(0x2c);
        writeString(buf, unchecked(keys[i]));
        buf.byte(0x3a);
        writeValue(buf, unchecked(values[i]));
      }
      buf.byte(0x7d);
    }
  }
}

/** Appends the compact JSON text of `v` to `buf`. */
export function writeTo(buf: ByteBuffer, v: Value): void {
  writeValue(buf, v);
}

const shared = new ByteBuffer();

export function stringify(v: Value): string {
  shared.reset();
  writeValue(shared, v);
  return shared.toString();
}

/** A JSON string literal for `s` (quoted and escaped). */
export function quote(s: string): string {
  shared.reset();
  writeString(shared, s);
  return shared.toString();
}
