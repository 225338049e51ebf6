/**
 * Admission of a policy module at upload: the engine must accept it, its exports and imports must
 * match the policy ABI (abi.ts), its memory must fit the cap, and every instruction must be one the
 * sandbox can instrument. The admitted module is returned rewritten (instrument.ts) with fuel
 * metering, the capped memory and the trap-reason global the host reads.
 */
import {
  FORBIDDEN_KERNEL_FUNCTIONS,
  type FunctionSignature,
  HOST_FUNCTIONS,
  HOST_MODULE,
  KERNEL_FUNCTIONS,
  KERNEL_MODULE,
  POLICY_EXPORTS,
  SANDBOX_DEFAULTS,
  SANDBOX_EXPORTS,
  SANDBOX_MODULE,
  WASM_PAGE_BYTES,
} from "../abi.ts";
import { AdmissionError, refuse } from "./errors.ts";
import { importKey, instrument } from "./instrument.ts";
import {
  decodeCode,
  EXTERNAL_KIND,
  type FuncType,
  formatType,
  functionType,
  KIND_NAMES,
  type ModuleInfo,
  parseModule,
  VALUE_TYPE_NAMES,
} from "./module.ts";

export { AdmissionError, type AdmissionErrorCode } from "./errors.ts";

export interface SandboxLimits {
  /** Fuel units per exported call: one per function entry and loop iteration. */
  fuel: number;
  /** Cap of the linear memory, in bytes (rounded down to whole 64 KiB pages). */
  memoryBytes: number;
}

export interface AdmittedModule {
  /** Function export names of the original module. */
  exports: string[];
  /** Function imports of the original module (before the sandbox renames `alloc`). */
  imports: { module: string; name: string }[];
  /** Limits of the linear memory after capping; both 0 when the module defines no memory. */
  memory: { initialPages: number; maxPages: number };
  /** The rewritten module the runtime instantiates. */
  instrumented: Uint8Array<ArrayBuffer>;
}

const WASI_MODULES = new Set(["wasi_snapshot_preview1", "wasi_unstable", "wasi"]);
const POLICY_EXPORT_TYPE: FuncType = { params: [], results: [0x7f] };
const MAX_FUEL = 2 ** 31 - 1; // the fuel counter is an i32 global
const MAX_MEMORY_BYTES = 2 ** 32; // a 32-bit memory has at most 65536 pages

const resolveLimits = (limits: Partial<SandboxLimits>): SandboxLimits => {
  const fuel = limits.fuel ?? SANDBOX_DEFAULTS.fuel;
  const memoryBytes = limits.memoryBytes ?? SANDBOX_DEFAULTS.memoryBytes;
  if (!Number.isInteger(fuel) || fuel < 1 || fuel > MAX_FUEL) {
    throw new RangeError(`sandbox fuel must be an integer from 1 to ${MAX_FUEL}, got ${fuel}`);
  }
  if (!Number.isInteger(memoryBytes) || memoryBytes < 0 || memoryBytes > MAX_MEMORY_BYTES) {
    throw new RangeError(
      `sandbox memoryBytes must be an integer from 0 to ${MAX_MEMORY_BYTES}, got ${memoryBytes}`,
    );
  }
  return { fuel, memoryBytes };
};

const formatBytes = (bytes: number): string =>
  bytes >= 2 ** 20 ? `${+(bytes / 2 ** 20).toFixed(2)} MiB` : `${+(bytes / 1024).toFixed(2)} KiB`;

const quoted = (module: string, field: string) => `"${module}"."${field}"`;

const sameSignature = (type: FuncType, signature: FunctionSignature): boolean =>
  type.params.length === signature.params.length &&
  type.results.length === signature.results.length &&
  type.params.every((t, i) => VALUE_TYPE_NAMES[t] === signature.params[i]) &&
  type.results.every((t, i) => VALUE_TYPE_NAMES[t] === signature.results[i]);

const compile = (bytes: Uint8Array): void => {
  try {
    new WebAssembly.Module(bytes as Uint8Array<ArrayBuffer>);
  } catch (err) {
    refuse("invalid_module", `not a valid WebAssembly module: ${err instanceof Error ? err.message : err}`);
  }
  const header = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];
  if (bytes.length < 8 || header.some((b, i) => bytes[i] !== b)) {
    refuse("invalid_module", "not a WebAssembly 1.0 module: the header must be \\0asm version 1");
  }
};

