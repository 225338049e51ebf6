/**
 * Correctly rounded decimal -> f64 for the numbers the JSON fast path cannot do exactly (more than
 * 15 significant digits or large exponents; AssemblyScript's `parseFloat` is not correctly rounded
 * there). A floating-point first guess, a few units in the last place off at most, is refined by
 * Clinger's AlgorithmR: the decimal value is compared exactly, with big integers, against the
 * midpoints between the guess and its neighbours.
 */

/** An unsigned big integer in base 2^32 limbs, least significant first. */
class Big {
  limbs: Array<u32> = new Array<u32>();

  static of(v: u64): Big {
    const b = new Big();
    if (v != 0) b.limbs.push(<u32>v);
    if (v >> 32 != 0) b.limbs.push(<u32>(v >> 32));
    return b;
  }

  clone(): Big {
    const b = new Big();
    b.limbs = this.limbs.slice(0);
    return b;
  }

  /** this = this * m + add. */
  mulAdd(m: u32, add: u32): Big {
    let carry: u64 = add;
    for (let i = 0; i < this.limbs.length; i++) {
      const t = <u64>unchecked(this.limbs[i]) * <u64>m + carry;
      unchecked((this.limbs[i] = <u32>t));
      carry = t >> 32;
    }
    if (carry != 0) this.limbs.push(<u32>carry);
    return this;
  }

  mulPow10(n: i32): Big {
    while (n >= 9) {
      this.mulAdd(1000000000, 0);
      n -= 9;
    }
    let p: u32 = 1;
    for (let i = 0; i < n; i++) p *= 10;
    if (p > 1) this.mulAdd(p, 0);
    return this;
  }

  shiftLeft(n: i32): Big {
    if (n <= 0 || this.limbs.length == 0) return this;
    const words = n >> 5;
    const bits = n & 31;
    if (bits != 0) {
      let carry: u32 = 0;
      for (let i = 0; i < this.limbs.length; i++) {
        const v = unchecked(this.limbs[i]);
        unchecked((this.limbs[i] = (v << bits) | carry));
        carry = v >> (32 - bits);
      }
      if (carry != 0) this.limbs.push(carry);
    }
    if (words > 0) {
      const out = new Array<u32>(words + this.limbs.length);
      for (let i = 0; i < this.limbs.length; i++) unchecked((out[words + i] = unchecked(this.limbs[i])));
      this.limbs = out;
    }
    return this;
  }

  compare(other: Big): i32 {
    const a = this.limbs;
    const b = other.limbs;
    let n = a.length;
    let m = b.length;
    while (n > 0 && unchecked(a[n - 1]) == 0) n--;
    while (m > 0 && unchecked(b[m - 1]) == 0) m--;
    if (n != m) return n < m ? -1 : 1;
    for (let i = n - 1; i >= 0; i--) {
      const x = unchecked(a[i]);
      const y = unchecked(b[i]);
      if (x != y) return x < y ? -1 : 1;
    }
    return 0;
  }
}

/** x * 10^e in floating point: each step rounds, so the result is a few ulps off at most. */
function scale(x: f64, e: i32): f64 {
  while (e > 22) {
    x *= 1e22;
    e -= 22;
  }
  while (e < -22) {
    x /= 1e22;
    e += 22;
  }
  return e >= 0 ? x * Math.pow(10, <f64>e) : x / Math.pow(10, <f64>-e);
}

/**
 * The f64 nearest (ties to even) to the unsigned JSON number text of `len` bytes at `ptr` (already
 * validated: digits, an optional fraction, an optional exponent).
 */
export function exactDecimal(ptr: usize, len: usize): f64 {
  // The decimal significand as a big integer and its power of ten; its first 19 digits for the guess.
  const d = new Big();
  let head: u64 = 0;
  let significant = 0;
  let exp10: i32 = 0;
  let fraction = false;
  let i: usize = 0;
  for (; i < len; i++) {
    const c = <u32>load<u8>(ptr + i);
    if (c == 0x2e) {
      fraction = true;
      continue;
    }
    if (c - 0x30 >= 10) break;
    if (fraction) exp10--;
    if (significant == 0 && c == 0x30) continue;
    d.mulAdd(10, c - 0x30);
    if (significant < 19) head = head * 10 + <u64>(c - 0x30);
    significant++;
  }
  if (i < len) {
    // The exponent: e, an optional sign, digits (saturated: beyond +-99999 only the sign matters).
    i++;
    let negative = false;
    const sign = load<u8>(ptr + i);
    if (sign == 0x2b || sign == 0x2d) {
      negative = sign == 0x2d;
      i++;
    }
    let e: i32 = 0;
    for (; i < len; i++) if (e < 100000) e = e * 10 + <i32>(load<u8>(ptr + i) - 0x30);
    exp10 += negative ? -e : e;
  }
  // Quick answers for zero and the extremes.
  if (significant == 0) return 0;
  if (exp10 + significant > 310) return Infinity;
  if (exp10 + significant < -330) return 0;

  let z = scale(<f64>head, exp10 + max(0, significant - 19));
  if (!(z > 0)) z = 4.9406564584124654e-324; // start from the smallest subnormal
  if (z == Infinity) z = f64.MAX_VALUE;
  for (let step = 0; step < 64; step++) {
    const bits = reinterpret<u64>(z);
    const biased = <i32>(bits >> 52);
    const fraction = bits & 0x000fffffffffffff;
    // z = m * 2^k
    const m: u64 = biased == 0 ? fraction : fraction | 0x0010000000000000;
    const k: i32 = biased == 0 ? -1074 : biased - 1075;
    // Compare d * 10^exp10 with the midpoints (2m +- 1) * 2^(k-1), all scaled to integers.
    const x = d.clone();
    const upper = Big.of(2 * m + 1);
    // Just above a power of two the lower neighbour is half as far: its midpoint is (4m - 1) * 2^(k-2).
    const narrowBelow = fraction == 0 && biased > 1;
    const lower = narrowBelow ? Big.of(4 * m - 1) : Big.of(2 * m - 1);
    if (exp10 >= 0) x.mulPow10(exp10);
    else {
      upper.mulPow10(-exp10);
      lower.mulPow10(-exp10);
    }
    // upper at scale 2^(k-1), lower at 2^(k-1) or 2^(k-2): bring everything to 2^(k-2).
    const e2 = k - 2;
    if (e2 >= 0) {
      upper.shiftLeft(e2 + 1);
      lower.shiftLeft(narrowBelow ? e2 : e2 + 1);
    } else {
      x.shiftLeft(-e2);
      upper.shiftLeft(1);
      if (!narrowBelow) lower.shiftLeft(1);
    }
    const up = x.compare(upper);
    if (up > 0) {
      if (z == f64.MAX_VALUE) return Infinity;
      z = reinterpret<f64>(bits + 1);
      continue;
    }
    if (up == 0) return (m & 1) == 0 ? z : reinterpret<f64>(bits + 1);
    const down = m == 0 ? 1 : x.compare(lower);
    if (down < 0) {
      if (bits == 1) {
        // Below half the smallest subnormal: zero; exactly half: zero too (ties to even).
        return 0;
      }
      z = reinterpret<f64>(bits - 1);
      continue;
    }
    if (down == 0) return (m & 1) == 0 ? z : reinterpret<f64>(bits - 1);
    return z;
  }
  return z;
}
