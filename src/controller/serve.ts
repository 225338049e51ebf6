/**
 * `startController`: one cluster's controller in this process (`aios controller`). Opens the store and
 * the event queue, registers (or updates) the cluster document with its `urlMap` in the registry,
 * opens the runtime and adopts what still runs from a previous start, then serves the API and starts
 * the scanner and the block events processor.
 */
import { hostname, loadavg } from "node:os";
import { join } from "node:path";
import { AuditLog } from "../auth/audit.ts";
import { type Authenticator, remoteAuthenticator, storeAuthenticator } from "../auth/authenticator.ts";
import { serviceToken } from "../auth/credential.ts";
import { Guard } from "../auth/guard.ts";
import type { Principal } from "../auth/scopes.ts";
import { TokenStore } from "../auth/tokens.ts";
import { ServiceClientError } from "../http/client.ts";
import { listenDualProtocol, type StreamHook } from "../http/dual-protocol.ts";
import { displayHost, type Listener } from "../http/listen.ts";
import { nodeHandler } from "../http/node-adapter.ts";
import { type PolicyResolver, PolicySet } from "../policy/set.ts";
import { openQueue, queueConfigFrom } from "../queue/index.ts";
import { RegistryClient } from "../registry/client.ts";
import { openRuntime, type RuntimeConfig } from "../runtime/index.ts";
import type { AdoptReport, RuntimeDriver } from "../runtime/types.ts";
import { isOpenStore, openStore, type Store, type StoreConfig } from "../store/index.ts";
import { createControllerApp } from "./app.ts";
import { findBlocks, type ResumedBlock, resumeBlocks } from "./blocks.ts";
import { clusterMetricsDocument } from "./cluster-metrics.ts";
import type { ControllerContext } from "./context.ts";
import { EventsProcessor } from "./events.ts";
import { closeGrpcSessions, grpcProxy } from "./gateway.ts";
import { InfraScanner, type NodeState } from "./scanner.ts";
import { StabilityChecker } from "./stability.ts";

export const CONTROLLER_PORT = 7000;

export interface ControllerOptions {
  clusterId: string;
  host?: string;
  port?: number;
  registryUrl: string;
  /** The blocks' and runtime records' store: a config (opened and closed here) or an open store (shared). */
  store?: StoreConfig | Store;
  /** Where the process runtime keeps logs; default `<dataDir>/runtime`, else `.data/runtime`. */
  runDir?: string;
  redisUrl?: string;
  runtime?: Omit<RuntimeConfig, "store" | "runDir" | "controllerUrl">;
  scanIntervalMs?: number;
  /** How many instances start at once on create or upscale; default 4. */
  startConcurrency?: number;
  /**
   * Publish the cluster's metrics (load, CPU, memory, GPUs) to the registry after each scan. Off by
   * default: a cluster whose metrics come from elsewhere keeps them.
   */
  publishClusterMetrics?: boolean;
  /** The URL the registry, gateway and workloads are given for this controller; default the bound one. */
  advertiseUrl?: string;
  /** Overrides the registry as the source of compiled policies (tests). */
  resolvePolicy?: PolicyResolver;
  /**
   * Who may call (src/auth/routes.ts, service "controller"); default Guard.open(): everything, no
   * tokens (embedding and tests). `aios controller` passes controllerGuard(...).
   */
  guard?: Guard;
  /**
   * The credential workloads get (AIOS_TOKEN: instances, block services, vDAG replicas), with which
   * they call this controller and the registry. Default: this process's credential (serviceToken(),
   * which the controller's own calls present too).
   */
  token?: string;
  /** Workloads let calls without a token in (AIOS_ANONYMOUS=1); default: whether the guard does. */
  anonymous?: boolean;
}

/**
 * The guard of `aios controller`: tokens are looked up in the controller's store, and those it does not
 * hold at the registry (`GET /auth/whoami`), where `aios token create` puts them when the controller
 * keeps its own database; calls are audited in the controller's store.
 */
export const controllerGuard = (
  store: Store,
  registryUrl: string,
  settings: { anonymous?: boolean } = {},
): Guard => {
  // Each is cached (authenticator.ts): a revoked token stops working within CACHE_MS either way.
  const local = storeAuthenticator(new TokenStore(store));
  const registry = remoteAuthenticator(registryUrl);
  const authenticator: Authenticator = {
    async authenticate(token): Promise<Principal | null> {
      const principal = (await local.authenticate(token)) ?? (await registry.authenticate(token));
      // A registry that lets anyone in vouches for no token.
      return principal?.anonymous ? null : principal;
    },
  };
  return new Guard({ authenticator, anonymous: settings.anonymous === true, audit: new AuditLog(store) });
};

export interface RunningController {
  ctx: ControllerContext;
  url: string;
  listeners: Listener[];
  adopted: AdoptReport;
  /** Blocks whose workloads were gone and were started again. */
  resumed: ResumedBlock[];
  scanner: InfraScanner;
  events: EventsProcessor;
  /** Stops serving; instances and block services keep running (a restart adopts them). */
  stop(): Promise<void>;
  /** Stops serving and every workload it started (tests, `aios up` shutdown). */
  stopAll(): Promise<void>;
}

/** Registers the cluster document when missing, then records where this controller answers. */
const registerCluster = async (registry: RegistryClient, clusterId: string, url: string) => {
  try {
    await registry.getCluster(clusterId);
  } catch (err) {
    if (!(err instanceof ServiceClientError) || err.status !== 404) throw err;
    await registry.createCluster({
      id: clusterId,
      status: "live",
      nodes: { count: 1, nodeData: [{ id: hostname() }] },
      config: {},
    });
  }
  await registry.updateCluster(clusterId, {
    $set: {
      "config.urlMap": {
        controllerService: url,
        blocksQuery: `${url}/blocks`,
        publicGateway: url,
        parameterUpdater: `${url}/mgmt`,
        metricsService: `${registry.baseUrl}/cluster/${clusterId}`,
      },
    },
  });
};

