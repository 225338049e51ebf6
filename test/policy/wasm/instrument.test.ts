import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import fc from "fast-check";
import { SANDBOX_DEFAULTS, TRAP_REASON } from "../../../src/policy/abi.ts";

// The property test compiles and runs dozens of random programs: seconds on a loaded 2-core machine.
setDefaultTimeout(60_000);

import { admitPolicyModule, type SandboxLimits } from "../../../src/policy/wasm/admission.ts";
import { parseModule } from "../../../src/policy/wasm/module.ts";
import { compileWat } from "../../support/wat.ts";

const fixture = (name: string) => Bun.file(new URL(`../fixtures/${name}`, import.meta.url)).text();

interface Sandboxed {
  aios_fuel: WebAssembly.Global;
  aios_trap: WebAssembly.Global;
  memory: WebAssembly.Memory;
  [name: string]: unknown;
}

const call = (exports: Sandboxed, name: string, ...args: number[]): number =>
  (exports[name] as (...a: number[]) => number)(...args);

const instantiate = async (bytes: Uint8Array<ArrayBuffer>, imports: WebAssembly.Imports = {}) =>
  (await WebAssembly.instantiate(bytes, imports)).instance.exports as unknown as Sandboxed;

const admitWat = async (wat: string, limits: Partial<SandboxLimits> = {}) =>
  admitPolicyModule(await compileWat(wat), limits);

const sandboxed = async (wat: string, limits: Partial<SandboxLimits> = {}) =>
  instantiate((await admitWat(wat, limits)).instrumented);

/** Kernel stand-ins over a JS array: enough for policies that read input and set output. */
const stubKernel = (input: Uint8Array) => {
  const memory: number[] = [];
  let output: Uint8Array | undefined;
  const env = {
    input_length: () => BigInt(input.length),
    input_load_u8: (at: bigint) => input[Number(at)] ?? 0,
    store_u8: (at: bigint, value: number) => {
      memory[Number(at)] = value;
    },
    output_set: (at: bigint, length: bigint) => {
      output = Uint8Array.from(memory.slice(Number(at), Number(at + length)));
    },
  };
  const alloc = (n: bigint) => {
    const at = memory.length + 1;
    memory.length = at + Number(n);
    return BigInt(at);
  };
  return { imports: { "extism:host/env": env, "aios:sandbox": { alloc } }, output: () => output };
};

describe("the instrumented echo policy", () => {
  test("runs with plain WebAssembly and JS imports, echoes its input and spends the expected fuel", async () => {
    const admitted = admitPolicyModule(await compileWat(await fixture("echo.wat")), { fuel: 1000 });
    const input = new TextEncoder().encode('{"hello":"policy"}');
    const kernel = stubKernel(input);
    const policy = await instantiate(admitted.instrumented, kernel.imports);
    expect(policy.aios_fuel.value).toBe(1000);
    expect(policy.aios_trap.value).toBe(TRAP_REASON.none);

    expect(call(policy, "eval")).toBe(0);
    expect(kernel.output()).toEqual(input);
    // One function entry, then the copy loop's head once per byte and once more to leave.
    expect(policy.aios_fuel.value).toBe(1000 - (1 + input.length + 1));
    expect(policy.aios_trap.value).toBe(TRAP_REASON.none);
  });

  test("the fuel budget defaults to SANDBOX_DEFAULTS.fuel", async () => {
    const policy = await instantiate(
      admitPolicyModule(await compileWat(await fixture("echo.wat"))).instrumented,
      stubKernel(new Uint8Array()).imports,
    );
    expect(policy.aios_fuel.value).toBe(SANDBOX_DEFAULTS.fuel);
  });
});

