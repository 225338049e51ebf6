/**
 * The services the fuzz suites run against, in this process and wired for real where it matters: a
 * store (PGlite, or DATABASE_URL's PostgreSQL when FUZZ_DATABASE_URL says so), the registry app served
 * on a loopback port (its typed client is what the gateway and the controller use), a real instance
 * (the instance SDK, `serveInstance`), a block's executor, mapper and sidecars, and a controller over an
 * in-memory runtime that starts nothing (its instances are the real instance above, its block services
 * the block apps below). No child process, no port the suite does not close.
 */
import { AuditLog, TokenStore } from "../../src/auth/index.ts";
import {
  createExecutorMetricsApp,
  createExecutorMgmtApp,
  createMapperApp,
  createSidecarMgmtApp,
} from "../../src/block/app.ts";
import { Autoscaler } from "../../src/block/autoscaler.ts";
import { readBlockConfig } from "../../src/block/config.ts";
import { Executor } from "../../src/block/executor.ts";
import { HealthChecker } from "../../src/block/health-checker.ts";
import { Mapper } from "../../src/block/mapper.ts";
import { type ControllerServices, createControllerApp } from "../../src/controller/app.ts";
import type { ControllerContext } from "../../src/controller/context.ts";
import { EventsProcessor } from "../../src/controller/events.ts";
import { InfraScanner } from "../../src/controller/scanner.ts";
import { StabilityChecker } from "../../src/controller/stability.ts";
import { createGatewayApp } from "../../src/gateway/app.ts";
import { createInstanceApp, type InstanceHandlers, TaskError } from "../../src/instance/app.ts";
import { InstanceMetrics } from "../../src/instance/metrics.ts";
import { type ServedInstance, serveInstance } from "../../src/instance/serve.ts";
import { installBuiltinPolicies } from "../../src/policy/builtins.ts";
import { PolicySet } from "../../src/policy/set.ts";
import { PolicyStore } from "../../src/policy/store.ts";
import { MemoryQueue } from "../../src/queue/index.ts";
import { createRegistryApp } from "../../src/registry/app.ts";
import { RegistryClient } from "../../src/registry/client.ts";
import type {
  BlockServicesStatus,
  InstanceStatus,
  NodeStatus,
  RuntimeDriver,
  VdagControllerStatus,
} from "../../src/runtime/types.ts";
import { openStore, type Store } from "../../src/store/index.ts";

export const CLUSTER_ID = "fuzz-cluster";
export const BLOCK_ID = "fuzz-block";
export const NODE_ID = "fuzz-node";

/** Opens the suite's store: in-memory PGlite (FUZZ_DATABASE_URL=1 with DATABASE_URL: PostgreSQL). */
export const openFuzzStore = (): Promise<Store> =>
  openStore(
    process.env.FUZZ_DATABASE_URL && process.env.DATABASE_URL
      ? { databaseUrl: process.env.DATABASE_URL }
      : {},
  );

type BunServer = ReturnType<typeof Bun.serve>;

/** Serves an app on a loopback port; `url` and `stop`. */
export const serveApp = (fetch: (req: Request) => Response | Promise<Response>) => {
  const server: BunServer = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch, idleTimeout: 0 });
  return { url: `http://127.0.0.1:${server.port}`, stop: () => server.stop(true) };
};

/** What the fuzzed instances do: echo the task's data; `{"refuse": true}` is a TaskError (400). */
export const echoHandlers: InstanceHandlers = {
  onTask(task) {
    const data = task.data as { refuse?: unknown } | null;
    if (data !== null && typeof data === "object" && data.refuse === true) {
      throw new TaskError("refused", "the task asked to be refused");
    }
    return { echo: task.data, session: task.sessionId, seq: task.seqNo, files: task.files.length };
  },
  management(action, data) {
    if (action === "refuse") throw new TaskError("refused", "refused on purpose", 422);
    return { action, data };
  },
  onParameterUpdate(parameters) {
    if (parameters.reject === true) throw new TaskError("bad_parameters", "parameters.reject: refused");
  },
};

/** A real instance on a loopback port (the instance SDK), as a runtime would start it. */
export const startInstance = (id = "fuzz-instance-1"): Promise<ServedInstance> =>
  serveInstance(echoHandlers, {
    port: 0,
    hostname: "127.0.0.1",
    env: { AIOS_BLOCK_ID: BLOCK_ID, AIOS_INSTANCE_ID: id },
  });

