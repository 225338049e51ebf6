/**
 * A small JSON value model for policies: strict RFC 8259 parsing straight from UTF-8 bytes, and
 * stringifying straight into UTF-8 bytes, so policy input and output never take a detour through a
 * whole-document UTF-16 string. Parsing never traps on bad input: it returns null and keeps the reason
 * (`JSON.errorMessage()`), because a malformed request must become an error, not a dead instance.
 *
 * Reading is forgiving by design: `get(key)` on a missing key or a non-object answers the shared JSON
 * null, and the typed getters take a default, so policy code reads like the Python policies it replaces.
 *
 * Parsing is lazy: one validating pass over the bytes (nothing allocated per value) records a tape,
 * the position of every value, and the document (its text and tape, in one allocation) becomes the
 * source of the values. A value object is made only when a policy reaches it (`get`, `at`...) and is
 * kept for the next time; member names are compared as bytes, strings become `string`s only when
 * read, numbers are converted only when read, and the typed getters (`getString`, `getNumber`,
 * `getBool`, `getStringBytes`...) read the tape without making a value at all. An object or array
 * turns into ordinary storage the first time it is listed or changed (`keys()`, `items()`, `set`...);
 * everything behaves as if the whole document had been built up front.
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
 * Deeper documents are refused: policy documents nest a dozen levels at most, and the values
 * (cloning, comparing, stringifying) are walked recursively.
 */
export const MAX_DEPTH: i32 = 128;

/** Objects with more members than this get a key -> index map on first lookup. */
const INDEX_THRESHOLD: i32 = 8;

// ---- the tape ------------------------------------------------------------------------------------
//
// One 8-byte entry per value, in document order: the offset of the value's first byte (u32), then a
// u32 `x`. An object or array has an entry for its opening bracket (x = CONTAINER | index of its
// closing entry, and MAYBE_DUPLICATES) and one for its closing bracket (x = how many items or
// members); its items, or its members as (name, value) pairs, are the entries in between. A
// string's x is its byte length between the quotes with two flags; a number's is its length; a
// literal's is 0. What a value is comes from its first byte.

const CONTAINER: u32 = 0x80000000;
/** On an object's opening entry: two of its member names may be the same (see `memberName`). */
const MAYBE_DUPLICATES: u32 = 0x40000000;
/** The closing index bits of an opening entry. */
const CLOSE: u32 = 0x3fffffff;
/** The string has backslash escapes: decoded when read. */
const ESCAPED: u32 = 0x40000000;
/** The string has (validated) UTF-8 beyond ASCII and no escapes. */
const NON_ASCII: u32 = 0x20000000;
/** Length bits; this value itself means "too long to record: find the end again". */
const LENGTH: u32 = 0x1fffffff;

/**
 * A parsed document (public for the SDK's own `serve*` only), in one allocation: these fields, then
 * the text, then its tape, then an index of the values made from it so far (by tape index), so that
 * reaching a value twice gives the same object. The index is raw memory the collector does not
 * trace: the values in it are kept alive by a chain through `made` (each value made links to the one
 * made before it).
 */
export class Doc {
  /** The last value made from this document (each links to the previous one). */
  made: Value | null;
  entries: i32;
  /** Whether an object or array of this document was turned into storage (and may have changed). */
  changed: boolean;
  /** Addresses of the tape and of the index. */
  tape: usize;
  index: usize;

  /** Address of the first byte of the text. */
  // @ts-ignore: decorator
  @inline
  get base(): usize {
    return changetype<usize>(this) + DOC_HEAD;
  }
}

// @ts-ignore: decorator
@inline
const DOC_HEAD: usize = (offsetof<Doc>() + 7) & ~7;

/** Bytes kept for a document's text: at least one zero byte after it, then 8-byte alignment. */
// @ts-ignore: decorator
@inline
function textArea(len: usize): usize {
  return (len + 8) & ~7;
}

/**
 * A new object of class `id` with `size` bytes, all zero, made without a constructor (for the SDK's
 * own classes only). The incremental runtime's `__new` zeroes already; the others do not.
 */
// @ts-ignore: decorator
@inline
export function newZeroed(size: usize, id: u32): usize {
  const v = __new(size, id);
  if (ASC_RUNTIME != 2) memory.fill(v, 0, size);
  return v;
}

/** A document holding `len` bytes of text at `text` and the `entries` of the tape at `tapeAt`. */
function newDoc(text: usize, len: usize, tapeAt: usize, entries: i32): Doc {
  const tapeBytes = <usize>entries << 3;
  const size = DOC_HEAD + textArea(len) + tapeBytes + (<usize>entries << 2);
  // Zeroed: no value made yet, and a zero byte after the text.
  const d = changetype<Doc>(newZeroed(size, idof<Doc>()));
  d.entries = entries;
  d.tape = d.base + textArea(len);
  d.index = d.tape + tapeBytes;
  memory.copy(d.base, text, len);
  memory.copy(d.tape, tapeAt, tapeBytes);
  return d;
}

// @ts-ignore: decorator
@inline
function entryOffset(d: Doc, i: i32): usize {
  return <usize>load<u32>(d.tape + (<usize>i << 3));
}

// @ts-ignore: decorator
@inline
function entryX(d: Doc, i: i32): u32 {
  return load<u32>(d.tape + (<usize>i << 3), 4);
}

// @ts-ignore: decorator
@inline
function firstByte(d: Doc, i: i32): u32 {
  return <u32>load<u8>(d.base + entryOffset(d, i));
}

/** The tape index after value `i` (and everything inside it). */
// @ts-ignore: decorator
@inline
function after(d: Doc, i: i32): i32 {
  const x = entryX(d, i);
  return (x & CONTAINER) != 0 ? <i32>(x & CLOSE) + 1 : i + 1;
}

/** The index of a container's closing entry. */
// @ts-ignore: decorator
@inline
function closing(d: Doc, i: i32): i32 {
  return <i32>(entryX(d, i) & CLOSE);
}

/** How many items or members the container at entry `i` has (members of the same name included). */
// @ts-ignore: decorator
@inline
function itemCount(d: Doc, i: i32): i32 {
  return <i32>entryX(d, closing(d, i));
}

/** A string entry's length in bytes between its quotes. */
function stringLength(d: Doc, i: i32): usize {
  const n = entryX(d, i) & LENGTH;
  if (n != LENGTH) return <usize>n;
  // Only for strings of 512 MiB and more: find the closing quote again.
  const start = d.base + entryOffset(d, i) + 1;
  let p = start;
  while (true) {
    const c = load<u8>(p);
    if (c == 0x22) return p - start;
    p += c == 0x5c ? 2 : 1;
  }
}

