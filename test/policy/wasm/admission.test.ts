import { describe, expect, test } from "bun:test";
import { KERNEL_FUNCTIONS, SANDBOX_DEFAULTS, SANDBOX_MODULE } from "../../../src/policy/abi.ts";
import { AdmissionError, admitPolicyModule, type SandboxLimits } from "../../../src/policy/wasm/admission.ts";
import { compileWat, type WatFeatures } from "../../support/wat.ts";

const fixture = (name: string) => Bun.file(new URL(`../fixtures/${name}`, import.meta.url)).text();

/** A policy whose only content is `body` plus an `eval` returning 0 (unless the body has one). */
const policy = (body: string, withEval = true) =>
  `(module ${body} ${withEval ? '(func (export "eval") (result i32) (i32.const 0))' : ""})`;

const refusal = async (
  wat: string,
  limits: Partial<SandboxLimits> = {},
  features?: WatFeatures,
): Promise<AdmissionError> => {
  const bytes = await compileWat(wat, features);
  try {
    admitPolicyModule(bytes, limits);
  } catch (err) {
    if (err instanceof AdmissionError) return err;
    throw err;
  }
  throw new Error("the module was admitted");
};

describe("admission of a valid policy", () => {
  test("the echo policy is admitted with its exports, imports and capped memory", async () => {
    const admitted = admitPolicyModule(await compileWat(await fixture("echo.wat")));
    expect(admitted.exports).toEqual(["eval"]);
    expect(admitted.imports).toEqual([
      { module: "extism:host/env", name: "input_length" },
      { module: "extism:host/env", name: "input_load_u8" },
      { module: "extism:host/env", name: "alloc" },
      { module: "extism:host/env", name: "store_u8" },
      { module: "extism:host/env", name: "output_set" },
    ]);
    expect(admitted.memory).toEqual({ initialPages: 1, maxPages: SANDBOX_DEFAULTS.memoryBytes / 65536 });

    const module = new WebAssembly.Module(admitted.instrumented);
    const imports = WebAssembly.Module.imports(module).map((i) => `${i.module}.${i.name}`);
    expect(imports).toContain(`${SANDBOX_MODULE}.alloc`);
    expect(imports).not.toContain("extism:host/env.alloc");
    const exports = WebAssembly.Module.exports(module);
    expect(exports).toContainEqual({ name: "aios_fuel", kind: "global" });
    expect(exports).toContainEqual({ name: "aios_trap", kind: "global" });
  });

  test("init and management of type () -> (i32) and every kernel and host import are accepted", async () => {
    const kernel = Object.entries(KERNEL_FUNCTIONS)
      .map(([name, sig]) => {
        const params = sig.params.length ? `(param ${sig.params.join(" ")})` : "";
        const results = sig.results.length ? `(result ${sig.results.join(" ")})` : "";
        return `(import "extism:host/env" "${name}" (func ${params} ${results}))`;
      })
      .join("\n");
    const admitted = admitPolicyModule(
      await compileWat(
        policy(`${kernel}
          (import "extism:host/user" "aios_get_metrics" (func (result i64)))
          (import "extism:host/user" "aios_context_set" (func (param i64 i64)))
          (func (export "init") (result i32) (i32.const 0))
          (func (export "management") (result i32) (i32.const 0))`),
      ),
    );
    expect(admitted.exports).toEqual(["init", "management", "eval"]);
    expect(admitted.imports).toHaveLength(Object.keys(KERNEL_FUNCTIONS).length + 2);
    expect(admitted.memory).toEqual({ initialPages: 0, maxPages: 0 });
  });

  test("limits out of range are a programming error, not a refusal", async () => {
    const bytes = await compileWat(policy(""));
    expect(() => admitPolicyModule(bytes, { fuel: 0 })).toThrow(RangeError);
    expect(() => admitPolicyModule(bytes, { fuel: 2 ** 31 })).toThrow(RangeError);
    expect(() => admitPolicyModule(bytes, { memoryBytes: -1 })).toThrow(RangeError);
  });
});

