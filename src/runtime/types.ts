/**
 * The infrastructure driver interface (DESIGN.md, src/runtime/): what the cluster controller asks of
 * the infrastructure, shaped so that local processes (the embedded default) and Kubernetes (pods,
 * deployments, nodes) both fit without changes to callers.
 *
 * - An instance is one replica of a block's component, placed on a node with GPUs (a pod pinned to a
 *   node with its GPUs; a child process with CUDA_VISIBLE_DEVICES).
 * - Block services are the block's executor and sidecars (`aios block-runtime`; a deployment and its
 *   services on Kubernetes), with one URL per listener.
 * - A vDAG controller is a replicated workload with a replica count.
 * - Nodes are the inventory the scanner watches.
 * - `watch` reports what changed underneath (an instance exited, a node turned unhealthy), so the
 *   controller can heal without polling every workload.
 */

/**
 * How the controller's workloads (instances, block services, vDAG replicas) authenticate: the
 * credential they present when they call aios services, and whether they let calls without a token in.
 * Drivers set it as AIOS_TOKEN and AIOS_ANONYMOUS=1 (a Secret on Kubernetes); workloads verify other
 * callers' tokens at AIOS_CONTROLLER_URL (`GET /auth/whoami`).
 */
export interface WorkloadAuth {
  /** The controller's credential, handed to its workloads (normally an `internal`-scoped token). */
  token?: string;
  /** Calls without a token act as admin (local development only, as on the controller). */
  anonymous?: boolean;
}

/** The environment of `auth`: AIOS_TOKEN and AIOS_ANONYMOUS (the token may be left out, see Kubernetes). */
export const workloadAuthEnv = (
  auth: WorkloadAuth | undefined,
  options: { token?: boolean } = {},
): Record<string, string> => ({
  ...(auth?.token && options.token !== false ? { AIOS_TOKEN: auth.token } : {}),
  ...(auth?.anonymous ? { AIOS_ANONYMOUS: "1" } : {}),
});

/** How a workload is run: a command on the process runtime, an image on Kubernetes. */
export interface WorkloadTemplate {
  /** Process runtime: argv, e.g. `["bun", "examples/sentiment/instance.ts"]`. */
  command?: string[];
  /** Kubernetes: the container image. */
  image?: string;
  /** Extra environment for the workload. */
  env?: Record<string, string>;
  /** Process runtime: working directory (default: the controller's). */
  cwd?: string;
}

export interface InstanceSpec {
  blockId: string;
  instanceId: string;
  nodeId: string;
  /** GPU ids on that node (the driver exposes them, e.g. as CUDA_VISIBLE_DEVICES). */
  gpus: string[];
  template: WorkloadTemplate;
  /**
   * The instance SDK's configuration (src/instance/config.ts), set by the driver as AIOS_BLOCK_ID,
   * AIOS_INSTANCE_ID, AIOS_INIT_DATA, AIOS_INIT_SETTINGS, AIOS_PARAMETERS (JSON-encoded).
   */
  initData?: unknown;
  initSettings?: unknown;
  parameters?: Record<string, unknown>;
  /** Where the instance's events go: AIOS_CONTROLLER_URL (and REDIS_URL when the cluster has one). */
  controllerUrl?: string;
  redisUrl?: string;
}

export type WorkloadState = "starting" | "running" | "exited" | "failed";

export interface InstanceStatus {
  blockId: string;
  instanceId: string;
  nodeId: string;
  gpus: string[];
  /** Base URL of the instance's task protocol; null until it is reachable. */
  url: string | null;
  state: WorkloadState;
  /** Process runtime: the pid; Kubernetes: the pod name. */
  handle: string;
  startedAt: string;
  exitCode?: number | null;
  /** Where its output goes (process runtime: a file path). */
  log?: string;
}

/** The listeners of `aios block-runtime` (src/block/serve.ts BLOCK_PORTS). */
export type BlockServiceName = "grpc" | "metrics" | "executor" | "mapper" | "autoscaler" | "health-checker";

