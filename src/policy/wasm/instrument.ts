/**
 * The rewrite of an admitted module: fuel checks at function entries and loop heads, `memory.grow`
 * routed through a checked grow that records why it traps, the memory cap, the two sandbox globals
 * and the kernel `alloc` import renamed to the sandbox's. Everything is appended at the end of its
 * index space, so no existing index shifts; untouched sections are copied byte for byte.
 */
import { SANDBOX_EXPORTS, TRAP_REASON } from "../abi.ts";
import { type CodeBody, EXTERNAL_KIND, type ModuleInfo, SECTION, type SectionSpan } from "./module.ts";
import { concat, name, s32, section, u32, vec } from "./writer.ts";

export interface InstrumentPlan {
  fuel: number;
  /** The capped memory limits, when the module defines a memory. */
  memory: { initialPages: number; maxPages: number } | undefined;
  /** Imports whose module name changes, as `module\0name` -> new module. */
  renames: ReadonlyMap<string, string>;
}

const I32 = 0x7f;
const GLOBAL_GET = 0x23;
const GLOBAL_SET = 0x24;
const LOCAL_GET = 0x20;
const LOCAL_TEE = 0x22;
const I32_CONST = 0x41;
const I32_EQZ = 0x45;
const I32_EQ = 0x46;
const I32_SUB = 0x6b;
const IF = 0x04;
const EMPTY = 0x40;
const UNREACHABLE = 0x00;
const END = 0x0b;
const CALL = 0x10;
const MEMORY_GROW = 0x40;

/** Where each known section may appear (the tag section sits between memory and global). */
const SECTION_ORDER: readonly number[] = [
  SECTION.type,
  SECTION.import,
  SECTION.function,
  SECTION.table,
  SECTION.memory,
  SECTION.tag,
  SECTION.global,
  SECTION.export,
  SECTION.start,
  SECTION.element,
  SECTION.dataCount,
  SECTION.code,
  SECTION.data,
];

export const importKey = (module: string, field: string) => `${module}\0${field}`;

/** `if fuel == 0 { trap = fuel reason; unreachable } fuel -= 1` */
const fuelCheck = (fuel: number[], trap: number[]): number[] => [
  ...[GLOBAL_GET, ...fuel, I32_EQZ, IF, EMPTY],
  ...[I32_CONST, ...s32(TRAP_REASON.fuel), GLOBAL_SET, ...trap, UNREACHABLE, END],
  ...[GLOBAL_GET, ...fuel, I32_CONST, 1, I32_SUB, GLOBAL_SET, ...fuel],
];

/** `(func (param i32) (result i32) (local i32)`: grow, and on failure record the memory reason and trap. */
const growBody = (trap: number[]): Uint8Array => {
  const body = [
    ...[1, 1, I32], // one local group: 1 x i32
    ...[LOCAL_GET, 0, MEMORY_GROW, 0, LOCAL_TEE, 1, I32_CONST, ...s32(-1), I32_EQ, IF, EMPTY],
    ...[I32_CONST, ...s32(TRAP_REASON.memory), GLOBAL_SET, ...trap, UNREACHABLE, END],
    ...[LOCAL_GET, 1, END],
  ];
  return concat([u32(body.length), body]);
};

const rewriteBody = (bytes: Uint8Array, body: CodeBody, check: number[], growCall: number[]): Uint8Array => {
  const parts: (Uint8Array | number[])[] = [bytes.subarray(body.start, body.localsEnd), check];
  let at = body.localsEnd;
  let l = 0;
  let g = 0;
  // Loops and grows are each in order; merge them so the copy runs front to back once.
  while (l < body.loops.length || g < body.grows.length) {
    const loop = body.loops[l];
    const grow = body.grows[g];
    if (loop !== undefined && (grow === undefined || loop < grow[0])) {
      parts.push(bytes.subarray(at, loop), check);
      at = loop;
      l++;
    } else if (grow !== undefined) {
      parts.push(bytes.subarray(at, grow[0]), growCall);
      at = grow[1];
      g++;
    }
  }
  parts.push(bytes.subarray(at, body.end));
  const code = concat(parts);
  return concat([u32(code.length), code]);
};

