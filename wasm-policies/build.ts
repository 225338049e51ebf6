/**
 * Builds the built-in policies (catalog.ts) and the test fixtures to wasm-policies/dist/.
 *
 *   bun run wasm-policies/build.ts                 build everything
 *   bun run wasm-policies/build.ts --if-stale      only what is older than its sources (pre-scripts)
 *   bun run wasm-policies/build.ts roundrobin p2c  only these
 *
 * Compiler options live in asconfig.json. Every module is checked against the policy ABI after
 * compiling (src/policy/wasm/admission.ts), so a policy admission would refuse fails here, with the reason.
 */
import { spawn } from "node:child_process";
import { mkdir, readdir, rename, stat, unlink, writeFile } from "node:fs/promises";
import { cpus } from "node:os";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { BUILTIN_POLICIES, POLICY_FIXTURES } from "./catalog.ts";
import { AdmissionError, admitPolicyModule } from "../src/policy/wasm/admission.ts";

/** The repository root: asc resolves every path from here. */
export const ROOT = fileURLToPath(new URL("..", import.meta.url));
const HERE = "wasm-policies";

export interface Target {
  name: string;
  /** Entry file, relative to the repository root. */
  entry: string;
  /** Output .wasm, relative to the repository root. */
  out: string;
  /** Files and folders the module depends on, relative to the repository root. */
  sources: string[];
}

/** Shared inputs of every module: the SDK, the compiler settings, the build itself, the PDK. */
const SHARED_SOURCES = [
  `${HERE}/sdk`,
  `${HERE}/asconfig.json`,
  `${HERE}/build.ts`,
  "src/policy/wasm",
  "src/policy/abi.ts",
  "node_modules/@extism/as-pdk/lib",
  "node_modules/assemblyscript/package.json",
];

export function targets(): Target[] {
  const policies = BUILTIN_POLICIES.map((p) => ({
    name: p.name,
    entry: `${HERE}/policies/${p.name}/index.ts`,
    out: p.file,
    sources: [`${HERE}/policies/${p.name}`, ...SHARED_SOURCES],
  }));
  const fixtures = POLICY_FIXTURES.map((f) => ({
    name: `fixtures/${f.name}`,
    entry: `${HERE}/fixtures/${f.name}/index.ts`,
    out: f.file,
    sources: [`${HERE}/fixtures/${f.name}`, ...SHARED_SOURCES],
  }));
  return [...policies, ...fixtures];
}

/** Newest modification time under `path` (a file or a folder, recursively); 0 when missing. */
async function newestMtime(path: string): Promise<number> {
  const info = await stat(path).catch(() => null);
  if (!info) return 0;
  if (!info.isDirectory()) return info.mtimeMs;
  let newest = info.mtimeMs; // a deleted file shows as a newer folder
  for (const name of await readdir(path)) newest = Math.max(newest, await newestMtime(join(path, name)));
  return newest;
}

/** Whether `target`'s .wasm is missing or older than any of its sources. */
export async function isStale(target: Target): Promise<boolean> {
  const out = await stat(join(ROOT, target.out)).catch(() => null);
  if (!out) return true;
  for (const source of target.sources) {
    if ((await newestMtime(join(ROOT, source))) > out.mtimeMs) return true;
  }
  return false;
}

export class BuildError extends Error {
  override readonly name = "BuildError";
}

/** Compiles one target and writes its .wasm atomically; throws BuildError with the compiler's output. */
export async function compile(target: Target): Promise<{ bytes: number; ms: number }> {
  const started = performance.now();
  const { default: asc } = await import("assemblyscript/asc");
  let binary: Uint8Array | null = null;
  let diagnostics = "";
  const decoder = new TextDecoder();
  const sink = {
    write(chunk: Uint8Array | string) {
      diagnostics += typeof chunk === "string" ? chunk : decoder.decode(chunk);
    },
  };
  const result = await asc.main(
    [
      target.entry,
      "--outFile",
      target.out,
      "--config",
      `${HERE}/asconfig.json`,
      "--baseDir",
      ROOT,
      "--noColors",
    ],
    {
      stdout: sink,
      stderr: sink,
      writeFile(name: string, contents: Uint8Array | string) {
        if (name === target.out && typeof contents !== "string") binary = contents;
      },
    },
  );
  const output = binary as Uint8Array | null;
  if (result.error || !output) {
    throw new BuildError(`${target.name}: ${(diagnostics || String(result.error ?? "no output")).trim()}`);
  }
  try {
    admitPolicyModule(output);
  } catch (err) {
    if (err instanceof AdmissionError) throw new BuildError(`${target.name}: admission would refuse it: ${err.message}`);
    throw err;
  }
  const file = join(ROOT, target.out);
  await mkdir(dirname(file), { recursive: true });
  // Written aside then renamed, so a test or host reading the file never sees half of it.
  const temp = `${file}.${process.pid}.tmp`;
  await writeFile(temp, output);
  await rename(temp, file).catch(async (err) => {
    await unlink(temp).catch(() => {});
    throw err;
  });
  return { bytes: output.byteLength, ms: performance.now() - started };
}

