/**
 * The SDK's JSON values read lazily from their document (wasm-policies/sdk/json.ts): member lookups
 * on the tape, values made on first use and kept (identity), objects and arrays moved to storage when
 * listed or changed, text comparison in `equals`, typed getters and `getStringBytes` that make no
 * value. Runs a probe module (below, compiled here) and checks its answers against JavaScript's JSON.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { type CallContext, createPlugin } from "@extism/extism";
import fc from "fast-check";
import { ROOT } from "../../wasm-policies/build.ts";
import { DirectIo, PolicyCallError, PolicyHandle } from "../../wasm-policies/harness.ts";

let probe: PolicyHandle;

/**
 * The probe, in AssemblyScript (kept here, not as a file of the repository: the TypeScript checks do
 * not read AssemblyScript). `eval` takes `{"doc": any, "steps": [[op, path, arg?], ...]}`, runs each
 * step against the value at `path` (keys through `get`, indices through `at`) of the same parsed
 * `doc`, in order, and answers the list of results. Steps see each other's effects (identity, `set`),
 * as a policy's code would.
 */
const probeSource = (sdk: string) => `
import { fail, JSON, output, readInput } from "${sdk}";
import { readInputText } from "${sdk}/kernel";

function walk(root: JSON.Value, path: JSON.Value): JSON.Value {
  let v = root;
  for (let i = 0; i < path.length; i++) {
    const step = path.at(i);
    v = step.isString ? v.get(step.asString()) : v.at(step.asInt());
  }
  return v;
}

function run(op: string, v: JSON.Value, arg: JSON.Value, doc: JSON.Value, again: JSON.Value): JSON.Value {
  if (op == "value") return v;
  if (op == "kind") return JSON.num(v.kind);
  if (op == "lazy") return JSON.bool(v.isLazy());
  if (op == "length") return JSON.num(v.length);
  if (op == "has") return JSON.bool(v.has(arg.asString()));
  if (op == "get") return v.get(arg.asString());
  if (op == "getString") return JSON.str(v.getString(arg.asString(), "<default>"));
  if (op == "getNumber") return JSON.num(v.getNumber(arg.asString(), -0.5));
  if (op == "getInt") return JSON.num(v.getInt(arg.asString(), -7));
  if (op == "getBool") return JSON.str(v.getBool(arg.asString(), false) ? "true" : v.getBool(arg.asString(), true) ? "default" : "false");
  if (op == "getObject") {
    const o = v.getObject(arg.asString());
    return o == null ? JSON.str("<null>") : o;
  }
  if (op == "getArray") {
    const a = v.getArray(arg.asString());
    return a == null ? JSON.str("<null>") : JSON.num(a.length);
  }
  if (op == "getStringBytes" || op == "stringBytes") {
    const buf = new JSON.ByteBuffer();
    buf.byte(0x3c); // '<', so that an append is told apart from a fresh buffer
    const ok = op == "stringBytes" ? v.stringBytes(buf) : v.getStringBytes(arg.asString(), buf);
    return ok ? JSON.str(buf.toString()) : JSON.nul();
  }
  if (op == "asString") return JSON.str(v.asString("<default>"));
  if (op == "asNumber") return JSON.num(v.asNumber(-0.5));
  if (op == "at") return v.at(arg.asInt());
  if (op == "items") return JSON.num(v.items().length);
  if (op == "keys") return JSON.strings(v.keys());
  if (op == "keyAt") return JSON.str(v.keyAt(arg.asInt()));
  if (op == "valueAt") return v.valueAt(arg.asInt());
  if (op == "same") return JSON.bool(v === walk(doc, arg));
  if (op == "equals") return JSON.bool(v.equals(walk(doc, arg)));
  // The value at the same path of a second parse of the whole input.
  if (op == "equalsAgain") return JSON.bool(v.equals(walk(again, arg)));
  if (op == "equalsText") {
    const other = JSON.parse(arg.asString());
    return other == null ? JSON.str("<bad>") : JSON.bool(v.equals(other) && other.equals(v));
  }
  if (op == "set") {
    v.set(arg.at(0).asString(), arg.at(1));
    return JSON.nul();
  }
  if (op == "push") {
    v.push(arg);
    return JSON.nul();
  }
  if (op == "remove") return JSON.bool(v.remove(arg.asString()));
  if (op == "clone") return v.clone();
  if (op == "text") return JSON.str(v.toString());
  return JSON.str("<unknown op " + op + ">");
}

function evaluate(): i32 {
  const input = readInput();
  if (input == null) return fail(JSON.errorMessage());
  const again = JSON.parse(readInputText())!.get("doc");
  const doc = input.get("doc");
  const steps = input.get("steps");
  const results = JSON.arr();
  for (let i = 0; i < steps.length; i++) {
    const step = steps.at(i);
    results.push(run(step.at(0).asString(), walk(doc, step.at(1)), step.at(2), doc, again));
  }
  output(results);
  return 0;
}

export { evaluate as eval };
`;

