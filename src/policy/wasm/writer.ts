/** Encoding of the pieces the instrumentation writes: LEB128 integers, names, vectors and sections. */

const utf8 = new TextEncoder();

export const u32 = (value: number): number[] => {
  const out: number[] = [];
  let v = value >>> 0;
  do {
    let byte = v & 0x7f;
    v >>>= 7;
    if (v !== 0) byte |= 0x80;
    out.push(byte);
  } while (v !== 0);
  return out;
};

export const s32 = (value: number): number[] => {
  const out: number[] = [];
  let v = value | 0;
  for (;;) {
    const byte = v & 0x7f;
    v >>= 7;
    const done = (v === 0 && (byte & 0x40) === 0) || (v === -1 && (byte & 0x40) !== 0);
    out.push(done ? byte : byte | 0x80);
    if (done) return out;
  }
};

export const name = (text: string): number[] => {
  const bytes = utf8.encode(text);
  return [...u32(bytes.length), ...bytes];
};

export const concat = (parts: readonly (Uint8Array | readonly number[])[]): Uint8Array<ArrayBuffer> => {
  let length = 0;
  for (const part of parts) length += part.length;
  const out = new Uint8Array(length);
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
};

/** A vector: its element count, then the elements' bytes as given. */
export const vec = (
  count: number,
  items: readonly (Uint8Array | readonly number[])[],
): Uint8Array<ArrayBuffer> => concat([u32(count), ...items]);

/** A section: id, payload size, payload. */
export const section = (id: number, payload: Uint8Array): Uint8Array<ArrayBuffer> =>
  concat([[id], u32(payload.length), payload]);