export interface BlockServicesSpec {
  blockId: string;
  /** The block document, as `aios block-runtime --block` takes it. */
  block: Record<string, unknown>;
  /** Instances known at start (the controller pushes changes to the mapper afterwards). */
  instances: { id: string; url: string }[];
  controllerUrl: string;
  registryUrl: string;
  clusterId: string;
}

export interface BlockServicesStatus {
  blockId: string;
  state: WorkloadState;
  handle: string;
  /** URL of each listener; empty until running. */
  urls: Partial<Record<BlockServiceName, string>>;
  startedAt: string;
  log?: string;
}

export interface VdagControllerSpec {
  id: string;
  replicas: number;
  template: WorkloadTemplate;
  config?: Record<string, unknown>;
}

export interface VdagControllerStatus {
  id: string;
  replicas: number;
  /** One entry per running replica. */
  handles: string[];
  urls: string[];
}

export interface NodeStatus {
  nodeId: string;
  healthy: boolean;
  /** Why it is unhealthy, when it is. */
  reason?: string;
  cpu_utilization_percent: number | null;
  memory: { total: number; allocatable: number; usage_percent: number } | null;
  disk: { total: number; allocatable: number; usage_percent: number } | null;
  gpus: { id: string; memory_total: number | null; memory_used: number | null; utilization: number | null }[];
  checkedAt: string;
}

export type RuntimeEvent =
  | { type: "instance_exited"; blockId: string; instanceId: string; exitCode: number | null }
  | { type: "services_exited"; blockId: string; exitCode: number | null }
  | { type: "node_changed"; nodeId: string; healthy: boolean };

export interface AdoptReport {
  /** Workloads found still running and taken over. */
  adopted: string[];
  /** Records of workloads that no longer run, removed (and anything half-alive stopped). */
  cleaned: string[];
}

export interface RuntimeDriver {
  readonly name: "process" | "kubernetes";

  /** Starts an instance; resolves once it answers its health check (state "running") or failed. */
  startInstance(spec: InstanceSpec): Promise<InstanceStatus>;
  /** Stops it (gracefully, then forcibly) and forgets it; no-op when unknown. */
  stopInstance(blockId: string, instanceId: string): Promise<void>;
  listInstances(blockId?: string): Promise<InstanceStatus[]>;

  startBlockServices(spec: BlockServicesSpec): Promise<BlockServicesStatus>;
  stopBlockServices(blockId: string): Promise<void>;
  getBlockServices(blockId: string): Promise<BlockServicesStatus | null>;

  /** Creates, or scales to `spec.replicas`. */
  applyVdagController(spec: VdagControllerSpec): Promise<VdagControllerStatus>;
  removeVdagController(id: string): Promise<void>;
  listVdagControllers(): Promise<VdagControllerStatus[]>;

  /**
   * The last `tailLines` lines a workload wrote (an instance, or the block's services when `instanceId`
   * is null); null when the driver knows no such workload. Logs of a stopped workload may outlive it.
   */
  readLogs(blockId: string, instanceId: string | null, tailLines: number): Promise<string[] | null>;

  /**
   * Node lifecycle, where the infrastructure has one (Kubernetes: label and uncordon a node joining the
   * cluster; cordon, drain and unlabel one leaving). The process runtime has none: nodes are declared.
   */
  onboardNode?(nodeId: string): Promise<unknown>;
  removeNode?(nodeId: string): Promise<unknown>;

  /** Health of every node the driver can see now (the local machine for the process runtime). */
  probeNodes(): Promise<NodeStatus[]>;

  /** Changes underneath; returns the unsubscribe. */
  watch(listener: (event: RuntimeEvent) => void): () => void;
  /** At start: take over what still runs from the records, clean up what does not. */
  adopt(): Promise<AdoptReport>;
  /** Stops watching; workloads keep running (a restarted controller adopts them). */
  close(): Promise<void>;
}
