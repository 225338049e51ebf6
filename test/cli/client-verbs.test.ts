/**
 * The client verbs against a running system: a registry and a gateway in this process, one cluster
 * whose controller is a real `aios controller` process (its block's executor and sentiment instances
 * real processes too), and one cluster whose controller never answers. Each verb runs through `main`
 * as the command line runs it: apply shows the steps as they happen and the block runs, get lists it,
 * infer classifies, scale changes the instance count, logs prints lines, delete removes; mistakes say
 * what is wrong with the right exit status.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, spyOn, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { main, VERBS } from "../../src/cli/main.ts";
import { type RunningServers, startRegistry } from "../../src/cli/serve.ts";
import { type RunningGateway, startGateway } from "../../src/gateway/serve.ts";
import { installBuiltinPolicies } from "../../src/policy/builtins.ts";
import { PolicyStore } from "../../src/policy/store.ts";
import { type AiosUp, startAiosUp } from "../support/aios-up.ts";
import { aiosProcess, Processes, ROOT } from "../support/processes.ts";
import { filteredBlockSpec } from "../support/spec-samples.ts";

setDefaultTimeout(120_000);

/** Per run, so a shared PostgreSQL (DATABASE_URL) never mixes this run's documents with another's. */
const RUN = crypto.randomUUID().slice(0, 6);
const GOOD = `cv-good-${RUN}`;
const HUNG = `cv-hung-${RUN}`;
const COMPONENT = `model.cv-sentiment-${RUN}:1.0.0`;
const BLOCK = `cv-block-${RUN}`;

/** Runs `aios ...args`; the exit status, and stdout and stderr with when each line came. */
const aios = async (...args: string[]) => {
  const out: { at: number; line: string }[] = [];
  const err: string[] = [];
  const log = spyOn(console, "log").mockImplementation(
    (...a: unknown[]) => void out.push({ at: Date.now(), line: a.join(" ") }),
  );
  const error = spyOn(console, "error").mockImplementation((...a: unknown[]) => void err.push(a.join(" ")));
  try {
    const status = await main(args);
    return { status, stdout: out.map((o) => o.line).join("\n"), stderr: err.join("\n"), lines: out };
  } finally {
    log.mockRestore();
    error.mockRestore();
  }
};

const spec = (blockId: string, component = COMPONENT) =>
  filteredBlockSpec({ blockId, blockComponentURI: component, minInstances: 2 }, [
    { variable: "tags", operator: "contains", value: RUN },
  ]);

