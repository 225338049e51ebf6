/**
 * The process runtime, the embedded default infrastructure driver: every workload is a local child
 * process, started detached (its own process group, not waited for) with its output appended to
 * `<runDir>/logs/<kind>-<id>.log`, so that it outlives the controller that started it. Each one is a
 * document in `runtime_processes` (pid, process group, start time, ports, URLs, log, command); a
 * restarted controller calls `adopt()` to take over what still runs and clean up the rest.
 *
 * - Instances: the template's command with the instance SDK's environment (src/instance/config.ts) and a
 *   free port in AIOS_INSTANCE_PORT; running once `GET /health` answers 200.
 * - Block services: `aios block-runtime` with a free port per listener; running once the executor's
 *   `POST /mgmt {"mgmt_action":"policy_info"}` answers 200.
 * - vDAG controllers: `replicas` copies of the template's command, each with a free port in AIOS_PORT;
 *   running once alive for a moment (there is no readiness contract for them yet).
 *
 * Exits are noticed from the child's exit event when this driver spawned it, else by polling the pid
 * every `probeIntervalMs`; they reach `watch` listeners as `instance_exited` / `services_exited`, and
 * the record stays (state "exited") until the workload is stopped. A recorded pid only counts as ours
 * while its start time (/proc) matches the record, so a reused pid is never signalled.
 *
 * Record ids: `instance:<blockId>:<instanceId>`, `services:<blockId>`, `vdag:<id>:<replica>`, and
 * `vdag_controller:<id>` for a vDAG controller's wanted replica count (no process of its own). Every
 * workload runs on this machine whatever its spec's nodeId (recorded as given).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { appendFileSync, closeSync, existsSync, mkdirSync, openSync, writeFileSync } from "node:fs";
import { constants, hostname } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { z } from "zod";
import type { Doc, DocumentCollection, Store } from "../store/index.ts";
import { ScopedCollection } from "../store/scoped.ts";
import { LocalNodeProbe } from "./local-node.ts";
import { fileSize, isAlive, PortPicker, procStartTicks, signalGroup, tailLines } from "./os-process.ts";
import type {
  AdoptReport,
  BlockServiceName,
  BlockServicesSpec,
  BlockServicesStatus,
  InstanceSpec,
  InstanceStatus,
  NodeStatus,
  RuntimeDriver,
  RuntimeEvent,
  VdagControllerSpec,
  VdagControllerStatus,
  WorkloadAuth,
  WorkloadState,
  WorkloadTemplate,
} from "./types.ts";
import { workloadAuthEnv } from "./types.ts";

export interface ProcessDriverOptions {
  store: Store;
  /** Where logs (`logs/`) and block documents (`blocks/`) go; `<dataDir>/runtime` by convention. */
  runDir: string;
  /** The controller's URL, given to instances (AIOS_CONTROLLER_URL) unless their spec names another. */
  controllerUrl?: string;
  /**
   * The credential every workload gets (AIOS_TOKEN, AIOS_ANONYMOUS): the controller's environment is not
   * inherited (AIOS_* are left out), so it is passed here. Also what the readiness check of block
   * services presents.
   */
  workloadAuth?: WorkloadAuth;
  /** This machine's node id; default the host name. */
  nodeId?: string;
  /** How often adopted workloads are checked for liveness; default 1 s. */
  probeIntervalMs?: number;
  /** Longest wait for a workload to become ready; default 30 s. */
  startTimeoutMs?: number;
  /** Between SIGTERM and SIGKILL on stop; default 5 s. */
  stopGraceMs?: number;
  /** How long a vDAG replica must stay alive to count as running; default 200 ms. */
  vdagSettleMs?: number;
  /** Probe the node this often and emit `node_changed` when its health flips; default 0 (off). */
  nodeProbeIntervalMs?: number;
  memoryThresholdPercent?: number;
  diskThresholdPercent?: number;
  /** The nvidia-smi executable; default from PATH. */
  nvidiaSmi?: string;
  /** argv before the block-runtime flags; default `bun run <src/cli/main.ts> block-runtime`. */
  blockRuntimeCommand?: string[];
  /**
   * Whose records these are (the cluster id): drivers of several controllers over one database see,
   * adopt and clean only their own. Unset: every record is this driver's.
   */
  scope?: string;
}

/** A workload that did not become ready: it was killed; the log says why. */
export class WorkloadStartError extends Error {
  override readonly name = "WorkloadStartError";
  readonly state: WorkloadState = "failed";

  constructor(
    readonly workload: string,
    reason: string,
    readonly log: string | null,
    readonly logTail: string[],
    readonly exitCode: number | null = null,
    /** The process that was started and killed; null when none could be. */
    readonly pid: number | null = null,
  ) {
    super(
      `${workload} failed to start: ${reason}` +
        (log
          ? `; log ${log}${logTail.length > 0 ? `, last lines:\n${logTail.map((l) => `  ${l}`).join("\n")}` : " (empty)"}`
          : ""),
    );
  }
}

