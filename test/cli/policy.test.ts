/**
 * `aios policy`: build an AssemblyScript policy with the SDK, upload it to a running registry, list
 * it and test it by URI and by file, through `main` as the command line runs it.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, spyOn, test } from "bun:test";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { main } from "../../src/cli/main.ts";
import { type RunningServers, startRegistry } from "../../src/cli/serve.ts";

setDefaultTimeout(120_000);

const ROOT = join(import.meta.dir, "../..");

/** Runs `aios ...args`; returns the exit status and what went to stdout and stderr. */
const aios = async (...args: string[]) => {
  const out: string[] = [];
  const err: string[] = [];
  const log = spyOn(console, "log").mockImplementation((...a: unknown[]) => void out.push(a.join(" ")));
  const error = spyOn(console, "error").mockImplementation((...a: unknown[]) => void err.push(a.join(" ")));
  try {
    const status = await main(args);
    return { status, stdout: out.join("\n"), stderr: err.join("\n") };
  } finally {
    log.mockRestore();
    error.mockRestore();
  }
};

describe("aios policy", () => {
  let registry: RunningServers;
  let url = "";
  let dir = "";
  beforeAll(async () => {
    registry = await startRegistry({ host: "127.0.0.1", port: 0, metricsPort: 0 });
    url = registry.listeners[0]?.url ?? "";
    // On a shared Postgres (DATABASE_URL) other suites' policies may be there.
    await registry.store.collection("policies").clear();
    dir = await mkdtemp(join(tmpdir(), "aios-policy-"));
    const sdk = relative(dir, join(ROOT, "wasm-policies/sdk"));
    // The first instance of the list, always: the smallest useful load balancer.
    await writeFile(
      join(dir, "first.ts"),
      `import { EvalCall, JSON, reject, serveEval } from "${sdk}";
function decide(call: EvalCall): JSON.Value | null {
  const instances = call.inputData.get("instances");
  if (!instances.isArray || instances.length == 0) return reject("no instances");
  return JSON.obj().set("instance_id", instances.at(0));
}
function evaluate(): i32 { return serveEval(decide); }
export { evaluate as eval };
`,
    );
    await writeFile(
      join(dir, "input.json"),
      JSON.stringify({ packet: { session_id: "s", seq_no: 1, data: "{}", ts: 1 }, instances: ["a", "b"] }),
    );
  });
  afterAll(async () => {
    await registry?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test("build compiles with the SDK and checks admission", async () => {
    const res = await aios("policy", "build", join(dir, "first.ts"));
    expect(res.stderr).toBe("");
    expect(res.status).toBe(0);
    expect(res.stdout).toContain("exports eval");
  });

  test("test runs a .wasm file and prints the output and the call time", async () => {
    const res = await aios(
      "policy",
      "test",
      join(dir, "first.wasm"),
      "--kind",
      "loadBalancer",
      "--input",
      join(dir, "input.json"),
      "--repeat",
      "20",
    );
    expect(res.status).toBe(0);
    expect(JSON.parse(res.stdout)).toEqual({ instance_id: "a" });
    expect(res.stderr).toMatch(/median of 20 calls [\d.]+ µs/);
  });

  test("upload, list, then test by URI against the registry", async () => {
    const up = await aios(
      "policy",
      "upload",
      join(dir, "first.wasm"),
      "--uri",
      "policy.loadBalancer.first:v1",
      "--kind",
      "loadBalancer",
      "--description",
      "always the first",
      "--registry",
      url,
    );
    expect(up.status).toBe(0);
    expect(up.stdout).toContain("uploaded policy.loadBalancer.first:v1");
    const again = await aios(
      "policy",
      "upload",
      join(dir, "first.wasm"),
      "--uri",
      "policy.loadBalancer.first:v1",
      "--kind",
      "loadBalancer",
      "--registry",
      url,
    );
    expect(again.stdout).toContain("unchanged");
    const list = await aios("policy", "list", "--registry", url);
    expect(list.stdout).toMatch(/^URI\s+KIND/);
    expect(list.stdout).toMatch(
      /policy\.loadBalancer\.first:v1\s+loadBalancer\s+\d+\s+eval\s+always the first/,
    );
    const asJson = await aios("policy", "list", "--json", "--kind", "loadBalancer", "--registry", url);
    expect((JSON.parse(asJson.stdout) as { uri: string }[]).map((p) => p.uri)).toEqual([
      "policy.loadBalancer.first:v1",
    ]);
    const run = await aios(
      "policy",
      "test",
      "policy.loadBalancer.first:v1",
      "--input",
      join(dir, "input.json"),
      "--registry",
      url,
    );
    expect(run.status).toBe(0);
    expect(JSON.parse(run.stdout)).toEqual({ instance_id: "a" });
  });

  test("mistakes say what to do", async () => {
    expect(
      (await aios("policy", "upload", join(dir, "first.wasm"), "--kind", "loadBalancer")).stderr,
    ).toContain("--uri is required");
    expect(
      (await aios("policy", "upload", join(dir, "first.wasm"), "--uri", "p:v1", "--kind", "balancer")).stderr,
    ).toContain("--kind must be one of");
    const wrongKind = await aios(
      "policy",
      "test",
      join(dir, "first.wasm"),
      "--kind",
      "preCheck",
      "--input",
      join(dir, "input.json"),
    );
    expect(wrongKind.status).toBe(1);
    // A load balancer's answer is not a pre-check's: the contract names the missing field.
    expect(wrongKind.stderr).toContain("output allowed");
    const down = await aios("policy", "list", "--registry", "http://127.0.0.1:9");
    expect(down.status).toBe(1);
    expect(down.stderr).toContain("cannot reach the registry");
    expect((await aios("policy", "frobnicate")).status).toBe(2);
  });
});
