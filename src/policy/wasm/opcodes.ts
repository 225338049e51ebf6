/**
 * The instruction decoder: every opcode the sandbox accepts, with the immediates that follow it, so
 * instruction boundaries (and the `loop` and `memory.grow` sites the instrumentation edits) are exact.
 * Anything not in these tables is refused, since an instruction we cannot size we cannot step over.
 */
import { refuse } from "./errors.ts";
import type { Reader } from "./reader.ts";

export const OP = {
  block: 0x02,
  loop: 0x03,
  if: 0x04,
  end: 0x0b,
  memoryGrow: 0x40,
} as const;

/** Value types of the features we support: numbers, v128, funcref and externref. */
const VALUE_TYPES = new Set([0x7f, 0x7e, 0x7d, 0x7c, 0x7b, 0x70, 0x6f]);
const REF_TYPES = new Set([0x70, 0x6f]);

/** Immediate shapes of one-byte opcodes; 0 (the tables' default) means refused. */
const Imm = {
  Refused: 0,
  None: 1,
  BlockType: 2,
  Index: 3,
  TwoIndices: 4,
  BrTable: 5,
  SelectTypes: 6,
  MemArg: 7,
  MemoryIndex: 8,
  I32: 9,
  I64: 10,
  F32: 11,
  F64: 12,
  HeapType: 13,
  PrefixFC: 14,
  PrefixFD: 15,
} as const;

const SINGLE = new Uint8Array(256);
const fill = (table: Uint8Array, from: number, to: number, kind: number) => table.fill(kind, from, to + 1);
for (const op of [0x00, 0x01, 0x05, 0x0b, 0x0f, 0x1a, 0x1b, 0xd1]) SINGLE[op] = Imm.None;
fill(SINGLE, 0x02, 0x04, Imm.BlockType);
for (const op of [0x0c, 0x0d, 0x10, 0x12, 0xd2]) SINGLE[op] = Imm.Index;
fill(SINGLE, 0x20, 0x26, Imm.Index); // local.*, global.*, table.get/set
SINGLE[0x0e] = Imm.BrTable;
SINGLE[0x11] = Imm.TwoIndices; // call_indirect type table
SINGLE[0x13] = Imm.TwoIndices; // return_call_indirect type table
SINGLE[0x1c] = Imm.SelectTypes;
fill(SINGLE, 0x28, 0x3e, Imm.MemArg);
SINGLE[0x3f] = Imm.MemoryIndex;
SINGLE[0x40] = Imm.MemoryIndex;
SINGLE[0x41] = Imm.I32;
SINGLE[0x42] = Imm.I64;
SINGLE[0x43] = Imm.F32;
SINGLE[0x44] = Imm.F64;
fill(SINGLE, 0x45, 0xc4, Imm.None); // numeric MVP and sign-extension
SINGLE[0xd0] = Imm.HeapType;
SINGLE[0xfc] = Imm.PrefixFC;
SINGLE[0xfd] = Imm.PrefixFD;

/** Feature names for refused opcodes the author may recognise. */
const REFUSED_FEATURE = new Map<number, string>([
  ...[0x06, 0x07, 0x08, 0x09, 0x0a, 0x18, 0x19, 0x1f].map((op) => [op, "exception handling"] as const),
  ...[0x14, 0x15, 0xd3, 0xd4, 0xd6].map((op) => [op, "typed function references"] as const),
  [0xd5, "garbage collection"],
  [0xfb, "garbage collection"],
  [0xfe, "threads"],
]);

const Simd = { Refused: 0, None: 1, MemArg: 2, MemArgLane: 3, Lane: 4, Bytes16: 5 } as const;

