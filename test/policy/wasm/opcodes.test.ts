import { describe, expect, test } from "bun:test";
import wabtInit from "wabt";
import { AdmissionError } from "../../../src/policy/wasm/errors.ts";
import { parseModule } from "../../../src/policy/wasm/module.ts";
import { walkExpression } from "../../../src/policy/wasm/opcodes.ts";
import { Reader } from "../../../src/policy/wasm/reader.ts";
import { s32, u32 } from "../../../src/policy/wasm/writer.ts";

const wabt = await wabtInit();
const ALL_FEATURES = {
  simd: true,
  relaxed_simd: true,
  threads: true,
  exceptions: true,
  tail_call: true,
  gc: true,
  function_references: true,
  multi_value: true,
  bulk_memory: true,
  reference_types: true,
  extended_const: true,
};

const section = (id: number, payload: number[]) => [id, ...u32(payload.length), ...payload];

/** A module with one function whose body is `code`, plus a table, a memory and one passive data segment. */
const moduleWith = (code: number[]) => {
  const body = [0, ...code];
  return new Uint8Array([
    ...[0x00, 0x61, 0x73, 0x6d, 1, 0, 0, 0],
    ...section(1, [1, 0x60, 0, 0]),
    ...section(3, [1, 0]),
    ...section(4, [1, 0x70, 0, 1]),
    ...section(5, [1, 0, 1]),
    ...section(12, [1]),
    ...section(10, [1, ...u32(body.length), ...body]),
    ...section(11, [1, 1, 0]),
  ]);
};

/** wabt decodes instructions (not types) when reading a module: a second opinion on sizes. */
const wabtDecodes = (code: number[]) => {
  try {
    wabt.readWasm(moduleWith(code), { check: true, ...ALL_FEATURES }).destroy();
    return true;
  } catch {
    return false;
  }
};

const weDecode = (code: number[]) => {
  try {
    const r = new Reader(new Uint8Array(code));
    walkExpression(r, "function 0");
    return r.atEnd();
  } catch (err) {
    if (err instanceof AdmissionError) return false;
    throw err;
  }
};

/** Which candidate immediates make `prefix imm end` decode, by each decoder. 0x27 is no opcode. */
const accepted = (prefix: number[], shapes: Record<string, number[]>, decode: (code: number[]) => boolean) =>
  Object.entries(shapes)
    .filter(([, imm]) => decode([...prefix, ...imm, 0x0b]))
    .map(([shape]) => shape);

const refusal = (code: number[]): AdmissionError => {
  try {
    walkExpression(new Reader(new Uint8Array(code)), "function 3");
  } catch (err) {
    if (err instanceof AdmissionError) return err;
    throw err;
  }
  throw new Error("decoded");
};

describe("opcode tables agree with wabt", () => {
  test("every 0xFD (SIMD and relaxed SIMD) opcode: known or not, and its immediates", () => {
    const shapes = {
      none: [],
      memarg: [0x01, 0x27], // a small alignment: wabt checks it as it reads
      memargLane: [0x01, 0x27, 0x27],
      lane: [0x27],
      bytes16: Array<number>(16).fill(0x27),
    };
    const mismatches: string[] = [];
    for (let op = 0; op < 0x180; op++) {
      const prefix = [0xfd, ...u32(op)];
      const ours = accepted(prefix, shapes, weDecode);
      const theirs = accepted(prefix, shapes, wabtDecodes);
      if (ours.join() !== theirs.join())
        mismatches.push(`0xfd ${op.toString(16)}: ours ${ours}, wabt ${theirs}`);
    }
    expect(mismatches).toEqual([]);
  });

  test("every 0xFC opcode: saturating truncation and bulk memory", () => {
    const shapes = {
      none: [],
      index: [0x27],
      indices: [0x27, 0x27],
      indexMemory: [0x27, 0],
      memory: [0],
      memories: [0, 0],
    };
    const mismatches: string[] = [];
    for (let op = 0; op < 0x20; op++) {
      const prefix = [0xfc, ...u32(op)];
      const ours = accepted(prefix, shapes, weDecode);
      const theirs = op <= 17 ? accepted(prefix, shapes, wabtDecodes) : [];
      if (ours.join() !== theirs.join())
        mismatches.push(`0xfc ${op.toString(16)}: ours ${ours}, wabt ${theirs}`);
    }
    expect(mismatches).toEqual([]);
  });

  test("every one-byte opcode we accept has the immediates wabt reads", () => {
    const shapes = {
      none: [],
      index: [0x27],
      indices: [0x01, 0x27], // a small first byte: wabt checks alignments as it reads them
      brTable: [0x01, 0x27, 0x27],
      types: [0x01, 0x7f],
      memarg: [0x02, 0x27],
      memory: [0x00],
      f32: [0x27, 0x27, 0x27, 0x27],
      f64: Array<number>(8).fill(0x27),
      refType: [0x70],
    };
    const structural = new Set([0x02, 0x03, 0x04, 0x05, 0x0b, 0xfc, 0xfd]);
    const mismatches: string[] = [];
    for (let op = 0; op < 0x100; op++) {
      if (structural.has(op)) continue;
      const ours = accepted([op], shapes, weDecode);
      if (ours.length === 0) continue;
      const theirs = accepted([op], shapes, wabtDecodes);
      if (ours.join() !== theirs.join())
        mismatches.push(`0x${op.toString(16)}: ours ${ours}, wabt ${theirs}`);
    }
    expect(mismatches).toEqual([]);
  });
});

