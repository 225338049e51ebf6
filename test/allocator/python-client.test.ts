/**
 * `aios allocator` as a real process over an on-disk PGlite seeded beforehand, and the
 * specification's Python WebSocket client (examples/allocator-client/client.py) against it: as
 * written (its sample payload, every field empty, is answered with an error naming policy_rule_uri),
 * and with the payload filled in as a user would (the specification's output example comes back).
 * Only the placeholder address is pointed at the server.
 *
 * The Python part needs Debian's python3-websockets for /usr/bin/python3 (.ci/run installs it when it
 * can); it is skipped without it.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { installBuiltinPolicies } from "../../src/policy/builtins.ts";
import { PolicyStore } from "../../src/policy/store.ts";
import { openStore } from "../../src/store/index.ts";
import { type Child, childEnv, Processes, ROOT } from "../support/processes.ts";
import { AllocatorClient } from "./fixtures.ts";

setDefaultTimeout(120_000);

const PYTHON = "/usr/bin/python3";
const CLIENT = join(ROOT, "examples/allocator-client/client.py");
const SPEC_URI = 'uri = "ws://localhost:8765"';

const pythonRuns = (code: string): boolean => {
  try {
    return Bun.spawnSync([PYTHON, "-c", code], { stdout: "ignore", stderr: "ignore" }).exitCode === 0;
  } catch {
    return false;
  }
};
const noWebsockets = !pythonRuns("import websockets");

const procs = new Processes();
let dir = "";
let allocator: Child;
let url = "";

/** cluster-123 as in the server tests: two GPUs for the built-in policy are node-0's 0 and 2. */
const CLUSTER = {
  id: "cluster-123",
  nodes: {
    count: 1,
    nodeData: [
      {
        id: "node-0",
        gpus: { count: 3, memory: 49152, gpus: [{ memory: 16384 }, { memory: 16384 }, { memory: 16384 }] },
      },
    ],
  },
};
const METRICS = {
  id: "cluster-123",
  nodes: {
    "node-0": {
      status: "healthy",
      gpus: [
        { id: "0", memory_total: 16384, memory_free: 12000, utilization: 0.1 },
        { id: "1", memory_total: 16384, memory_free: 500, utilization: 0.9 },
        { id: "2", memory_total: 16384, memory_free: 11000, utilization: 0.2 },
      ],
    },
  },
};

/** Runs a copy of the client, `edit`ed, and returns what it logged (logging goes to stderr). */
const runClient = async (edit: (source: string) => string) => {
  const source = readFileSync(CLIENT, "utf8");
  expect(source).toContain(SPEC_URI);
  const file = join(dir, `client-${Math.random().toString(36).slice(2)}.py`);
  writeFileSync(file, edit(source.replace(SPEC_URI, `uri = "${url}"`)));
  const env = childEnv();
  delete env.PYTHONHOME;
  for (const k of ["http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"])
    delete env[k];
  const proc = Bun.spawn([PYTHON, file], { cwd: dir, env, stdout: "pipe", stderr: "pipe", timeout: 30_000 });
  const [stdout, stderr, code] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ]);
  const line = `${stdout}\n${stderr}`.split("\n").find((l) => l.includes("Response received: "));
  return {
    code,
    log: `${stdout}${stderr}`,
    response: line
      ? (JSON.parse(line.slice(line.indexOf("Response received: ") + 19)) as Record<string, unknown>)
      : null,
  };
};

describe("aios allocator and the specification's Python client", () => {
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "aios-allocator-"));
    // Seed an on-disk store, close it, then hand it to the server process (PGlite has one owner).
    const store = await openStore({ dataDir: join(dir, "data") });
    await store.collection("clusters").insert(CLUSTER);
    await store.collection("cluster_metrics").insert(METRICS);
    await installBuiltinPolicies(new PolicyStore(store));
    await store.close();
    allocator = procs.spawn("allocator", [
      process.execPath,
      "run",
      "src/cli/main.ts",
      "allocator",
      "--port",
      "0",
      "--data-dir",
      join(dir, "data"),
      "--workers",
      "1",
      // The specification's client sends no token: anonymous access, as for local development.
      "--anonymous",
    ]);
    url = (await allocator.listening(["allocator"], 60_000)).allocator!;
  });

  afterAll(async () => {
    await procs.stopAll();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test("prints `listening allocator ws://127.0.0.1:<port>` once, and answers over WebSocket", async () => {
    expect(url).toMatch(/^ws:\/\/127\.0\.0\.1:\d+$/);
    expect(allocator.stdoutLines.filter((l) => l.startsWith("listening ")).length).toBe(1);
    const client = await AllocatorClient.connect(url);
    const answer = await client.request({
      adhoc: true,
      policy_rule_uri: "policy.allocator.most-free-gpu:v0.0.1",
      clusters: ["cluster-123"],
      inputs: { gpus: 2 },
    });
    expect(answer).toEqual({ cluster_id: "cluster-123", node_id: "node-0", gpus: ["0", "2"] });
    client.close();
  });

  test("flags: --help, and a bad --workers is a usage error", async () => {
    const help = Bun.spawnSync([process.execPath, "run", "src/cli/main.ts", "allocator", "--help"], {
      cwd: ROOT,
      env: childEnv(),
    });
    expect(help.exitCode).toBe(0);
    expect(help.stdout.toString()).toContain("--max-candidates");
    const bad = Bun.spawnSync(
      [process.execPath, "run", "src/cli/main.ts", "allocator", "--workers", "many"],
      {
        cwd: ROOT,
        env: childEnv(),
      },
    );
    expect(bad.exitCode).toBe(2);
    expect(bad.stderr.toString()).toContain("--workers");
  });

  test.skipIf(noWebsockets)(
    "the client as written: its empty sample payload is refused naming policy_rule_uri",
    async () => {
      const run = await runClient((s) => s);
      expect(run.code).toBe(0);
      expect(run.log).toContain("Request sent to server.");
      expect(run.response).not.toBeNull();
      const error = run.response!.error as { code: string; message: string };
      expect(error.code).toBe("invalid_input");
      expect(error.message).toStartWith("policy_rule_uri: ");
    },
  );

  test.skipIf(noWebsockets)(
    "the client with its payload filled in gets the specification's output example",
    async () => {
      const run = await runClient((s) =>
        s
          .replace('"policy_rule_uri": ""', '"policy_rule_uri": "policy.allocator.most-free-gpu:v0.0.1"')
          .replace('"clusters": []', '"clusters": ["cluster-123"]')
          .replace('"inputs": {}', '"inputs": {"gpus": 2}'),
      );
      expect(run.code).toBe(0);
      expect(run.response).toEqual({ cluster_id: "cluster-123", node_id: "node-0", gpus: ["0", "2"] });
      // And by similarity search instead of ids ("search": {} filled in, "clusters" left empty).
      const bySearch = await runClient((s) =>
        s
          .replace('"policy_rule_uri": ""', '"policy_rule_uri": "policy.allocator.most-free-gpu:v0.0.1"')
          .replace('"search": {}', '"search": {"query": "node"}')
          .replace('"inputs": {}', '"inputs": {"gpus": 1}'),
      );
      expect(bySearch.response).toEqual({ cluster_id: "cluster-123", node_id: "node-0", gpus: ["0"] });
    },
  );
});
