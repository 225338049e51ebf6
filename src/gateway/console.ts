/**
 * The console API behind the `aios` client verbs and the dashboard: one place that gathers what the
 * registry (clusters, policies), the creation records (allocation steps) and each cluster's controller
 * (blocks, instances, nodes, metrics, logs, events) know, so a client talks to the gateway alone.
 *
 * Controllers are asked in parallel with a short timeout: a dead cluster shows as unreachable instead of
 * holding up the whole page.
 */

import { authHeaders } from "../auth/index.ts";
import type { ControllerClient } from "../controller/client.ts";
import { ServiceClientError } from "../http/client.ts";
import { ApiError, errorMessage, notFound, parseWith } from "../http/errors.ts";
import type { RegistryClient } from "../registry/client.ts";
import type { Doc, DocumentCollection } from "../store/index.ts";
import { type Cluster, controllerOf } from "./allocation.ts";
import {
  type BlockDetail,
  type BlockEventView,
  type BlockMetricsView,
  type BlockView,
  type ClusterView,
  type CreationView,
  type InstanceView,
  type NodeView,
  ScaleRequestSchema,
} from "./views.ts";

export interface ConsoleDeps {
  registry: RegistryClient;
  creations: DocumentCollection;
  /** Longest wait for one controller's answer; default 2 s. */
  controllerTimeoutMs?: number;
  /** Headers naming the user a call acts for (onBehalfOfHeader), on what changes state. */
  actingFor?: Record<string, string>;
}

const DEFAULT_TIMEOUT_MS = 2000;

const str = (v: unknown): string | null => (typeof v === "string" ? v : null);
const int = (v: unknown): number | null => (typeof v === "number" && Number.isInteger(v) ? v : null);

interface ClusterHandle {
  cluster: Cluster;
  controller: ControllerClient | null;
}

const clusters = async (deps: ConsoleDeps): Promise<ClusterHandle[]> =>
  (await deps.registry.queryClusters({}, { sort: { id: 1 }, limit: 1000 })).map((c) => ({
    cluster: c as Cluster,
    controller: controllerOf(c),
  }));

/** Asks a controller, within the console's timeout. */
const ask = <T>(deps: ConsoleDeps, call: (signal: AbortSignal) => Promise<T>): Promise<T> =>
  call(AbortSignal.timeout(deps.controllerTimeoutMs ?? DEFAULT_TIMEOUT_MS));

const settle = async <T>(p: Promise<T>): Promise<{ ok: true; value: T } | { ok: false; error: string }> => {
  try {
    return { ok: true, value: await p };
  } catch (err) {
    return { ok: false, error: errorMessage(err) };
  }
};

const nodeView = (n: Record<string, unknown>): NodeView => ({
  id: String(n.node_id ?? n.id ?? ""),
  healthy: n.status === "healthy",
  reason: str(n.reason),
  cpu_utilization_percent: typeof n.cpu_utilization_percent === "number" ? n.cpu_utilization_percent : null,
  memory: (n.memory as NodeView["memory"]) ?? null,
  gpus: Array.isArray(n.gpus) ? (n.gpus as NodeView["gpus"]) : [],
});

/** `GET /api/clusters`: every registered cluster with its nodes' health, as its controller sees them. */
export const listClusters = async (deps: ConsoleDeps): Promise<ClusterView[]> =>
  Promise.all(
    (await clusters(deps)).map(async ({ cluster, controller }): Promise<ClusterView> => {
      const base = {
        id: cluster.id,
        status: str(cluster.status),
        controller_url: controller?.baseUrl ?? null,
      };
      if (!controller) {
        return {
          ...base,
          reachable: false,
          error: "the cluster names no controller",
          nodes: [],
          block_count: 0,
        };
      }
      const [nodes, blocks] = await Promise.all([
        settle(ask(deps, (s) => controller.nodesStatus(s))),
        settle(ask(deps, (s) => controller.listBlocks(s))),
      ]);
      if (!nodes.ok) return { ...base, reachable: false, error: nodes.error, nodes: [], block_count: 0 };
      return {
        ...base,
        reachable: true,
        error: null,
        nodes: nodes.value.nodes.map(nodeView),
        block_count: blocks.ok ? blocks.value.length : 0,
      };
    }),
  );