/**
 * Compiles the probe with the policies' compiler options; the module's bytes. In a subprocess: the
 * compiler (binaryen above all) would leave this test process big and slow for the test files after.
 */
async function compileProbe(): Promise<Uint8Array> {
  const dir = await mkdtemp(join(tmpdir(), "json-probe-"));
  try {
    const entry = join(dir, "probe.ts");
    const out = join(dir, "probe.wasm");
    await writeFile(entry, probeSource(relative(dir, join(ROOT, "wasm-policies/sdk"))));
    const asc = join(ROOT, "node_modules/assemblyscript/bin/asc.js");
    const args = [entry, "--outFile", out, "--config", "wasm-policies/asconfig.json", "--noColors"];
    const child = Bun.spawn([process.execPath, asc, ...args], { cwd: ROOT, stdout: "pipe", stderr: "pipe" });
    const [code, stderr] = await Promise.all([child.exited, new Response(child.stderr).text()]);
    if (code !== 0) throw new Error(`compiling the probe failed: ${stderr}`);
    return new Uint8Array(await readFile(out));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

beforeAll(async () => {
  const io = new DirectIo();
  const decoder = new TextDecoder();
  const plugin = await createPlugin(
    { wasm: [{ data: await compileProbe() }] },
    {
      useWasi: false,
      runInWorker: false,
      functions: {
        "extism:host/user": {
          aios_input_read: (_cx: CallContext, dst: bigint) => {
            io.view(dst, io.input.byteLength, "aios_input_read").set(io.input);
            return BigInt(io.input.byteLength);
          },
          aios_output_write: (_cx: CallContext, src: bigint, len: bigint) => {
            io.output = decoder.decode(io.view(src, Number(len), "aios_output_write"));
          },
        },
      },
    },
  );
  const memory = (await plugin.getInstance()).exports.memory;
  io.memory = memory instanceof WebAssembly.Memory ? memory : null;
  probe = new PolicyHandle(plugin, {}, "probe.json-lazy", "fixture", io);
}, 180_000);

afterAll(() => probe?.close());

type Step = [op: string, path: (string | number)[], arg?: unknown];

/** Runs the steps against `docText` (raw JSON text, so duplicates and escapes reach the parser). */
// biome-ignore lint/suspicious/noExplicitAny: answers are JSON whose shape each test knows
const run = async (docText: string, steps: Step[]): Promise<any[]> => {
  const answer = await probe.call("eval", `{"doc": ${docText}, "steps": ${JSON.stringify(steps)}}`);
  return answer as unknown[];
};

describe("lazy JSON values", () => {
  test("members are read off the tape; the object moves to storage only when listed or changed", async () => {
    const doc = '{"a": 1, "b": "x", "c": [1, 2], "d": {"e": true}, "f": null, "g": -2.5e1}';
    const out = await run(doc, [
      ["lazy", []],
      ["get", [], "a"],
      ["getString", [], "b"],
      ["getString", [], "a"],
      ["getNumber", [], "g"],
      ["getNumber", [], "b"],
      ["getInt", [], "g"],
      ["getBool", ["d"], "e"],
      ["getBool", [], "a"],
      ["has", [], "f"],
      ["has", [], "z"],
      ["get", [], "z"],
      ["getObject", [], "d"],
      ["getObject", [], "c"],
      ["kind", ["c"]],
      ["lazy", []],
      ["length", ["c"]],
      ["lazy", ["c"]],
      // The live item list: the array moves to storage.
      ["getArray", [], "c"],
      ["lazy", ["c"]],
      ["getArray", [], "d"],
      ["length", []],
      ["lazy", []],
      ["keys", []],
      ["lazy", []],
      ["keyAt", [], 5],
      ["valueAt", [], 1],
    ]);
    expect(out).toEqual([
      true,
      1,
      "x",
      "<default>",
      -25,
      -0.5,
      -25,
      "true",
      "default",
      true,
      false,
      null,
      { e: true },
      "<null>",
      4,
      true,
      2,
      true,
      2,
      false,
      "<null>",
      6,
      true,
      ["a", "b", "c", "d", "f", "g"],
      false,
      "g",
      "x",
    ]);
  });

  test("duplicate member names: the last value wins, before and after the move to storage (property)", async () => {
    const names = ["a", "b", "ab", "ba", "k1", "k10", "é", "", "a\\u0062", 'x\\"y'];
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.tuple(fc.constantFrom(...names), fc.integer({ min: -5, max: 300 })), { maxLength: 14 }),
        async (members) => {
          const text = `{${members.map(([k, v]) => `"${k}":${v}`).join(",")}}`;
          const expected = JSON.parse(text) as Record<string, number>;
          const keys = [...new Set(names.map((n) => JSON.parse(`"${n}"`) as string)), "missing"];
          const steps: Step[] = [["length", []]];
          for (const k of keys) steps.push(["get", [], k], ["has", [], k], ["getInt", [], k]);
          steps.push(["keys", []], ["value", []]);
          const out = await run(text, steps);
          expect(out[0]).toBe(Object.keys(expected).length);
          keys.forEach((k, i) => {
            const has = Object.hasOwn(expected, k);
            expect([k, out[3 * i + 1], out[3 * i + 2], out[3 * i + 3]]).toEqual([
              k,
              has ? expected[k] : null,
              has,
              has ? expected[k] : -7,
            ]);
          });
          expect(out.at(-2)).toEqual(Object.keys(expected));
          expect(JSON.stringify(out.at(-1))).toBe(JSON.stringify(expected));
        },
      ),
      { numRuns: 300 },
    );
  });

  test("escaped and non-ASCII member names are found by their decoded text", async () => {
    // (Not String.raw: Bun's transpiler rewrites its non-ASCII characters as escapes.)
    const doc = '{"a\\u0062": 1, "\\u00e9t\\u00e9": 2, "été": 3, "x\\"y": 4, "東京": 5, "😀": 6}';
    const out = await run(doc, [
      ["get", [], "ab"],
      ["get", [], "été"],
      ["get", [], 'x"y'],
      ["get", [], "東京"],
      ["get", [], "😀"],
      ["get", [], "a\\u0062"],
      ["get", [], "ét"],
      ["get", [], "étés"],
      ["get", [], "東"],
      ["get", [], "\ud83d"],
      ["has", [], "😁"],
      ["length", []],
    ]);
    expect(out).toEqual([1, 3, 4, 5, 6, null, null, null, null, null, false, 5]);
  });

  test("a value reached twice is the same object; changes show through every path", async () => {
    const doc = '{"p": {"q": 1}, "l": [{"m": 1}, 2], "s": "text"}';
    const out = await run(doc, [
      ["same", ["p"], ["p"]],
      ["same", ["l", 0], ["l", 0]],
      ["equalsAgain", [], []],
      ["equalsAgain", ["l"], ["l"]],
      ["set", ["p"], ["z", 2]],
      ["get", ["p"], "z"],
      ["equalsAgain", ["p"], ["p"]],
      ["equalsAgain", [], []],
      ["equalsAgain", ["l"], ["l"]],
      ["set", ["l", 0], ["n", [true]]],
      ["equalsAgain", ["l"], ["l"]],
      ["push", ["l"], "end"],
      ["length", ["l"]],
      ["remove", ["p"], "q"],
      ["remove", ["p"], "q"],
      ["value", []],
    ]);
    expect(out).toEqual([
      true,
      true,
      true,
      true,
      null,
      2,
      false,
      false,
      true,
      null,
      false,
      null,
      3,
      true,
      false,
      { p: { z: 2 }, l: [{ m: 1, n: [true] }, 2, "end"], s: "text" },
    ]);
  });

  test("arrays: items read in any order without moving to storage; out of range is null", async () => {
    const doc = '{"a": [1, "x", [2, [3]], {"y": 3}, null, false]}';
    const out = await run(doc, [
      ["length", ["a"]],
      ["at", ["a"], 3],
      ["at", ["a"], 1],
      ["at", ["a"], 2],
      ["at", ["a"], 5],
      ["at", ["a"], 6],
      ["at", ["a"], -1],
      ["value", ["a", 2, 1, 0]],
      ["lazy", ["a"]],
      ["same", ["a", 3], ["a", 3]],
      ["items", ["a"]],
      ["lazy", ["a"]],
      ["same", ["a", 3], ["a", 3]],
      ["at", ["a"], 0],
      ["length", ["x"]],
      ["at", ["x"], 0],
    ]);
    expect(out).toEqual([
      6,
      { y: 3 },
      "x",
      [2, [3]],
      false,
      null,
      null,
      3,
      true,
      true,
      6,
      false,
      true,
      1,
      0,
      null,
    ]);
  });

  test("strings as UTF-8 bytes without making a string", async () => {
    const doc =
      '{"ascii": "session-42", "esc": "\\u00e9\\n\\"\\ud83d\\ude00", "utf8": "東京😀", "n": 5, "e": ""}';
    const out = await run(doc, [
      ["getStringBytes", [], "ascii"],
      ["getStringBytes", [], "esc"],
      ["getStringBytes", [], "utf8"],
      ["getStringBytes", [], "n"],
      ["getStringBytes", [], "missing"],
      ["getStringBytes", [], "e"],
      ["stringBytes", ["utf8"]],
      ["asString", ["esc"]],
      ["stringBytes", ["esc"]],
      ["stringBytes", ["n"]],
    ]);
    expect(out).toEqual([
      "<session-42",
      '<é\n"😀',
      "<東京😀",
      null,
      null,
      "<",
      "<東京😀",
      'é\n"😀',
      '<é\n"😀',
      null,
    ]);
  });

  test("equals: same text is equal at once; other text compares as values", async () => {
    const doc = String.raw`{"a": [1, "x", {"k": 1, "j": [true]}], "s": "\u0041", "n": 1.0}`;
    const out = await run(doc, [
      ["equalsText", ["a"], '[1,"x",{"k":1,"j":[true]}]'],
      ["equalsText", ["a"], '[1, "x", {"j": [true], "k": 1}]'],
      ["equalsText", ["a"], '[1,"x",{"k":1,"j":[false]}]'],
      ["equalsText", ["a"], '[1,"x"]'],
      ["equalsText", ["s"], '"A"'],
      ["equalsText", ["s"], String.raw`"\u0041"`],
      ["equalsText", ["s"], '"B"'],
      ["equalsText", ["n"], "1"],
      ["equalsText", [], `{"n": 1, "s": "A", "a": [1, "x", {"k": 1, "j": [true]}]}`],
      ["equalsAgain", ["a", 2], ["a", 2]],
      ["equals", ["a", 2], ["a"]],
    ]);
    expect(out).toEqual([true, true, false, false, true, true, false, true, true, true, false]);
  });

  test("numbers read by the typed getters match JavaScript's", async () => {
    const texts = [
      "0",
      "-0",
      "7",
      "-12",
      "1700000000123",
      "999999999999999",
      "9007199254740993",
      "0.1",
      "-2.5",
      "1e3",
      "1E-3",
      "123456789012345678901234567890",
      "1.7976931348623157e308",
      "5e-324",
    ];
    const doc = `{${texts.map((t, i) => `"n${i}": ${t}`).join(", ")}}`;
    const out = await run(
      doc,
      texts.map((_, i): Step => ["getNumber", [], `n${i}`]),
    );
    texts.forEach((t, i) => {
      expect([t, out[i]]).toEqual([t, Number(t) + 0]);
    });
    const ints = await run('{"big": 3e10, "neg": -3e10, "frac": -2.9, "inf": 1e400}', [
      ["getInt", [], "big"],
      ["getInt", [], "neg"],
      ["getInt", [], "frac"],
      ["getInt", [], "inf"],
    ]);
    expect(ints).toEqual([2147483647, -2147483648, -2, -7]);
  });

  test("a document that is not an object answers get() with null and has no members", async () => {
    const out = await run('[{"a": 1}, "s", 3]', [
      ["get", [], "a"],
      ["has", [], "a"],
      ["getString", [], "a"],
      ["get", [0], "a"],
      ["length", [1]],
      ["getStringBytes", [1], "a"],
    ]);
    expect(out).toEqual([null, false, "<default>", 1, 0, null]);
  });

  test("malformed documents are still refused with the byte", async () => {
    await expect(probe.call("eval", '{"doc": [1, 2,], "steps": []}')).rejects.toThrow(
      new PolicyCallError("invalid JSON at byte 14: unexpected ']', expected a JSON value"),
    );
  });
});