/** The instance app alone (for `app.request`), ready. */
export const instanceApp = () => {
  const metrics = new InstanceMetrics("fuzz-instance-app", BLOCK_ID);
  const config = {
    blockId: BLOCK_ID,
    instanceId: "fuzz-instance-app",
    initData: {},
    settings: {},
    parameters: {},
    port: 0,
    gpus: [],
  };
  const state = { ready: true, config, parameters: {}, metrics };
  const ctx = {
    instanceId: config.instanceId,
    blockId: BLOCK_ID,
    initData: {},
    settings: {},
    get parameters() {
      return state.parameters;
    },
    gpus: [],
    metrics,
    events: { pushEvent: async () => "0-0" },
  };
  return createInstanceApp(echoHandlers, state, ctx, { dedupWindow: 64 });
};

/**
 * A block's HTTP apps around an executor that routes to `instanceUrl`: executor metrics and `/mgmt`, a
 * mapper (its own instance list: fuzzed lists never reach the executor), auto-scaler and health checker
 * `/mgmt` (no policy; they see the real instance only).
 */
export const blockApps = (instanceUrl: string) => {
  const instances = [{ id: "fuzz-instance-1", url: instanceUrl }];
  const executor = new Executor({ blockId: BLOCK_ID, instances, transport: "http", attemptTimeoutMs: 5000 });
  const mapper = new Mapper({ blockId: BLOCK_ID, instances });
  const block = readBlockConfig({ id: BLOCK_ID, minInstances: 1, maxInstances: 3 }, BLOCK_ID);
  const autoscaler = new Autoscaler({
    block,
    policy: null,
    metrics: async () => ({ block_metrics: executor.metrics.blockMetrics(), cluster_metrics: null }),
    scale: async () => ({}),
  });
  autoscaler.setInstances(instances);
  const healthChecker = new HealthChecker({
    block,
    policy: null,
    timeoutMs: 2000,
    controller: { removeInstance: async () => ({}) as never },
  });
  healthChecker.setInstances(instances);
  return {
    executor,
    mapper,
    apps: {
      "block executor metrics": createExecutorMetricsApp(executor),
      "block executor mgmt": createExecutorMgmtApp(executor),
      "block mapper": createMapperApp(mapper),
      "block auto-scaler mgmt": createSidecarMgmtApp(autoscaler, "auto-scaler", () => instances),
      "block health-checker mgmt": createSidecarMgmtApp(healthChecker, "health checker", () => instances),
    },
    stop: async () => {
      await Promise.all([autoscaler.stop(), healthChecker.stop()]);
      executor.close();
    },
  };
};

const now = () => new Date().toISOString();

/**
 * A runtime that starts nothing: every instance it "starts" is `instanceUrl` (a real instance), every
 * block's services are `serviceUrls`. Logs exist for started workloads only.
 */
export const fakeRuntime = (instanceUrl: string, serviceUrls: BlockServicesStatus["urls"]): RuntimeDriver => {
  const instances = new Map<string, InstanceStatus>();
  const services = new Map<string, BlockServicesStatus>();
  const vdags = new Map<string, VdagControllerStatus>();
  const node: NodeStatus = {
    nodeId: NODE_ID,
    healthy: true,
    cpu_utilization_percent: 10,
    memory: { total: 1024, allocatable: 1024, usage_percent: 10 },
    disk: null,
    gpus: [],
    checkedAt: now(),
  };
  return {
    name: "process",
    async startInstance(spec) {
      const status: InstanceStatus = {
        blockId: spec.blockId,
        instanceId: spec.instanceId,
        nodeId: spec.nodeId,
        gpus: spec.gpus,
        url: instanceUrl,
        state: "running",
        handle: "fake",
        startedAt: now(),
      };
      instances.set(`${spec.blockId}/${spec.instanceId}`, status);
      return status;
    },
    async stopInstance(blockId, instanceId) {
      instances.delete(`${blockId}/${instanceId}`);
    },
    async listInstances(blockId) {
      return [...instances.values()].filter((i) => blockId === undefined || i.blockId === blockId);
    },
    async startBlockServices(spec) {
      const status: BlockServicesStatus = {
        blockId: spec.blockId,
        state: "running",
        handle: "fake",
        urls: serviceUrls,
        startedAt: now(),
      };
      services.set(spec.blockId, status);
      return status;
    },
    async stopBlockServices(blockId) {
      services.delete(blockId);
    },
    async getBlockServices(blockId) {
      return services.get(blockId) ?? null;
    },
    async applyVdagController(spec) {
      const status = { id: spec.id, replicas: spec.replicas, handles: [], urls: [] };
      vdags.set(spec.id, status);
      return status;
    },
    async removeVdagController(id) {
      vdags.delete(id);
    },
    async listVdagControllers() {
      return [...vdags.values()];
    },
    async readLogs(blockId, instanceId) {
      if (instanceId === null) return services.has(blockId) ? ["services started"] : null;
      return instances.has(`${blockId}/${instanceId}`) ? ["instance started"] : null;
    },
    async probeNodes() {
      return [{ ...node, checkedAt: now() }];
    },
    watch: () => () => {},
    adopt: async () => ({ adopted: [], cleaned: [] }),
    close: async () => {},
  };
};