type ProcessKind = "instance" | "services" | "vdag";

const ProcessRecordSchema = z.looseObject({
  id: z.string(),
  kind: z.enum(["instance", "services", "vdag"]),
  state: z.enum(["starting", "running", "exited", "failed"]),
  pid: z.number().int(),
  pgid: z.number().int(),
  /** Clock ticks after boot at which `pid` started: tells our process from a later one with its pid. */
  procStart: z.number().nullable(),
  nodeId: z.string(),
  url: z.string().nullable(),
  urls: z.record(z.string(), z.string()),
  ports: z.record(z.string(), z.number()),
  startedAt: z.string(),
  log: z.string(),
  command: z.array(z.string()),
  cwd: z.string(),
  exitCode: z.number().nullable().optional(),
  blockId: z.string().optional(),
  instanceId: z.string().optional(),
  gpus: z.array(z.string()).optional(),
  vdagId: z.string().optional(),
  replica: z.number().int().optional(),
});
type ProcessRecord = z.infer<typeof ProcessRecordSchema>;

const VdagSpecRecordSchema = z.looseObject({
  id: z.string(),
  kind: z.literal("vdag_controller"),
  vdagId: z.string(),
  replicas: z.number().int(),
});

const COLLECTION = "runtime_processes";
const SERVICE_NAMES: readonly BlockServiceName[] = [
  "grpc",
  "metrics",
  "executor",
  "mapper",
  "autoscaler",
  "health-checker",
];
/** `aios block-runtime` flag of each listener's port. */
const SERVICE_PORT_FLAGS: Record<BlockServiceName, string> = {
  grpc: "--port",
  metrics: "--metrics-port",
  executor: "--mgmt-port",
  mapper: "--mapper-port",
  autoscaler: "--autoscaler-port",
  "health-checker": "--health-port",
};
const MAIN_TS = fileURLToPath(new URL("../cli/main.ts", import.meta.url));
const READY_POLL_MS = 100;
const HEALTH_TIMEOUT_MS = 2000;
/** A child that exits with one of these in its log lost a race for its port: start it again on others. */
const PORT_CONFLICT = /EADDRINUSE|address already in use|is port \d+ in use/i;
const START_ATTEMPTS = 3;

const keys = {
  instance: (blockId: string, instanceId: string) => `instance:${blockId}:${instanceId}`,
  services: (blockId: string) => `services:${blockId}`,
  vdag: (id: string, replica: number) => `vdag:${id}:${replica}`,
  vdagSpec: (id: string) => `vdag_controller:${id}`,
};

/** A record id as a file name. */
const fileName = (id: string): string => id.replace(/[^A-Za-z0-9._-]+/g, "_").replace(/^_+|_+$/g, "");

/** `bun` means the Bun running this driver (installed from npm, it is often not on PATH). */
const resolveArgv = (argv: readonly string[]): string[] => {
  const [first, ...rest] = argv;
  if (first === undefined || first === "") throw new Error("template.command must not be empty");
  return [first === "bun" && process.versions.bun ? process.execPath : first, ...rest];
};

/** The controller's environment without what configures the controller itself or picks its GPUs. */
const inheritedEnv = (): Record<string, string> => {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (v === undefined || k.startsWith("AIOS_")) continue;
    if (k === "DATABASE_URL" || k === "REDIS_URL" || k === "CUDA_VISIBLE_DEVICES") continue;
    env[k] = v;
  }
  return env;
};

const signalExitCode = (signal: NodeJS.Signals | null): number | null => {
  const n = signal ? constants.signals[signal] : undefined;
  return n === undefined ? null : 128 + n;
};

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** The HTTP status `url` answers with, null when it does not answer. */
const httpStatus = async (url: string, init: RequestInit = {}): Promise<number | null> => {
  try {
    const res = await fetch(url, { ...init, signal: AbortSignal.timeout(HEALTH_TIMEOUT_MS) });
    await res.body?.cancel().catch(() => {});
    return res.status;
  } catch {
    return null;
  }
};

const instanceHealth = (url: string) => httpStatus(`${url}/health`);
/** The executor's `/mgmt` answering (it needs a token where workloads check them: theirs). */
const servicesHealth = (executorUrl: string, token?: string) =>
  httpStatus(`${executorUrl}/mgmt`, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      ...(token ? { authorization: `Bearer ${token}` } : {}),
    },
    body: JSON.stringify({ mgmt_action: "policy_info" }),
  });

