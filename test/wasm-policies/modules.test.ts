/**
 * The built modules as admission sees them: imports only from the Extism kernel (never its HTTP
 * functions) and the aios host module, `eval` (and `init`/`management` when present) of type
 * `() -> i32`; the catalog and the build agree; aborts reach the host without an `env.abort` import.
 */
import { beforeAll, describe, expect, test } from "bun:test";
import { readFile, stat, utimes } from "node:fs/promises";
import { join } from "node:path";
import { HOST_FUNCTIONS, KERNEL_FUNCTIONS } from "../../src/policy/abi.ts";
import { admitPolicyModule } from "../../src/policy/wasm/admission.ts";
import { EXTERNAL_KIND, functionType, parseModule } from "../../src/policy/wasm/module.ts";
import { isStale, ROOT, targets } from "../../wasm-policies/build.ts";
import { BUILTIN_POLICIES, POLICY_FIXTURES } from "../../wasm-policies/catalog.ts";
import { ensureBuilt, openPolicy, PolicyCallError } from "../../wasm-policies/harness.ts";

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
      // Admission checks every import's and export's signature against the ABI tables.
      expect(admitPolicyModule(bytes).exports).toContain("eval");
      const info = parseModule(bytes);
      const evalExport = info.exports.find((e) => e.name === "eval" && e.kind === EXTERNAL_KIND.function);
      expect(evalExport && functionType(info, evalExport.index)).toEqual({ params: [], results: [0x7f] });
    });
  }

  test("policies import only the host functions they use", async () => {
    const hostImports = async (name: string) =>
      parseModule(await load(`wasm-policies/dist/${name}.wasm`))
        .imports.filter((i) => i.module === "extism:host/user")
        .map((i) => i.name)
        .sort();
    // Every policy reads its input and writes its output directly (one host call each).
    const direct = ["aios_input_read", "aios_output_write"];
    expect(await hostImports("roundrobin")).toEqual(direct);
    // Host answers come back through aios_block_read, in one call as well.
    expect(await hostImports("least-outstanding")).toEqual(
      ["aios_block_read", "aios_get_metrics", ...direct].sort(),
    );
    expect(await hostImports("failure-counter")).toEqual(
      ["aios_block_read", "aios_context_get", "aios_context_set", ...direct].sort(),
    );
    // Input and output never go through kernel blocks byte by byte.
    const kernel = parseModule(await load("wasm-policies/dist/roundrobin.wasm"))
      .imports.filter((i) => i.module === "extism:host/env")
      .map((i) => i.name);
    expect(kernel).not.toContain("input_load_u64");
    expect(kernel).not.toContain("output_set");
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
