/**
 * Built-in policies (wasm-policies/catalog.ts) compiled straight from wasm-policies/dist, admitted and
 * instrumented as the store would, for tests that need a real policy without a registry.
 */
import { existsSync, readFileSync } from "node:fs";
import { type CompiledPolicy, compilePolicy } from "../../src/policy/runtime.ts";
import { admitPolicyModule } from "../../src/policy/wasm/admission.ts";
import { BUILTIN_POLICIES } from "../../wasm-policies/catalog.ts";

const ROOT = new URL("../../", import.meta.url);

export const compiledBuiltin = async (uri: string): Promise<CompiledPolicy> => {
  const entry = BUILTIN_POLICIES.find((p) => p.uri === uri);
  if (!entry) throw new Error(`no built-in policy ${uri}`);
  const file = new URL(entry.file, ROOT);
  if (!existsSync(file)) {
    Bun.spawnSync(["bun", "run", "wasm-policies/build.ts", "--if-stale"], { cwd: ROOT.pathname });
  }
  const bytes = new Uint8Array(readFileSync(file));
  return compilePolicy(admitPolicyModule(bytes).instrumented, { uri, kind: entry.kind });
};
