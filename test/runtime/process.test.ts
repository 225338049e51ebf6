/**
 * The process runtime on real processes: sentiment instances (examples/sentiment/instance.ts) and a
 * real `aios block-runtime`, tracked in an in-memory store. The tests run in order and share the
 * processes; a "restart" closes the driver and opens another over the same store and run directory.
 * Every process group seen is killed in afterAll, and none may be left.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { InferenceProxy } from "../../src/gen/inference_pb.ts";
import {
  type InstanceStatus,
  openRuntime,
  ProcessDriver,
  type RuntimeEvent,
  WorkloadStartError,
} from "../../src/runtime/index.ts";
import { isAlive, procInfo, procStartTicks } from "../../src/runtime/os-process.ts";
import { openStore, type Store } from "../../src/store/index.ts";
import { Processes, ROOT } from "../support/processes.ts";
import { textPacket } from "../support/sentiment.ts";

const BLOCK = "rt-block";
const SENTIMENT = { command: ["bun", "examples/sentiment/instance.ts"], cwd: ROOT };

let store: Store;
let runDir: string;
let driver: ProcessDriver;
const events: RuntimeEvent[] = [];
/** Every process group a workload ran in, for the final sweep. */
const groups = new Set<number>();
const closers: (() => void)[] = [];

const remember = (handle: string | number) => {
  const pid = Number(handle);
  if (pid > 0) groups.add(pid);
  return pid;
};

// Workloads without tokens (AIOS_ANONYMOUS=1), as an open controller's: token mode is test/auth's.
const newDriver = (extra: Partial<ConstructorParameters<typeof ProcessDriver>[0]> = {}) =>
  new ProcessDriver({
    store,
    runDir,
    nodeId: "node-a",
    probeIntervalMs: 100,
    stopGraceMs: 3000,
    workloadAuth: { anonymous: true },
    ...extra,
  });

const records = () => store.collection("runtime_processes");

const waitFor = async <T>(what: string, fn: () => T | undefined | Promise<T | undefined>, ms = 10_000) => {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(25);
  }
};

const classify = async (url: string, text: string) => {
  const res = await fetch(`${url}/task`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ session_id: `s-${Math.random()}`, seq_no: 1, data: { text }, ts: 0 }),
  });
  expect(res.status).toBe(200);
  return ((await res.json()) as { result: Record<string, unknown> }).result;
};

const grpcInfer = (grpcUrl: string) => {
  const manager = new Http2SessionManager(grpcUrl);
  closers.push(() => manager.abort());
  const client = createClient(
    InferenceProxy,
    createGrpcTransport({ baseUrl: grpcUrl, sessionManager: manager }),
  );
  return (text: string) => client.infer({ rpcData: textPacket(text, `g-${Math.random()}`) });
};

const urls: Record<string, string> = {};
let servicesGrpc = "";

beforeAll(async () => {
  store = await openStore({});
  runDir = mkdtempSync(join(tmpdir(), "aios-runtime-"));
  driver = newDriver();
  driver.watch((e) => events.push(e));
});

afterAll(async () => {
  for (const close of closers) close();
  await driver?.close();
  for (const d of await records()
    .find({})
    .catch(() => [])) {
    if (typeof d.pgid === "number") groups.add(d.pgid);
  }
  for (const g of groups) {
    try {
      process.kill(-g, "SIGKILL");
    } catch {
      // Already gone.
    }
  }
  // Nothing may outlive the test file: no process left in any group a workload ran in.
  await waitFor("every workload to be gone", () => {
    const left = [...groups].filter((g) => {
      const pids = Bun.spawnSync(["pgrep", "-g", String(g)])
        .stdout.toString()
        .split("\n")
        .filter(Boolean);
      // An orphan's zombie (its controller exited and nothing reaped it yet) is already dead.
      return pids.some((p) => procInfo(Number(p))?.state !== "Z");
    });
    return left.length === 0 ? true : undefined;
  });
  await store?.close();
  rmSync(runDir, { recursive: true, force: true });
});