/** 0xFD sub-opcodes: the SIMD proposal (0x00-0xFF, with gaps) and relaxed SIMD (0x100-0x113). */
const SIMD = new Uint8Array(0x114);
fill(SIMD, 0x00, 0x0b, Simd.MemArg); // loads, splat loads, v128.store
SIMD[0x0c] = Simd.Bytes16; // v128.const
SIMD[0x0d] = Simd.Bytes16; // i8x16.shuffle
fill(SIMD, 0x0e, 0x14, Simd.None);
fill(SIMD, 0x15, 0x22, Simd.Lane); // extract_lane / replace_lane
fill(SIMD, 0x23, 0x53, Simd.None);
fill(SIMD, 0x54, 0x5b, Simd.MemArgLane); // load/store lane
fill(SIMD, 0x5c, 0x5d, Simd.MemArg); // load32_zero, load64_zero
fill(SIMD, 0x5e, 0xff, Simd.None);
for (const gap of [
  0x9a, 0xa2, 0xa5, 0xa6, 0xaf, 0xb0, 0xb2, 0xb3, 0xb4, 0xbb, 0xc2, 0xc5, 0xc6, 0xcf, 0xd0,
]) {
  SIMD[gap] = Simd.Refused;
}
for (const gap of [0xd2, 0xd3, 0xd4, 0xe2, 0xee]) SIMD[gap] = Simd.Refused;
fill(SIMD, 0x100, 0x113, Simd.None);

/** 0xFC sub-opcodes: saturating truncation (0-7) and bulk memory / table operations (8-17). */
const Misc = {
  Refused: 0,
  None: 1,
  DataMemory: 2,
  Index: 3,
  MemoryMemory: 4,
  Memory: 5,
  TwoIndices: 6,
} as const;
const MISC: number[] = [
  ...Array<number>(8).fill(Misc.None),
  Misc.DataMemory, // memory.init data mem
  Misc.Index, // data.drop
  Misc.MemoryMemory, // memory.copy
  Misc.Memory, // memory.fill
  Misc.TwoIndices, // table.init elem table
  Misc.Index, // elem.drop
  Misc.TwoIndices, // table.copy
  Misc.Index, // table.grow
  Misc.Index, // table.size
  Misc.Index, // table.fill
];

const hex = (n: number) => `0x${n.toString(16).padStart(2, "0")}`;

const refuseInstruction = (opcodes: string, feature: string, where: string, offset: number): never =>
  refuse("unsupported_feature", `instruction ${opcodes} (${feature}) in ${where} is not supported`, {
    opcode: opcodes,
    feature,
    where,
    offset,
  });

/** Reads a value type, refusing the typed-reference and GC ones. */
export const readValueType = (r: Reader, where: string): number => {
  const at = r.pos;
  const type = r.u8();
  if (!VALUE_TYPES.has(type)) {
    refuse(
      "unsupported_feature",
      `value type ${hex(type)} (typed references or GC) in ${where} is not supported`,
      {
        valueType: type,
        where,
        offset: at,
      },
    );
  }
  return type;
};

/** Reads a reference type of a table or element segment (funcref or externref). */
export const readRefType = (r: Reader, where: string): number => {
  const at = r.pos;
  const type = r.u8();
  if (!REF_TYPES.has(type)) {
    refuse(
      "unsupported_feature",
      `reference type ${hex(type)} (typed references or GC) in ${where} is not supported`,
      {
        valueType: type,
        where,
        offset: at,
      },
    );
  }
  return type;
};

const readBlockType = (r: Reader, where: string, opcodeAt: number): void => {
  const first = r.peek();
  if (first === 0x40 || VALUE_TYPES.has(first)) {
    r.pos++;
    return;
  }
  // A type index (multi-value) is a non-negative s33; negative ones are GC/typed-reference shorthands.
  if (r.signed(33) < 0)
    refuseInstruction(hex(r.bytes[opcodeAt]!), "typed references or GC block type", where, opcodeAt);
};

const readMemArg = (r: Reader, opcodes: string, where: string, opcodeAt: number): void => {
  const align = r.u32();
  // Bit 6 of the alignment announces an explicit memory index (multi-memory).
  if (align & 0x40) refuseInstruction(opcodes, "multi-memory", where, opcodeAt);
  r.u32();
};