describe("aios client verbs", () => {
  const work = mkdtempSync(join(tmpdir(), "aios-client-verbs-"));
  const procs = new Processes();
  let registry: RunningServers;
  let registryUrl = "";
  let gateway: RunningGateway;
  let hung: ReturnType<typeof Bun.serve>;
  let controllerUrl = "";
  /** `--gateway URL`, for every call. */
  let gw: string[] = [];

  const post = (path: string, body: unknown, method = "POST") =>
    fetch(`${registryUrl}${path}`, {
      method,
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    });

  beforeAll(async () => {
    registry = await startRegistry({ host: "127.0.0.1", port: 0, metricsPort: 0 });
    registryUrl = registry.listeners[0]!.url;
    await installBuiltinPolicies(new PolicyStore(registry.store));
    expect(
      (
        await post("/components", {
          componentURI: COMPONENT,
          runtime: { command: ["bun", "examples/sentiment/instance.ts"] },
          policies: { loadBalancer: { policyRuleURI: "policy.loadBalancer.roundrobin:v0.0.1" } },
        })
      ).status,
    ).toBe(201);
    const node = (id: string) => ({
      id,
      vcpus: { count: 8 },
      memory: 16384,
      gpus: { count: 0, memory: 0, gpus: [] },
    });
    for (const id of [GOOD, HUNG]) {
      const res = await post("/clusters", {
        id,
        status: "live",
        tags: [RUN],
        nodes: { count: 1, nodeData: [node(`${id}-node`)] },
      });
      expect(res.status).toBe(201);
    }
    // The registry and gateway here are the library's, without tokens: the controller as well
    // (test/auth/cli.test.ts and the describe below run the verbs with tokens, against aios up).
    const controller = procs.bun("controller", [
      "run",
      "src/cli/main.ts",
      "controller",
      ...["--cluster-id", GOOD, "--registry", registryUrl, "--port", "0", "--run-dir", join(work, "run")],
      "--anonymous",
    ]);
    controllerUrl = (await controller.listening(["controller"], 60_000)).controller!;
    // A controller that accepts connections and never answers: its dry run times out.
    hung = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: () => new Promise<Response>(() => {}) });
    await post(
      `/clusters/${HUNG}`,
      { $set: { "config.urlMap.controllerService": `http://127.0.0.1:${hung.port}` } },
      "PATCH",
    );
    gateway = await startGateway({ port: 0, registryUrl, store: {}, dryRunTimeoutMs: 1500 });
    gw = ["--gateway", gateway.url];
    writeFileSync(join(work, "block.json"), JSON.stringify(spec(BLOCK)));
  });

  afterAll(async () => {
    await gateway?.stop();
    // A controller leaves its workloads running when stopped: remove its blocks first.
    if (controllerUrl) {
      const blocks = (await (await fetch(`${controllerUrl}/blocks`)).json().catch(() => [])) as {
        id: string;
      }[];
      for (const b of blocks) {
        await fetch(`${controllerUrl}/executeAction`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ action: "remove_block", data: { block_id: b.id } }),
        });
      }
    }
    await procs.stopAll();
    if (registryUrl) {
      for (const id of [GOOD, HUNG]) await fetch(`${registryUrl}/clusters/${id}`, { method: "DELETE" });
      await fetch(`${registryUrl}/components/${encodeURIComponent(COMPONENT)}`, { method: "DELETE" });
    }
    await hung?.stop(true);
    await registry?.stop();
    rmSync(work, { recursive: true, force: true });
  });

  test("every client verb answers --help with its usage, exit 0", async () => {
    for (const name of ["apply", "get", "infer", "scale", "logs", "delete"]) {
      expect(VERBS.some((v) => v.name === name)).toBe(true);
      const res = await aios(name, "--help");
      expect(res.status).toBe(0);
      expect(res.stdout).toStartWith(`usage: aios ${name}`);
      expect(res.stdout).toContain("--gateway URL");
    }
    const top = await aios("--help");
    expect(top.stdout).toMatch(/\n {2}apply\s+create a block/);
  });

  test("apply prints each allocation step as it happens, then the running block", async () => {
    const res = await aios("apply", join(work, "block.json"), ...gw);
    expect(res.stderr).toBe("");
    expect(res.status).toBe(0);
    const lines = res.lines.map((l) => l.line);
    expect(lines[0]).toBe(`creating block ${BLOCK} (${COMPONENT}) through ${gateway.url}`);
    expect(lines).toContain(`  filter: 2 candidate clusters (${[GOOD, HUNG].sort().join(", ")})`);
    expect(lines).toContain(`  dry_run on cluster ${GOOD}: ok (score 1)`);
    expect(lines).toContain(`  dry_run on cluster ${HUNG}: timeout (no dry-run answer within 1500 ms)`);
    expect(lines).toContain(`  post_dry_run: chose cluster ${GOOD} (score 1)`);
    expect(lines).toContain(`  allocation on cluster ${GOOD}: ok`);
    expect(lines.at(-2)).toMatch(
      new RegExp(
        `^block ${BLOCK} running on cluster ${GOOD} with 2 instances \\(gRPC http://127\\.0\\.0\\.1:\\d+\\)$`,
      ),
    );
    expect(lines.at(-1)).toBe(`try it: aios infer ${BLOCK} --data '{"text": "what a lovely day"}'`);
    // Progress, not a summary: the filter's line came while the hung cluster's dry run was still waiting.
    const at = (prefix: string) => res.lines.find((l) => l.line.startsWith(prefix))!.at;
    expect(at("block ") - at("  filter:")).toBeGreaterThan(800);
  });

  test("get blocks, instances, clusters and one block: tables, and --json that parses", async () => {
    // From here the hung cluster refuses connections at once: every listing would wait out the gateway's
    // timeout for its controller otherwise.
    await hung.stop(true);
    const blocks = await aios("get", "blocks", ...gw);
    expect(blocks.status).toBe(0);
    expect(blocks.stdout.split("\n")[0]).toMatch(
      /^BLOCK\s+STATUS\s+CLUSTER\s+INSTANCES\s+COMPONENT\s+GRPC\s+AGE$/,
    );
    expect(blocks.stdout).toMatch(
      new RegExp(
        `\\n${BLOCK}\\s+running\\s+${GOOD}\\s+2 \\(2-4\\)\\s+${COMPONENT.replace(/\./g, "\\.")}\\s+http://`,
      ),
    );

    const json = await aios("get", "blocks", "--json", ...gw);
    const parsed = JSON.parse(json.stdout) as { id: string; status: string; instances: unknown[] }[];
    expect(parsed.find((b) => b.id === BLOCK)).toMatchObject({ status: "running", cluster_id: GOOD });

    const instances = await aios("get", "instances", ...gw);
    const rows = instances.stdout.split("\n").filter((l) => l.startsWith(`${BLOCK} `));
    expect(rows).toHaveLength(2);
    for (const r of rows)
      expect(r).toMatch(
        new RegExp(
          `^${BLOCK}\\s+${BLOCK}-\\S+\\s+${GOOD}-node\\s+-\\s+http://127\\.0\\.0\\.1:\\d+\\s+\\d+s$`,
        ),
      );

    const clusters = await aios("get", "clusters", ...gw);
    expect(clusters.stdout).toMatch(new RegExp(`\\n${GOOD}\\s+live\\s+reachable\\s+1/1\\s+0\\s+1\\n`));
    expect(clusters.stdout).toMatch(new RegExp(`\\n${HUNG}\\s+live\\s+unreachable`));
    expect(clusters.stdout).toContain(`cluster ${HUNG}: `);

    const one = await aios("get", "block", BLOCK, ...gw);
    expect(one.stdout).toContain(`block:      ${BLOCK}`);
    expect(one.stdout).toContain(`allocation:\n  filter: 2 candidate clusters`);
    const oneJson = JSON.parse((await aios("get", "block", BLOCK, "--json", ...gw)).stdout);
    expect(oneJson.steps.map((s: { step: string }) => s.step)).toEqual([
      "filter",
      "selection",
      "dry_run",
      "post_dry_run",
      "allocation",
    ]);
  });

  test("get policies through the gateway shows the table aios policy list shows from the registry", async () => {
    const viaGateway = await aios("get", "policies", "--kind", "loadBalancer", ...gw);
    const viaRegistry = await aios("policy", "list", "--kind", "loadBalancer", "--registry", registryUrl);
    expect(viaGateway.status).toBe(0);
    expect(viaGateway.stdout).toMatch(/^URI\s+KIND\s+BYTES\s+EXPORTS\s+DESCRIPTION\n/);
    expect(viaGateway.stdout).toMatch(/\npolicy\.loadBalancer\.roundrobin:v0\.0\.1\s+loadBalancer\s+\d+\s+/);
    expect(viaGateway.stdout).toBe(viaRegistry.stdout);
    const bad = await aios("get", "policies", "--kind", "loadBalancer", "extra", ...gw);
    expect(bad.status).toBe(2);
  });

  test("infer sends a task over gRPC and prints the sentiment", async () => {
    const res = await aios("infer", BLOCK, "--data", '{"text": "a wonderful, great film"}', ...gw);
    expect(res.status).toBe(0);
    expect(JSON.parse(res.stdout)).toMatchObject({ label: "positive" });
    expect(res.stderr).toMatch(new RegExp(`^answered by instance ${BLOCK}-\\S+ in \\d+ ms`));

    const raw = await aios("infer", BLOCK, "-d", '{"text": "terrible, broken and useless"}', "--json", ...gw);
    expect(raw.status).toBe(0);
    const body = JSON.parse(raw.stdout);
    expect(body).toMatchObject({ message: true, error: "", seq_no: 1, result: { label: "negative" } });
    expect(body.instance_id).toStartWith(`${BLOCK}-`);

    const file = join(work, "task.json");
    writeFileSync(file, '{"text": "lovely"}');
    const fromFile = await aios("infer", BLOCK, "--data", `@${file}`, "--session", "s-1", "--json", ...gw);
    expect(JSON.parse(fromFile.stdout)).toMatchObject({ session_id: "s-1", result: { label: "positive" } });
  });

  test("infer: an unknown block names the known ones; bad --data is a usage error", async () => {
    const unknown = await aios("infer", "no-such-block", "--data", "{}", ...gw);
    expect(unknown.status).toBe(1);
    expect(unknown.stderr).toContain("aios infer: no block 'no-such-block' at the gateway; known blocks:");
    expect(unknown.stderr).toContain(BLOCK);

    const bad = await aios("infer", BLOCK, "--data", "{text: hi}", ...gw);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toStartWith("aios infer: --data is not valid JSON");
    expect(bad.stderr).toContain("usage: aios infer");

    const missing = await aios("infer", BLOCK, ...gw);
    expect(missing.status).toBe(2);
    expect(missing.stderr).toContain("--data is required");
  });

  test("scale sets and changes the instance count within the block's bounds", async () => {
    const up = await aios("scale", BLOCK, "+1", ...gw);
    expect(up.stderr).toBe("");
    expect(up.stdout).toBe(`scaled block ${BLOCK} by +1: 3 instances now (min 2, max 4)`);
    const down = await aios("scale", BLOCK, "-1", "--json", ...gw);
    expect(down.status).toBe(0);
    expect(JSON.parse(down.stdout).instances).toHaveLength(2);
    const to = await aios("scale", BLOCK, "4", ...gw);
    expect(to.stdout).toBe(`scaled block ${BLOCK} to 4: 4 instances now (min 2, max 4)`);
    const blocks = JSON.parse((await aios("get", "blocks", "--json", ...gw)).stdout) as {
      id: string;
      instances: unknown[];
    }[];
    expect(blocks.find((b) => b.id === BLOCK)?.instances).toHaveLength(4);

    const over = await aios("scale", BLOCK, "+1", ...gw);
    expect(over.status).toBe(1);
    expect(over.stderr).toContain("keeps between 2 and 4 instances; 5 asked");
    const usage = await aios("scale", BLOCK, ...gw);
    expect(usage.status).toBe(2);
    expect((await aios("scale", BLOCK, "lots", ...gw)).stderr).toContain("must be a number");
    await aios("scale", BLOCK, "2", ...gw);
  });

  test("logs prints the services' log, or an instance's found by its id alone", async () => {
    const services = await aios("logs", BLOCK, ...gw);
    expect(services.status).toBe(0);
    expect(services.stdout).toMatch(/^listening executor http:/m);

    const tail = await aios("logs", BLOCK, "--tail", "2", ...gw);
    expect(tail.stdout.split("\n")).toHaveLength(2);

    const [instance] = JSON.parse((await aios("get", "instances", "--json", ...gw)).stdout).filter(
      (i: { block_id: string }) => i.block_id === BLOCK,
    ) as { id: string }[];
    const byInstance = await aios("logs", instance!.id, ...gw);
    expect(byInstance.status).toBe(0);
    expect(byInstance.stdout).toMatch(/^listening instance http:/m);
    const json = JSON.parse((await aios("logs", BLOCK, instance!.id, "--json", ...gw)).stdout);
    expect(json).toMatchObject({ block_id: BLOCK, instance_id: instance!.id });
    expect(json.lines.length).toBeGreaterThan(0);

    const unknown = await aios("logs", "nobody-here", ...gw);
    expect(unknown.status).toBe(1);
    expect(unknown.stderr).toContain("no block or instance 'nobody-here'");
    expect((await aios("logs", BLOCK, "--tail", "0", ...gw)).status).toBe(2);
  });

  test("apply fails clearly: missing or bad file (exit 2), a component the registry lacks (exit 1)", async () => {
    const missing = await aios("apply", join(work, "nope.json"), ...gw);
    expect(missing.status).toBe(2);
    expect(missing.stderr).toContain(`no such file: ${join(work, "nope.json")}`);

    writeFileSync(join(work, "bad.json"), "{ not json");
    const bad = await aios("apply", join(work, "bad.json"), ...gw);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toContain("is not valid JSON");

    writeFileSync(
      join(work, "unknown.json"),
      JSON.stringify(spec(`${BLOCK}-x`, `model.nothing-${RUN}:1.0.0`)),
    );
    const unknown = await aios("apply", join(work, "unknown.json"), ...gw);
    expect(unknown.status).toBe(1);
    expect(unknown.stderr).toBe(
      `aios apply: body.spec.values.blockComponentURI: no component 'model.nothing-${RUN}:1.0.0' is registered`,
    );

    const again = await aios("apply", join(work, "block.json"), ...gw);
    expect(again.status).toBe(1);
    expect(again.stderr).toContain(`block '${BLOCK}' is already running; aios delete ${BLOCK} first`);
    // The earlier creation's steps are not this attempt's.
    expect(again.stdout).not.toContain("filter:");
  });

  test("an unreachable gateway says so and what to do, from a real process with $AIOS_GATEWAY_URL", async () => {
    const inProcess = await aios("get", "blocks", "--gateway", "http://127.0.0.1:1");
    expect(inProcess.status).toBe(1);
    expect(inProcess.stderr).toStartWith("aios get: cannot reach the gateway at http://127.0.0.1:1");
    expect(inProcess.stderr).toContain(
      "is `aios up` running? start it with `npm start`, or pass --gateway URL",
    );

    const down = await aiosProcess({ AIOS_GATEWAY_URL: "http://127.0.0.1:1" }, "get", "clusters");
    expect(down.status).toBe(1);
    expect(down.stderr).toContain("cannot reach the gateway at http://127.0.0.1:1");
    const up = await aiosProcess({ AIOS_GATEWAY_URL: gateway.url }, "get", "blocks");
    expect(up.status).toBe(0);
    expect(up.stdout).toContain(`${BLOCK} `);
  });

  test("delete removes the block; deleting it again says why not", async () => {
    const res = await aios("delete", BLOCK, ...gw);
    expect(res.status).toBe(0);
    expect(res.stdout).toBe(`deleted block ${BLOCK} (was on cluster ${GOOD})`);
    expect(await (await fetch(`${controllerUrl}/blocks/${BLOCK}`)).status).toBe(404);
    const list = await aios("get", "blocks", ...gw);
    expect(list.stdout).toMatch(new RegExp(`\\n${BLOCK}\\s+removed\\s+`));
    const again = await aios("delete", "block", BLOCK, ...gw);
    expect(again.status).toBe(1);
    expect(again.stderr).toBe(`aios delete: block '${BLOCK}' is removed, not running`);
    const infer = await aios("infer", BLOCK, "--data", "{}", ...gw);
    expect(infer.status).toBe(1);
    expect(infer.stderr).toContain(`block '${BLOCK}' is removed and has no gRPC address`);
  });
});