/** The value at tape index `i`, made on first use. */
function node(d: Doc, i: i32): Value {
  const slot = d.index + (<usize>i << 2);
  const hit = load<usize>(slot);
  if (hit != 0) return changetype<Value>(hit);
  let v: usize;
  switch (firstByte(d, i)) {
    case 0x7b: {
      v = fresh(offsetof<ObjectValue>(), idof<ObjectValue>(), Kind.Object);
      changetype<ObjectValue>(v).ti = i;
      changetype<ObjectValue>(v).found = -1;
      // keySlots and valueSlots stay null until the object moves to storage (materialize()).
      store<usize>(v, changetype<usize>(d.made), offsetof<ObjectValue>("previous"));
      store<usize>(v, changetype<usize>(d), offsetof<ObjectValue>("doc"));
      break;
    }
    case 0x5b: {
      v = fresh(offsetof<ArrayValue>(), idof<ArrayValue>(), Kind.Array);
      changetype<ArrayValue>(v).ti = i;
      store<usize>(v, changetype<usize>(d.made), offsetof<ArrayValue>("previous"));
      store<usize>(v, changetype<usize>(d), offsetof<ArrayValue>("doc"));
      break;
    }
    case 0x22: {
      if (entryX(d, i) == 0) return EMPTY_STRING;
      v = fresh(offsetof<StringValue>(), idof<StringValue>(), Kind.String);
      changetype<StringValue>(v).ti = i;
      store<usize>(v, changetype<usize>(d.made), offsetof<StringValue>("previous"));
      store<usize>(v, changetype<usize>(d), offsetof<StringValue>("doc"));
      break;
    }
    case 0x74:
      return TRUE;
    case 0x66:
      return FALSE;
    case 0x6e:
      return NULL;
    default:
      // Numbers are immutable and cheap to read again: not kept.
      return num(numberAt(d, i));
  }
  // The value keeps the one made before it alive, the document keeps this one: the index can hold
  // plain addresses.
  d.made = changetype<Value>(v);
  store<usize>(slot, v);
  return changetype<Value>(v);
}

/**
 * A new value object, zeroed, of its kind; the caller sets the rest. Made without its constructor,
 * whose reference stores would each pass the collector's write barrier: stores into an object
 * allocated just now need none (it is unmarked, "white", until the collector reaches it, and the
 * barrier only acts on stores into marked objects), as long as nothing is allocated in between.
 */
// @ts-ignore: decorator
@inline
function fresh(size: usize, id: u32, kind: i32): usize {
  const v = newZeroed(size, id);
  changetype<Value>(v).kind = kind;
  return v;
}

/** The value made from entry `i` so far, if any. */
// @ts-ignore: decorator
@inline
function made(d: Doc, i: i32): Value | null {
  return changetype<Value | null>(load<usize>(d.index + (<usize>i << 2)));
}

/** Whether any object or array in entries (from, to) was turned into storage (and may have changed). */
function changedWithin(d: Doc, from: i32, to: i32): boolean {
  for (let i = from; i < to; i++) {
    const v = made(d, i);
    if (v != null && v.kind >= Kind.Array && !v.isLazy()) return true;
  }
  return false;
}