describe("fuel", () => {
  const looping = `(module
    (func (export "eval") (result i32) (loop $forever (br $forever)) (i32.const 0))
    (func $count (export "count") (param $n i32) (result i32)
      (if (result i32) (i32.eqz (local.get $n))
        (then (i32.const 0))
        (else (i32.add (i32.const 1) (call $count (i32.sub (local.get $n) (i32.const 1)))))))
    (func (export "spin") (param $n i32) (result i32) (local $i i32)
      (loop $l (br_if $l (i32.lt_u (local.tee $i (i32.add (local.get $i) (i32.const 1))) (local.get $n))))
      (local.get $i)))`;

  test("an endless loop traps once the fuel is spent, with trap reason 1", async () => {
    const policy = await sandboxed(looping, { fuel: 5000 });
    expect(() => call(policy, "eval")).toThrow(WebAssembly.RuntimeError);
    expect(policy.aios_trap.value).toBe(TRAP_REASON.fuel);
    expect(policy.aios_fuel.value).toBe(0);
  });

  test("recursion spends one unit per call", async () => {
    const policy = await sandboxed(looping, { fuel: 100 });
    expect(call(policy, "count", 10)).toBe(10);
    expect(policy.aios_fuel.value).toBe(100 - 11);
  });

  test("a loop spends one unit per iteration, plus one for the function entry", async () => {
    const policy = await sandboxed(looping, { fuel: 100 });
    expect(call(policy, "spin", 25)).toBe(25);
    expect(policy.aios_fuel.value).toBe(100 - 26);
  });

  test("a budget of exactly what a call needs suffices; one less traps", async () => {
    const exact = await sandboxed(looping, { fuel: 26 });
    expect(call(exact, "spin", 25)).toBe(25);
    expect(exact.aios_fuel.value).toBe(0);
    expect(exact.aios_trap.value).toBe(TRAP_REASON.none);

    const short = await sandboxed(looping, { fuel: 25 });
    expect(() => call(short, "spin", 25)).toThrow(WebAssembly.RuntimeError);
    expect(short.aios_trap.value).toBe(TRAP_REASON.fuel);
  });

  test("the host refills the budget by setting aios_fuel", async () => {
    const policy = await sandboxed(looping, { fuel: 30 });
    expect(call(policy, "spin", 20)).toBe(20);
    expect(() => call(policy, "spin", 20)).toThrow(WebAssembly.RuntimeError);
    policy.aios_fuel.value = 30;
    policy.aios_trap.value = TRAP_REASON.none;
    expect(call(policy, "spin", 20)).toBe(20);
  });
});

describe("memory", () => {
  const growing = (limits: string) => `(module
    (memory (export "memory") ${limits})
    (func (export "eval") (result i32) (i32.const 0))
    (func (export "grow") (param i32) (result i32) (memory.grow (local.get 0)))
    (func (export "grow_forever") (result i32)
      (loop $more (br_if $more (i32.ne (memory.grow (i32.const 1)) (i32.const -1))))
      (i32.const 0)))`;

  test("a grow within the cap returns the old size; growing past it traps with reason 2", async () => {
    const policy = await sandboxed(growing("1"), { memoryBytes: 4 * 65536 });
    expect(call(policy, "grow", 1)).toBe(1);
    expect(call(policy, "grow", 0)).toBe(2);
    expect(policy.aios_trap.value).toBe(TRAP_REASON.none);
    expect(() => call(policy, "grow", 3)).toThrow(WebAssembly.RuntimeError);
    expect(policy.aios_trap.value).toBe(TRAP_REASON.memory);
    expect(policy.memory.buffer.byteLength).toBe(2 * 65536);
  });

  test("a grow loop stops at the cap with trap reason 2", async () => {
    const policy = await sandboxed(growing("1"), { memoryBytes: 8 * 65536 });
    expect(() => call(policy, "grow_forever")).toThrow(WebAssembly.RuntimeError);
    expect(policy.aios_trap.value).toBe(TRAP_REASON.memory);
    expect(policy.memory.buffer.byteLength).toBe(8 * 65536);
  });

  test("the declared maximum is lowered to the cap, kept when below it, and set when absent", async () => {
    const cap = { memoryBytes: 10 * 65536 + 1000 }; // partial pages round down
    for (const [limits, maxPages] of [
      ["1 100", 10],
      ["1 5", 5],
      ["2", 10],
    ] as const) {
      const admitted = await admitWat(growing(limits), cap);
      expect(admitted.memory).toEqual({ initialPages: Number(limits.split(" ")[0]), maxPages });
      expect(parseModule(admitted.instrumented).memories).toEqual([
        { initial: admitted.memory.initialPages, max: maxPages },
      ]);
    }
  });
});