describe("the decoder", () => {
  test("steps over nested blocks, block types by index and LEB128 immediates of any width", () => {
    const padded = [0xff, 0xff, 0xff, 0xff, 0x07]; // i32.const 2^31-1 written in 5 bytes
    expect(weDecode([0x02, 0x40, 0x03, 0x01, 0x41, ...padded, 0x1a, 0x0b, 0x0b, 0x0b])).toBe(true);
    expect(weDecode([0x41, ...s32(-1), 0x1a, 0x0b])).toBe(true);
    const visited: number[] = [];
    walkExpression(new Reader(new Uint8Array([0x03, 0x40, 0x0b, 0x0b])), "f", (op) => visited.push(op));
    expect(visited).toEqual([0x03, 0x0b, 0x0b]);
  });

  test("refuses unknown, threads, GC and exception opcodes by name", () => {
    expect(refusal([0x27]).message).toBe("instruction 0x27 (unknown opcode) in function 3 is not supported");
    expect(refusal([0xfe, 0x10, 0x02, 0x00]).message).toBe(
      "instruction 0xfe (threads) in function 3 is not supported",
    );
    expect(refusal([0xfb, 0x00]).message).toContain("(garbage collection)");
    expect(refusal([0x1f]).message).toContain("(exception handling)");
    expect(refusal([0xfc, 0x12]).message).toBe(
      "instruction 0xfc 0x12 (unknown opcode) in function 3 is not supported",
    );
    expect(refusal([0xfd, 0x9a, 0x01]).message).toBe(
      "instruction 0xfd 0x9a (unknown SIMD opcode) in function 3 is not supported",
    );
    expect(refusal([0x00]).code).toBe("invalid_module"); // ran off the end without a final `end`
  });

  test("refuses multi-memory forms: memarg with a memory index, and memory indices other than 0", () => {
    expect(refusal([0x28, 0x42, 0x01, 0x00, 0x0b]).message).toBe(
      "instruction 0x28 (multi-memory) in function 3 is not supported",
    );
    expect(refusal([0x40, 0x01, 0x0b]).message).toBe(
      "instruction 0x40 (multi-memory) in function 3 is not supported",
    );
    expect(refusal([0xfc, 0x0a, 0x00, 0x01, 0x0b]).message).toContain("multi-memory");
  });

  test("refuses typed-reference block types and value types", () => {
    expect(refusal([0x02, 0x63, 0x70, 0x0b, 0x0b]).code).toBe("unsupported_feature");
    expect(refusal([0x1c, 0x01, 0x64, 0x70]).message).toContain("value type 0x64");
  });
});

describe("module structure the sandbox refuses, without the engine's help", () => {
  const header = [0x00, 0x61, 0x73, 0x6d, 1, 0, 0, 0];
  const refusalOf = (bytes: number[]) => {
    try {
      parseModule(new Uint8Array([...header, ...bytes]));
    } catch (err) {
      if (err instanceof AdmissionError) return err;
      throw err;
    }
    throw new Error("parsed");
  };

  test("memory64, shared and multiple memories", () => {
    expect(refusalOf(section(5, [1, 0x04, 1])).message).toContain("memory64");
    expect(refusalOf(section(5, [1, 0x03, 1, 2])).message).toContain("shared");
    expect(refusalOf(section(5, [2, 0, 1, 0, 1])).message).toContain("multiple memories");
  });

  test("data segments for another memory and constant expressions with refused opcodes", () => {
    expect(refusalOf(section(11, [1, 2, 1, 0x41, 0, 0x0b, 0])).message).toContain("another memory");
    expect(refusalOf(section(6, [1, 0x7f, 0, 0xfe, 0x10, 0x0b])).message).toBe(
      "instruction 0xfe (threads) in the initializer of global 0 is not supported",
    );
  });

  test("trailing bytes in a section are malformed", () => {
    expect(refusalOf(section(3, [1, 0, 0])).code).toBe("invalid_module");
  });
});