const readMemoryIndex = (r: Reader, opcodes: string, where: string, opcodeAt: number): void => {
  if (r.u32() !== 0) refuseInstruction(opcodes, "multi-memory", where, opcodeAt);
};

/** Steps over one instruction starting at `r.pos`; returns its first opcode byte. */
export const readInstruction = (r: Reader, where: string): number => {
  const at = r.pos;
  const op = r.u8();
  const opcodes = hex(op);
  switch (SINGLE[op]) {
    case Imm.None:
      return op;
    case Imm.BlockType:
      readBlockType(r, where, at);
      return op;
    case Imm.Index:
      r.u32();
      return op;
    case Imm.TwoIndices:
      r.u32();
      r.u32();
      return op;
    case Imm.BrTable: {
      const count = r.u32();
      for (let i = 0; i <= count; i++) r.u32();
      return op;
    }
    case Imm.SelectTypes: {
      const count = r.u32();
      for (let i = 0; i < count; i++) readValueType(r, where);
      return op;
    }
    case Imm.MemArg:
      readMemArg(r, opcodes, where, at);
      return op;
    case Imm.MemoryIndex:
      readMemoryIndex(r, opcodes, where, at);
      return op;
    case Imm.I32:
      r.signed(32);
      return op;
    case Imm.I64:
      r.skipLeb(10);
      return op;
    case Imm.F32:
      r.skip(4);
      return op;
    case Imm.F64:
      r.skip(8);
      return op;
    case Imm.HeapType:
      readRefType(r, where);
      return op;
    case Imm.PrefixFC:
      readMisc(r, where, at);
      return op;
    case Imm.PrefixFD:
      readSimd(r, where, at);
      return op;
    default:
      return refuseInstruction(opcodes, REFUSED_FEATURE.get(op) ?? "unknown opcode", where, at);
  }
};

const readMisc = (r: Reader, where: string, at: number): void => {
  const sub = r.u32();
  const opcodes = `0xfc ${hex(sub)}`;
  switch (MISC[sub] ?? Misc.Refused) {
    case Misc.None:
      return;
    case Misc.DataMemory:
      r.u32();
      readMemoryIndex(r, opcodes, where, at);
      return;
    case Misc.Index:
      r.u32();
      return;
    case Misc.MemoryMemory:
      readMemoryIndex(r, opcodes, where, at);
      readMemoryIndex(r, opcodes, where, at);
      return;
    case Misc.Memory:
      readMemoryIndex(r, opcodes, where, at);
      return;
    case Misc.TwoIndices:
      r.u32();
      r.u32();
      return;
    default:
      refuseInstruction(opcodes, "unknown opcode", where, at);
  }
};

const readSimd = (r: Reader, where: string, at: number): void => {
  const sub = r.u32();
  const opcodes = `0xfd ${hex(sub)}`;
  switch (SIMD[sub] ?? Simd.Refused) {
    case Simd.None:
      return;
    case Simd.MemArg:
      readMemArg(r, opcodes, where, at);
      return;
    case Simd.MemArgLane:
      readMemArg(r, opcodes, where, at);
      r.u8();
      return;
    case Simd.Lane:
      r.u8();
      return;
    case Simd.Bytes16:
      r.skip(16);
      return;
    default:
      refuseInstruction(opcodes, "unknown SIMD opcode", where, at);
  }
};

/**
 * Steps over an expression (a function body after its locals, or a constant expression) up to and
 * including its final `end`, calling `visit` with each instruction's opcode and byte range.
 */
export const walkExpression = (
  r: Reader,
  where: string,
  visit?: (op: number, start: number, end: number) => void,
): void => {
  let depth = 1;
  while (depth > 0) {
    const start = r.pos;
    const op = readInstruction(r, where);
    if (op === OP.block || op === OP.loop || op === OP.if) depth++;
    else if (op === OP.end) depth--;
    visit?.(op, start, r.pos);
  }
};