/** A process this driver watches: spawned here (`child`) or adopted from a record (polled). */
interface Tracked {
  id: string;
  kind: ProcessKind;
  blockId: string;
  instanceId: string;
  pid: number;
  pgid: number;
  procStart: number | null;
  child: ChildProcess | null;
  exited: boolean;
  exitCode: number | null;
  whenExited: Promise<number | null>;
  resolveExit(code: number | null): void;
  /** Still starting: a failed start is the caller's error, not an event. */
  starting: boolean;
  /** Being stopped on purpose: no event. */
  stopping: boolean;
}

interface LaunchSpec {
  id: string;
  kind: ProcessKind;
  /** For messages: "instance b/i". */
  label: string;
  cwd: string;
  portNames: readonly string[];
  /** argv, environment and URLs for the chosen ports. */
  build(ports: Record<string, number>): {
    command: string[];
    env: Record<string, string>;
    url: string | null;
    urls: Record<string, string>;
  };
  /** Fields of the record besides the common ones (blockId, instanceId, gpus, vdagId, ...). */
  fields: Record<string, unknown>;
  /** Whether the started workload is ready (polled); absent: ready once alive for `settleMs`. */
  ready?(record: ProcessRecord): Promise<boolean>;
  settleMs?: number;
}

export class ProcessDriver implements RuntimeDriver {
  readonly name = "process" as const;
  readonly nodeId: string;
  readonly runDir: string;
  readonly #store: Store;
  readonly #scope: string | undefined;
  readonly #options: ProcessDriverOptions;
  readonly #ports = new PortPicker();
  readonly #tracked = new Map<string, Tracked>();
  readonly #listeners = new Set<(event: RuntimeEvent) => void>();
  readonly #node: LocalNodeProbe;
  readonly #timers: ReturnType<typeof setInterval>[] = [];
  readonly #nodeHealth = new Map<string, boolean>();
  /** Ids whose start is in progress here. */
  readonly #starting = new Set<string>();
  readonly #vdagLocks = new Map<string, Promise<unknown>>();
  #closed = false;