const checkExports = (info: ModuleInfo): void => {
  for (const reserved of Object.values(SANDBOX_EXPORTS)) {
    if (info.exports.some((e) => e.name === reserved)) {
      refuse("bad_export", `export "${reserved}" is reserved for the sandbox; rename it`, {
        export: reserved,
      });
    }
  }
  for (const [exportName, { required }] of Object.entries(POLICY_EXPORTS)) {
    const entry = info.exports.find((e) => e.name === exportName);
    if (!entry) {
      if (required)
        refuse("missing_export", `policy does not export "${exportName}"`, { export: exportName });
      continue;
    }
    const expected = formatType(POLICY_EXPORT_TYPE);
    if (entry.kind !== EXTERNAL_KIND.function) {
      refuse(
        "bad_export",
        `export "${exportName}" must be a function of type ${expected}, but it is a ${KIND_NAMES[entry.kind] ?? "non-function"}`,
        { export: exportName },
      );
    }
    const type = functionType(info, entry.index);
    if (!type || formatType(type) !== expected) {
      refuse(
        "bad_export",
        `export "${exportName}" must have type ${expected}, but it has type ${type ? formatType(type) : "unknown"}`,
        { export: exportName, expected, actual: type && formatType(type) },
      );
    }
  }
};

const allowedImports = (): string =>
  `allowed: ${KERNEL_MODULE} ${Object.keys(KERNEL_FUNCTIONS).join(", ")}; ` +
  `${HOST_MODULE} ${Object.keys(HOST_FUNCTIONS).join(", ")}`;

const checkImports = (info: ModuleInfo): void => {
  for (const entry of info.imports) {
    const { module, name } = entry;
    const what = quoted(module, name);
    const details = { module, name };
    if (WASI_MODULES.has(module) || module.startsWith("wasi:")) {
      refuse("wasi_import", `policy imports ${what}: WASI is not available to policies`, details);
    }
    if (entry.kind !== EXTERNAL_KIND.function) {
      const kind = KIND_NAMES[entry.kind] ?? "non-function";
      refuse(
        "forbidden_import",
        `policy imports a ${kind} (${what}): policies may import only functions and define their own memory, tables and globals`,
        { ...details, kind },
      );
    }
    if (module === KERNEL_MODULE && name in FORBIDDEN_KERNEL_FUNCTIONS) {
      refuse("forbidden_import", `policy imports ${what}: ${FORBIDDEN_KERNEL_FUNCTIONS[name]}`, details);
    }
    const table =
      module === KERNEL_MODULE ? KERNEL_FUNCTIONS : module === HOST_MODULE ? HOST_FUNCTIONS : undefined;
    const signature = table && Object.hasOwn(table, name) ? table[name] : undefined;
    if (!signature) {
      refuse(
        "unknown_import",
        `import ${what} is not a kernel or aios host function (${allowedImports()})`,
        details,
      );
      return;
    }
    const type = info.types[entry.typeIndex];
    if (!type || !sameSignature(type, signature)) {
      const expected = formatType(signature);
      const actual = type ? formatType(type) : "unknown";
      refuse("bad_import_signature", `import ${what} has type ${actual}, but its type is ${expected}`, {
        ...details,
        expected,
        actual,
      });
    }
  }
};

const capMemory = (info: ModuleInfo, memoryBytes: number): AdmittedModule["memory"] | undefined => {
  const memory = info.memories[0];
  if (!memory) return undefined;
  const cap = Math.floor(memoryBytes / WASM_PAGE_BYTES);
  if (memory.initial > cap) {
    refuse(
      "memory_exceeded",
      `initial memory of ${memory.initial} pages exceeds the cap of ${cap} pages (${formatBytes(cap * WASM_PAGE_BYTES)})`,
      { initialPages: memory.initial, capPages: cap },
    );
  }
  return { initialPages: memory.initial, maxPages: Math.min(memory.max ?? cap, cap) };
};

/** Checks a policy module against the ABI and returns it instrumented for the sandbox. */
export function admitPolicyModule(bytes: Uint8Array, limits: Partial<SandboxLimits> = {}): AdmittedModule {
  const { fuel, memoryBytes } = resolveLimits(limits);
  compile(bytes);
  const info = parseModule(bytes);
  checkExports(info);
  checkImports(info);
  const memory = capMemory(info, memoryBytes);
  decodeCode(info);

  const instrumented = instrument(info, {
    fuel,
    memory,
    renames: new Map([[importKey(KERNEL_MODULE, "alloc"), SANDBOX_MODULE]]),
  });
  try {
    new WebAssembly.Module(instrumented);
  } catch (err) {
    // The input was valid, so this is a bug of the instrumentation, not of the policy.
    throw new Error(
      `policy instrumentation produced an invalid module: ${err instanceof Error ? err.message : err}`,
    );
  }
  return {
    exports: info.exports.filter((e) => e.kind === EXTERNAL_KIND.function).map((e) => e.name),
    imports: info.imports.map(({ module, name }) => ({ module, name })),
    memory: memory ?? { initialPages: 0, maxPages: 0 },
    instrumented,
  };
}

export const isAdmissionError = (err: unknown): err is AdmissionError => err instanceof AdmissionError;
