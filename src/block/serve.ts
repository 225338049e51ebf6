/**
 * Hosting one block's services in this process (`aios block-runtime`): the executor's inference
 * server (gRPC, gRPC-web and Connect, over HTTP/2 and HTTP/1.1 on one port),
 * its metrics and `/mgmt`, the mapper, the auto-scaler and the health checker, each on its own port
 * (block-runtime.md's table; 0 picks a free port). The mapper feeds the instance list to the other
 * three; the executor's instance failures wake the health checker early.
 */
import { Guard } from "../auth/guard.ts";
import { ControllerClient, type ScaleRequest } from "../controller/client.ts";
import { connectHandler } from "../http/connect-adapter.ts";
import { listenDualProtocol } from "../http/dual-protocol.ts";
import { displayHost, type Listener } from "../http/listen.ts";
import { type CompiledPolicy, instantiatePolicy, type PolicyInstance } from "../policy/runtime.ts";
import { RegistryClient } from "../registry/client.ts";
import {
  createExecutorMetricsApp,
  createExecutorMgmtApp,
  createMapperApp,
  createSidecarMgmtApp,
  executorGrpcFastPath,
  executorRoutes,
  MAX_INFERENCE_MESSAGE_BYTES,
} from "./app.ts";
import { Autoscaler } from "./autoscaler.ts";
import { type BlockConfig, type RuntimePolicyName, readBlockConfig, secondsSetting } from "./config.ts";
import { Executor } from "./executor.ts";
import { HealthChecker } from "./health-checker.ts";
import { httpInstanceSource, type InstanceRef, Mapper } from "./mapper.ts";
import { fetchInstanceReports, withInstanceReports } from "./metrics.ts";

/** The specification's ports (block-runtime.md, "Block Services"). */
export const BLOCK_PORTS = {
  grpc: 50051,
  metrics: 18000,
  executor: 18001,
  mapper: 5000,
  autoscaler: 10000,
  health: 19001,
} as const;
export type BlockPortName = keyof typeof BLOCK_PORTS;

export interface BlockRuntimeOptions {
  blockId: string;
  /** The block document (policies, min/max instances); fetched from the controller when absent. */
  block?: unknown;
  host?: string;
  ports?: Partial<Record<BlockPortName, number>>;
  /** The instances known at start. */
  instances?: readonly InstanceRef[];
  /** A URL the mapper polls for the instance list. */
  instancesUrl?: string;
  mapperIntervalMs?: number;
  controllerUrl?: string;
  /** Where policies (and the cluster's document and metrics) come from. */
  registryUrl?: string;
  clusterId?: string;
  /** Overrides the registry as the source of compiled policies (tests, embedded hosts). */
  resolvePolicy?: (uri: string) => Promise<CompiledPolicy>;
  /** Override the policies' `settings.interval_sec` / `check_interval_sec` / `timeout_sec`. */
  autoscalerIntervalMs?: number;
  healthIntervalMs?: number;
  healthTimeoutMs?: number;
  attemptTimeoutMs?: number;
  /** On stop, how long tasks in progress may take to finish (new ones are refused); default 10 s. */
  drainMs?: number;
  /**
   * Checks the callers of every listener (gRPC inference included); default Guard.open(). `aios
   * block-runtime` builds a workloadGuard. Calls the services make carry this process's credential.
   */
  guard?: Guard;
}

export interface RunningBlock {
  blockId: string;
  block: BlockConfig;
  executor: Executor;
  mapper: Mapper;
  autoscaler: Autoscaler;
  healthChecker: HealthChecker;
  listeners: Listener[];
  url(name: string): string;
  stop(): Promise<void>;
}

/** A failure earlier than this after the last health check does not start another one. */
const EARLY_CHECK_GAP_MS = 1000;

