/**
 * The built modules as admission sees them: imports only from the Extism kernel (never its HTTP
 * functions) and the aios host module, `eval` (and `init`/`management` when present) of type
 * `() -> i32`; the catalog and the build agree; aborts reach the host without an `env.abort` import.
 */
import { beforeAll, describe, expect, test } from "bun:test";
import { readFile, stat, utimes } from "node:fs/promises";
import { join } from "node:path";
import wabt from "wabt";
import { HOST_FUNCTIONS, KERNEL_FUNCTIONS } from "../../src/policy/abi.ts";
import { isStale, ROOT, targets } from "../../wasm-policies/build.ts";
import { BUILTIN_POLICIES, POLICY_FIXTURES } from "../../wasm-policies/catalog.ts";
import { ensureBuilt, openPolicy, PolicyCallError } from "../../wasm-policies/harness.ts";
import { checkPolicyModule, inspectModule } from "../../wasm-policies/inspect.ts";

beforeAll(() => ensureBuilt(), 180_000);

const load = async (file: string) => new Uint8Array(await readFile(join(ROOT, file)));

describe("catalog", () => {
  test("names, URIs and files are unique and well formed", () => {
    const names = BUILTIN_POLICIES.map((p) => p.name);
    const uris = BUILTIN_POLICIES.map((p) => p.uri);
    expect(new Set(names).size).toBe(names.length);
    expect(new Set(uris).size).toBe(uris.length);
    for (const p of BUILTIN_POLICIES) {
      expect(p.uri).toMatch(/^policy\.[A-Za-z]+\.[a-z0-9-]+:v\d+\.\d+\.\d+$/);
      expect(p.uri).toContain(`.${p.name}:`);
      expect(p.file).toBe(`wasm-policies/dist/${p.name}.wasm`);
      expect(p.description.length).toBeGreaterThan(10);
    }
  });

  test("every kind has at least one built-in", () => {
    const kinds = new Set(BUILTIN_POLICIES.map((p) => p.kind));
    for (const kind of [
      "loadBalancer",
      "autoscaler",
      "stabilityChecker",
      "clusterAllocator",
      "resourceAllocator",
      "clusterStabilityChecker",
      "preCheck",
      "eventHandler",
      "allocatorServer",
    ]) {
      expect(kinds.has(kind as never)).toBe(true);
    }
  });

  test("the build covers exactly the catalog and the fixtures, and nothing is stale after it", async () => {
    const list = targets();
    expect(list.map((t) => t.out).sort()).toEqual(
      [...BUILTIN_POLICIES.map((p) => p.file), ...POLICY_FIXTURES.map((f) => f.file)].sort(),
    );
    for (const t of list) expect(await isStale(t)).toBe(false);
  });

  test("a source newer than its module makes it stale", async () => {
    const t = targets().find((x) => x.name === "allow-all");
    if (!t) throw new Error("allow-all is not a build target");
    const wasm = join(ROOT, t.out);
    const before = await stat(wasm);
    // Age the module instead of touching sources other engineers may be editing.
    const past = new Date(before.mtimeMs - 3_600_000);
    await utimes(wasm, past, past);
    try {
      expect(await isStale(t)).toBe(true);
    } finally {
      await utimes(wasm, before.atime, before.mtime);
    }
    expect(await isStale(t)).toBe(false);
  });
});

