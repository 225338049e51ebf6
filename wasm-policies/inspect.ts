/**
 * Reads the function signatures of a module's imports and exports (the JS WebAssembly API lists them
 * without types), and checks a policy module against the ABI the way admission will: the build runs
 * it on every module so a policy that would be refused at upload fails the build instead.
 */
import {
  FORBIDDEN_KERNEL_FUNCTIONS,
  type FunctionSignature,
  HOST_FUNCTIONS,
  HOST_MODULE,
  KERNEL_FUNCTIONS,
  KERNEL_MODULE,
  POLICY_EXPORTS,
  type WasmValType,
} from "../src/policy/abi.ts";

export interface ImportedFunction extends FunctionSignature {
  module: string;
  name: string;
}

export interface ExportedItem {
  name: string;
  kind: "function" | "table" | "memory" | "global" | "tag";
  /** For functions only. */
  signature?: FunctionSignature;
}

export interface ModuleShape {
  imports: ImportedFunction[];
  /** Imports that are not functions (memories, tables, globals), as `module.name`. */
  otherImports: string[];
  exports: ExportedItem[];
}

const VAL_TYPES: Record<number, WasmValType> = { 127: "i32", 126: "i64", 125: "f32", 124: "f64" };
const EXPORT_KINDS = ["function", "table", "memory", "global", "tag"] as const;

class Cursor {
  pos = 0;
  constructor(readonly bytes: Uint8Array) {}
  byte(): number {
    const b = this.bytes[this.pos++];
    if (b === undefined) throw new Error("unexpected end of module");
    return b;
  }
  u32(): number {
    let result = 0;
    let shift = 0;
    for (;;) {
      const b = this.byte();
      result |= (b & 0x7f) << shift;
      if ((b & 0x80) === 0) return result >>> 0;
      shift += 7;
    }
  }
  name(): string {
    const n = this.u32();
    const s = new TextDecoder().decode(this.bytes.subarray(this.pos, this.pos + n));
    this.pos += n;
    return s;
  }
  valType(): WasmValType {
    const b = this.byte();
    const t = VAL_TYPES[b];
    if (!t) throw new Error(`unsupported value type 0x${b.toString(16)} in a signature`);
    return t;
  }
  limits(): void {
    const flags = this.byte();
    this.u32();
    if (flags & 1) this.u32();
  }
}

/** The imports and exports of a module, with function signatures. */
export function inspectModule(bytes: Uint8Array): ModuleShape {
  const c = new Cursor(bytes);
  if (bytes.length < 8 || bytes[0] !== 0 || bytes[1] !== 0x61 || bytes[2] !== 0x73 || bytes[3] !== 0x6d) {
    throw new Error("not a WebAssembly module");
  }
  c.pos = 8;
  const types: FunctionSignature[] = [];
  const imports: ImportedFunction[] = [];
  const otherImports: string[] = [];
  const funcTypes: number[] = []; // type index per function index (imports first)
  const rawExports: { name: string; kind: number; index: number }[] = [];
  while (c.pos < bytes.length) {
    const id = c.byte();
    const size = c.u32();
    const end = c.pos + size;
    if (id === 1) {
      for (let n = c.u32(); n > 0; n--) {
        if (c.byte() !== 0x60) throw new Error("unsupported type form");
        const params = Array.from({ length: c.u32() }, () => c.valType());
        const results = Array.from({ length: c.u32() }, () => c.valType());
        types.push({ params, results });
      }
    } else if (id === 2) {
      for (let n = c.u32(); n > 0; n--) {
        const module = c.name();
        const name = c.name();
        const kind = c.byte();
        if (kind === 0) {
          const type = c.u32();
          const sig = types[type];
          if (!sig) throw new Error(`import ${module}.${name} has an unknown type`);
          imports.push({ module, name, ...sig });
          funcTypes.push(type);
        } else {
          otherImports.push(`${module}.${name}`);
          if (kind === 1) {
            c.byte();
            c.limits();
          } else if (kind === 2) c.limits();
          else if (kind === 3) {
            c.byte();
            c.byte();
          } else {
            c.byte();
            c.u32();
          }
        }
      }
    } else if (id === 3) {
      for (let n = c.u32(); n > 0; n--) funcTypes.push(c.u32());
    } else if (id === 7) {
      for (let n = c.u32(); n > 0; n--) rawExports.push({ name: c.name(), kind: c.byte(), index: c.u32() });
    }
    c.pos = end;
  }
  const exports = rawExports.map(({ name, kind, index }): ExportedItem => {
    const item: ExportedItem = { name, kind: EXPORT_KINDS[kind] ?? "tag" };
    if (kind === 0) {
      const type = funcTypes[index];
      item.signature = type === undefined ? undefined : types[type];
    }
    return item;
  });
  return { imports, otherImports, exports };
}

const sameSignature = (a: FunctionSignature, b: FunctionSignature): boolean =>
  a.params.join() === b.params.join() && a.results.join() === b.results.join();

const show = (s: FunctionSignature): string => `(${s.params.join(", ")}) -> (${s.results.join(", ")})`;

/** What admission would refuse in a policy module; empty when it is acceptable. */
export function checkPolicyModule(bytes: Uint8Array): string[] {
  const problems: string[] = [];
  const shape = inspectModule(bytes);
  for (const imp of shape.imports) {
    const where = `import ${imp.module}.${imp.name}`;
    const table =
      imp.module === KERNEL_MODULE ? KERNEL_FUNCTIONS : imp.module === HOST_MODULE ? HOST_FUNCTIONS : null;
    if (!table) {
      problems.push(`${where}: only ${KERNEL_MODULE} and ${HOST_MODULE} may be imported`);
      continue;
    }
    const forbidden = imp.module === KERNEL_MODULE ? FORBIDDEN_KERNEL_FUNCTIONS[imp.name] : undefined;
    const expected = table[imp.name];
    if (forbidden) problems.push(`${where}: ${forbidden}`);
    else if (!expected) problems.push(`${where}: not a known function`);
    else if (!sameSignature(imp, expected)) {
      problems.push(`${where}: signature ${show(imp)}, expected ${show(expected)}`);
    }
  }
  for (const other of shape.otherImports) problems.push(`import ${other}: only functions may be imported`);
  const policyExports = POLICY_EXPORTS as Record<string, { required: boolean }>;
  for (const [name, { required }] of Object.entries(policyExports)) {
    const item = shape.exports.find((e) => e.name === name);
    if (!item) {
      if (required) problems.push(`export ${name}: missing`);
      continue;
    }
    if (item.kind !== "function" || !item.signature) problems.push(`export ${name}: not a function`);
    else if (!sameSignature(item.signature, { params: [], results: ["i32"] })) {
      problems.push(`export ${name}: signature ${show(item.signature)}, expected () -> (i32)`);
    }
  }
  return problems;
}
