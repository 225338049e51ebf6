/**
 * Reads a module's sections into what admission checks and the instrumentation rewrites: types,
 * imports, function types, memories, globals, exports and the code bodies (decoded instruction by
 * instruction in `decodeCode`). Structures the sandbox cannot instrument (GC types, tags, memory64,
 * shared or multiple memories, typed-reference tables) are refused here.
 */
import { malformed, refuse } from "./errors.ts";
import { OP, readRefType, readValueType, walkExpression } from "./opcodes.ts";
import { Reader } from "./reader.ts";

export const SECTION = {
  custom: 0,
  type: 1,
  import: 2,
  function: 3,
  table: 4,
  memory: 5,
  global: 6,
  export: 7,
  start: 8,
  element: 9,
  code: 10,
  data: 11,
  dataCount: 12,
  tag: 13,
} as const;

export const EXTERNAL_KIND = { function: 0, table: 1, memory: 2, global: 3, tag: 4 } as const;
export const KIND_NAMES = ["function", "table", "memory", "global", "tag"] as const;

export const VALUE_TYPE_NAMES: Record<number, string> = {
  127: "i32",
  126: "i64",
  125: "f32",
  124: "f64",
  123: "v128",
  112: "funcref",
  111: "externref",
};

export interface SectionSpan {
  id: number;
  /** Offset of the section id byte. */
  start: number;
  payloadStart: number;
  end: number;
}

export interface FuncType {
  params: number[];
  results: number[];
}

export interface ImportEntry {
  module: string;
  name: string;
  kind: number;
  /** Type index, for function imports. */
  typeIndex: number;
  start: number;
  /** Offset just after the module name: the rest of the entry is copied when the module is renamed. */
  moduleEnd: number;
  end: number;
}

export interface MemoryEntry {
  initial: number;
  max: number | undefined;
}

export interface ExportEntry {
  name: string;
  kind: number;
  index: number;
}

export interface CodeBody {
  /** Offset of the first local declaration (just after the body size). */
  start: number;
  /** Offset of the first instruction. */
  localsEnd: number;
  end: number;
  /** Offsets just after each `loop` block type, where a fuel check goes. */
  loops: number[];
  /** Byte ranges of each `memory.grow 0`, replaced by a call to the checked grow. */
  grows: [start: number, end: number][];
}

export interface ModuleInfo {
  bytes: Uint8Array;
  sections: SectionSpan[];
  types: FuncType[];
  imports: ImportEntry[];
  importedFunctions: number;
  /** Type index of each defined function. */
  functions: number[];
  memories: MemoryEntry[];
  globals: number;
  exports: ExportEntry[];
  bodies: CodeBody[];
}

/** `(i64, i32) -> (i64)`, from a decoded type (value type bytes) or an ABI signature (names). */
export const formatType = (type: {
  params: readonly (number | string)[];
  results: readonly (number | string)[];
}): string => {
  const list = (types: readonly (number | string)[]) =>
    types.map((t) => (typeof t === "string" ? t : (VALUE_TYPE_NAMES[t] ?? `0x${t.toString(16)}`))).join(", ");
  return `(${list(type.params)}) -> (${list(type.results)})`;
};

/** The type of function `index` in the function index space (imports first). */
export const functionType = (info: ModuleInfo, index: number): FuncType | undefined => {
  let typeIndex: number | undefined;
  if (index < info.importedFunctions) {
    typeIndex = info.imports.filter((i) => i.kind === EXTERNAL_KIND.function)[index]?.typeIndex;
  } else {
    typeIndex = info.functions[index - info.importedFunctions];
  }
  return typeIndex === undefined ? undefined : info.types[typeIndex];
};

const unsupported = (message: string, details?: Record<string, unknown>): never =>
  refuse("unsupported_feature", message, details);

interface Limits {
  shared: boolean;
  is64: boolean;
  min: number;
  max: number | undefined;
}