describe("ProcessDriver (real processes)", () => {
  test("starts two instances: running, in their own process group, answering /task with their GPUs", async () => {
    const [a, b] = await Promise.all([
      driver.startInstance({
        blockId: BLOCK,
        instanceId: "inst-a",
        nodeId: "node-a",
        gpus: ["0", "2"],
        template: SENTIMENT,
        parameters: { min_confidence: 0.42 },
      }),
      driver.startInstance({
        blockId: BLOCK,
        instanceId: "inst-b",
        nodeId: "node-a",
        gpus: [],
        template: SENTIMENT,
      }),
    ]);
    for (const s of [a, b]) {
      remember(s.handle);
      expect(s.state).toBe("running");
      expect(s.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      expect(s.log).toStartWith(join(runDir, "logs", "instance-"));
    }
    expect(a.url).not.toBe(b.url);
    urls.a = a.url!;
    urls.b = b.url!;

    const ra = await classify(a.url!, "A wonderful hotel with a stunning view");
    expect(ra).toMatchObject({
      label: "positive",
      instance_id: "inst-a",
      gpus: ["0", "2"],
      min_confidence: 0.42,
    });
    const rb = await classify(b.url!, "The software is buggy and slow");
    expect(rb).toMatchObject({ label: "negative", instance_id: "inst-b", gpus: [], min_confidence: 0.6 });

    // Detached: each leads its own process group and session.
    const info = procInfo(Number(a.handle));
    expect(info?.pgid).toBe(Number(a.handle));

    const listed = await driver.listInstances(BLOCK);
    expect(listed.map((i) => [i.instanceId, i.state, i.url, i.gpus])).toEqual([
      ["inst-a", "running", a.url, ["0", "2"]],
      ["inst-b", "running", b.url, []],
    ]);
    const rec = await records().get(`instance:${BLOCK}:inst-a`);
    expect(rec).toMatchObject({
      kind: "instance",
      pid: Number(a.handle),
      pgid: Number(a.handle),
      nodeId: "node-a",
    });
    expect(rec?.command).toEqual([process.execPath, "examples/sentiment/instance.ts"]);
    expect(await driver.listInstances("another-block")).toEqual([]);
  });

  test("starting an instance that already runs is refused", async () => {
    await expect(
      driver.startInstance({
        blockId: BLOCK,
        instanceId: "inst-a",
        nodeId: "node-a",
        gpus: [],
        template: SENTIMENT,
      }),
    ).rejects.toThrow(/already running/);
    expect((await driver.listInstances(BLOCK)).map((i) => i.state)).toEqual(["running", "running"]);
  });

  test("block services over the two instances serve gRPC inference", async () => {
    const s = await driver.startBlockServices({
      blockId: BLOCK,
      block: { id: BLOCK },
      instances: [
        { id: "inst-a", url: urls.a! },
        { id: "inst-b", url: urls.b! },
      ],
      controllerUrl: "http://127.0.0.1:9",
      registryUrl: "http://127.0.0.1:9",
      clusterId: "cluster-1",
    });
    remember(s.handle);
    expect(s.state).toBe("running");
    expect(Object.keys(s.urls).sort()).toEqual(
      ["autoscaler", "executor", "grpc", "health-checker", "mapper", "metrics"].sort(),
    );
    expect(new Set(Object.values(s.urls)).size).toBe(6);
    servicesGrpc = s.urls.grpc!;

    const infer = grpcInfer(servicesGrpc);
    const seen = new Set<string>();
    for (let i = 0; i < 6; i++) {
      const r = await infer("Great phone, I love the gorgeous screen");
      expect(r.message).toBe(true);
      expect(JSON.parse(r.result).label).toBe("positive");
      seen.add(r.instanceId);
    }
    expect([...seen].sort()).toEqual(["inst-a", "inst-b"]);
    expect(await driver.getBlockServices(BLOCK)).toMatchObject({ state: "running", urls: s.urls });
    expect(await driver.getBlockServices("no-such-block")).toBeNull();
  });

  test("stopping an instance ends its process and removes its record, without an exit event", async () => {
    const pid = Number((await driver.listInstances(BLOCK)).find((i) => i.instanceId === "inst-b")!.handle);
    await driver.stopInstance(BLOCK, "inst-b");
    expect(isAlive(pid)).toBe(false);
    expect(await records().get(`instance:${BLOCK}:inst-b`)).toBeNull();
    expect((await driver.listInstances(BLOCK)).map((i) => i.instanceId)).toEqual(["inst-a"]);
    await driver.stopInstance(BLOCK, "inst-b"); // unknown now: a no-op
    await Bun.sleep(150);
    expect(events).toEqual([]);
  });

  test("an instance killed from outside is reported as instance_exited and listed as exited", async () => {
    const c = await driver.startInstance({
      blockId: BLOCK,
      instanceId: "inst-c",
      nodeId: "node-a",
      gpus: [],
      template: SENTIMENT,
    });
    process.kill(remember(c.handle), "SIGKILL");
    const event = await waitFor("instance_exited", () => events.find((e) => e.type === "instance_exited"));
    expect(event).toEqual({ type: "instance_exited", blockId: BLOCK, instanceId: "inst-c", exitCode: 137 });
    const listed = (await driver.listInstances(BLOCK)).find((i) => i.instanceId === "inst-c");
    expect(listed).toMatchObject({ state: "exited", exitCode: 137, url: null });
    // Its id may be started again once the dead one is stopped (forgotten).
    await driver.stopInstance(BLOCK, "inst-c");
    expect(await records().get(`instance:${BLOCK}:inst-c`)).toBeNull();
    events.length = 0;
  });

  test("a command that exits at once fails the start, naming the log and quoting its end", async () => {
    const start = driver.startInstance({
      blockId: BLOCK,
      instanceId: "broken",
      nodeId: "node-a",
      gpus: [],
      template: {
        command: ["bun", "-e", "console.error('boom: the model file is missing'); process.exit(3)"],
      },
    });
    const err = await start.then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(WorkloadStartError);
    const e = err as WorkloadStartError;
    expect(e.state).toBe("failed");
    expect(e.exitCode).toBe(3);
    expect(e.log).toBe(join(runDir, "logs", `instance-${BLOCK}_broken.log`));
    expect(e.message).toContain(e.log!);
    expect(e.message).toContain("exited with code 3 before it was ready");
    expect(e.message).toContain("boom: the model file is missing");
    expect(readFileSync(e.log!, "utf8")).toContain("boom: the model file is missing");
    expect(await records().get(`instance:${BLOCK}:broken`)).toBeNull();
    expect(events).toEqual([]);

    await expect(
      driver.startInstance({
        blockId: BLOCK,
        instanceId: "missing",
        nodeId: "node-a",
        gpus: [],
        template: { command: ["/nonexistent/aios-instance"] },
      }),
    ).rejects.toThrow(/could not run \/nonexistent\/aios-instance/);
    expect(await records().get(`instance:${BLOCK}:missing`)).toBeNull();
  });

  test("a process that never becomes healthy is killed after the start timeout", async () => {
    const quick = newDriver({ startTimeoutMs: 400 });
    try {
      const err = await quick
        .startInstance({
          blockId: BLOCK,
          instanceId: "mute",
          nodeId: "node-a",
          gpus: [],
          template: { command: ["sh", "-c", "echo waiting forever; exec sleep 30"] },
        })
        .then(
          () => null,
          (e: unknown) => e as WorkloadStartError,
        );
      expect(err?.message).toMatch(/not ready within 400 ms/);
      expect(err?.logTail).toEqual(["waiting forever"]);
      expect(err?.pid).toBeGreaterThan(0);
      remember(err!.pid!);
      expect(isAlive(err!.pid!)).toBe(false);
      expect(await records().get(`instance:${BLOCK}:mute`)).toBeNull();
    } finally {
      await quick.close();
    }
  });

  test("vDAG controllers: replicas with a port each, scaled up and down, then removed", async () => {
    const script = join(runDir, "vdag.ts");
    writeFileSync(
      script,
      `Bun.serve({ hostname: "127.0.0.1", port: Number(process.env.AIOS_PORT), fetch: () => Response.json({
        replica: process.env.AIOS_VDAG_REPLICA, id: process.env.AIOS_VDAG_ID,
        config: JSON.parse(process.env.AIOS_VDAG_CONFIG ?? "null"),
        leaked: Object.keys(process.env).filter((k) => k === "DATABASE_URL" || k === "AIOS_LEAK"),
        extra: process.env.EXTRA,
      }) });
      process.on("SIGTERM", () => process.exit(0));`,
    );
    // The controller's own configuration must not reach its workloads. The suite's own DATABASE_URL
    // is put back afterwards: later test files read it.
    const databaseUrl = process.env.DATABASE_URL;
    process.env.AIOS_LEAK = "x";
    process.env.DATABASE_URL = "postgres://controller-only";
    const spec = {
      id: "vdag-1",
      replicas: 2,
      template: { command: ["bun", script], env: { EXTRA: "yes" } },
      config: { dag: ["a", "b"] },
    };
    try {
      const two = await driver.applyVdagController(spec);
      expect(two.replicas).toBe(2);
      expect(two.handles).toHaveLength(2);
      for (const h of two.handles) remember(h);
      const answers = await Promise.all(two.urls.map(async (u) => (await fetch(u)).json()));
      expect(answers).toEqual([
        { replica: "0", id: "vdag-1", config: { dag: ["a", "b"] }, leaked: [], extra: "yes" },
        { replica: "1", id: "vdag-1", config: { dag: ["a", "b"] }, leaked: [], extra: "yes" },
      ]);
    } finally {
      delete process.env.AIOS_LEAK;
      if (databaseUrl === undefined) delete process.env.DATABASE_URL;
      else process.env.DATABASE_URL = databaseUrl;
    }
    const before = await driver.listVdagControllers();
    const one = await driver.applyVdagController({ ...spec, replicas: 1 });
    expect(one.handles).toEqual([before[0]!.handles[0]!]);
    expect(isAlive(Number(before[0]!.handles[1]))).toBe(false);
    expect(await driver.listVdagControllers()).toEqual([one]);
    // Back to two: the missing replica index is filled again.
    const again = await driver.applyVdagController({ ...spec, replicas: 2 });
    for (const h of again.handles) remember(h);
    expect(again.handles).toHaveLength(2);
    expect(await (await fetch(again.urls[1]!)).json()).toMatchObject({ replica: "1" });

    await driver.removeVdagController("vdag-1");
    for (const h of again.handles) expect(isAlive(Number(h))).toBe(false);
    expect(await driver.listVdagControllers()).toEqual([]);
    expect(await records().find({ vdagId: "vdag-1" })).toEqual([]);
  });

  test("restart: a new driver adopts what still runs and cleans up the rest", async () => {
    const d = await driver.startInstance({
      blockId: BLOCK,
      instanceId: "inst-d",
      nodeId: "node-a",
      gpus: [],
      template: SENTIMENT,
    });
    remember(d.handle);
    await driver.close();
    // Dies while no controller watches: its record still says running.
    process.kill(Number(d.handle), "SIGKILL");
    await waitFor("inst-d to die", () => (isAlive(Number(d.handle)) ? undefined : true));
    // A record whose pid is alive but is another process (as after a reboot): cleaned, and left alone.
    const bystander = Bun.spawn(["sleep", "30"], { stdio: ["ignore", "ignore", "ignore"] });
    closers.push(() => bystander.kill("SIGKILL"));
    await records().insert({
      id: "instance:other:stale",
      kind: "instance",
      state: "running",
      pid: bystander.pid,
      pgid: bystander.pid,
      procStart: (procStartTicks(bystander.pid) ?? 0) + 1,
      nodeId: "node-a",
      url: "http://127.0.0.1:9",
      urls: {},
      ports: {},
      startedAt: new Date().toISOString(),
      log: "/dev/null",
      command: ["sleep", "30"],
      cwd: "/",
      blockId: "other",
      instanceId: "stale",
    });
    await records().insert({ id: "instance:other:garbled", kind: "instance", pid: "not a number" });

    driver = newDriver();
    driver.watch((e) => events.push(e));
    const report = await driver.adopt();
    expect(report).toEqual({
      adopted: [`instance:${BLOCK}:inst-a`, `services:${BLOCK}`],
      cleaned: ["instance:other:garbled", "instance:other:stale", `instance:${BLOCK}:inst-d`],
    });
    expect(isAlive(bystander.pid)).toBe(true);
    bystander.kill("SIGKILL");
    await bystander.exited;
    expect((await driver.listInstances()).map((i) => i.instanceId)).toEqual(["inst-a"]);

    // The adopted block still serves, and the adopted instance answers.
    const r = await grpcInfer(servicesGrpc)("Rude waiter, cold soup and a dirty table");
    expect(r.message).toBe(true);
    expect(r.instanceId).toBe("inst-a");

    // An adopted process is not our child: its exit is found by polling.
    const a = (await driver.listInstances(BLOCK))[0]!;
    process.kill(Number(a.handle), "SIGKILL");
    const event = await waitFor("instance_exited", () => events.find((e) => e.type === "instance_exited"));
    expect(event).toEqual({ type: "instance_exited", blockId: BLOCK, instanceId: "inst-a", exitCode: null });
    expect((await driver.listInstances(BLOCK))[0]?.state).toBe("exited");

    // Stopping adopted block services: the process ends, the record goes, no event.
    const services = await driver.getBlockServices(BLOCK);
    await driver.stopBlockServices(BLOCK);
    expect(isAlive(Number(services!.handle))).toBe(false);
    expect(await driver.getBlockServices(BLOCK)).toBeNull();
    await driver.stopInstance(BLOCK, "inst-a");
    expect(await records().find({})).toEqual([]);
    expect(events.filter((e) => e.type === "services_exited")).toEqual([]);
  });

  test("probeNodes reports the local node with real readings", async () => {
    const [node, ...others] = await driver.probeNodes();
    expect(others).toEqual([]);
    expect(node).toMatchObject({ nodeId: "node-a", healthy: true });
    expect(node!.cpu_utilization_percent).toBeGreaterThanOrEqual(0);
    expect(node!.cpu_utilization_percent).toBeLessThanOrEqual(100);
    expect(node!.memory!.total).toBe(Math.round(totalmem() / 2 ** 20));
    expect(node!.memory!.allocatable).toBeGreaterThan(0);
    expect(node!.memory!.allocatable).toBeLessThanOrEqual(node!.memory!.total);
    expect(node!.memory!.usage_percent).toBeGreaterThan(0);
    expect(node!.disk!.total).toBeGreaterThan(node!.disk!.allocatable);
    expect(node!.disk!.usage_percent).toBeGreaterThan(0);
    expect(Date.parse(node!.checkedAt)).toBeGreaterThan(Date.now() - 60_000);
  });

  test("probeNodes reads GPUs from nvidia-smi, applies thresholds and reports health flips", async () => {
    const fake = join(runDir, "nvidia-smi");
    writeFileSync(fake, "#!/bin/sh\nprintf '0, 81920, 1024, 7\\n1, 81920, [N/A], 0\\n'\n", { mode: 0o755 });
    const nodeDir = mkdtempSync(join(tmpdir(), "aios-node-"));
    const seen: RuntimeEvent[] = [];
    const gpuDriver = newDriver({ runDir: nodeDir, nvidiaSmi: fake, memoryThresholdPercent: 0 });
    gpuDriver.watch((e) => seen.push(e));
    try {
      const [node] = await gpuDriver.probeNodes();
      expect(node!.gpus).toEqual([
        { id: "0", memory_total: 81920, memory_used: 1024, utilization: 7 },
        { id: "1", memory_total: 81920, memory_used: null, utilization: 0 },
      ]);
      expect(node!.healthy).toBe(false);
      expect(node!.reason).toMatch(/^memory usage [\d.]+% is over 0%$/);

      const missing = newDriver({ runDir: nodeDir, nvidiaSmi: join(runDir, "no-nvidia-smi") });
      missing.watch((e) => seen.push(e));
      expect((await missing.probeNodes())[0]!.gpus).toEqual([]);
      expect((await missing.probeNodes())[0]!.healthy).toBe(true);
      rmSync(nodeDir, { recursive: true });
      const [broken] = await missing.probeNodes();
      expect(broken).toMatchObject({ healthy: false, memory: null, disk: null });
      expect(broken!.reason).toMatch(/^probe failed: /);
      expect(seen).toEqual([{ type: "node_changed", nodeId: "node-a", healthy: false }]);
      await missing.close();
    } finally {
      await gpuDriver.close();
      rmSync(nodeDir, { recursive: true, force: true });
    }
  });

  test("a workload outlives the controller process that started it; the next one adopts it", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "aios-runtime-db-"));
    const procs = new Processes();
    try {
      const child = procs.bun("controller", ["test/runtime/controller-child.ts", dataDir, runDir]);
      // The controller exits by itself although its instance runs on: the child is not waited for.
      expect(await child.exited).toBe(0);
      const status = JSON.parse(child.stdoutLines.at(-1) ?? "{}") as InstanceStatus;
      const pid = remember(status.handle);
      expect(status.state).toBe("running");
      expect(isAlive(pid)).toBe(true);
      expect(await classify(status.url!, "Highly recommended, a delightful experience")).toMatchObject({
        label: "positive",
        instance_id: "survivor",
        gpus: ["1"],
      });

      const diskStore = await openStore({ dataDir });
      const next = new ProcessDriver({
        store: diskStore,
        runDir,
        nodeId: "node-a",
        probeIntervalMs: 100,
        workloadAuth: { anonymous: true },
      });
      try {
        expect(await next.adopt()).toEqual({ adopted: ["instance:survivors:survivor"], cleaned: [] });
        expect(await next.listInstances()).toMatchObject([{ instanceId: "survivor", state: "running" }]);
        await next.stopInstance("survivors", "survivor");
        // Orphaned, it may stay a zombie (dead) until something reaps it.
        expect(isAlive(pid)).toBe(false);
        expect(await diskStore.collection("runtime_processes").find({})).toEqual([]);
      } finally {
        await next.close();
        await diskStore.close();
      }
    } finally {
      await procs.stopAll();
      rmSync(dataDir, { recursive: true, force: true });
    }
  }, 60_000);

  test("openRuntime picks the process driver; kubernetes needs a cluster to talk to", async () => {
    const rt = await openRuntime({ store, runDir });
    expect(rt.name).toBe("process");
    await rt.close();
    await expect(openRuntime({ driver: "kubernetes", store, runDir })).rejects.toThrow(
      /no Kubernetes cluster configured/,
    );
  });
});