/** A vector section's payload with `extra` items appended (the count re-encoded). */
const appendToVector = (
  bytes: Uint8Array,
  span: SectionSpan | undefined,
  extra: readonly (Uint8Array | number[])[],
): Uint8Array => {
  if (!span) return vec(extra.length, extra);
  let pos = span.payloadStart;
  let count = 0;
  let scale = 1;
  for (;;) {
    const byte = bytes[pos++]!;
    count += (byte & 0x7f) * scale;
    scale *= 128;
    if ((byte & 0x80) === 0) break;
  }
  return vec(count + extra.length, [bytes.subarray(pos, span.end), ...extra]);
};

export const instrument = (info: ModuleInfo, plan: InstrumentPlan): Uint8Array<ArrayBuffer> => {
  const { bytes } = info;
  const spans = new Map<number, SectionSpan>();
  for (const span of info.sections) if (span.id !== SECTION.custom) spans.set(span.id, span);

  const importedGlobals = info.imports.filter((i) => i.kind === EXTERNAL_KIND.global).length;
  const fuelIndex = importedGlobals + info.globals;
  const trapIndex = fuelIndex + 1;
  const check = fuelCheck(u32(fuelIndex), u32(trapIndex));
  const payloads = new Map<number, Uint8Array>();

  const needsGrow = info.bodies.some((b) => b.grows.length > 0);
  const growIndex = info.importedFunctions + info.functions.length;
  if (needsGrow) {
    let growType = info.types.findIndex(
      (t) => t.params.length === 1 && t.params[0] === I32 && t.results.length === 1 && t.results[0] === I32,
    );
    if (growType < 0) {
      growType = info.types.length;
      payloads.set(SECTION.type, appendToVector(bytes, spans.get(SECTION.type), [[0x60, 1, I32, 1, I32]]));
    }
    payloads.set(SECTION.function, appendToVector(bytes, spans.get(SECTION.function), [u32(growType)]));
  }

  if (plan.renames.size > 0 && info.imports.some((i) => plan.renames.has(importKey(i.module, i.name)))) {
    const entries = info.imports.map((entry) => {
      const renamed = plan.renames.get(importKey(entry.module, entry.name));
      if (renamed === undefined) return bytes.subarray(entry.start, entry.end);
      return concat([name(renamed), bytes.subarray(entry.moduleEnd, entry.end)]);
    });
    payloads.set(SECTION.import, vec(entries.length, entries));
  }

  if (plan.memory) {
    const { initialPages, maxPages } = plan.memory;
    payloads.set(SECTION.memory, vec(1, [[0x01, ...u32(initialPages), ...u32(maxPages)]]));
  }

  const mutableI32 = (value: number) => [I32, 0x01, I32_CONST, ...s32(value), END];
  payloads.set(
    SECTION.global,
    appendToVector(bytes, spans.get(SECTION.global), [mutableI32(plan.fuel), mutableI32(TRAP_REASON.none)]),
  );
  payloads.set(
    SECTION.export,
    appendToVector(bytes, spans.get(SECTION.export), [
      [...name(SANDBOX_EXPORTS.fuel), EXTERNAL_KIND.global, ...u32(fuelIndex)],
      [...name(SANDBOX_EXPORTS.trap), EXTERNAL_KIND.global, ...u32(trapIndex)],
    ]),
  );

  if (info.bodies.length > 0 || needsGrow) {
    const growCall = [CALL, ...u32(growIndex)];
    const bodies = info.bodies.map((body) => rewriteBody(bytes, body, check, growCall));
    if (needsGrow) bodies.push(growBody(u32(trapIndex)));
    payloads.set(SECTION.code, vec(bodies.length, bodies));
  }

  return assemble(info, payloads);
};

/** Lays out the sections in their original order, new ones at the first place the order allows. */
const assemble = (info: ModuleInfo, payloads: Map<number, Uint8Array>): Uint8Array<ArrayBuffer> => {
  const out: { id: number; bytes: Uint8Array }[] = info.sections.map((span) => {
    const payload = span.id === SECTION.custom ? undefined : payloads.get(span.id);
    return {
      id: span.id,
      bytes: payload ? section(span.id, payload) : info.bytes.subarray(span.start, span.end),
    };
  });
  const present = new Set(info.sections.map((s) => s.id));
  for (const [id, payload] of payloads) {
    if (present.has(id)) continue;
    const rank = SECTION_ORDER.indexOf(id);
    let at = 0;
    out.forEach((entry, i) => {
      if (entry.id !== SECTION.custom && SECTION_ORDER.indexOf(entry.id) < rank) at = i + 1;
    });
    out.splice(at, 0, { id, bytes: section(id, payload) });
  }
  return concat([info.bytes.subarray(0, 8), ...out.map((entry) => entry.bytes)]);
};