const readLimits = (r: Reader): Limits => {
  const at = r.pos;
  const flags = r.u8();
  if (flags > 7) malformed(`limits flags 0x${flags.toString(16)}`, at);
  const is64 = (flags & 4) !== 0;
  // 64-bit limits are refused by the caller; skip them without decoding.
  const read = () => {
    if (!is64) return r.u32();
    r.skipLeb(10);
    return 0;
  };
  const min = read();
  const max = flags & 1 ? read() : undefined;
  return { shared: (flags & 2) !== 0, is64, min, max };
};

export const parseModule = (bytes: Uint8Array): ModuleInfo => {
  const info: ModuleInfo = {
    bytes,
    sections: [],
    types: [],
    imports: [],
    importedFunctions: 0,
    functions: [],
    memories: [],
    globals: 0,
    exports: [],
    bodies: [],
  };
  const r = new Reader(bytes, 8);
  while (!r.atEnd()) {
    const start = r.pos;
    const id = r.u8();
    const size = r.u32();
    const payloadStart = r.pos;
    r.skip(size);
    const span: SectionSpan = { id, start, payloadStart, end: r.pos };
    info.sections.push(span);
    const section = new Reader(bytes, payloadStart, span.end);
    readSection(info, id, section);
    if (!section.atEnd()) malformed(`section ${id} has trailing bytes`, section.pos);
  }
  return info;
};

const readSection = (info: ModuleInfo, id: number, r: Reader): void => {
  switch (id) {
    case SECTION.custom:
      // Copied as they are; not even the name is decoded, since engines skip malformed custom sections.
      r.pos = r.end;
      return;
    case SECTION.type:
      readTypes(info, r);
      return;
    case SECTION.import:
      readImports(info, r);
      return;
    case SECTION.function: {
      const count = r.u32();
      for (let i = 0; i < count; i++) info.functions.push(r.u32());
      return;
    }
    case SECTION.table:
      readTables(r);
      return;
    case SECTION.memory:
      readMemories(info, r);
      return;
    case SECTION.tag:
      unsupported("the module declares exception tags (exception handling is not supported)");
      return;
    case SECTION.global:
      readGlobals(info, r);
      return;
    case SECTION.export:
      readExports(info, r);
      return;
    case SECTION.start:
    case SECTION.dataCount:
      r.u32();
      return;
    case SECTION.element:
      readElements(r);
      return;
    case SECTION.code:
      readCode(info, r);
      return;
    case SECTION.data:
      readData(r);
      return;
    default:
      unsupported(`section id ${id} is not supported`, { section: id });
      return;
  }
};

const readTypes = (info: ModuleInfo, r: Reader): void => {
  const count = r.u32();
  for (let i = 0; i < count; i++) {
    const form = r.u8();
    if (form !== 0x60) {
      unsupported(`type ${i} is not a function type (garbage collection types are not supported)`, {
        typeIndex: i,
      });
    }
    const where = `type ${i}`;
    const params = Array.from({ length: r.u32() }, () => readValueType(r, where));
    const results = Array.from({ length: r.u32() }, () => readValueType(r, where));
    info.types.push({ params, results });
  }
};

const readImports = (info: ModuleInfo, r: Reader): void => {
  const count = r.u32();
  for (let i = 0; i < count; i++) {
    const start = r.pos;
    const module = r.name();
    const moduleEnd = r.pos;
    const name = r.name();
    const kind = r.u8();
    let typeIndex = -1;
    const where = `import "${module}"."${name}"`;
    switch (kind) {
      case EXTERNAL_KIND.function:
        typeIndex = r.u32();
        info.importedFunctions++;
        break;
      case EXTERNAL_KIND.table:
        readRefType(r, where);
        readLimits(r);
        break;
      case EXTERNAL_KIND.memory:
        readLimits(r);
        break;
      case EXTERNAL_KIND.global:
        readValueType(r, where);
        r.u8();
        break;
      case EXTERNAL_KIND.tag:
        r.u8();
        r.u32();
        break;
      default:
        malformed(`import kind ${kind}`, r.pos - 1);
    }
    info.imports.push({ module, name, kind, typeIndex, start, moduleEnd, end: r.pos });
  }
};