describe("built modules", () => {
  for (const entry of [...BUILTIN_POLICIES, ...POLICY_FIXTURES]) {
    test(`${entry.name}: imports and exports fit the ABI`, async () => {
      const bytes = await load(entry.file);
      const module = new WebAssembly.Module(bytes);
      for (const imp of WebAssembly.Module.imports(module)) {
        expect(imp.kind).toBe("function");
        expect(["extism:host/env", "extism:host/user"]).toContain(imp.module);
        expect(imp.name.startsWith("http_")).toBe(false);
        const table = imp.module === "extism:host/env" ? KERNEL_FUNCTIONS : HOST_FUNCTIONS;
        expect(Object.keys(table)).toContain(imp.name);
      }
      const shape = inspectModule(bytes);
      const evalExport = shape.exports.find((e) => e.name === "eval");
      expect(evalExport?.signature).toEqual({ params: [], results: ["i32"] });
      for (const name of ["init", "management"]) {
        const e = shape.exports.find((x) => x.name === name);
        if (e) expect(e.signature).toEqual({ params: [], results: ["i32"] });
      }
      // Signatures of imports match the ABI tables too.
      for (const imp of shape.imports) {
        const table = imp.module === "extism:host/env" ? KERNEL_FUNCTIONS : HOST_FUNCTIONS;
        expect({ params: imp.params, results: imp.results }).toEqual(table[imp.name] as never);
      }
      expect(checkPolicyModule(bytes)).toEqual([]);
    });
  }

  test("policies import only the host functions they use", async () => {
    const hostImports = async (name: string) =>
      inspectModule(await load(`wasm-policies/dist/${name}.wasm`))
        .imports.filter((i) => i.module === "extism:host/user")
        .map((i) => i.name)
        .sort();
    // Every policy reads its input and writes its output directly (one host call each).
    const direct = ["aios_input_read", "aios_output_write"];
    expect(await hostImports("roundrobin")).toEqual(direct);
    expect(await hostImports("least-outstanding")).toEqual(["aios_get_metrics", ...direct].sort());
    expect(await hostImports("failure-counter")).toEqual(
      ["aios_context_get", "aios_context_set", ...direct].sort(),
    );
    // Input and output never go through kernel blocks byte by byte.
    const kernel = inspectModule(await load("wasm-policies/dist/roundrobin.wasm"))
      .imports.filter((i) => i.module === "extism:host/env")
      .map((i) => i.name);
    expect(kernel).not.toContain("input_load_u64");
    expect(kernel).not.toContain("output_set");
  });
});

describe("checkPolicyModule refuses what admission refuses", () => {
  const wat = async (text: string) => {
    const w = await wabt();
    const m = w.parseWat("test.wat", text);
    return new Uint8Array(m.toBinary({}).buffer);
  };
  const memory = `(memory (export "memory") 1)`;

  test("AssemblyScript's default env.abort import", async () => {
    const bytes = await wat(`(module
      (import "env" "abort" (func (param i32 i32 i32 i32)))
      ${memory}
      (func (export "eval") (result i32) i32.const 0))`);
    expect(checkPolicyModule(bytes)).toEqual([
      "import env.abort: only extism:host/env and extism:host/user may be imported",
    ]);
  });

  test("network access, unknown host functions, wrong signatures", async () => {
    const bytes = await wat(`(module
      (import "extism:host/env" "http_request" (func (param i64 i64) (result i64)))
      (import "extism:host/user" "aios_launch_missiles" (func))
      (import "extism:host/env" "alloc" (func (param i32) (result i64)))
      ${memory}
      (func (export "eval") (result i64) i64.const 0))`);
    const problems = checkPolicyModule(bytes);
    expect(problems).toHaveLength(4);
    expect(problems[0]).toContain("policies have no network access");
    expect(problems[1]).toContain("aios_launch_missiles: not a known function");
    expect(problems[2]).toContain("signature (i32) -> (i64), expected (i64) -> (i64)");
    expect(problems[3]).toBe("export eval: signature () -> (i64), expected () -> (i32)");
  });

  test("a missing eval", async () => {
    expect(checkPolicyModule(await wat(`(module ${memory})`))).toEqual(["export eval: missing"]);
  });
});

describe("aborts", () => {
  test("an abort is logged with its message and traps, through the SDK's handler", async () => {
    const host = { logs: [] as { level: string; message: string }[] };
    const p = await openPolicy("json-echo", host);
    let caught: unknown = null;
    try {
      await p.call("init", "abort");
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(PolicyCallError);
    expect(host.logs).toContainEqual({
      level: "error",
      message: expect.stringContaining(
        "policy aborted: deliberate abort at wasm-policies/fixtures/json-echo/index.ts",
      ),
    });
    await p.close();
  });
});