describe("module structure", () => {
  test("every feature the sandbox accepts computes the same results as the original", async () => {
    const bytes = await compileWat(await fixture("features.wat"));
    const original = await instantiate(bytes);
    const policy = await instantiate(admitPolicyModule(bytes).instrumented);
    const cases: [string, number[]][] = [
      ["eval", []],
      ["simd", [0]],
      ["simd", [12345]],
      ["bulk", [7]],
      ["bulk", [255]],
      ["switch", [0]],
      ["switch", [1]],
      ["switch", [2]],
      ["switch", [9]],
      ["indirect", [0, 6, 7]],
      ["indirect", [1, 6, 7]],
      ["indirect", [2, 6, 7]],
      ["multi", [10, 3]],
      ["tail", [100]],
      ["misc", [-129]],
      ["misc", [300]],
      ["grow", [1]],
      ["pages", []],
    ];
    // Traps count as outcomes too: the second `bulk` uses dropped data in both.
    const outcome = (exports: Sandboxed, name: string, args: number[]) => {
      try {
        return call(exports, name, ...args);
      } catch (err) {
        return `trap: ${(err as Error).message}`;
      }
    };
    for (const [name, args] of cases) {
      expect([name, args, outcome(policy, name, args)]).toEqual([name, args, outcome(original, name, args)]);
    }
    expect(outcome(policy, "bulk", [1])).toStartWith("trap: ");
    expect(call(policy, "eval")).toBe(42);
    expect(() => call(policy, "indirect", 5, 1, 1)).toThrow(WebAssembly.RuntimeError);
    expect(policy.aios_trap.value).toBe(TRAP_REASON.none);
  });

  test("tail calls spend fuel per callee entry", async () => {
    const policy = await instantiate(
      admitPolicyModule(await compileWat(await fixture("features.wat")), { fuel: 1000 }).instrumented,
    );
    expect(call(policy, "tail", 10)).toBe(55);
    expect(policy.aios_fuel.value).toBe(1000 - (1 + 11));
  });

  test("no existing index shifts: the sandbox globals and the checked grow come last", async () => {
    const bytes = await compileWat(await fixture("features.wat"));
    const before = parseModule(bytes);
    const after = parseModule(admitPolicyModule(bytes).instrumented);
    expect(after.globals).toBe(before.globals + 2);
    expect(after.functions.slice(0, before.functions.length)).toEqual(before.functions);
    expect(after.functions).toHaveLength(before.functions.length + 1);
    expect(after.types.slice(0, before.types.length)).toEqual(before.types);
    expect(after.exports.slice(0, before.exports.length)).toEqual(before.exports);
    expect(after.exports.slice(before.exports.length)).toEqual([
      { name: "aios_fuel", kind: 3, index: before.globals },
      { name: "aios_trap", kind: 3, index: before.globals + 1 },
    ]);
  });

  test("the grow type is reused when the module has (i32) -> (i32), appended otherwise", async () => {
    const withType = await compileWat(
      `(module (memory 1) (func (export "eval") (result i32) (drop (memory.grow (i32.const 0))) (i32.const 0))
        (func (param i32) (result i32) (local.get 0)))`,
    );
    const withoutType = await compileWat(
      `(module (memory 1) (func (export "eval") (result i32) (memory.grow (i32.const 0))))`,
    );
    expect(parseModule(admitPolicyModule(withType).instrumented).types).toHaveLength(
      parseModule(withType).types.length,
    );
    expect(parseModule(admitPolicyModule(withoutType).instrumented).types).toHaveLength(
      parseModule(withoutType).types.length + 1,
    );
    const noGrow = await compileWat(`(module (memory 1) (func (export "eval") (result i32) (i32.const 0)))`);
    expect(parseModule(admitPolicyModule(noGrow).instrumented).functions).toHaveLength(1);
  });

  test("custom sections, the name section among them, survive byte for byte", async () => {
    const bytes = await compileWat(await fixture("features.wat"));
    const names = (b: Uint8Array<ArrayBuffer>) =>
      WebAssembly.Module.customSections(new WebAssembly.Module(b), "name").map((s) => new Uint8Array(s));
    const original = names(bytes);
    expect(original).toHaveLength(1);
    expect(names(admitPolicyModule(bytes).instrumented)).toEqual(original);
  });

  test("an object file (padded LEB128 indices, linking sections) is instrumented too", async () => {
    const source = await fixture("roundrobin-lb.wat");
    const relocatable = await compileWat(source, undefined, { relocatable: true });
    const plain = await compileWat(source);
    expect(relocatable.length).toBeGreaterThan(plain.length);
    const input = new TextEncoder().encode('{"input_data":{"instances":["x","y"]}}');
    const outputs: string[] = [];
    for (const bytes of [plain, relocatable]) {
      const kernel = stubKernel(input);
      const policy = await instantiate(admitPolicyModule(bytes).instrumented, {
        ...kernel.imports,
        "extism:host/env": { ...kernel.imports["extism:host/env"], error_set: () => {} },
      });
      for (let i = 0; i < 3; i++) {
        expect(call(policy, "eval")).toBe(0);
        outputs.push(new TextDecoder().decode(kernel.output()));
      }
    }
    expect(outputs).toEqual(
      [...Array(2)].flatMap(() => ["x", "y", "x"].map((id) => `{"instance_id":"${id}"}`)),
    );
  });

  test("admission is deterministic", async () => {
    const bytes = await compileWat(await fixture("features.wat"));
    expect(admitPolicyModule(bytes).instrumented).toEqual(admitPolicyModule(bytes).instrumented);
  });
});

