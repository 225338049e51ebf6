/**
 * The session cache: session id (its UTF-8 bytes) -> member index, bounded, the oldest session evicted
 * first. It lives in memory of its own (`heap.alloc`), outside the garbage collector: a cache of a
 * thousand sessions turning over on every call would otherwise be a thousand live strings to trace and
 * one to collect per call. Once warm it allocates nothing: entries are reused in insertion order (which
 * is also the eviction order) and keep their key storage.
 */

/** Entry layout (bytes): hash u32, next u32 (entry + 1 in the bucket chain, 0 = end), value i32,
 *  key length u32, key address usize, key capacity u32. */
const ENTRY: usize = 24;
const HASH = 0;
const NEXT = 4;
const VALUE = 8;
const KEY_LEN = 12;
const KEY_PTR = 16;
const KEY_CAP = 20;

function hashKey(ptr: usize, n: usize): u32 {
  let h: u64 = <u64>n * 0x9e3779b97f4a7c15;
  let i: usize = 0;
  for (; i + 8 <= n; i += 8) h = (h ^ load<u64>(ptr + i)) * 0xff51afd7ed558ccd;
  if (i < n) {
    // The tail, at most seven bytes, as one number.
    let t: u64 = 0;
    for (let k: usize = 0; i < n; i++, k += 8) t |= <u64>load<u8>(ptr + i) << k;
    h = (h ^ t) * 0xc4ceb9fe1a85ec53;
  }
  return <u32>(h ^ (h >> 32));
}

function sameKey(a: usize, b: usize, n: usize): boolean {
  let i: usize = 0;
  for (; i + 8 <= n; i += 8) if (load<u64>(a + i) != load<u64>(b + i)) return false;
  for (; i < n; i++) if (load<u8>(a + i) != load<u8>(b + i)) return false;
  return true;
}

export class SessionCache {
  /** Most sessions kept. */
  capacity: i32 = 0;
  /** Sessions cached now. */
  size: i32 = 0;
  /** Once full: the entry to evict next (the oldest). */
  private head: i32 = 0;
  private entries: usize = 0;
  private buckets: usize = 0;
  private mask: u32 = 0;
  /** The key `get` looked for last: its hash and entry (-1 when absent), for `setLast`. */
  private lastPtr: usize = 0;
  private lastLen: usize = 0;
  private lastHash: u32 = 0;
  private lastEntry: i32 = -1;

  constructor(capacity: i32) {
    this.resize(capacity);
  }

  /** Drops every session and sets the capacity. */
  resize(capacity: i32): void {
    this.release();
    this.capacity = max(0, capacity);
    if (this.capacity == 0) return;
    let buckets: u32 = 8;
    while (buckets < <u32>this.capacity * 2) buckets <<= 1;
    this.mask = buckets - 1;
    this.buckets = heap.alloc(<usize>buckets << 2);
    memory.fill(this.buckets, 0, <usize>buckets << 2);
    this.entries = heap.alloc(<usize>this.capacity * ENTRY);
    memory.fill(this.entries, 0, <usize>this.capacity * ENTRY);
  }

  /** Drops every session (key storage is kept for reuse). */
  clear(): void {
    this.lastEntry = -1;
    if (this.capacity == 0) return;
    memory.fill(this.buckets, 0, (<usize>this.mask + 1) << 2);
    this.size = 0;
    this.head = 0;
  }

  private release(): void {
    if (this.entries != 0) {
      for (let i = 0; i < this.capacity; i++) {
        const key = load<usize>(this.entry(i) + KEY_PTR);
        if (key != 0) heap.free(key);
      }
      heap.free(this.entries);
      heap.free(this.buckets);
    }
    this.entries = 0;
    this.buckets = 0;
    this.capacity = 0;
    this.size = 0;
    this.head = 0;
    this.lastEntry = -1;
  }

  // @ts-ignore: decorator
  @inline
  private entry(i: i32): usize {
    return this.entries + <usize>i * ENTRY;
  }

  /** The entry for the key, or -1. */
  private find(ptr: usize, n: usize, h: u32): i32 {
    let e = load<u32>(this.buckets + (<usize>(h & this.mask) << 2));
    while (e != 0) {
      const at = this.entry(<i32>e - 1);
      if (load<u32>(at + HASH) == h && <usize>load<u32>(at + KEY_LEN) == n && sameKey(load<usize>(at + KEY_PTR), ptr, n)) {
        return <i32>e - 1;
      }
      e = load<u32>(at + NEXT);
    }
    return -1;
  }

  /** The value cached for the `n`-byte key at `ptr`, or -1. */
  get(ptr: usize, n: usize): i32 {
    this.lastPtr = ptr;
    this.lastLen = n;
    if (this.capacity == 0) return -1;
    const h = hashKey(ptr, n);
    this.lastHash = h;
    const i = this.size == 0 ? -1 : this.find(ptr, n, h);
    this.lastEntry = i;
    return i < 0 ? -1 : load<i32>(this.entry(i) + VALUE);
  }

  /**
   * Caches `value` for the key of the last `get` (whose bytes must not have changed since); a new key
   * evicts the oldest session when the cache is full.
   */
  setLast(value: i32): void {
    if (this.capacity == 0) return;
    const found = this.lastEntry;
    if (found >= 0) {
      // An update keeps the session's place in the eviction order.
      store<i32>(this.entry(found) + VALUE, value);
      return;
    }
    const ptr = this.lastPtr;
    const n = this.lastLen;
    const h = this.lastHash;
    let i: i32;
    if (this.size < this.capacity) {
      i = this.size++;
    } else {
      i = this.head;
      this.head = i + 1 == this.capacity ? 0 : i + 1;
      this.unlink(i);
    }
    const at = this.entry(i);
    let keyPtr = load<usize>(at + KEY_PTR);
    if (<usize>load<u32>(at + KEY_CAP) < n) {
      if (keyPtr != 0) heap.free(keyPtr);
      const cap = n < 32 ? <usize>32 : (n + 15) & ~15;
      keyPtr = heap.alloc(cap);
      store<usize>(at + KEY_PTR, keyPtr);
      store<u32>(at + KEY_CAP, <u32>cap);
    }
    memory.copy(keyPtr, ptr, n);
    store<u32>(at + KEY_LEN, <u32>n);
    store<u32>(at + HASH, h);
    store<i32>(at + VALUE, value);
    const bucket = this.buckets + (<usize>(h & this.mask) << 2);
    store<u32>(at + NEXT, load<u32>(bucket));
    store<u32>(bucket, <u32>i + 1);
    this.lastEntry = i;
  }

  /** Takes entry `i` out of its bucket's chain. */
  private unlink(i: i32): void {
    const at = this.entry(i);
    let link = this.buckets + (<usize>(load<u32>(at + HASH) & this.mask) << 2);
    while (true) {
      const e = load<u32>(link);
      if (e == 0) return;
      if (<i32>e - 1 == i) {
        store<u32>(link, load<u32>(at + NEXT));
        return;
      }
      link = this.entry(<i32>e - 1) + NEXT;
    }
  }
}