/**
 * As a user runs it: `aios up`, then the client verbs as processes, the gateway from $AIOS_GATEWAY_URL
 * and the admin token from the file aios up saved ($AIOS_DATA_DIR/admin-token).
 */
describe("aios client verbs against aios up", () => {
  let up: AiosUp;
  let env: Record<string, string> = {};
  const work = mkdtempSync(join(tmpdir(), "aios-client-up-"));
  beforeAll(async () => {
    up = await startAiosUp();
    env = { AIOS_GATEWAY_URL: up.gatewayUrl, AIOS_DATA_DIR: up.dataDir };
  });
  afterAll(async () => {
    if (up) expect(await up.stop()).toBe(0);
    rmSync(work, { recursive: true, force: true });
  });

  test("the demo block: get lists it, infer classifies through it", async () => {
    const blocks = await aiosProcess(env, "get", "blocks");
    expect(blocks.status).toBe(0);
    expect(blocks.stdout).toMatch(
      /\ndemo\s+running\s+local\s+1 \(1-4\)\s+model\.sentiment-naive-bayes:1\.0\.0\s+http:/,
    );
    const res = await aiosProcess(
      env,
      "infer",
      "demo",
      "--data",
      '{"text":"I love this phone, the screen is gorgeous"}',
    );
    expect(res.status).toBe(0);
    expect(JSON.parse(res.stdout)).toMatchObject({ label: "positive" });
  });

  test("apply a second block with progress, use it, delete it", async () => {
    const demo = JSON.parse(await Bun.file(join(ROOT, "examples/sentiment/demo.json")).text());
    demo.body.spec.values.blockId = "second";
    const file = join(work, "second.json");
    writeFileSync(file, JSON.stringify(demo));
    const applied = await aiosProcess(env, "apply", file);
    expect(applied.stderr).toBe("");
    expect(applied.status).toBe(0);
    expect(applied.stdout).toContain("  filter: 1 candidate cluster (local)");
    expect(applied.stdout).toContain("  dry_run on cluster local: ok");
    expect(applied.stdout).toContain("  allocation on cluster local: ok");
    expect(applied.stdout).toMatch(/\nblock second running on cluster local with 1 instance \(gRPC http:/);

    const res = await aiosProcess(
      env,
      "infer",
      "second",
      "--data",
      '{"text":"slow, rude and broken"}',
      "--json",
    );
    expect(JSON.parse(res.stdout)).toMatchObject({ message: true, result: { label: "negative" } });
    const scaled = await aiosProcess(env, "scale", "second", "+1");
    expect(scaled.stdout.trim()).toBe("scaled block second by +1: 2 instances now (min 1, max 4)");
    const logs = await aiosProcess(env, "logs", "second");
    expect(logs.stdout).toMatch(/^listening executor http:/m);
    const deleted = await aiosProcess(env, "delete", "second");
    expect(deleted.stdout.trim()).toBe("deleted block second (was on cluster local)");
    const after = await aiosProcess(env, "get", "blocks", "--json");
    expect(JSON.parse(after.stdout).find((b: { id: string }) => b.id === "second")).toMatchObject({
      status: "removed",
    });
  });
});