const readTables = (r: Reader): void => {
  const count = r.u32();
  for (let i = 0; i < count; i++) {
    if (r.peek() === 0x40) unsupported(`table ${i} has an initializer (typed function references)`);
    readRefType(r, `table ${i}`);
    if (readLimits(r).is64) unsupported(`table ${i} is 64-bit (memory64 is not supported)`);
  }
};

const readMemories = (info: ModuleInfo, r: Reader): void => {
  const count = r.u32();
  if (count > 1) unsupported(`the module defines ${count} memories (multiple memories are not supported)`);
  for (let i = 0; i < count; i++) {
    const limits = readLimits(r);
    if (limits.is64) unsupported("the memory is 64-bit (memory64 is not supported)");
    if (limits.shared) unsupported("the memory is shared (threads are not supported)");
    info.memories.push({ initial: limits.min, max: limits.max });
  }
};

const readGlobals = (info: ModuleInfo, r: Reader): void => {
  const count = r.u32();
  for (let i = 0; i < count; i++) {
    const where = `the initializer of global ${i}`;
    readValueType(r, `global ${i}`);
    r.u8();
    walkExpression(r, where);
  }
  info.globals = count;
};

const readExports = (info: ModuleInfo, r: Reader): void => {
  const count = r.u32();
  for (let i = 0; i < count; i++) {
    const name = r.name();
    const kind = r.u8();
    const index = r.u32();
    info.exports.push({ name, kind, index });
  }
};

const readElements = (r: Reader): void => {
  const count = r.u32();
  for (let i = 0; i < count; i++) {
    const at = r.pos;
    const flags = r.u32();
    if (flags > 7) malformed(`element segment flags ${flags}`, at);
    const where = `element segment ${i}`;
    const passiveOrDeclared = (flags & 1) !== 0;
    const explicitTable = (flags & 2) !== 0;
    const expressions = (flags & 4) !== 0;
    if (!passiveOrDeclared) {
      if (explicitTable) r.u32();
      walkExpression(r, `the offset of ${where}`);
    }
    // Flags 0 and 4 imply funcref; the others name an element kind (0x00) or a reference type.
    if (passiveOrDeclared || explicitTable) {
      if (expressions) readRefType(r, where);
      else if (r.u8() !== 0) malformed("element kind", r.pos - 1);
    }
    const items = r.u32();
    for (let j = 0; j < items; j++) {
      if (expressions) walkExpression(r, where);
      else r.u32();
    }
  }
};

const readData = (r: Reader): void => {
  const count = r.u32();
  for (let i = 0; i < count; i++) {
    const at = r.pos;
    const flags = r.u32();
    if (flags > 2) malformed(`data segment flags ${flags}`, at);
    if (flags === 2 && r.u32() !== 0) {
      unsupported(`data segment ${i} targets another memory (multiple memories are not supported)`);
    }
    if (flags !== 1) walkExpression(r, `the offset of data segment ${i}`);
    r.skip(r.u32());
  }
};

const readCode = (info: ModuleInfo, r: Reader): void => {
  const count = r.u32();
  for (let i = 0; i < count; i++) {
    const size = r.u32();
    const start = r.pos;
    r.skip(size);
    info.bodies.push({ start, localsEnd: start, end: r.pos, loops: [], grows: [] });
  }
};

/**
 * Decodes every function body: locals, then each instruction, noting the loop heads and memory.grow
 * sites. Kept apart from `parseModule` so the ABI checks (exports, imports, memory) report first.
 */
export const decodeCode = (info: ModuleInfo): void => {
  info.bodies.forEach((code, i) => {
    const where = `function ${info.importedFunctions + i}`;
    const body = new Reader(info.bytes, code.start, code.end);
    const groups = body.u32();
    for (let g = 0; g < groups; g++) {
      body.u32();
      readValueType(body, where);
    }
    code.localsEnd = body.pos;
    walkExpression(body, where, (op, opStart, opEnd) => {
      if (op === OP.loop) code.loops.push(opEnd);
      else if (op === OP.memoryGrow) code.grows.push([opStart, opEnd]);
    });
    if (!body.atEnd()) malformed(`${where} has bytes after its final end`, body.pos);
  });
};