const instanceView = (i: Record<string, unknown>): InstanceView => ({
  id: String(i.instance_id ?? ""),
  node_id: String(i.node_id ?? ""),
  gpus: Array.isArray(i.gpus) ? i.gpus.map(String) : [],
  url: str(i.url),
  started_at: str(i.started_at),
});

const recordError = (record: Doc | undefined): BlockView["error"] => {
  const e = record?.error as { code?: unknown; message?: unknown } | null | undefined;
  return e ? { code: String(e.code ?? "error"), message: String(e.message ?? "") } : null;
};

/** A block as its controller's document and (when created here) its creation record tell it. */
const blockView = (
  id: string,
  live: Record<string, unknown> | null,
  record: Doc | undefined,
  clusterId: string | null,
): BlockView => {
  const ir = (record?.block ?? {}) as Record<string, unknown>;
  const source = live ?? ir;
  const urls = (live?.services as { urls?: Record<string, unknown> } | undefined)?.urls ?? {};
  // The creation's status says allocating/failed/removed; once running, the controller's word counts.
  const status = (
    record && (record.status !== "running" || !live) ? record.status : (live?.status ?? record?.status)
  ) as BlockView["status"];
  return {
    id,
    cluster_id: str(live?.cluster_id) ?? str(record?.cluster_id) ?? clusterId,
    status,
    component: str(source.blockComponentURI) ?? str(ir.blockComponentURI),
    created_at: str(record?.created_at) ?? str(live?.created_at),
    updated_at: str(record?.updated_at) ?? str(live?.updated_at),
    error: recordError(record),
    instances: Array.isArray(live?.instances)
      ? (live.instances as Record<string, unknown>[]).map(instanceView)
      : [],
    min_instances: int(source.minInstances),
    max_instances: int(source.maxInstances),
    grpc_url: str(urls.grpc),
    live: live !== null,
  };
};

/**
 * `GET /api/blocks`: the blocks of every cluster (those created at a controller directly too), with
 * the creations that are not (or no longer) on a cluster: allocating, failed, removed.
 */
export const listBlocks = async (deps: ConsoleDeps, status?: string): Promise<BlockView[]> => {
  const [handles, records] = await Promise.all([
    clusters(deps),
    deps.creations.find({}, { sort: { created_at: -1 }, limit: 1000 }),
  ]);
  const byId = new Map(records.map((r) => [r.id, r]));
  const views = new Map<string, BlockView>();
  const unreachable = new Set<string>();
  await Promise.all(
    handles.map(async ({ cluster, controller }) => {
      const blocks = controller ? await settle(ask(deps, (s) => controller.listBlocks(s))) : null;
      if (!blocks?.ok) {
        unreachable.add(cluster.id);
        return;
      }
      for (const b of blocks.value) {
        const id = String(b.id);
        views.set(id, blockView(id, b, byId.get(id), cluster.id));
      }
    }),
  );
  for (const r of records) {
    if (views.has(r.id)) continue;
    // A running creation whose cluster did not answer is still listed, marked not live.
    if (r.status === "running" && !unreachable.has(String(r.cluster_id))) continue;
    views.set(r.id, blockView(r.id, null, r, str(r.cluster_id)));
  }
  const all = [...views.values()].sort((a, b) => a.id.localeCompare(b.id));
  return status ? all.filter((v) => v.status === status) : all;
};