export interface BuildOptions {
  /** Skip targets whose .wasm is newer than all their sources. */
  ifStale?: boolean;
  /** Only these target names (default: all). */
  only?: string[];
  /** One line per target. */
  log?: (line: string) => void;
}

export interface BuildReport {
  built: string[];
  fresh: string[];
  failed: { name: string; message: string }[];
  ms: number;
}

/** Builds the targets, in parallel subprocesses when there are several to build. */
export async function buildPolicies(options: BuildOptions = {}): Promise<BuildReport> {
  const started = performance.now();
  const log = options.log ?? (() => {});
  let list = targets();
  if (options.only?.length) {
    const unknown = options.only.filter((n) => !list.some((t) => t.name === n));
    if (unknown.length > 0) throw new BuildError(`unknown policy: ${unknown.join(", ")}`);
    list = list.filter((t) => options.only?.includes(t.name));
  }
  const report: BuildReport = { built: [], fresh: [], failed: [], ms: 0 };
  const todo: Target[] = [];
  for (const t of list) {
    if (options.ifStale && !(await isStale(t))) {
      report.fresh.push(t.name);
      log(`fresh  ${t.name.padEnd(24)} ${t.out}`);
    } else todo.push(t);
  }
  // Subprocesses run this file with the current runtime, which must then be Bun (it runs .ts).
  const isBun = typeof process.versions.bun === "string";
  const workers = isBun ? Math.min(todo.length, Math.max(1, cpus().length)) : 1;
  if (workers <= 1) {
    for (const t of todo) await buildOne(t, report, log);
  } else {
    // The compiler is single-threaded JavaScript: one subprocess per core, each taking a share.
    const shares: Target[][] = Array.from({ length: workers }, () => []);
    for (const [i, t] of todo.entries()) shares[i % workers]?.push(t);
    await Promise.all(shares.map((share) => buildInSubprocess(share, report, log)));
  }
  report.ms = performance.now() - started;
  return report;
}

async function buildOne(t: Target, report: BuildReport, log: (line: string) => void): Promise<void> {
  try {
    const { bytes, ms } = await compile(t);
    report.built.push(t.name);
    log(
      `built  ${t.name.padEnd(24)} ${t.out} (${(bytes / 1024).toFixed(1)} KiB, ${(ms / 1000).toFixed(2)} s)`,
    );
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    report.failed.push({ name: t.name, message });
    log(`FAILED ${t.name}\n${message}`);
  }
}

/** Runs this script with `--child` on a share of the targets; its lines are passed through. */
async function buildInSubprocess(share: Target[], report: BuildReport, log: (line: string) => void) {
  const args = [fileURLToPath(import.meta.url), "--child", ...share.map((t) => t.name)];
  const child = spawn(process.execPath, args, { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  let err = "";
  child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
    out += chunk;
  });
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
    err += chunk;
  });
  const code = await new Promise<number | null>((resolve) => {
    child.on("error", () => resolve(null));
    child.on("close", (c) => resolve(c));
  });
  // The child prints its lines, then a JSON report as its last line.
  const lines = out.trimEnd().split("\n");
  let childReport: BuildReport | null = null;
  try {
    childReport = JSON.parse(lines.at(-1) ?? "") as BuildReport;
  } catch {
    childReport = null;
  }
  if (!childReport) {
    const message = `build process exited with ${code}: ${`${err}\n${out}`.trim()}`;
    for (const t of share) report.failed.push({ name: t.name, message });
    log(`FAILED ${share.map((t) => t.name).join(", ")}: ${message}`);
    return;
  }
  for (const line of lines.slice(0, -1)) log(line);
  report.built.push(...childReport.built);
  report.failed.push(...childReport.failed);
}

async function main(argv: string[]): Promise<number> {
  const child = argv.includes("--child");
  const names = argv.filter((a) => !a.startsWith("--"));
  if (child) {
    const report: BuildReport = { built: [], fresh: [], failed: [], ms: 0 };
    const lines: string[] = [];
    for (const t of targets().filter((t) => names.includes(t.name)))
      await buildOne(t, report, (l) => lines.push(l));
    // Awaited, so the parent always gets the whole report before this process ends.
    const text = `${[...lines, JSON.stringify(report)].join("\n")}\n`;
    await new Promise<void>((resolve) => process.stdout.write(text, () => resolve()));
    return 0;
  }
  const report = await buildPolicies({
    ifStale: argv.includes("--if-stale"),
    only: names,
    log: (line) => console.log(line),
  });
  const summary = `${report.built.length} built, ${report.fresh.length} up to date, ${report.failed.length} failed`;
  console.log(
    `wasm-policies: ${summary} in ${(report.ms / 1000).toFixed(1)} s (${relative(process.cwd(), join(ROOT, HERE, "dist")) || "."})`,
  );
  return report.failed.length > 0 ? 1 : 0;
}

if (import.meta.main) {
  // exitCode rather than exit(): exit() may cut off output still queued for a pipe.
  try {
    process.exitCode = await main(process.argv.slice(2));
  } catch (err) {
    console.error(err instanceof Error ? err.message : err);
    process.exitCode = 1;
  }
}