/** Random programs of nested counted loops, calls and grows, with the fuel they must spend. */
type Stmt = { inc: number } | { call: 0 | 1 } | { grow: true } | { loop: number; body: Stmt[] };

const stmtArb = (depth: number): fc.Arbitrary<Stmt> => {
  const leaves = [
    fc.record({ inc: fc.integer({ min: 1, max: 9 }) }),
    fc.record({ call: fc.constantFrom(0 as const, 1 as const) }),
    fc.constant({ grow: true as const }),
  ];
  if (depth === 0) return fc.oneof(...leaves);
  return fc.oneof(
    ...leaves,
    fc.record({ loop: fc.integer({ min: 0, max: 4 }), body: fc.array(stmtArb(depth - 1), { maxLength: 3 }) }),
  );
};

/** h0 adds 1 (one entry); h1 calls h0 twice from a loop (entry + 3 loop heads + 2 calls). */
const HELPERS = [
  { fuel: 1, acc: 1 },
  { fuel: 1 + 3 + 2, acc: 2 },
];

const cost = (stmts: Stmt[]): { fuel: number; acc: number } =>
  stmts.reduce(
    (sum, s) => {
      if ("inc" in s) return { fuel: sum.fuel, acc: sum.acc + s.inc };
      if ("call" in s) {
        const helper = HELPERS[s.call]!;
        return { fuel: sum.fuel + helper.fuel, acc: sum.acc + helper.acc };
      }
      if ("grow" in s) return { fuel: sum.fuel, acc: sum.acc + 1 }; // memory.grow 0 = 1 page; not metered
      const body = cost(s.body);
      return { fuel: sum.fuel + s.loop + 1 + s.loop * body.fuel, acc: sum.acc + s.loop * body.acc };
    },
    { fuel: 0, acc: 0 },
  );