/** The block's cluster and controller: from its creation record, else by asking every controller. */
const locate = async (
  deps: ConsoleDeps,
  id: string,
): Promise<{
  record: Doc | undefined;
  controller: ControllerClient | null;
  live: Record<string, unknown> | null;
}> => {
  const record = (await deps.creations.get(id)) ?? undefined;
  // A creation names its cluster: that one alone is read. A block made at a controller is looked for.
  const candidates: ClusterHandle[] = record?.cluster_id
    ? await deps.registry.getCluster(String(record.cluster_id)).then(
        (c) => [{ cluster: c as Cluster, controller: controllerOf(c) }],
        (err: unknown) => {
          // The cluster left the registry: the block has nowhere to be asked. Anything else is the caller's 503.
          if (err instanceof ServiceClientError && err.status === 404) return [];
          throw err;
        },
      )
    : record
      ? []
      : await clusters(deps);
  for (const { controller } of candidates) {
    if (!controller) continue;
    const found = await settle(ask(deps, (s) => controller.getBlock(id, s)));
    if (found.ok) return { record, controller, live: found.value };
  }
  if (!record) throw notFound(`no block '${id}' on any cluster`);
  return { record, controller: null, live: null };
};

const steps = (record: Doc | undefined) =>
  Array.isArray(record?.steps) ? (record.steps as BlockDetail["steps"]) : [];

/** `GET /api/blocks/{id}`: the block's view and its creation's allocation steps. */
export const getBlockDetail = async (deps: ConsoleDeps, id: string): Promise<BlockDetail> => {
  const { record, live } = await locate(deps, id);
  const view = blockView(id, live, record, null);
  return { ...view, steps: steps(record) };
};

/** The block's controller, or a 409 saying why there is none to ask. */
const liveController = async (deps: ConsoleDeps, id: string) => {
  const found = await locate(deps, id);
  if (!found.controller || !found.live) {
    const status = String(found.record?.status ?? "unknown");
    throw new ApiError(
      409,
      "block_not_running",
      status === "running"
        ? `block '${id}' is running on cluster ${String(found.record?.cluster_id)}, whose controller did not answer`
        : `block '${id}' is ${status}, not running on a cluster`,
    );
  }
  return { ...found, controller: found.controller, live: found.live };
};

/**
 * `POST /api/blocks/{id}/scale`: `{instances}` (a target) or `{delta}`; the controller's scale action
 * adds instances where the resourceAllocator places them, or removes the newest ones.
 */
export const scaleBlock = async (deps: ConsoleDeps, id: string, body: unknown): Promise<BlockView> => {
  const request = parseWith(ScaleRequestSchema, body, ["body"]);
  const { controller, live, record } = await liveController(deps, id);
  const instances = Array.isArray(live.instances) ? (live.instances as Record<string, unknown>[]) : [];
  const target = request.instances ?? instances.length + (request.delta ?? 0);
  const min = int(live.minInstances) ?? 0;
  const max = int(live.maxInstances) ?? Number.MAX_SAFE_INTEGER;
  if (target < min || target > max) {
    throw new ApiError(
      422,
      "out_of_bounds",
      `body: block '${id}' keeps between ${min} and ${max} instances; ${target} asked`,
      { min, max, requested: target },
    );
  }
  if (target > instances.length) {
    await controller.scale(
      { block_id: id, operation: "upscale", instances_count: target - instances.length },
      { headers: deps.actingFor ?? {} },
    );
  } else if (target < instances.length) {
    // The newest go first: the oldest have warmed caches.
    const newest = [...instances]
      .sort((a, b) => String(b.started_at ?? "").localeCompare(String(a.started_at ?? "")))
      .slice(0, instances.length - target)
      .map((i) => String(i.instance_id));
    await controller.scale(
      { block_id: id, operation: "downscale", instances_list: newest },
      { headers: deps.actingFor ?? {} },
    );
  }
  return blockView(id, await controller.getBlock(id), record, null);
};

/** `GET /api/blocks/{id}/metrics`: the executor's counters now, for a chart to difference. */
export const blockMetrics = async (deps: ConsoleDeps, id: string): Promise<BlockMetricsView> => {
  const { controller, live } = await liveController(deps, id);
  const m = await ask(deps, (s) => controller.blockMetrics(id, s));
  const latency = (m.recent_latency_ms ?? {}) as { p50?: unknown; p99?: unknown };
  const num = (v: unknown) => (typeof v === "number" ? v : 0);
  return {
    block_id: id,
    at: Date.now(),
    requests_total: num(m.requests_total),
    errors_total: num(m.errors_total),
    in_flight: num(m.in_flight),
    latency_ms: {
      p50: typeof latency.p50 === "number" ? latency.p50 : null,
      p99: typeof latency.p99 === "number" ? latency.p99 : null,
    },
    instances: Array.isArray(live.instances) ? live.instances.length : 0,
  };
};