/** The cluster document the fuzzed controller governs (its own copy: fuzzing the registry cannot change it). */
export const clusterDocument = (controllerUrl: string) => ({
  id: CLUSTER_ID,
  status: "live",
  nodes: { count: 1, nodeData: [{ id: NODE_ID, gpus: { count: 0 }, memory: 1024 }] },
  config: { urlMap: { controllerService: controllerUrl } },
  tags: ["fuzz"],
});

/**
 * The whole environment: a store with the built-in policies, the registry (in process and on a port),
 * a real instance, a block's apps (served on ports, as the controller reaches them) and a controller.
 */
export const startEnvironment = async () => {
  const store = await openFuzzStore();
  await installBuiltinPolicies(new PolicyStore(store));
  const registryApp = createRegistryApp(store);
  const registryServer = serveApp(registryApp.fetch);
  const registry = new RegistryClient(registryServer.url);
  const instance = await startInstance();
  const block = blockApps(instance.url);
  const served = {
    metrics: serveApp(block.apps["block executor metrics"].fetch),
    executor: serveApp(block.apps["block executor mgmt"].fetch),
    mapper: serveApp(block.apps["block mapper"].fetch),
    autoscaler: serveApp(block.apps["block auto-scaler mgmt"].fetch),
    "health-checker": serveApp(block.apps["block health-checker mgmt"].fetch),
  };
  const runtime = fakeRuntime(instance.url, {
    metrics: served.metrics.url,
    executor: served.executor.url,
    mapper: served.mapper.url,
    autoscaler: served.autoscaler.url,
    "health-checker": served["health-checker"].url,
  });
  const queue = new MemoryQueue();
  const policies = new PolicySet((uri) => registry.compiledPolicy(uri));
  let controllerUrl = "http://127.0.0.1:1";
  const ctx: ControllerContext = {
    clusterId: CLUSTER_ID,
    store,
    runtime,
    queue,
    policies,
    cluster: async () => clusterDocument(controllerUrl),
    clusterMetrics: async () => null,
    get url() {
      return controllerUrl;
    },
    registryUrl: registry.baseUrl,
    unhealthyNodes: () => new Set<string>(),
    cordon: () => {},
    startConcurrency: 2,
  };
  const scanner = new InfraScanner(ctx, { intervalMs: 60_000 });
  const stability = new StabilityChecker(ctx, {
    nodesData: async () => (await runtime.probeNodes()).map((n) => ({ ...n })),
    fetch: async () => new Response(null, { status: 204 }),
  });
  const events = new EventsProcessor(ctx);
  const services: ControllerServices = { ctx, registry, scanner, stability, events };
  const controllerApp = createControllerApp(services);
  const controllerServer = serveApp(controllerApp.fetch);
  controllerUrl = controllerServer.url;
  // The registry knows the cluster (the gateway finds it there), pointing at this controller.
  await store.collection("clusters").upsert(CLUSTER_ID, clusterDocument(controllerUrl));
  const gatewayPolicies = new PolicySet((uri) => registry.compiledPolicy(uri));
  const gatewayApp = createGatewayApp({
    registry,
    policies: gatewayPolicies,
    creations: store.collection("block_creations"),
    // As startGateway builds it: the tokens and the audit log on the same store.
    tokens: new TokenStore(store),
    audit: new AuditLog(store),
    controllerTimeoutMs: 3000,
    dryRunTimeoutMs: 3000,
  });
  return {
    store,
    registry,
    registryApp,
    registryUrl: registryServer.url,
    instance,
    block,
    ctx,
    runtime,
    controllerApp,
    controllerUrl,
    gatewayApp,
    async stop() {
      await queue.close();
      await policies.close();
      await gatewayPolicies.close();
      controllerServer.stop();
      for (const s of Object.values(served)) await s.stop();
      await block.stop();
      await instance.stop();
      await registryServer.stop();
      await store.close();
    },
  };
};

export type Environment = Awaited<ReturnType<typeof startEnvironment>>;