export const startBlockRuntime = async (options: BlockRuntimeOptions): Promise<RunningBlock> => {
  const host = options.host ?? "127.0.0.1";
  const ports = { ...BLOCK_PORTS, ...options.ports };
  const guard = options.guard ?? Guard.open();
  const controller = options.controllerUrl ? new ControllerClient(options.controllerUrl) : null;
  const registry = options.registryUrl ? new RegistryClient(options.registryUrl) : null;
  const document =
    options.block ?? (controller ? await controller.getBlock(options.blockId) : { id: options.blockId });
  const block = readBlockConfig(document, options.blockId);

  const clusterId = options.clusterId;
  const clusterData = async (): Promise<Record<string, unknown> | null> =>
    registry && clusterId ? registry.getCluster(clusterId).catch(() => null) : null;
  const clusterMetrics = async (): Promise<unknown> =>
    registry && clusterId ? registry.getClusterMetrics(clusterId).catch(() => null) : null;

  const resolve =
    options.resolvePolicy ??
    ((uri: string) => {
      if (!registry) {
        throw new Error(`policy ${uri}: no registry to load it from (--registry URL)`);
      }
      return registry.compiledPolicy(uri);
    });
  const cluster = await clusterData();
  const policies: PolicyInstance[] = [];
  const load = async (name: RuntimePolicyName): Promise<PolicyInstance | null> => {
    const spec = block.policies[name];
    if (!spec) return null;
    const compiled = await resolve(spec.policyRuleURI);
    if (compiled.kind !== name) {
      throw new Error(
        `policies.${name}: ${spec.policyRuleURI} is a ${compiled.kind} policy, not a ${name} policy`,
      );
    }
    const instance = await instantiatePolicy(compiled, {
      ruleId: `${block.blockId}/${name}`,
      settings: { ...spec.settings, block_data: block.document, cluster_data: cluster ?? {} },
      parameters: spec.parameters,
    });
    policies.push(instance);
    return instance;
  };

  const servers: { name: string; close(): Promise<void> }[] = [];
  const stopAll = async () => {
    for (const s of servers.splice(0).reverse()) await s.close().catch(() => {});
    for (const p of policies.splice(0)) await p.close().catch(() => {});
  };

  try {
    const [lb, scalerPolicy, healthPolicy] = [
      await load("loadBalancer"),
      await load("autoscaler"),
      await load("stabilityChecker"),
    ];
    const noController = async () => {
      throw new Error("no cluster controller is configured (--controller URL)");
    };
    const healthSettings = block.policies.stabilityChecker?.settings;
    const healthChecker = new HealthChecker({
      block,
      policy: healthPolicy,
      intervalMs:
        options.healthIntervalMs ??
        secondsSetting(healthSettings, ["check_interval_sec", "interval_sec"], 15_000),
      timeoutMs: options.healthTimeoutMs ?? secondsSetting(healthSettings, ["timeout_sec"], 5000),
      controller: controller ?? { removeInstance: noController },
    });
    let lastEarlyCheck = 0;
    const executor = new Executor({
      blockId: block.blockId,
      policy: lb,
      ...(options.attemptTimeoutMs !== undefined ? { attemptTimeoutMs: options.attemptTimeoutMs } : {}),
      onInstanceFailure: () => {
        const now = Date.now();
        if (now - lastEarlyCheck < EARLY_CHECK_GAP_MS) return;
        lastEarlyCheck = now;
        healthChecker.check().catch(() => {});
      },
    });
    const autoscaler = new Autoscaler({
      block,
      policy: scalerPolicy,
      intervalMs:
        options.autoscalerIntervalMs ??
        secondsSetting(block.policies.autoscaler?.settings, ["interval_sec", "check_interval_sec"], 30_000),
      metrics: async () => ({
        block_metrics: withInstanceReports(
          executor.metrics.blockMetrics(),
          await fetchInstanceReports(mapper.instances),
        ),
        cluster_metrics: await clusterMetrics(),
      }),
      clusterData,
      scale: (request: ScaleRequest) => (controller ? controller.scale(request) : noController()),
    });
    const mapper = new Mapper({
      blockId: block.blockId,
      instances: options.instances ?? [],
      source: options.instancesUrl ? httpInstanceSource(options.instancesUrl) : null,
      ...(options.mapperIntervalMs !== undefined ? { intervalMs: options.mapperIntervalMs } : {}),
    });
    mapper.subscribe(({ instances }) => {
      executor.setInstances(instances);
      autoscaler.setInstances(instances);
      healthChecker.setInstances(instances);
    });

    const grpc = await listenDualProtocol(
      connectHandler({
        routes: executorRoutes(executor, guard),
        readMaxBytes: MAX_INFERENCE_MESSAGE_BYTES,
      }),
      ports.grpc,
      host,
      executorGrpcFastPath(executor, guard),
    );
    servers.push({ name: "grpc", close: () => grpc.close() });
    const grpcUrl = `http://${displayHost(host)}:${grpc.port}`;
    const listeners: Listener[] = [{ name: "grpc", url: grpcUrl }];

    const serveHttp = (name: string, port: number, fetch: (req: Request) => Response | Promise<Response>) => {
      const server = Bun.serve({ hostname: host, port, fetch });
      servers.push({ name, close: () => server.stop(true) });
      listeners.push({ name, url: `http://${displayHost(host)}:${server.port}` });
    };
    serveHttp("metrics", ports.metrics, createExecutorMetricsApp(executor, guard).fetch);
    serveHttp("executor", ports.executor, createExecutorMgmtApp(executor, guard).fetch);
    serveHttp("mapper", ports.mapper, createMapperApp(mapper, guard).fetch);
    serveHttp(
      "autoscaler",
      ports.autoscaler,
      createSidecarMgmtApp(autoscaler, "auto-scaler", () => mapper.instances, guard).fetch,
    );
    serveHttp(
      "health-checker",
      ports.health,
      createSidecarMgmtApp(healthChecker, "health checker", () => mapper.instances, guard).fetch,
    );

    mapper.start();
    autoscaler.start();
    healthChecker.start();
    servers.push({
      name: "sidecars",
      close: async () => {
        mapper.stop();
        await Promise.all([autoscaler.stop(), healthChecker.stop()]);
      },
    });

    return {
      blockId: block.blockId,
      block,
      executor,
      mapper,
      autoscaler,
      healthChecker,
      listeners,
      url(name) {
        const l = listeners.find((x) => x.name === name);
        if (!l) throw new Error(`no listener named ${name}`);
        return l.url;
      },
      async stop() {
        // Answer what is in progress before the connections close; new tasks get Unavailable.
        await executor.drain(options.drainMs ?? 10_000);
        await stopAll();
        executor.close();
      },
    };
  } catch (err) {
    await stopAll();
    throw err;
  }
};