const emit = (stmts: Stmt[], depth = 0): string =>
  stmts
    .map((s) => {
      const add = (value: string) => `(global.set $acc (i32.add (global.get $acc) ${value}))`;
      if ("inc" in s) return add(`(i32.const ${s.inc})`);
      if ("call" in s) return `(call $h${s.call})`;
      if ("grow" in s) return add("(memory.grow (i32.const 0))");
      const i = `$i${depth}`;
      return `(local.set ${i} (i32.const 0))
        (block $b${depth} (loop $l${depth}
          (br_if $b${depth} (i32.ge_u (local.get ${i}) (i32.const ${s.loop})))
          ${emit(s.body, depth + 1)}
          (local.set ${i} (i32.add (local.get ${i}) (i32.const 1)))
          (br $l${depth})))`;
    })
    .join("\n");

const program = (stmts: Stmt[]) => `(module
  (memory 1)
  (global $acc (mut i32) (i32.const 0))
  (func $h0 (global.set $acc (i32.add (global.get $acc) (i32.const 1))))
  (func $h1 (local $i i32)
    (block $b (loop $l (br_if $b (i32.ge_u (local.get $i) (i32.const 2))) (call $h0)
      (local.set $i (i32.add (local.get $i) (i32.const 1))) (br $l))))
  (func (export "eval") (result i32) (local $i0 i32) (local $i1 i32) (local $i2 i32)
    ${emit(stmts)}
    (global.get $acc)))`;

describe("property: instrumented programs", () => {
  test("compute what the original does, spend exactly the predicted fuel, and admit deterministically", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(stmtArb(2), { maxLength: 4 }), async (stmts) => {
        const expected = cost(stmts);
        const fuel = 1 + expected.fuel; // eval's own entry
        const bytes = await compileWat(program(stmts));
        expect(call(await instantiate(bytes), "eval")).toBe(expected.acc);

        const exact = admitPolicyModule(bytes, { fuel });
        expect(admitPolicyModule(bytes, { fuel }).instrumented).toEqual(exact.instrumented);
        const policy = await instantiate(exact.instrumented);
        expect(call(policy, "eval")).toBe(expected.acc);
        expect(policy.aios_fuel.value).toBe(0);

        if (fuel > 1) {
          const short = await instantiate(admitPolicyModule(bytes, { fuel: fuel - 1 }).instrumented);
          expect(() => call(short, "eval")).toThrow(WebAssembly.RuntimeError);
          expect(short.aios_trap.value).toBe(TRAP_REASON.fuel);
        }
      }),
      { numRuns: 60 },
    );
  });
});

describe("portability", () => {
  test("Deno admits a module to the same bytes as Bun (web-standard APIs only)", async () => {
    const bytes = await compileWat(await fixture("features.wat"));
    const deno = fileURLToPath(new URL("../../../node_modules/.bin/deno", import.meta.url));
    const admission = new URL("../../../src/policy/wasm/admission.ts", import.meta.url).href;
    const script = `import { admitPolicyModule } from ${JSON.stringify(admission)};
      const bytes = new Uint8Array(await new Response(Deno.stdin.readable).arrayBuffer());
      const { instrumented } = admitPolicyModule(bytes, { fuel: 1234 });
      await Deno.stdout.write(instrumented);`;
    const run = spawnSync(deno, ["eval", "--ext=ts", "--no-config", script], {
      input: bytes,
      timeout: 60_000,
    });
    expect([run.status, run.stderr.toString()]).toEqual([0, expect.not.stringContaining("error")]);
    expect(new Uint8Array(run.stdout)).toEqual(admitPolicyModule(bytes, { fuel: 1234 }).instrumented);
  });
});