export const startController = async (options: ControllerOptions): Promise<RunningController> => {
  const ownStore = !isOpenStore(options.store);
  const host = options.host ?? "127.0.0.1";
  const guard = options.guard ?? Guard.open();
  const workloadToken = options.token ?? serviceToken();
  const workloadAuth = {
    ...(workloadToken ? { token: workloadToken } : {}),
    anonymous: options.anonymous ?? guard.anonymous,
  };
  let handler: (req: Request) => Response | Promise<Response> = () =>
    Response.json(
      { error: { code: "starting", message: "the controller is starting", details: null } },
      { status: 503 },
    );
  // One port for the API (HTTP/1.1 and HTTP/2) and plain gRPC to blocks through the public gateway.
  let hook: StreamHook = () => false;
  const server = await listenDualProtocol(
    nodeHandler((req) => handler(req)),
    options.port ?? CONTROLLER_PORT,
    host,
    (stream, headers) => hook(stream, headers),
  );
  const url = `http://${displayHost(host)}:${server.port}`;
  // Where others reach this controller: the bind address is not it behind a Service or a NAT.
  const advertised = options.advertiseUrl?.replace(/\/+$/, "") ?? url;
  let store: Store | null = null;
  let runtime: RuntimeDriver | null = null;
  const cleanup = async () => {
    await server.close();
    await runtime?.close().catch(() => {});
    if (ownStore) await store?.close().catch(() => {});
  };
  try {
    const registry = new RegistryClient(options.registryUrl);
    await registerCluster(registry, options.clusterId, advertised);
    store = isOpenStore(options.store) ? options.store : await openStore(options.store ?? {});
    const queue = openQueue(options.redisUrl ? { redisUrl: options.redisUrl } : queueConfigFrom());
    const dataDir = isOpenStore(options.store) ? undefined : options.store?.dataDir;
    const runDir = options.runDir ?? join(dataDir ?? ".data", "runtime");
    runtime = await openRuntime({
      ...options.runtime,
      store,
      runDir,
      controllerUrl: advertised,
      scope: options.clusterId,
      workloadAuth,
    });
    const policies = new PolicySet(options.resolvePolicy ?? ((uri) => registry.compiledPolicy(uri)));
    let scanner: InfraScanner | null = null;
    const ctx: ControllerContext = {
      clusterId: options.clusterId,
      store,
      runtime,
      queue,
      policies,
      url: advertised,
      registryUrl: registry.baseUrl,
      cluster: () => registry.getCluster(options.clusterId),
      clusterMetrics: () => registry.getClusterMetrics(options.clusterId).catch(() => null),
      startConcurrency: options.startConcurrency ?? 4,
      unhealthyNodes: () => scanner?.unhealthy() ?? new Set(),
      cordon: (nodeId, cordoned) => scanner?.cordon(nodeId, cordoned),
    };
    const runtimeKind = runtime.name;
    scanner = new InfraScanner(ctx, {
      ...(options.scanIntervalMs === undefined ? {} : { intervalMs: options.scanIntervalMs }),
      ...(options.publishClusterMetrics
        ? {
            publish: (nodes: readonly NodeState[]) =>
              registry.putClusterMetrics(
                options.clusterId,
                clusterMetricsDocument(nodes, {
                  // The load averages are this machine's: the process runtime's workloads run here.
                  loadavg: runtimeKind === "process" ? (loadavg() as [number, number, number]) : null,
                  vcpus: navigator.hardwareConcurrency,
                }),
              ),
          }
        : {}),
    });
    const nodeScanner = scanner;
    // The scanner's view of the cluster's declared nodes (operator verdicts included), not the bare
    // probe of this machine: that is what the stability policy judges (cluster-controller.md).
    const stability = new StabilityChecker(ctx, {
      nodesData: async () =>
        (await nodeScanner.nodesStatus()).map((s) => ({
          nodeId: s.node_id,
          healthy: s.status === "healthy",
          ...(s.reason !== null ? { reason: s.reason } : {}),
          cpu_utilization_percent: s.cpu_utilization_percent,
          memory: s.memory,
          disk: s.disk,
        })),
    });
    const events = new EventsProcessor(ctx);
    const adopted = await runtime.adopt();
    handler = createControllerApp({ ctx, registry, scanner, stability, events, guard }).fetch;
    hook = grpcProxy(ctx);
    // Serving already: restarted block services register with the controller as they come up.
    const resumed = await resumeBlocks(ctx);
    scanner.start();
    events.start();
    const stopServing = async () => {
      await scanner?.stop();
      await events.stop();
      await server.close();
      closeGrpcSessions();
      await policies.close();
      await queue.close();
      await runtime?.close();
      if (ownStore) await store?.close();
    };
    return {
      ctx,
      url,
      listeners: [{ name: "controller", url }],
      adopted,
      resumed,
      scanner,
      events,
      stop: stopServing,
      async stopAll() {
        await scanner?.stop();
        for (const block of await findBlocks(ctx)) {
          await ctx.runtime.stopBlockServices(block.id).catch(() => {});
          for (const i of (block.instances as { instance_id: string }[]) ?? []) {
            await ctx.runtime.stopInstance(block.id, i.instance_id).catch(() => {});
          }
        }
        for (const v of await ctx.runtime.listVdagControllers()) await ctx.runtime.removeVdagController(v.id);
        await stopServing();
      },
    };
  } catch (err) {
    await cleanup();
    throw err;
  }
};