/** `GET /api/blocks/{id}/logs?instance=&tail=`. */
export const blockLogs = async (deps: ConsoleDeps, id: string, query: Record<string, string>) => {
  const { controller } = await liveController(deps, id);
  const options: { instance?: string; tail?: number } = {};
  if (query.instance) options.instance = query.instance;
  if (query.tail !== undefined) {
    const tail = Number(query.tail);
    if (!Number.isInteger(tail) || tail < 1) {
      throw new ApiError(
        400,
        "invalid_query",
        `query.tail: a whole number of lines from 1, got '${query.tail}'`,
      );
    }
    options.tail = tail;
  }
  return ask(deps, (s) => controller.blockLogs(id, options, s));
};

/** `GET /api/blocks/{id}/events`: the block's events its controller processed lately, newest first. */
export const blockEvents = async (deps: ConsoleDeps, id: string): Promise<BlockEventView[]> => {
  const { controller } = await liveController(deps, id);
  const { recent } = await ask(deps, (s) => controller.events(s));
  return recent
    .filter((e) => e.block_id === id)
    .map((e) => ({
      id: String(e.id),
      event_name: str(e.event_name),
      outcome: String(e.outcome),
      at: String(e.at),
      ...(typeof e.policy === "string" ? { policy: e.policy } : {}),
      ...(Array.isArray(e.actions) ? { actions: e.actions } : {}),
      ...(Array.isArray(e.action_results) ? { action_results: e.action_results } : {}),
      ...(typeof e.error === "string" ? { error: e.error } : {}),
    }))
    .sort((a, b) => b.at.localeCompare(a.at));
};

/** `GET /api/creations?limit=`: the latest creations through this gateway, with their steps. */
export const recentCreations = async (
  deps: ConsoleDeps,
  rawLimit: string | undefined,
): Promise<CreationView[]> => {
  const limit = rawLimit === undefined ? 10 : Number(rawLimit);
  if (!Number.isInteger(limit) || limit < 1 || limit > 1000) {
    throw new ApiError(400, "invalid_query", `query.limit: a whole number from 1 to 1000, got '${rawLimit}'`);
  }
  const records = await deps.creations.find({}, { sort: { created_at: -1 }, limit });
  return records.map((r) => ({
    id: r.id,
    status: r.status as CreationView["status"],
    cluster_id: str(r.cluster_id),
    component: str((r.block as Record<string, unknown> | undefined)?.blockComponentURI),
    created_at: str(r.created_at),
    error: recordError(r),
    steps: steps(r),
  }));
};

/**
 * `GET /api/policies`, `POST /api/policies`: the registry's policy API as it is (multipart upload
 * included), so the dashboard's form needs no second origin. The gateway's own credential goes with it,
 * and `actingFor` names the user it is done for.
 */
export const forwardToRegistry = async (
  registry: RegistryClient,
  req: Request,
  path: string,
  actingFor: Record<string, string> = {},
) => {
  const url = new URL(req.url);
  const hasBody = req.method !== "GET" && req.method !== "HEAD";
  const headers = new Headers({ ...authHeaders(), ...actingFor });
  const type = req.headers.get("content-type");
  if (type) headers.set("content-type", type);
  let res: Response;
  try {
    res = await fetch(`${registry.baseUrl}${path}${url.search}`, {
      method: req.method,
      headers,
      ...(hasBody ? { body: await req.arrayBuffer() } : {}),
    });
  } catch (err) {
    throw new ApiError(
      503,
      "registry_unreachable",
      `cannot reach the registry at ${registry.baseUrl} (${errorMessage(err)})`,
    );
  }
  return new Response(res.body, {
    status: res.status,
    headers: { "content-type": res.headers.get("content-type") ?? "application/json" },
  });
};
