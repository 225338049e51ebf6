/**
 * Seeding the policy store with the built-in policies (wasm-policies/catalog.ts), built first when a
 * source is newer than its .wasm. Idempotent: a policy already stored with the same bytes is left as
 * is; one stored with other bytes (an older build under the same version) is kept and reported.
 */
import { readFile } from "node:fs/promises";
import { buildPolicies } from "../../wasm-policies/build.ts";
import { BUILTIN_POLICIES } from "../../wasm-policies/catalog.ts";
import { ApiError } from "../http/errors.ts";
import type { PolicyStore } from "./store.ts";

const ROOT = new URL("../../", import.meta.url);

export interface BuiltinInstallReport {
  installed: string[];
  unchanged: string[];
  kept: { uri: string; reason: string }[];
}

export const installBuiltinPolicies = async (policies: PolicyStore): Promise<BuiltinInstallReport> => {
  const build = await buildPolicies({ ifStale: true });
  if (build.failed.length > 0) {
    throw new Error(
      `building the built-in policies failed: ${build.failed.map((f) => `${f.name}: ${f.message}`).join("; ")}`,
    );
  }
  const report: BuiltinInstallReport = { installed: [], unchanged: [], kept: [] };
  for (const entry of BUILTIN_POLICIES) {
    const bytes = new Uint8Array(await readFile(new URL(entry.file, ROOT)));
    try {
      const { created } = await policies.upload(entry.uri, bytes, {
        kind: entry.kind,
        description: entry.description,
      });
      (created ? report.installed : report.unchanged).push(entry.uri);
    } catch (err) {
      if (err instanceof ApiError && err.status === 409)
        report.kept.push({ uri: entry.uri, reason: err.message });
      else throw err;
    }
  }
  return report;
};