  constructor(options: ProcessDriverOptions) {
    this.#options = options;
    this.#store = options.store;
    this.#scope = options.scope;
    this.runDir = resolve(options.runDir);
    this.nodeId = options.nodeId ?? hostname();
    mkdirSync(join(this.runDir, "logs"), { recursive: true });
    this.#node = new LocalNodeProbe({
      nodeId: this.nodeId,
      diskPath: this.runDir,
      ...(options.memoryThresholdPercent !== undefined
        ? { memoryThresholdPercent: options.memoryThresholdPercent }
        : {}),
      ...(options.diskThresholdPercent !== undefined
        ? { diskThresholdPercent: options.diskThresholdPercent }
        : {}),
      ...(options.nvidiaSmi !== undefined ? { nvidiaSmi: options.nvidiaSmi } : {}),
    });
    const liveness = setInterval(() => this.#pollAdopted(), options.probeIntervalMs ?? 1000);
    liveness.unref();
    this.#timers.push(liveness);
    if (options.nodeProbeIntervalMs && options.nodeProbeIntervalMs > 0) {
      const nodes = setInterval(() => void this.probeNodes().catch(() => {}), options.nodeProbeIntervalMs);
      nodes.unref();
      this.#timers.push(nodes);
    }
  }

  /** This driver's records: scoped (to its cluster) when several controllers share one database. */
  get #records(): Pick<
    DocumentCollection,
    "get" | "find" | "insert" | "upsert" | "update" | "updateMany" | "delete"
  > {
    const all = this.#store.collection(COLLECTION);
    return this.#scope ? new ScopedCollection(all, this.#scope) : all;
  }

  // ---------------------------------------------------------------- instances

  async startInstance(spec: InstanceSpec): Promise<InstanceStatus> {
    const controllerUrl = spec.controllerUrl ?? this.#options.controllerUrl;
    const json = (name: string, value: unknown): Record<string, string> =>
      value === undefined ? {} : { [name]: JSON.stringify(value) };
    const record = await this.#launch({
      id: keys.instance(spec.blockId, spec.instanceId),
      kind: "instance",
      label: `instance ${spec.blockId}/${spec.instanceId}`,
      cwd: spec.template.cwd ?? process.cwd(),
      portNames: ["instance"],
      build: (ports) => {
        const url = `http://127.0.0.1:${ports.instance}`;
        return {
          command: resolveArgv(this.#command(spec.template, "instance")),
          env: {
            ...inheritedEnv(),
            ...spec.template.env,
            AIOS_BLOCK_ID: spec.blockId,
            AIOS_INSTANCE_ID: spec.instanceId,
            AIOS_INSTANCE_PORT: String(ports.instance),
            ...json("AIOS_INIT_DATA", spec.initData),
            ...json("AIOS_INIT_SETTINGS", spec.initSettings),
            ...json("AIOS_PARAMETERS", spec.parameters),
            CUDA_VISIBLE_DEVICES: spec.gpus.join(","),
            ...(controllerUrl ? { AIOS_CONTROLLER_URL: controllerUrl } : {}),
            ...(this.#scope ? { AIOS_CLUSTER_ID: this.#scope } : {}),
            ...(spec.redisUrl ? { REDIS_URL: spec.redisUrl } : {}),
            ...workloadAuthEnv(this.#options.workloadAuth),
          },
          url,
          urls: {},
        };
      },
      fields: {
        blockId: spec.blockId,
        instanceId: spec.instanceId,
        nodeId: spec.nodeId,
        gpus: [...spec.gpus],
      },
      ready: async (r) => r.url !== null && (await instanceHealth(r.url)) === 200,
    });
    return toInstanceStatus(record);
  }

  async stopInstance(blockId: string, instanceId: string): Promise<void> {
    await this.#stop(keys.instance(blockId, instanceId));
  }

  async listInstances(blockId?: string): Promise<InstanceStatus[]> {
    const docs = await this.#records.find(
      { kind: "instance", ...(blockId !== undefined ? { blockId } : {}) },
      { sort: { id: 1 } },
    );
    return docs.flatMap((d) => {
      const r = ProcessRecordSchema.safeParse(d);
      return r.success ? [toInstanceStatus(r.data)] : [];
    });
  }

  // ---------------------------------------------------------------- block services

  async startBlockServices(spec: BlockServicesSpec): Promise<BlockServicesStatus> {
    // A file rather than an argument: one argument may hold at most 128 KiB on Linux.
    const blockFile = join(this.runDir, "blocks", `${fileName(spec.blockId)}.json`);
    mkdirSync(join(this.runDir, "blocks"), { recursive: true });
    writeFileSync(blockFile, JSON.stringify(spec.block));
    const record = await this.#launch({
      id: keys.services(spec.blockId),
      kind: "services",
      label: `block services ${spec.blockId}`,
      cwd: process.cwd(),
      portNames: SERVICE_NAMES,
      build: (ports) => ({
        command: resolveArgv([
          ...(this.#options.blockRuntimeCommand ?? ["bun", "run", MAIN_TS, "block-runtime"]),
          "--block-id",
          spec.blockId,
          "--block",
          blockFile,
          ...spec.instances.flatMap((i) => ["--instance", `${i.id}=${i.url}`]),
          "--controller",
          spec.controllerUrl,
          "--registry",
          spec.registryUrl,
          "--cluster-id",
          spec.clusterId,
          "--host",
          "127.0.0.1",
          ...SERVICE_NAMES.flatMap((n) => [SERVICE_PORT_FLAGS[n], String(ports[n])]),
        ]),
        env: { ...inheritedEnv(), ...workloadAuthEnv(this.#options.workloadAuth) },
        url: null,
        urls: Object.fromEntries(SERVICE_NAMES.map((n) => [n, `http://127.0.0.1:${ports[n]}`])),
      }),
      fields: { blockId: spec.blockId, nodeId: this.nodeId },
      ready: async (r) =>
        r.urls.executor !== undefined &&
        (await servicesHealth(r.urls.executor, this.#options.workloadAuth?.token)) === 200,
    });
    return toServicesStatus(record);
  }

  async stopBlockServices(blockId: string): Promise<void> {
    await this.#stop(keys.services(blockId));
  }

  async getBlockServices(blockId: string): Promise<BlockServicesStatus | null> {
    const r = ProcessRecordSchema.safeParse(await this.#records.get(keys.services(blockId)));
    return r.success ? toServicesStatus(r.data) : null;
  }

  async readLogs(blockId: string, instanceId: string | null, lines: number): Promise<string[] | null> {
    const id = instanceId === null ? keys.services(blockId) : keys.instance(blockId, instanceId);
    const r = ProcessRecordSchema.safeParse(await this.#records.get(id));
    // A stopped workload's record is gone, but its log file stays where the convention puts it.
    const log = r.success
      ? r.data.log
      : this.#logPath({ id, kind: instanceId === null ? "services" : "instance" });
    if (!existsSync(log)) return null;
    return tailLines(log, 0, lines, Math.max(16_384, lines * 512));
  }

  // ---------------------------------------------------------------- vDAG controllers

  applyVdagController(spec: VdagControllerSpec): Promise<VdagControllerStatus> {
    return this.#serialized(spec.id, () => this.#applyVdag(spec));
  }

  async #applyVdag(spec: VdagControllerSpec): Promise<VdagControllerStatus> {
    if (!Number.isInteger(spec.replicas) || spec.replicas < 0) {
      throw new Error(
        `vdag controller ${spec.id}: replicas must be a whole number >= 0, got ${spec.replicas}`,
      );
    }
    this.#command(spec.template, `vdag controller ${spec.id}`);
    await this.#records.upsert(keys.vdagSpec(spec.id), {
      id: keys.vdagSpec(spec.id),
      kind: "vdag_controller",
      vdagId: spec.id,
      replicas: spec.replicas,
      template: spec.template as Record<string, unknown>,
      config: spec.config ?? {},
    });
    const live = await this.#liveReplicas(spec.id);
    if (live.length > spec.replicas) {
      // The newest replicas go first.
      const extra = live
        .sort((a, b) => (b.replica ?? 0) - (a.replica ?? 0))
        .slice(0, live.length - spec.replicas);
      await Promise.all(extra.map((r) => this.#stop(r.id)));
    } else if (live.length < spec.replicas) {
      const taken = new Set(live.map((r) => r.replica));
      const free: number[] = [];
      for (let n = 0; free.length < spec.replicas - live.length; n++) if (!taken.has(n)) free.push(n);
      const started = await Promise.allSettled(free.map((n) => this.#startReplica(spec, n)));
      const failed = started.find((s): s is PromiseRejectedResult => s.status === "rejected");
      if (failed) throw failed.reason;
    }
    return (
      (await this.#vdagStatus(spec.id)) ?? { id: spec.id, replicas: spec.replicas, handles: [], urls: [] }
    );
  }

  removeVdagController(id: string): Promise<void> {
    return this.#serialized(id, () => this.#removeVdag(id));
  }

  /** One change at a time per vDAG controller: two scalings at once would pick the same replica slots. */
  #serialized<T>(id: string, fn: () => Promise<T>): Promise<T> {
    const run = (this.#vdagLocks.get(id) ?? Promise.resolve()).then(fn, fn);
    const settled = run.catch(() => {});
    this.#vdagLocks.set(id, settled);
    void settled.then(() => {
      if (this.#vdagLocks.get(id) === settled) this.#vdagLocks.delete(id);
    });
    return run;
  }

  async #removeVdag(id: string): Promise<void> {
    const replicas = await this.#records.find({ kind: "vdag", vdagId: id });
    await Promise.all(replicas.map((r) => this.#stop(r.id)));
    await this.#records.delete(keys.vdagSpec(id));
  }

  async listVdagControllers(): Promise<VdagControllerStatus[]> {
    const specs = await this.#records.find({ kind: "vdag_controller" }, { sort: { id: 1 } });
    const out: VdagControllerStatus[] = [];
    for (const s of specs) {
      const status = await this.#vdagStatus(String(s.vdagId));
      if (status) out.push(status);
    }
    return out;
  }

  #startReplica(spec: VdagControllerSpec, replica: number): Promise<ProcessRecord> {
    const controllerUrl = this.#options.controllerUrl;
    return this.#launch({
      id: keys.vdag(spec.id, replica),
      kind: "vdag",
      label: `vdag controller ${spec.id} replica ${replica}`,
      cwd: spec.template.cwd ?? process.cwd(),
      portNames: ["http"],
      build: (ports) => ({
        command: resolveArgv(this.#command(spec.template, `vdag controller ${spec.id}`)),
        env: {
          ...inheritedEnv(),
          ...spec.template.env,
          AIOS_PORT: String(ports.http),
          AIOS_VDAG_ID: spec.id,
          AIOS_VDAG_REPLICA: String(replica),
          AIOS_VDAG_CONFIG: JSON.stringify(spec.config ?? {}),
          ...(controllerUrl ? { AIOS_CONTROLLER_URL: controllerUrl } : {}),
          ...workloadAuthEnv(this.#options.workloadAuth),
        },
        url: `http://127.0.0.1:${ports.http}`,
        urls: {},
      }),
      fields: { vdagId: spec.id, replica, nodeId: this.nodeId },
      settleMs: this.#options.vdagSettleMs ?? 200,
    });
  }

  /** Replica records whose process runs; records of dead ones are removed on the way. */
  async #liveReplicas(id: string): Promise<ProcessRecord[]> {
    const live: ProcessRecord[] = [];
    for (const d of await this.#records.find({ kind: "vdag", vdagId: id })) {
      const r = ProcessRecordSchema.safeParse(d);
      if (r.success && this.#running(r.data)) live.push(r.data);
      else await this.#stop(d.id);
    }
    return live;
  }

  async #vdagStatus(id: string): Promise<VdagControllerStatus | null> {
    const spec = VdagSpecRecordSchema.safeParse(await this.#records.get(keys.vdagSpec(id)));
    if (!spec.success) return null;
    const replicas = (await this.#records.find({ kind: "vdag", vdagId: id, state: "running" }))
      .flatMap((d) => {
        const r = ProcessRecordSchema.safeParse(d);
        return r.success ? [r.data] : [];
      })
      .sort((a, b) => (a.replica ?? 0) - (b.replica ?? 0));
    return {
      id,
      replicas: spec.data.replicas,
      handles: replicas.map((r) => String(r.pid)),
      urls: replicas.flatMap((r) => (r.url ? [r.url] : [])),
    };
  }

  // ---------------------------------------------------------------- nodes, events, adoption

  async probeNodes(): Promise<NodeStatus[]> {
    const node = await this.#node.probe();
    const before = this.#nodeHealth.get(node.nodeId);
    this.#nodeHealth.set(node.nodeId, node.healthy);
    if (before !== undefined && before !== node.healthy) {
      this.#emit({ type: "node_changed", nodeId: node.nodeId, healthy: node.healthy });
    }
    return [node];
  }

  watch(listener: (event: RuntimeEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  async adopt(): Promise<AdoptReport> {
    const report: AdoptReport = { adopted: [], cleaned: [] };
    const docs = await this.#records.find(
      { kind: { $in: ["instance", "services", "vdag"] } },
      { sort: { id: 1 } },
    );
    await Promise.all(
      docs.map(async (doc) => {
        const parsed = ProcessRecordSchema.safeParse(doc);
        if (this.#starting.has(doc.id)) return; // started here right now: neither adopted nor stale
        if (parsed.success && (await this.#adoptable(parsed.data))) {
          const t = this.#tracked.get(doc.id);
          if (!t || t.pid !== parsed.data.pid) this.#track(parsed.data, null);
          report.adopted.push(doc.id);
          return;
        }
        if (parsed.success && isAlive(parsed.data.pid, parsed.data.procStart)) {
          await this.#terminate(this.#track(parsed.data, null));
        }
        await this.#records.delete(doc.id);
        report.cleaned.push(doc.id);
      }),
    );
    report.adopted.sort();
    report.cleaned.sort();
    return report;
  }

  async close(): Promise<void> {
    this.#closed = true;
    for (const t of this.#timers.splice(0)) clearInterval(t);
    this.#listeners.clear();
    // The processes keep running; only the watching stops (their exit events are ignored from now on).
    this.#tracked.clear();
  }

  // ---------------------------------------------------------------- internals

  #command(template: WorkloadTemplate, what: string): string[] {
    if (!template.command || template.command.length === 0) {
      throw new Error(
        `${what}: the process runtime needs template.command${template.image ? ` (image ${template.image} is for Kubernetes)` : ""}`,
      );
    }
    return template.command;
  }

  /** Running now: spawned or adopted here and not exited, or a record whose pid is still ours. */
  #running(r: ProcessRecord): boolean {
    const t = this.#tracked.get(r.id);
    if (t && t.pid === r.pid) return !t.exited;
    return r.state !== "exited" && r.state !== "failed" && isAlive(r.pid, r.procStart);
  }

  async #adoptable(r: ProcessRecord): Promise<boolean> {
    const t = this.#tracked.get(r.id);
    if (t && t.pid === r.pid && !t.exited) return true;
    if (r.state !== "running" || !isAlive(r.pid, r.procStart)) return false;
    // Any answer will do: whether a serving workload is healthy is the block's health checker's call.
    if (r.kind === "instance") return r.url !== null && (await instanceHealth(r.url)) !== null;
    if (r.kind === "services")
      return (
        r.urls.executor !== undefined &&
        (await servicesHealth(r.urls.executor, this.#options.workloadAuth?.token)) !== null
      );
    return true;
  }

  /**
   * Reserves the record, spawns the workload and waits until it is ready. On failure the process is
   * killed, the record removed and a WorkloadStartError thrown; a lost race for a port is retried on
   * other ports.
   */
  async #launch(spec: LaunchSpec): Promise<ProcessRecord> {
    await this.#reserve(spec);
    this.#starting.add(spec.id);
    try {
      for (let attempt = 1; ; attempt++) {
        try {
          return await this.#launchOnce(spec);
        } catch (err) {
          const conflict =
            err instanceof WorkloadStartError && err.logTail.some((l) => PORT_CONFLICT.test(l));
          if (!conflict || attempt >= START_ATTEMPTS) throw err;
        }
      }
    } catch (err) {
      await this.#records.delete(spec.id).catch(() => {});
      throw err;
    } finally {
      this.#starting.delete(spec.id);
    }
  }

  /** A `starting` record under the workload's id; refuses when one runs under it already. */
  async #reserve(spec: LaunchSpec): Promise<void> {
    if (this.#starting.has(spec.id)) throw new Error(`${spec.label} is already starting`);
    const existing = await this.#records.get(spec.id);
    if (existing) {
      const r = ProcessRecordSchema.safeParse(existing);
      if (r.success && this.#running(r.data)) {
        throw new Error(`${spec.label} is already ${r.data.state} (pid ${r.data.pid}); stop it first`);
      }
      // What is left of an earlier run (exited, or a start cut short by a restart).
      await this.#records.delete(spec.id);
    }
    const record: ProcessRecord = {
      ...this.#startingRecord(spec, new Date().toISOString()),
      pid: 0,
      pgid: 0,
      procStart: null,
      url: null,
      urls: {},
      ports: {},
      command: [],
    };
    // The insert fails (409) when a concurrent start reserved the id first.
    await this.#records.insert(record as Doc);
  }

  /** What a workload's record says from reservation on: who it is, where it logs, that it is starting. */
  #startingRecord(spec: LaunchSpec, startedAt: string) {
    return {
      nodeId: this.nodeId,
      ...spec.fields,
      id: spec.id,
      kind: spec.kind,
      state: "starting" as const,
      startedAt,
      log: this.#logPath(spec),
      cwd: spec.cwd,
    };
  }

  #logPath(spec: Pick<LaunchSpec, "id" | "kind">): string {
    return join(
      this.runDir,
      "logs",
      `${fileName(`${spec.kind}-${spec.id.slice(spec.id.indexOf(":") + 1)}`)}.log`,
    );
  }

  async #launchOnce(spec: LaunchSpec): Promise<ProcessRecord> {
    const ports = await this.#ports.pickMany(spec.portNames);
    const { command, env, url, urls } = spec.build(ports);
    const log = this.#logPath(spec);
    const startedAt = new Date().toISOString();
    appendFileSync(
      log,
      `--- ${startedAt} aios process runtime: starting ${spec.label}: ${command.join(" ")}\n`,
    );
    const from = fileSize(log);
    const fail = async (t: Tracked | null, reason: string): Promise<never> => {
      if (t) await this.#terminate(t, 0);
      throw new WorkloadStartError(
        spec.label,
        reason,
        log,
        tailLines(log, from),
        t?.exitCode ?? null,
        t?.pid,
      );
    };

    const fd = openSync(log, "a");
    let child: ChildProcess;
    try {
      child = spawn(command[0]!, command.slice(1), {
        cwd: spec.cwd,
        env,
        detached: true,
        stdio: ["ignore", fd, fd],
      });
    } catch (err) {
      closeSync(fd);
      return fail(null, `could not run ${command[0]}: ${err instanceof Error ? err.message : String(err)}`);
    }
    closeSync(fd);
    const spawnError = await new Promise<Error | null>((done) => {
      child.once("spawn", () => done(null));
      child.once("error", done);
    });
    child.on("error", () => {}); // later errors (a failed kill) are not fatal here
    if (spawnError || child.pid === undefined) {
      return fail(null, `could not run ${command[0]}: ${spawnError?.message ?? "no pid"}`);
    }
    // Not waited for: the workload must not keep this process alive, nor die with it.
    child.unref();

    const pid = child.pid;
    const record: ProcessRecord = {
      ...this.#startingRecord(spec, startedAt),
      pid,
      pgid: pid,
      procStart: procStartTicks(pid),
      url,
      urls,
      ports,
      command,
    };
    const t = this.#track(record, child);
    t.starting = true;
    await this.#records.upsert(spec.id, record as Doc);

    const deadline = Date.now() + (this.#options.startTimeoutMs ?? 30_000);
    const settleUntil = spec.settleMs !== undefined ? Date.now() + spec.settleMs : 0;
    for (;;) {
      if (t.exited) return fail(t, `exited with code ${t.exitCode} before it was ready`);
      if (spec.ready ? await spec.ready(record) : Date.now() >= settleUntil) break;
      if (t.exited) return fail(t, `exited with code ${t.exitCode} before it was ready`);
      if (Date.now() >= deadline) {
        return fail(t, `not ready within ${this.#options.startTimeoutMs ?? 30_000} ms`);
      }
      await Promise.race([sleep(READY_POLL_MS), t.whenExited]);
    }
    const running: ProcessRecord = { ...record, state: "running" };
    await this.#records.upsert(spec.id, running as Doc);
    t.starting = false;
    // It may have exited while the record was written: that is an exit like any later one.
    if (t.exited) this.#reportExit(t);
    return running;
  }

  #track(r: ProcessRecord, child: ChildProcess | null): Tracked {
    let resolveExit!: (code: number | null) => void;
    const whenExited = new Promise<number | null>((r) => {
      resolveExit = r;
    });
    const t: Tracked = {
      id: r.id,
      kind: r.kind,
      blockId: r.blockId ?? "",
      instanceId: r.instanceId ?? "",
      pid: r.pid,
      pgid: r.pgid,
      procStart: r.procStart,
      child,
      exited: false,
      exitCode: null,
      whenExited,
      resolveExit,
      starting: false,
      stopping: false,
    };
    this.#tracked.set(r.id, t);
    child?.once("exit", (code, signal) => this.#onExit(t, code ?? signalExitCode(signal)));
    return t;
  }

  /** Adopted processes are not our children: their exits are found by polling. */
  #pollAdopted(): void {
    for (const t of this.#tracked.values()) {
      if (!t.child && !t.exited && !isAlive(t.pid, t.procStart)) this.#onExit(t, null);
    }
  }

  #onExit(t: Tracked, code: number | null): void {
    if (t.exited) return;
    t.exited = true;
    t.exitCode = code;
    t.resolveExit(code);
    if (this.#closed || t.stopping || t.starting) return;
    this.#reportExit(t);
  }

  /** Records an unplanned exit (vDAG replicas are dropped) and tells the listeners. */
  #reportExit(t: Tracked): void {
    if (this.#tracked.get(t.id) === t) this.#tracked.delete(t.id);
    const records = this.#records;
    const update =
      t.kind === "vdag"
        ? records.get(t.id).then((d) => (d?.pid === t.pid ? records.delete(t.id) : false))
        : records.updateMany({ id: t.id, pid: t.pid }, { $set: { state: "exited", exitCode: t.exitCode } });
    void update
      .catch(() => {}) // the store may be closing; the event still matters
      .then(() => {
        if (this.#closed) return;
        if (t.kind === "instance") {
          this.#emit({
            type: "instance_exited",
            blockId: t.blockId,
            instanceId: t.instanceId,
            exitCode: t.exitCode,
          });
        } else if (t.kind === "services") {
          this.#emit({ type: "services_exited", blockId: t.blockId, exitCode: t.exitCode });
        }
      });
  }

  #emit(event: RuntimeEvent): void {
    for (const listener of this.#listeners) {
      try {
        listener(event);
      } catch (err) {
        console.error("[aios] runtime watch listener failed:", err);
      }
    }
  }

  /** Waits up to `ms` for the process to exit; true when it did. */
  async #waitExit(t: Tracked, ms: number): Promise<boolean> {
    const deadline = Date.now() + ms;
    while (!t.exited) {
      if (!t.child && !isAlive(t.pid, t.procStart)) {
        this.#onExit(t, null);
        break;
      }
      const left = deadline - Date.now();
      if (left <= 0) return false;
      await Promise.race([sleep(Math.min(50, left)), t.whenExited]);
    }
    return true;
  }

  /** SIGTERM to the group, SIGKILL after `graceMs`, then SIGKILL to whatever is left in the group. */
  async #terminate(t: Tracked, graceMs = this.#options.stopGraceMs ?? 5000): Promise<void> {
    t.stopping = true;
    if (!t.exited) {
      if (graceMs > 0) signalGroup(t.pgid, "SIGTERM");
      if (graceMs <= 0 || !(await this.#waitExit(t, graceMs))) {
        signalGroup(t.pgid, "SIGKILL");
        await this.#waitExit(t, 10_000);
      }
    }
    // Children the workload started share its group; the leader is gone, they must go too.
    signalGroup(t.pgid, "SIGKILL");
    if (this.#tracked.get(t.id) === t) this.#tracked.delete(t.id);
  }

  /** Stops the workload under `id` (whether watched here or only recorded) and removes its record. */
  async #stop(id: string): Promise<void> {
    let t = this.#tracked.get(id);
    if (!t) {
      const r = ProcessRecordSchema.safeParse(await this.#records.get(id));
      if (r.success && r.data.pid > 0 && isAlive(r.data.pid, r.data.procStart)) t = this.#track(r.data, null);
    }
    if (t) await this.#terminate(t);
    await this.#records.delete(id);
  }
}

const toInstanceStatus = (r: ProcessRecord): InstanceStatus => ({
  blockId: r.blockId ?? "",
  instanceId: r.instanceId ?? "",
  nodeId: r.nodeId,
  gpus: r.gpus ?? [],
  url: r.state === "running" ? r.url : null,
  state: r.state,
  handle: String(r.pid),
  startedAt: r.startedAt,
  ...(r.exitCode !== undefined ? { exitCode: r.exitCode } : {}),
  log: r.log,
});

const toServicesStatus = (r: ProcessRecord): BlockServicesStatus => ({
  blockId: r.blockId ?? "",
  state: r.state,
  handle: String(r.pid),
  urls: r.state === "running" ? (r.urls as Partial<Record<BlockServiceName, string>>) : {},
  startedAt: r.startedAt,
  log: r.log,
});