describe("rejections", () => {
  test("bytes that are not a module: invalid_module with the engine's message", () => {
    for (const bytes of [new Uint8Array([1, 2, 3]), new Uint8Array([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0, 1])]) {
      let error: unknown;
      try {
        admitPolicyModule(bytes);
      } catch (err) {
        error = err;
      }
      expect(error).toBeInstanceOf(AdmissionError);
      expect((error as AdmissionError).code).toBe("invalid_module");
      expect((error as AdmissionError).message).toStartWith("not a valid WebAssembly module: ");
    }
  });

  test("no eval: missing_export", async () => {
    const err = await refusal(policy('(func (export "init") (result i32) (i32.const 0))', false));
    expect(err.code).toBe("missing_export");
    expect(err.message).toBe('policy does not export "eval"');
  });

  test("eval, init or management of the wrong type or kind: bad_export", async () => {
    const wrongType = await refusal(
      policy('(func (export "eval") (param i32) (result i32) (local.get 0))', false),
    );
    expect(wrongType.code).toBe("bad_export");
    expect(wrongType.message).toBe(
      'export "eval" must have type () -> (i32), but it has type (i32) -> (i32)',
    );

    const wrongResult = await refusal(policy('(func (export "management") (result i64) (i64.const 0))'));
    expect(wrongResult.code).toBe("bad_export");
    expect(wrongResult.message).toContain('"management"');

    const notAFunction = await refusal(policy('(global (export "init") i32 (i32.const 0))'));
    expect(notAFunction.code).toBe("bad_export");
    expect(notAFunction.message).toBe(
      'export "init" must be a function of type () -> (i32), but it is a global',
    );
  });

  test("a module exporting the sandbox's names: bad_export", async () => {
    const err = await refusal(policy('(global (export "aios_fuel") (mut i32) (i32.const 0))'));
    expect(err.code).toBe("bad_export");
    expect(err.message).toBe('export "aios_fuel" is reserved for the sandbox; rename it');
  });

  test("an instrumented module cannot be admitted again", async () => {
    const admitted = admitPolicyModule(await compileWat(policy("")));
    expect(() => admitPolicyModule(admitted.instrumented)).toThrow('export "aios_fuel" is reserved');
  });

  test("WASI imports: wasi_import", async () => {
    const err = await refusal(
      policy('(import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32)))'),
    );
    expect(err.code).toBe("wasi_import");
    expect(err.message).toBe(
      'policy imports "wasi_snapshot_preview1"."fd_write": WASI is not available to policies',
    );
    expect((await refusal(policy('(import "wasi_unstable" "proc_exit" (func (param i32)))'))).code).toBe(
      "wasi_import",
    );
  });

  test("imports from elsewhere, or unknown names: unknown_import listing what is allowed", async () => {
    const abort = await refusal(policy('(import "env" "abort" (func (param i32 i32 i32 i32)))'));
    expect(abort.code).toBe("unknown_import");
    expect(abort.message).toStartWith(
      'import "env"."abort" is not a kernel or aios host function (allowed: extism:host/env alloc, free,',
    );
    expect(abort.message).toContain("extism:host/user aios_get_metrics");
    expect(abort.details).toEqual({ module: "env", name: "abort" });

    const kernel = await refusal(policy('(import "extism:host/env" "exit" (func))'));
    expect(kernel.code).toBe("unknown_import");
    const host = await refusal(policy('(import "extism:host/user" "aios_delete_everything" (func))'));
    expect(host.code).toBe("unknown_import");
  });

  test("network functions: forbidden_import with the reason", async () => {
    const err = await refusal(
      policy('(import "extism:host/env" "http_request" (func (param i64 i64) (result i64)))'),
    );
    expect(err.code).toBe("forbidden_import");
    expect(err.message).toBe(
      'policy imports "extism:host/env"."http_request": policies have no network access; the host passes them the data they need',
    );
  });

  test("imported memory, table or global: forbidden_import", async () => {
    for (const [wat, kind] of [
      ['(import "env" "memory" (memory 1))', "memory"],
      ['(import "env" "table" (table 1 funcref))', "table"],
      ['(import "env" "g" (global i32))', "global"],
    ] as const) {
      const err = await refusal(policy(wat));
      expect(err.code).toBe("forbidden_import");
      expect(err.message).toStartWith(`policy imports a ${kind} ("env".`);
      expect(err.message).toContain("policies may import only functions");
    }
  });

  test("a kernel or host function with another signature: bad_import_signature", async () => {
    const alloc = await refusal(policy('(import "extism:host/env" "alloc" (func (param i32) (result i32)))'));
    expect(alloc.code).toBe("bad_import_signature");
    expect(alloc.message).toBe(
      'import "extism:host/env"."alloc" has type (i32) -> (i32), but its type is (i64) -> (i64)',
    );
    const host = await refusal(policy('(import "extism:host/user" "aios_cluster_read" (func (param i64)))'));
    expect(host.code).toBe("bad_import_signature");
  });

  test("initial memory over the cap: memory_exceeded", async () => {
    const err = await refusal(policy("(memory 300)"), { memoryBytes: 16 * 1024 * 1024 });
    expect(err.code).toBe("memory_exceeded");
    expect(err.message).toBe("initial memory of 300 pages exceeds the cap of 256 pages (16 MiB)");
    expect(err.details).toEqual({ initialPages: 300, capPages: 256 });
  });

  test("threads: atomics and shared memory are unsupported_feature", async () => {
    const threads: WatFeatures = { threads: true };
    const atomic = await refusal(
      `(module (memory 1)
        (func (export "eval") (result i32) (call $load))
        (func $load (result i32) (i32.atomic.load (i32.const 0))))`,
      {},
      threads,
    );
    expect(atomic.code).toBe("unsupported_feature");
    expect(atomic.message).toBe("instruction 0xfe (threads) in function 1 is not supported");

    const shared = await refusal(policy("(memory 1 2 shared)"), {}, threads);
    expect(shared.code).toBe("unsupported_feature");
    expect(shared.message).toContain("shared");
  });

  test("the function index in messages counts imports first", async () => {
    const err = await refusal(
      `(module (import "extism:host/env" "input_length" (func (result i64))) (memory 1)
        (func (export "eval") (result i32) (i32.atomic.load (i32.const 0))))`,
      {},
      { threads: true },
    );
    expect(err.message).toBe("instruction 0xfe (threads) in function 1 is not supported");
  });

  test("exception handling: unsupported_feature", async () => {
    const eh: WatFeatures = { exceptions: true };
    const tryCatch = await refusal(
      policy('(func (export "eval") (result i32) (try (do nop) (catch_all nop)) (i32.const 0))', false),
      {},
      eh,
    );
    expect(tryCatch.code).toBe("unsupported_feature");
    expect(tryCatch.message).toBe("instruction 0x06 (exception handling) in function 0 is not supported");

    const tag = await refusal(policy("(tag $oops (param i32))"), {}, eh);
    expect(tag.code).toBe("unsupported_feature");
    expect(tag.message).toContain("exception");
  });

  test("GC types and multiple memories: unsupported_feature", async () => {
    const gc = await refusal(policy("(type $point (struct (field i32) (field i32)))"), {}, { gc: true });
    expect(gc.code).toBe("unsupported_feature");
    expect(gc.message).toContain("garbage collection");

    const memories = await refusal(policy("(memory 1) (memory 1)"), {}, { multi_memory: true });
    expect(memories.code).toBe("unsupported_feature");
    expect(memories.message).toBe("the module defines 2 memories (multiple memories are not supported)");
  });
});
