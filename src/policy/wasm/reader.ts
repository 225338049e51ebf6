/** A cursor over module bytes: LEB128 integers, names and sub-ranges, failing on any overrun. */
import { malformed } from "./errors.ts";

const utf8 = new TextDecoder("utf-8", { fatal: true });

export class Reader {
  pos: number;
  readonly end: number;

  constructor(
    readonly bytes: Uint8Array,
    start = 0,
    end = bytes.length,
  ) {
    this.pos = start;
    this.end = end;
  }

  atEnd(): boolean {
    return this.pos >= this.end;
  }

  u8(): number {
    if (this.pos >= this.end) malformed("unexpected end", this.pos);
    return this.bytes[this.pos++]!;
  }

  peek(): number {
    if (this.pos >= this.end) malformed("unexpected end", this.pos);
    return this.bytes[this.pos]!;
  }

  skip(n: number): void {
    if (n < 0 || this.pos + n > this.end) malformed("unexpected end", this.pos);
    this.pos += n;
  }

  take(n: number): Uint8Array {
    const start = this.pos;
    this.skip(n);
    return this.bytes.subarray(start, this.pos);
  }

  /** Unsigned LEB128 of at most 32 bits. Multiplication, not shifts, keeps values above 2^31 positive. */
  u32(): number {
    const start = this.pos;
    let result = 0;
    let scale = 1;
    for (let i = 0; i < 5; i++) {
      const byte = this.u8();
      result += (byte & 0x7f) * scale;
      if ((byte & 0x80) === 0) {
        if (result > 0xffffffff) malformed("integer too large", start);
        return result;
      }
      scale *= 128;
    }
    return malformed("integer representation too long", start);
  }

  /** Signed LEB128 of at most `bits` bits (32 or 33), as a number. */
  signed(bits: 32 | 33): number {
    const start = this.pos;
    let result = 0;
    let scale = 1;
    for (let i = 0; i < 5; i++) {
      const byte = this.u8();
      result += (byte & 0x7f) * scale;
      scale *= 128;
      if ((byte & 0x80) === 0) {
        if (byte & 0x40) result -= scale;
        if (result < -(2 ** (bits - 1)) || result >= 2 ** (bits - 1)) malformed("integer too large", start);
        return result;
      }
    }
    return malformed("integer representation too long", start);
  }

  /** Skips a LEB128 of at most `maxBytes` bytes (10 for 64-bit values) without decoding it. */
  skipLeb(maxBytes: number): void {
    const start = this.pos;
    for (let i = 0; i < maxBytes; i++) {
      if ((this.u8() & 0x80) === 0) return;
    }
    malformed("integer representation too long", start);
  }

  name(): string {
    const length = this.u32();
    const at = this.pos;
    try {
      return utf8.decode(this.take(length));
    } catch {
      return malformed("name is not UTF-8", at);
    }
  }
}