// ---- values ------------------------------------------------------------------------------------

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

  /** An object or array still read from its document (not yet turned into storage). */
  isLazy(): boolean {
    if (this.kind == Kind.Object) return changetype<ObjectValue>(this).doc != null;
    if (this.kind == Kind.Array) return changetype<ArrayValue>(this).doc != null;
    return false;
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
    return this.kind == Kind.Number ? toInt(changetype<NumberValue>(this).value, def) : def;
  }

  asString(def: string = ""): string {
    return this.kind == Kind.String ? changetype<StringValue>(this).value : def;
  }

  // ---- arrays and objects ----------------------------------------------------------------------

  /** Items of an array, members of an object, 0 otherwise. */
  get length(): i32 {
    if (this.kind == Kind.Array) return changetype<ArrayValue>(this).size();
    if (this.kind == Kind.Object) {
      const o = changetype<ObjectValue>(this);
      const d = o.doc;
      // Counted on the tape, unless two members may share a name (then only one of them counts).
      if (d != null && (entryX(d, o.ti) & MAYBE_DUPLICATES) == 0) return itemCount(d, o.ti);
      return o.stored().count;
    }
    return 0;
  }

  /** The array's items (live, not a copy), or a new empty array for anything else. */
  items(): Array<Value> {
    return this.kind == Kind.Array ? changetype<ArrayValue>(this).list : new Array<Value>();
  }

  /** Item `i` of an array, or JSON null when out of range or not an array. */
  at(i: i32): Value {
    if (this.kind != Kind.Array) return NULL;
    const a = changetype<ArrayValue>(this);
    if (a.doc != null) return i >= 0 && i < a.size() ? a.lazyAt(i) : NULL;
    const items = a.list;
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
    const o = changetype<ObjectValue>(this).stored();
    const out = new Array<string>(o.count);
    for (let i = 0; i < o.count; i++) unchecked((out[i] = unchecked(o.keySlots[i])));
    return out;
  }

  /** The object's values in key order (a copy), or an empty array. */
  values(): Array<Value> {
    if (this.kind != Kind.Object) return new Array<Value>();
    const o = changetype<ObjectValue>(this).stored();
    const out = new Array<Value>(o.count);
    for (let i = 0; i < o.count; i++) unchecked((out[i] = unchecked(o.valueSlots[i])));
    return out;
  }

  /** Key `i` of an object (document order), or "" when out of range. */
  keyAt(i: i32): string {
    if (this.kind != Kind.Object) return "";
    const o = changetype<ObjectValue>(this).stored();
    return i >= 0 && i < o.count ? unchecked(o.keySlots[i]) : "";
  }

  /** Value `i` of an object (document order), or JSON null when out of range. */
  valueAt(i: i32): Value {
    if (this.kind != Kind.Object) return NULL;
    const o = changetype<ObjectValue>(this).stored();
    return i >= 0 && i < o.count ? unchecked(o.valueSlots[i]) : NULL;
  }

  has(key: string): boolean {
    if (this.kind != Kind.Object) return false;
    const o = changetype<ObjectValue>(this);
    return o.lookup(key) ? o.found >= 0 : o.indexOf(key) >= 0;
  }

  /** Member `key` of an object, or JSON null when absent or not an object (see `has`). */
  get(key: string): Value {
    if (this.kind != Kind.Object) return NULL;
    const o = changetype<ObjectValue>(this);
    if (o.lookup(key)) return o.found >= 0 ? node(o.doc!, o.found) : NULL;
    const i = o.indexOf(key);
    return i >= 0 ? unchecked(o.valueSlots[i]) : NULL;
  }

  getString(key: string, def: string = ""): string {
    if (this.kind == Kind.Object) {
      const o = changetype<ObjectValue>(this);
      if (o.lookup(key)) {
        const d = o.doc!;
        const i = o.found;
        if (i < 0 || firstByte(d, i) != 0x22) return def;
        const v = made(d, i);
        return v != null ? changetype<StringValue>(v).value : stringAt(d, i);
      }
    }
    return this.get(key).asString(def);
  }

  /**
   * When member `key` is a string: appends its UTF-8 bytes (unquoted, unescaped) to `out` and returns
   * true; false, appending nothing, otherwise. No `string` is made: for ids used as keys of a policy's
   * own tables, compared or hashed as bytes.
   */
  getStringBytes(key: string, out: ByteBuffer): boolean {
    if (this.kind == Kind.Object) {
      const o = changetype<ObjectValue>(this);
      if (o.lookup(key)) {
        const d = o.doc!;
        const i = o.found;
        if (i < 0 || firstByte(d, i) != 0x22) return false;
        const v = made(d, i);
        if (v != null) return v.stringBytes(out);
        appendStringAt(out, d, i);
        return true;
      }
    }
    return this.get(key).stringBytes(out);
  }

  /** When this is a string: appends its UTF-8 bytes (as `getStringBytes`) and returns true. */
  stringBytes(out: ByteBuffer): boolean {
    if (this.kind != Kind.String) return false;
    const s = changetype<StringValue>(this);
    const d = s.doc;
    if (d != null) appendStringAt(out, d, s.ti);
    else appendUtf8(out, s.value);
    return true;
  }

  getNumber(key: string, def: f64 = 0): f64 {
    if (this.kind == Kind.Object) {
      const o = changetype<ObjectValue>(this);
      if (o.lookup(key)) return o.found >= 0 && isNumberStart(firstByte(o.doc!, o.found)) ? numberAt(o.doc!, o.found) : def;
    }
    return this.get(key).asNumber(def);
  }

  getInt(key: string, def: i32 = 0): i32 {
    if (this.kind == Kind.Object) {
      const o = changetype<ObjectValue>(this);
      if (o.lookup(key)) {
        return o.found >= 0 && isNumberStart(firstByte(o.doc!, o.found)) ? toInt(numberAt(o.doc!, o.found), def) : def;
      }
    }
    return this.get(key).asInt(def);
  }

  getBool(key: string, def: boolean = false): boolean {
    if (this.kind == Kind.Object) {
      const o = changetype<ObjectValue>(this);
      if (o.lookup(key)) {
        if (o.found < 0) return def;
        const c = firstByte(o.doc!, o.found);
        return c == 0x74 ? true : c == 0x66 ? false : def;
      }
    }
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
    if (this.kind == Kind.Object) changetype<ObjectValue>(this).stored().put(key, v);
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
    return this.kind == Kind.Object && changetype<ObjectValue>(this).stored().remove(key);
  }

  /** A deep copy (scalars are immutable and shared). */
  clone(): Value {
    if (this.kind == Kind.Array) {
      const src = changetype<ArrayValue>(this).list;
      const out = new Array<Value>(src.length);
      for (let i = 0; i < src.length; i++) unchecked((out[i] = unchecked(src[i]).clone()));
      return new ArrayValue(out, null, 0);
    }
    if (this.kind == Kind.Object) {
      const o = changetype<ObjectValue>(this).stored();
      const copy = new ObjectValue(o.count, null, 0);
      for (let i = 0; i < o.count; i++) copy.append(unchecked(o.keySlots[i]), unchecked(o.valueSlots[i]).clone());
      return copy;
    }
    return this;
  }

  /** Structural equality (object key order ignored; numbers by value). */
  equals(other: Value): boolean {
    if (this === other) return true;
    if (this.kind != other.kind) return false;
    switch (this.kind) {
      case Kind.Null:
        return true;
      case Kind.Bool:
        return this.asBool() == other.asBool();
      case Kind.Number:
        return this.asNumber() == other.asNumber();
      case Kind.String: {
        const a = changetype<StringValue>(this);
        const b = changetype<StringValue>(other);
        // Two unread strings without escapes are equal exactly when their bytes are.
        const da = a.doc;
        const db = b.doc;
        if (da != null && db != null && ((entryX(da, a.ti) | entryX(db, b.ti)) & ESCAPED) == 0) {
          const n = stringLength(da, a.ti);
          return (
            n == stringLength(db, b.ti) &&
            sameBytes(da.base + entryOffset(da, a.ti) + 1, db.base + entryOffset(db, b.ti) + 1, n)
          );
        }
        return a.value == b.value;
      }
      case Kind.Array: {
        if (sameText(this, other)) return true;
        // Item by item, through at(): arrays still on their tape stay there.
        const n = this.length;
        if (n != other.length) return false;
        for (let i = 0; i < n; i++) if (!this.at(i).equals(other.at(i))) return false;
        return true;
      }
      default: {
        if (sameText(this, other)) return true;
        const a = changetype<ObjectValue>(this).stored();
        const b = changetype<ObjectValue>(other).stored();
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

function toInt(n: f64, def: i32): i32 {
  if (!isFinite(n)) return def;
  if (n >= 2147483647) return i32.MAX_VALUE;
  if (n <= -2147483648) return i32.MIN_VALUE;
  return <i32>n;
}

/**
 * Whether two objects or arrays, both still read from their documents and unchanged, have the same
 * text: then they are equal without looking further (different text may still be equal values).
 */
function sameText(a: Value, b: Value): boolean {
  let da: Doc | null;
  let db: Doc | null;
  let ia: i32;
  let ib: i32;
  if (a.kind == Kind.Array) {
    da = changetype<ArrayValue>(a).doc;
    db = changetype<ArrayValue>(b).doc;
    ia = changetype<ArrayValue>(a).ti;
    ib = changetype<ArrayValue>(b).ti;
  } else {
    da = changetype<ObjectValue>(a).doc;
    db = changetype<ObjectValue>(b).doc;
    ia = changetype<ObjectValue>(a).ti;
    ib = changetype<ObjectValue>(b).ti;
  }
  if (da == null || db == null) return false;
  const ca = closing(da, ia);
  const cb = closing(db, ib);
  const start = entryOffset(da, ia);
  const n = entryOffset(da, ca) + 1 - start;
  if (n != entryOffset(db, cb) + 1 - entryOffset(db, ib)) return false;
  if (!sameBytes(da.base + start, db.base + entryOffset(db, ib), n)) return false;
  return !(da.changed && changedWithin(da, ia + 1, ca)) && !(db.changed && changedWithin(db, ib + 1, cb));
}

function sameBytes(a: usize, b: usize, n: usize): boolean {
  let i: usize = 0;
  for (; i + 8 <= n; i += 8) if (load<u64>(a + i) != load<u64>(b + i)) return false;
  for (; i < n; i++) if (load<u8>(a + i) != load<u8>(b + i)) return false;
  return true;
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

/** A string; one from a document is decoded on first read. */
class StringValue extends Value {
  text: string | null;
  doc: Doc | null;
  ti: i32;
  /** The value made from the same document before this one. */
  previous: Value | null = null;

  constructor(text: string | null, doc: Doc | null, ti: i32) {
    super(Kind.String);
    this.text = text;
    this.doc = doc;
    this.ti = ti;
  }

  get value(): string {
    const t = this.text;
    if (t != null) return t;
    const s = stringAt(this.doc!, this.ti);
    this.text = s;
    return s;
  }
}

/** An array; one from a document gets its item list on first use. */
class ArrayValue extends Value {
  items_: Array<Value> | null;
  doc: Doc | null;
  ti: i32;
  /** Where `at` last was: item index and tape index (0: nowhere yet). */
  walkIndex: i32 = 0;
  walkEntry: i32 = 0;
  /** The value made from the same document before this one. */
  previous: Value | null = null;

  constructor(items: Array<Value> | null, doc: Doc | null, ti: i32) {
    super(Kind.Array);
    this.items_ = items;
    this.doc = doc;
    this.ti = ti;
  }

  /** The item list (made from the document on first use). */
  get list(): Array<Value> {
    const items = this.items_;
    if (items != null) return items;
    const d = this.doc!;
    const n = this.size();
    const out = new Array<Value>(n);
    let i = this.ti + 1;
    for (let k = 0; k < n; k++) {
      unchecked((out[k] = node(d, i)));
      i = after(d, i);
    }
    this.items_ = out;
    this.doc = null;
    d.changed = true;
    return out;
  }

  /** Item `i` (in range) of an array still on its tape; walking on from the last item asked for. */
  lazyAt(i: i32): Value {
    const d = this.doc!;
    let k = this.walkIndex;
    let t = this.walkEntry;
    if (i < k || t == 0) {
      k = 0;
      t = this.ti + 1;
    }
    for (; k < i; k++) t = after(d, t);
    this.walkIndex = k;
    this.walkEntry = t;
    return node(d, t);
  }

  size(): i32 {
    const items = this.items_;
    return items != null ? items.length : itemCount(this.doc!, this.ti);
  }
}

const NO_KEYS = new StaticArray<string>(0);
const NO_VALUES = new StaticArray<Value>(0);

/**
 * An object. One from a document is looked up on its tape (member names compared as bytes) until it
 * is listed or changed, or is big; then its members move into two parallel static arrays.
 */
class ObjectValue extends Value {
  keySlots: StaticArray<string>;
  valueSlots: StaticArray<Value>;
  count: i32 = 0;
  /** Built lazily for big objects; null while the linear scan is cheaper. */
  index: Map<string, i32> | null = null;
  doc: Doc | null;
  ti: i32;
  /** The tape index of the value `lookup` found, -1 when absent. */
  found: i32 = -1;
  /** The value made from the same document before this one. */
  previous: Value | null = null;

  constructor(capacity: i32, doc: Doc | null, ti: i32) {
    super(Kind.Object);
    this.doc = doc;
    this.ti = ti;
    if (capacity == 0) {
      this.keySlots = NO_KEYS;
      this.valueSlots = NO_VALUES;
    } else {
      this.keySlots = new StaticArray<string>(capacity);
      this.valueSlots = new StaticArray<Value>(capacity);
    }
  }

  /**
   * For an object still on its tape: finds member `key` (the last one of that name, as JavaScript
   * keeps), sets `found`, and returns true. False when the object is in storage (use `indexOf`); a big
   * object moves to storage here, where its lookups go through an index.
   */
  lookup(key: string): boolean {
    const d = this.doc;
    if (d == null) return false;
    if (itemCount(d, this.ti) > INDEX_THRESHOLD) {
      this.materialize();
      return false;
    }
    this.found = findMember(d, this.ti, key);
    return true;
  }

  /** This object in storage (moved there from its tape on first need). */
  stored(): ObjectValue {
    if (this.doc != null) this.materialize();
    return this;
  }

  materialize(): void {
    const d = this.doc!;
    const close = closing(d, this.ti);
    const n = itemCount(d, this.ti);
    this.doc = null;
    d.changed = true;
    if (n == 0) {
      this.keySlots = NO_KEYS;
      this.valueSlots = NO_VALUES;
      return;
    }
    this.keySlots = new StaticArray<string>(n);
    this.valueSlots = new StaticArray<Value>(n);
    // put() keeps one member per name, the last value winning (as JavaScript's JSON.parse does).
    for (let i = this.ti + 1; i < close; i = after(d, i + 1)) this.put(stringAt(d, i), node(d, i + 1));
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

/**
 * The tape index of member `key`'s value in the object at entry `ti` (the last member of that name,
 * as JavaScript keeps), or -1.
 */
function findMember(d: Doc, ti: i32, key: string): i32 {
  const open = entryX(d, ti);
  const close = <i32>(open & CLOSE);
  // Without two names alike the first match is the only one.
  const unique = (open & MAYBE_DUPLICATES) == 0;
  let i = ti + 1;
  let found = -1;
  const n = <u32>key.length;
  while (i < close) {
    const x = entryX(d, i);
    // Most names are told apart by their length alone.
    if ((x & LENGTH) == n || (x & (ESCAPED | NON_ASCII)) != 0 || (x & LENGTH) == LENGTH) {
      if (nameIs(d, i, key)) {
        found = i + 1;
        if (unique) break;
      }
    }
    i = after(d, i + 1);
  }
  return found;
}

/** Whether the member name at entry `i` is `key`; only escaped names are decoded to compare. */
function nameIs(d: Doc, i: i32, key: string): boolean {
  const x = entryX(d, i);
  if ((x & ESCAPED) != 0 || (x & LENGTH) == LENGTH) return stringAt(d, i) == key;
  const n = <usize>(x & LENGTH);
  const p = d.base + entryOffset(d, i) + 1;
  if ((x & NON_ASCII) != 0) return utf8Is(p, n, key);
  if (n != <usize>key.length) return false;
  const k = changetype<usize>(key);
  let j: usize = 0;
  // Four bytes widened to four UTF-16 units per step.
  for (; j + 4 <= n; j += 4) {
    const b = <u64>load<u32>(p + j);
    const wide = (b & 0xff) | ((b & 0xff00) << 8) | ((b & 0xff0000) << 16) | ((b & 0xff000000) << 24);
    if (wide != load<u64>(k + (j << 1))) return false;
  }
  for (; j < n; j++) if (<u16>load<u8>(p + j) != load<u16>(k + (j << 1))) return false;
  return true;
}

/** Whether the `n` bytes of (checked) UTF-8 at `p` are `key`, encoded as they are compared. */
function utf8Is(p: usize, n: usize, key: string): boolean {
  const units = key.length;
  let j: usize = 0;
  for (let i = 0; i < units; i++) {
    const c = <u32>key.charCodeAt(i);
    if (c < 0x80) {
      if (j >= n || <u32>load<u8>(p + j) != c) return false;
      j++;
      continue;
    }
    let cp = c;
    let size: u32 = c < 0x800 ? 2 : 3;
    if (c >= 0xd800 && c <= 0xdfff) {
      const next = i + 1 < units ? <u32>key.charCodeAt(i + 1) : 0;
      // A lone surrogate has no UTF-8 form: checked UTF-8 never holds one.
      if (c > 0xdbff || next < 0xdc00 || next > 0xdfff) return false;
      cp = 0x10000 + (((c & 0x3ff) << 10) | (next & 0x3ff));
      size = 4;
      i++;
    }
    if (j + <usize>size > n) return false;
    let lead: u32;
    if (size == 2) lead = 0xc0 | (cp >> 6);
    else if (size == 3) lead = 0xe0 | (cp >> 12);
    else lead = 0xf0 | (cp >> 18);
    if (<u32>load<u8>(p + j) != lead) return false;
    for (let k: u32 = 1; k < size; k++) {
      if (<u32>load<u8>(p + j + <usize>k) != (0x80 | ((cp >> (6 * (size - 1 - k))) & 0x3f))) return false;
    }
    j += <usize>size;
  }
  return j == n;
}

// ---- builders ----------------------------------------------------------------------------------

const NULL: Value = new Value(Kind.Null);
const TRUE: Value = new BoolValue(true);
const FALSE: Value = new BoolValue(false);
const EMPTY_STRING: Value = new StringValue("", null, 0);

// Small non-negative integers (counts, sequence numbers, ports) are shared; numbers are immutable.
// The table is raw memory; `smallIntList` keeps the ones made alive, so the collector traces only
// those (every collection walks the slots of a traced table, used or not).
const SMALL_INTS: i32 = 256;
const smallInts = memory.data(SMALL_INTS * 4);
const smallIntList = new Array<NumberValue>();

function smallInt(n: i32): Value {
  const slot = smallInts + (<usize>n << 2);
  const hit = load<usize>(slot);
  if (hit != 0) return changetype<Value>(hit);
  const v = new NumberValue(<f64>n);
  smallIntList.push(v);
  store<usize>(slot, changetype<usize>(v));
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
  return s.length == 0 ? EMPTY_STRING : new StringValue(s, null, 0);
}

export function arr(): Value {
  return new ArrayValue(new Array<Value>(), null, 0);
}

export function obj(): Value {
  return new ObjectValue(4, null, 0);
}

/** An array of strings, e.g. instance ids. */
export function strings(list: Array<string>): Value {
  const items = new Array<Value>(list.length);
  for (let i = 0; i < list.length; i++) unchecked((items[i] = str(unchecked(list[i]))));
  return new ArrayValue(items, null, 0);
}

/** Wraps existing values as an array (the array is used, not copied). */
export function arrayOf(items: Array<Value>): Value {
  return new ArrayValue(items, null, 0);
}

// ---- parsing -----------------------------------------------------------------------------------

// Parser state lives in globals: parsing is never re-entered, and globals are cheaper than a
// parser object threaded through every call.
let src: usize = 0;
let pos: usize = 0;
let end: usize = 0;
let failed: boolean = false;
let error: string = "";

// The tape being written (entries of 8 bytes); reused from parse to parse.
let tape: usize = 0;
let tapeCap: i32 = 0;
let tapeLen: i32 = 0;

/**
 * The open objects and arrays around the innermost, 16 bytes each: the tape index of the opening
 * entry (u32, top bit set for an object), the items or members so far (u32, MAYBE_DUPLICATES when two
 * names may be alike) and a filter of the member names (u64): see scanValue.
 */
const openStack = memory.data(MAX_DEPTH * 16);

/** Why the last `parse` returned null. */
export function errorMessage(): string {
  return error;
}

/** Parses JSON text; null (with `errorMessage()`) when it is not exactly one valid JSON value. */
export function parse(text: string): Value | null {
  const buf = String.UTF8.encode(text);
  return parseBytes(changetype<usize>(buf), buf.byteLength);
}

/** Parses `len` UTF-8 bytes at `ptr` (copied: the buffer may be reused after the call). */
export function parseBytes(ptr: usize, len: i32): Value | null {
  const d = parseDocument(ptr, len);
  return d != null ? node(d, 0) : null;
}

/** Whether a document is an object (the SDK's `serve*` read their input this way). */
export function isObjectDocument(d: Doc): boolean {
  return firstByte(d, 0) == 0x7b;
}

/** Member `key` of a document that is an object, or JSON null: no value is made for the root. */
export function documentMember(d: Doc, key: string): Value {
  const i = findMember(d, 0, key);
  return i >= 0 ? node(d, i) : NULL;
}

/** `parseBytes` without making the root value. */
export function parseDocument(ptr: usize, len: i32): Doc | null {
  src = ptr;
  pos = ptr;
  end = ptr + <usize>len;
  failed = false;
  error = "";
  tapeLen = 0;
  // Give back an unusually large tape once small documents return.
  if (tapeCap > 1 << 17 && len < 1 << 16) {
    heap.free(tape);
    tape = 0;
    tapeCap = 0;
  }
  skipSpace();
  if (pos >= end) {
    fail("unexpected end of input, expected a JSON value");
    return null;
  }
  if (!scanValue()) return null;
  skipSpace();
  if (pos < end) {
    fail("unexpected " + describeByte() + " after the JSON value");
    return null;
  }
  return newDoc(ptr, <usize>len, tape, tapeLen);
}

function fail(message: string): Value | null {
  if (!failed) {
    failed = true;
    error = "invalid JSON at byte " + (<i32>(pos - src)).toString() + ": " + message;
  }
  return null;
}

/** `fail` for the scanner, which answers whether it may go on. */
function refuse(message: string): boolean {
  fail(message);
  return false;
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
  // Compact JSON has no blanks: one comparison settles most calls.
  if (pos < end && load<u8>(pos) <= 0x20) skipBlanks();
}

function skipBlanks(): void {
  let p = pos;
  while (p < end) {
    const c = load<u8>(p);
    // Most bytes met here are not blanks: one comparison settles them.
    if (c > 0x20 || (c != 0x20 && c != 0x0a && c != 0x0d && c != 0x09)) break;
    p++;
  }
  pos = p;
}

function growTape(): void {
  const cap = tapeCap < 512 ? 512 : tapeCap << 1;
  tape = tape == 0 ? heap.alloc(<usize>cap << 3) : heap.realloc(tape, <usize>cap << 3);
  tapeCap = cap;
}

// @ts-ignore: decorator
@inline
function emit(at: usize, x: u32): void {
  if (tapeLen == tapeCap) growTape();
  store<u64>(tape + (<usize>tapeLen << 3), (<u64>x << 32) | <u64>(at - src));
  tapeLen++;
}

/**
 * Checks the value at `pos` (not at the end) and everything in it, writing the tape; false on error.
 * One loop with an explicit stack of open containers: no call per value.
 */
function scanValue(): boolean {
  let depth: i32 = 0;
  // The innermost open container lives in locals (the ones around it wait on openStack): its opening
  // entry, whether it is an object, its values so far (with MAYBE_DUPLICATES) and its name filter.
  let open: i32 = 0;
  let inObject = false;
  let count: u32 = 0;
  let filter: u64 = 0;
  while (true) {
    // A value starts at pos.
    const c = <u32>load<u8>(pos);
    if (c == 0x7b || c == 0x5b) {
      if (depth >= MAX_DEPTH) return refuse("nesting deeper than " + MAX_DEPTH.toString() + " levels");
      const at = tapeLen;
      emit(pos, CONTAINER);
      pos++;
      skipSpace();
      if (pos < end && <u32>load<u8>(pos) == c + 2) {
        // '{}' or '[]': closed at once, a whole value.
        store<u32>(tape + (<usize>at << 3), CONTAINER | <u32>tapeLen, 4);
        emit(pos, 0);
        pos++;
      } else {
        if (depth > 0) {
          const level = openStack + (<usize>(depth - 1) << 4);
          store<u32>(level, inObject ? <u32>open | 0x80000000 : <u32>open);
          store<u32>(level, count, 4);
          store<u64>(level, filter, 8);
        }
        depth++;
        open = at;
        count = 0;
        inObject = c == 0x7b;
        if (inObject) {
          filter = memberName();
          if (filter == 0) return false;
        } else if (pos >= end) return refuse("unexpected end of input in an array");
        continue;
      }
    } else if (c == 0x22) {
      if (!scanString()) return false;
    } else if (c - 0x30 < 10 || c == 0x2d) {
      if (!scanNumber()) return false;
    } else if (c == 0x74 || c == 0x66 || c == 0x6e) {
      if (!literal(c)) return false;
    } else {
      return refuse("unexpected " + describeByte() + ", expected a JSON value");
    }
    // After a value (of the innermost open container): a separator, or the end of one or more
    // containers.
    while (true) {
      if (depth == 0) return true;
      count++;
      skipSpace();
      if (pos >= end) {
        return refuse(inObject ? "unexpected end of input in an object" : "unexpected end of input in an array");
      }
      const d = <u32>load<u8>(pos);
      if (d == 0x2c) {
        pos++;
        if (inObject) {
          const bit = memberName();
          if (bit == 0) return false;
          if ((filter & bit) != 0) count |= MAYBE_DUPLICATES;
          filter |= bit;
        } else {
          skipSpace();
          if (pos >= end) return refuse("unexpected end of input in an array");
        }
        break;
      }
      if (d == (inObject ? 0x7d : 0x5d)) {
        store<u32>(tape + (<usize>open << 3), CONTAINER | (count & MAYBE_DUPLICATES) | <u32>tapeLen, 4);
        emit(pos, count & ~MAYBE_DUPLICATES);
        pos++;
        depth--;
        if (depth > 0) {
          const level = openStack + (<usize>(depth - 1) << 4);
          const o = load<u32>(level);
          inObject = (o & 0x80000000) != 0;
          open = <i32>(o & 0x7fffffff);
          count = load<u32>(level, 4);
          filter = load<u64>(level, 8);
        }
        continue;
      }
      return refuse("unexpected " + describeByte() + (inObject ? ", expected ',' or '}'" : ", expected ',' or ']'"));
    }
  }
}

/**
 * A member name and its colon; leaves `pos` on the member's value. Answers the name's bit in a
 * filter of an object's names (from its length and first and last bytes; all bits for an escaped
 * name, which is not compared raw): when no two names of an object collide, lookups may stop at the
 * first match. 0 after failing.
 */
// @ts-ignore: decorator
@inline
function memberName(): u64 {
  skipSpace();
  if (pos >= end) return <u64>refuse("unexpected end of input in an object");
  if (load<u8>(pos) != 0x22) return <u64>refuse("unexpected " + describeByte() + ", expected a member name");
  const name = pos + 1;
  if (!scanString()) return 0;
  const x = load<u32>(tape + (<usize>(tapeLen - 1) << 3), 4);
  const n = <usize>(x & LENGTH);
  let bit: u64 = <u64>-1;
  if ((x & ESCAPED) == 0 && n != <usize>LENGTH) {
    const h = n == 0 ? 0 : (<u32>n * 0x9e3779b1) ^ (<u32>load<u8>(name) * 0x85ebca6b) ^ (<u32>load<u8>(name + n - 1) << 7);
    bit = <u64>1 << <u64>((h ^ (h >> 15)) & 63);
  }
  skipSpace();
  if (pos >= end || load<u8>(pos) != 0x3a) return <u64>refuse("unexpected " + describeByte() + ", expected ':'");
  pos++;
  skipSpace();
  if (pos >= end) return <u64>refuse("unexpected end of input, expected a member value");
  return bit;
}

/** The literal at `pos`, whose first byte is `c`: 't', 'f' or 'n'. */
function literal(c: u32): boolean {
  const n: usize = c == 0x66 ? 5 : 4;
  // The usual case in one comparison: "true", "null", or "fals" and an "e".
  if (end - pos >= n) {
    const four = load<u32>(pos);
    if (c == 0x74 ? four == 0x65757274 : c == 0x6e ? four == 0x6c6c756e : four == 0x736c6166 && load<u8>(pos + 4) == 0x65) {
      emit(pos, 0);
      pos += n;
      return true;
    }
  }
  const word = c == 0x74 ? "true" : c == 0x66 ? "false" : "null";
  if (end - pos < n) return refuse("unexpected end of input in literal '" + word + "'");
  for (let i: usize = 0; i < n; i++) {
    if (<i32>load<u8>(pos + i) != word.charCodeAt(<i32>i)) {
      pos += i;
      return refuse("invalid literal, expected '" + word + "'");
    }
  }
  emit(pos, 0);
  pos += n;
  return true;
}

// SWAR masks: eight bytes tested at once for a quote, a backslash, a control or a non-ASCII byte.
const ONES: u64 = 0x0101010101010101;
const HIGHS: u64 = 0x8080808080808080;

/**
 * The high bit of each byte of `x` that is a quote, a backslash, a control or a non-ASCII byte.
 * Borrows may flag bytes after a real one, never before: the lowest flag is exact.
 */
// @ts-ignore: decorator
@inline
function specialBytes(x: u64): u64 {
  const quote = x ^ (ONES * 0x22);
  const slash = x ^ (ONES * 0x5c);
  return (((quote - ONES) & ~quote) | ((slash - ONES) & ~slash) | (x - ONES * 0x20) | x) & HIGHS;
}

function hexDigit(c: i32): i32 {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x61 && c <= 0x66) return c - 0x61 + 10;
  if (c >= 0x41 && c <= 0x46) return c - 0x41 + 10;
  return -1;
}

/** Checks the string at `pos` (on its opening quote): escapes, UTF-8, no raw control characters. */
// @ts-ignore: decorator
@inline
function scanString(): boolean {
  const quote = pos;
  let p = quote + 1;
  const stop = end;
  let flags: u32 = 0;
  while (true) {
    if (p + 8 <= stop) {
      // Plain ASCII without escapes (most of any document) eight bytes at a time, then straight to
      // the first byte that is not.
      const special = specialBytes(load<u64>(p));
      if (special == 0) {
        p += 8;
        continue;
      }
      p += <usize>(ctz(special) >> 3);
    } else if (p >= stop) {
      pos = p;
      return refuse("unterminated string");
    }
    const c = <u32>load<u8>(p);
    if (c == 0x22) break;
    if (c >= 0x80) {
      const n = utf8Sequence(p);
      if (n == 0) return false;
      flags |= NON_ASCII;
      p += n;
    } else if (c == 0x5c) {
      const n = escapeLength(p);
      if (n == 0) return false;
      flags |= ESCAPED;
      p += n;
    } else if (c < 0x20) {
      pos = p;
      return refuse("control character 0x" + c.toString(16) + " in a string must be escaped");
    } else {
      // A plain byte in the last seven of the input.
      p++;
    }
  }
  const n = p - quote - 1;
  // Escapes decide how a string is read; NON_ASCII matters only without them.
  if ((flags & ESCAPED) != 0) flags = ESCAPED;
  emit(quote, flags | (n < <usize>LENGTH ? <u32>n : LENGTH));
  pos = p + 1;
  return true;
}

/** The length of the escape at `p` (on its backslash), or 0 after failing. */
function escapeLength(p: usize): usize {
  if (p + 1 >= end) {
    pos = p;
    return <usize>refuse("unterminated escape");
  }
  const e = <u32>load<u8>(p + 1);
  switch (e) {
    case 0x22:
    case 0x5c:
    case 0x2f:
    case 0x62:
    case 0x66:
    case 0x6e:
    case 0x72:
    case 0x74:
      return 2;
    case 0x75: {
      if (end - p < 6) {
        pos = p;
        return <usize>refuse("truncated \\u escape");
      }
      for (let i: usize = 2; i < 6; i++) {
        if (hexDigit(<i32>load<u8>(p + i)) < 0) {
          pos = p;
          return <usize>refuse("invalid \\u escape, expected 4 hex digits");
        }
      }
      return 6;
    }
    default:
      pos = p;
      return <usize>refuse("invalid escape '\\" + String.fromCharCode(<i32>e) + "'");
  }
}

/** The length of the multi-byte UTF-8 sequence at `p`, strictly checked, or 0 after failing. */
function utf8Sequence(p: usize): usize {
  const c = <u32>load<u8>(p);
  let cp: u32 = 0;
  let need: usize = 0;
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
    return <usize>refuse("invalid UTF-8 byte 0x" + c.toString(16));
  }
  if (end - p <= need) {
    pos = p;
    return <usize>refuse("truncated UTF-8 sequence");
  }
  for (let i: usize = 1; i <= need; i++) {
    const b = <u32>load<u8>(p + i);
    if ((b & 0xc0) != 0x80) {
      pos = p;
      return <usize>refuse("invalid UTF-8 continuation byte");
    }
    cp = (cp << 6) | (b & 0x3f);
  }
  // No overlong forms, no surrogates, nothing beyond U+10FFFF.
  if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
    pos = p;
    return <usize>refuse("invalid UTF-8 sequence");
  }
  return need + 1;
}

// @ts-ignore: decorator
@inline
function isDigit(c: u32): boolean {
  return c - 0x30 < 10;
}

function isNumberStart(c: u32): boolean {
  return c == 0x2d || c - 0x30 < 10;
}

/** The end of the run of digits at `p`, eight bytes at a time where the input allows. */
// @ts-ignore: decorator
@inline
function digitsEnd(p: usize): usize {
  while (p + 8 <= end) {
    const x = load<u64>(p);
    // Non-zero in the high nibble of each byte that is not '0'..'9'; a carry out of a byte (only
    // from one >= 0xfa, itself not a digit) reaches only bytes after it.
    const bad =
      ((x & 0xf0f0f0f0f0f0f0f0) ^ 0x3030303030303030) |
      (((x + 0x0606060606060606) & 0xf0f0f0f0f0f0f0f0) ^ 0x3030303030303030);
    if (bad != 0) return p + <usize>(ctz(bad) >> 3);
    p += 8;
  }
  while (p < end && isDigit(load<u8>(p))) p++;
  return p;
}

/** Checks the number at `pos`: the grammar only; its value is worked out when read. */
function scanNumber(): boolean {
  const start = pos;
  let p = pos;
  if (load<u8>(p) == 0x2d) p++;
  if (p >= end || !isDigit(load<u8>(p))) {
    pos = p;
    return refuse("a number needs digits after '-'");
  }
  if (load<u8>(p) == 0x30) {
    p++;
    if (p < end && isDigit(load<u8>(p))) {
      pos = p;
      return refuse("leading zeros are not allowed in numbers");
    }
  } else {
    p = digitsEnd(p + 1);
  }
  if (p < end && load<u8>(p) == 0x2e) {
    p++;
    if (p >= end || !isDigit(load<u8>(p))) {
      pos = p;
      return refuse("a number needs digits after '.'");
    }
    p = digitsEnd(p + 1);
  }
  if (p < end && (load<u8>(p) | 0x20) == 0x65) {
    p++;
    if (p < end && (load<u8>(p) == 0x2b || load<u8>(p) == 0x2d)) p++;
    if (p >= end || !isDigit(load<u8>(p))) {
      pos = p;
      return refuse("a number needs digits in its exponent");
    }
    while (p < end && isDigit(load<u8>(p))) p++;
  }
  const n = p - start;
  emit(start, n < <usize>LENGTH ? <u32>n : LENGTH);
  pos = p;
  return true;
}

// ---- reading values off the tape ---------------------------------------------------------------------

// Short ASCII strings repeat from call to call (instance ids, rule ids, names), so decoded ones are
// kept in a small direct-mapped cache and reused: strings are immutable, and a hit saves an
// allocation. A collision simply replaces the slot. A string is cached the second time it is seen
// (a table of recent hashes remembers the first): one-off strings, such as the session ids of a
// busy load balancer, would only turn the cache over and give the collector more to trace.
//
// As for small integers, the slots are raw memory (the string's address and its place in
// `internedList`, plus one) and `internedList` keeps the cached strings alive.
const INTERN_SLOTS: u32 = 512;
const INTERN_MAX_LENGTH: usize = 48;
const internSlots = memory.data(<i32>INTERN_SLOTS * 8);
const internedList = new Array<string>();
const SEEN_SLOTS: u32 = 1024;
const seen = memory.data(<i32>SEEN_SLOTS * 4);

function internAscii(ptr: usize, n: usize): string {
  // The slot comes from the length and the first and last eight bytes: cheap, and a collision only
  // costs a miss since the whole string is compared.
  let h: u64 = <u64>n * 0x9e3779b97f4a7c15;
  if (n >= 8) {
    h ^= load<u64>(ptr) * 0xff51afd7ed558ccd;
    h ^= load<u64>(ptr + n - 8) * 0xc4ceb9fe1a85ec53;
  } else {
    for (let i: usize = 0; i < n; i++) h = (h ^ <u64>load<u8>(ptr + i)) * 0x100000001b3;
  }
  const slot = internSlots + (<usize>((h ^ (h >> 29)) & (INTERN_SLOTS - 1)) << 3);
  const hit = load<usize>(slot);
  if (hit != 0 && <usize>changetype<string>(hit).length == n) {
    let i: usize = 0;
    while (i < n && load<u16>(hit + (i << 1)) == <u16>load<u8>(ptr + i)) i++;
    if (i == n) return changetype<string>(hit);
  }
  const s = asciiString(ptr, n);
  const tag = <u32>(h >> 32) | 1;
  const recent = seen + (<usize>((h >> 17) & (SEEN_SLOTS - 1)) << 2);
  if (load<u32>(recent) != tag) {
    store<u32>(recent, tag);
    return s;
  }
  // Seen before: cache it, in place of the slot's string if there is one.
  let place = load<i32>(slot, 4) - 1;
  if (place < 0) {
    place = internedList.length;
    internedList.push(s);
    store<i32>(slot, place + 1, 4);
  } else {
    unchecked((internedList[place] = s));
  }
  store<usize>(slot, changetype<usize>(s));
  return s;
}

function asciiString(ptr: usize, n: usize): string {
  if (n == 0) return "";
  const out = changetype<string>(__new(n << 1, idof<string>()));
  const dst = changetype<usize>(out);
  let i: usize = 0;
  // Four bytes widened to four UTF-16 units per step.
  for (; i + 4 <= n; i += 4) {
    const x = <u64>load<u32>(ptr + i);
    const wide = (x & 0xff) | ((x & 0xff00) << 8) | ((x & 0xff0000) << 16) | ((x & 0xff000000) << 24);
    store<u64>(dst + (i << 1), wide);
  }
  for (; i < n; i++) store<u16>(dst + (i << 1), load<u8>(ptr + i));
  return out;
}

/** Appends the UTF-8 bytes of the string at tape entry `i`. */
function appendStringAt(out: ByteBuffer, d: Doc, i: i32): void {
  if ((entryX(d, i) & ESCAPED) == 0) out.bytes(d.base + entryOffset(d, i) + 1, stringLength(d, i));
  else appendUtf8(out, stringAt(d, i));
}

/** Appends `s` as UTF-8 (a lone surrogate as its three-byte form, so distinct strings stay distinct). */
function appendUtf8(out: ByteBuffer, s: string): void {
  const n = <usize>s.length;
  out.ensure(n * 3);
  let dst = out.ptr + out.len;
  const from = changetype<usize>(s);
  for (let i: usize = 0; i < n; i++) {
    const c = <u32>load<u16>(from + (i << 1));
    if (c < 0x80) {
      store<u8>(dst++, <u8>c);
    } else if (c < 0x800) {
      store<u8>(dst++, <u8>(0xc0 | (c >> 6)));
      store<u8>(dst++, <u8>(0x80 | (c & 0x3f)));
    } else {
      const next = i + 1 < n ? <u32>load<u16>(from + ((i + 1) << 1)) : 0;
      if (c >= 0xd800 && c <= 0xdbff && next >= 0xdc00 && next <= 0xdfff) {
        const cp = 0x10000 + (((c & 0x3ff) << 10) | (next & 0x3ff));
        store<u8>(dst++, <u8>(0xf0 | (cp >> 18)));
        store<u8>(dst++, <u8>(0x80 | ((cp >> 12) & 0x3f)));
        store<u8>(dst++, <u8>(0x80 | ((cp >> 6) & 0x3f)));
        store<u8>(dst++, <u8>(0x80 | (cp & 0x3f)));
        i++;
      } else {
        store<u8>(dst++, <u8>(0xe0 | (c >> 12)));
        store<u8>(dst++, <u8>(0x80 | ((c >> 6) & 0x3f)));
        store<u8>(dst++, <u8>(0x80 | (c & 0x3f)));
      }
    }
  }
  out.len = dst - out.ptr;
}

/** The string at tape entry `i`, decoded. */
function stringAt(d: Doc, i: i32): string {
  const x = entryX(d, i);
  const n = stringLength(d, i);
  if (n == 0) return "";
  const p = d.base + entryOffset(d, i) + 1;
  if ((x & ESCAPED) != 0) return decodeEscaped(p, n);
  if ((x & NON_ASCII) != 0) return String.UTF8.decodeUnsafe(p, n);
  return n <= INTERN_MAX_LENGTH ? internAscii(p, n) : asciiString(p, n);
}

// Scratch UTF-16 buffer for strings with escapes; grows, never shrinks.
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

/** Decodes `n` checked bytes at `p` with escapes and UTF-8 into a string. */
function decodeEscaped(p: usize, n: usize): string {
  // A string never has more UTF-16 units than its UTF-8 bytes.
  ensureScratch(n);
  const stop = p + n;
  let out: usize = 0; // UTF-16 units written
  while (p < stop) {
    const c = <u32>load<u8>(p);
    if (c == 0x5c) {
      const e = <u32>load<u8>(p + 1);
      let unit: u32 = e;
      if (e == 0x75) {
        let v: u32 = 0;
        for (let i: usize = 2; i < 6; i++) v = (v << 4) | <u32>hexDigit(<i32>load<u8>(p + i));
        // A \uD83D\uDE00 pair is two escapes; writing the units as given joins them in UTF-16.
        store<u16>(scratch + (out << 1), <u16>v);
        out++;
        p += 6;
        continue;
      }
      if (e == 0x62) unit = 0x08;
      else if (e == 0x66) unit = 0x0c;
      else if (e == 0x6e) unit = 0x0a;
      else if (e == 0x72) unit = 0x0d;
      else if (e == 0x74) unit = 0x09;
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
    let cp: u32;
    let need: usize;
    if (c < 0xe0) {
      cp = c & 0x1f;
      need = 1;
    } else if (c < 0xf0) {
      cp = c & 0x0f;
      need = 2;
    } else {
      cp = c & 0x07;
      need = 3;
    }
    for (let i: usize = 1; i <= need; i++) cp = (cp << 6) | (<u32>load<u8>(p + i) & 0x3f);
    if (cp >= 0x10000) {
      const v = cp - 0x10000;
      store<u16>(scratch + (out << 1), <u16>(0xd800 | (v >> 10)));
      store<u16>(scratch + ((out + 1) << 1), <u16>(0xdc00 | (v & 0x3ff)));
      out += 2;
    } else {
      store<u16>(scratch + (out << 1), <u16>cp);
      out++;
    }
    p += need + 1;
  }
  return String.UTF16.decodeUnsafe(scratch, out << 1);
}

// Exact powers of ten for the fast path (all exactly representable as f64).
const POW10: StaticArray<f64> = [
  1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18,
  1e19, 1e20, 1e21, 1e22,
];

/** The value of the (checked) number at tape entry `i`, correctly rounded. */
function numberAt(d: Doc, i: i32): f64 {
  const start = d.base + entryOffset(d, i);
  let p = start;
  let negative = false;
  if (load<u8>(p) == 0x2d) {
    negative = true;
    p++;
  }
  // Integers of up to 15 digits (counts, ids, times in ms) are exact as they are.
  const len = <usize>(entryX(d, i) & LENGTH);
  const digits = start + len - p;
  if (len != <usize>LENGTH && digits <= 15) {
    let v: u64 = 0;
    let q = p;
    const stop = start + len;
    while (q < stop) {
      const c = <u32>load<u8>(q) - 0x30;
      if (c >= 10) break;
      v = v * 10 + <u64>c;
      q++;
    }
    if (q == stop) return negative ? -(<f64>v) : <f64>v;
  }
  // Significant digits go into `mantissa` while 19 fit in a u64; the rest only shift the exponent.
  let mantissa: u64 = 0;
  let significant: i32 = 0;
  let truncated = false;
  let exp10: i32 = 0;
  const limit = len != <usize>LENGTH ? start + len : <usize>-1;
  while (p < limit) {
    const c = <u32>load<u8>(p);
    if (!isDigit(c)) break;
    if (significant < 19) {
      mantissa = mantissa * 10 + <u64>(c - 0x30);
      if (mantissa != 0) significant++;
    } else {
      if (c != 0x30) truncated = true;
      exp10++;
    }
    p++;
  }
  if (p < limit && load<u8>(p) == 0x2e) {
    p++;
    while (p < limit) {
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
  if (p < limit && (load<u8>(p) | 0x20) == 0x65) {
    p++;
    let expNegative = false;
    if (load<u8>(p) == 0x2b || load<u8>(p) == 0x2d) {
      expNegative = load<u8>(p) == 0x2d;
      p++;
    }
    let e: i32 = 0;
    while (p < limit) {
      const c = <u32>load<u8>(p);
      if (!isDigit(c)) break;
      if (e < 100000) e = e * 10 + <i32>(c - 0x30);
      p++;
    }
    exp10 += expNegative ? -e : e;
  }
  let value: f64;
  if (!truncated && mantissa <= 9007199254740992 && exp10 >= -22 && exp10 <= 22) {
    // An exact mantissa and an exact power of ten: one correctly rounded operation (Clinger).
    const m = <f64>mantissa;
    value = exp10 < 0 ? m / unchecked(POW10[-exp10]) : m * unchecked(POW10[exp10]);
  } else {
    // Rare: many digits or a large exponent, where one floating-point operation is not exact.
    const from = negative ? start + 1 : start;
    value = exactDecimal(from, p - from);
  }
  return negative ? -value : value;
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

  /** Appends `n` bytes from `ptr`. */
  bytes(ptr: usize, n: usize): void {
    this.ensure(n);
    memory.copy(this.ptr + this.len, ptr, n);
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
    case Kind.String: {
      const s = changetype<StringValue>(v);
      const d = s.doc;
      // An unread string without escapes is written as it came (checked UTF-8 needs no escaping).
      if (d != null && (entryX(d, s.ti) & ESCAPED) == 0) buf.bytes(d.base + entryOffset(d, s.ti), stringLength(d, s.ti) + 2);
      else writeString(buf, s.value);
      return;
    }
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
      const o = changetype<ObjectValue>(v).stored();
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
