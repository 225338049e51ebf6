/**
 * Nodes on Kubernetes: their health as the scanner sees it (from the Node objects the driver watches,
 * plus usage from metrics.k8s.io when metrics-server runs), and onboarding and removal: labels,
 * cordon (`spec.unschedulable`) and drain (the Eviction API, which honours PodDisruptionBudgets).
 */
import type { V1Node, V1Pod } from "@kubernetes/client-node";
import type { NodeStatus } from "../types.ts";
import { call, callOrNull, isNotFound, type KubeApi, mergePatch, statusCode } from "./api.ts";

/** Conditions that make a node unfit for new work when True. */
const PRESSURE = ["MemoryPressure", "DiskPressure", "PIDPressure", "NetworkUnavailable"];

const SUFFIX: Record<string, number> = {
  n: 1e-9,
  u: 1e-6,
  m: 1e-3,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  P: 1e15,
  E: 1e18,
  Ki: 2 ** 10,
  Mi: 2 ** 20,
  Gi: 2 ** 30,
  Ti: 2 ** 40,
  Pi: 2 ** 50,
  Ei: 2 ** 60,
};

/** A Kubernetes quantity ("3800m", "16Gi", "1e9", "250n") as a number; null when it is not one. */
export const parseQuantity = (q: string | number | undefined | null): number | null => {
  if (q === undefined || q === null) return null;
  if (typeof q === "number") return q;
  const m = /^([+-]?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE])?$/.exec(q.trim());
  if (!m) return null;
  return Number(m[1]) * (m[2] ? (SUFFIX[m[2]] ?? 1) : 1);
};

export interface NodeUsage {
  cpu: number | null;
  memory: number | null;
}

const percent = (used: number | null, total: number | null): number | null =>
  used === null || total === null || total <= 0 ? null : Math.round((used / total) * 1000) / 10;

/** The node's health: Ready, schedulable and under no pressure; the reason names what is wrong. */
export const nodeHealth = (node: V1Node): { healthy: boolean; reason?: string } => {
  const conditions = node.status?.conditions ?? [];
  const ready = conditions.find((c) => c.type === "Ready");
  if (ready?.status !== "True") {
    return {
      healthy: false,
      reason: `not Ready (${ready ? `${ready.status}${ready.reason ? `: ${ready.reason}` : ""}` : "no Ready condition"})`,
    };
  }
  if (node.spec?.unschedulable) return { healthy: false, reason: "cordoned (spec.unschedulable)" };
  const pressed = conditions
    .filter((c) => PRESSURE.includes(c.type) && c.status === "True")
    .map((c) => c.type);
  if (pressed.length > 0) return { healthy: false, reason: pressed.join(", ") };
  return { healthy: true };
};

export const nodeStatus = (
  node: V1Node,
  usage: NodeUsage | undefined,
  gpuResource: string,
  checkedAt: string,
): NodeStatus => {
  const capacity = node.status?.capacity ?? {};
  const allocatable = node.status?.allocatable ?? {};
  const memTotal = parseQuantity(capacity.memory);
  const memAlloc = parseQuantity(allocatable.memory);
  const memUsage = percent(usage?.memory ?? null, memTotal);
  const gpuCount = gpuResource ? (parseQuantity(capacity[gpuResource]) ?? 0) : 0;
  const health = nodeHealth(node);
  return {
    nodeId: node.metadata?.name ?? "",
    healthy: health.healthy,
    ...(health.reason ? { reason: health.reason } : {}),
    cpu_utilization_percent: percent(usage?.cpu ?? null, parseQuantity(capacity.cpu)),
    // Usage comes from metrics-server; without it the sizes alone would read as 0 % used.
    memory:
      memTotal !== null && memUsage !== null
        ? { total: memTotal, allocatable: memAlloc ?? memTotal, usage_percent: memUsage }
        : null,
    // Kubernetes reports no disk usage per node; DiskPressure (in `healthy`) says when it runs short.
    disk: null,
    // The device plugin counts GPUs; it does not name them. Ids are the node's ordinals.
    gpus: Array.from({ length: Math.max(0, Math.floor(gpuCount)) }, (_, i) => ({
      id: String(i),
      memory_total: null,
      memory_used: null,
      utilization: null,
    })),
    checkedAt,
  };
};

/** Node usage from metrics.k8s.io; an empty map when metrics-server is not installed. */
export const readNodeUsage = async (api: KubeApi): Promise<Map<string, NodeUsage> | null> => {
  try {
    const list = (await api.custom.listClusterCustomObject({
      group: "metrics.k8s.io",
      version: "v1beta1",
      plural: "nodes",
    })) as { items?: { metadata?: { name?: string }; usage?: { cpu?: string; memory?: string } }[] };
    const out = new Map<string, NodeUsage>();
    for (const item of list.items ?? []) {
      if (!item.metadata?.name) continue;
      out.set(item.metadata.name, {
        cpu: parseQuantity(item.usage?.cpu),
        memory: parseQuantity(item.usage?.memory),
      });
    }
    return out;
  } catch (err) {
    const code = statusCode(err);
    // 404: no metrics API (metrics-server not installed); 403: not allowed to read it. Neither is fatal.
    if (code === 404 || code === 403 || code === 503) return null;
    throw err;
  }
};

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export interface DrainOptions {
  /** Longest time for evictions refused by a PodDisruptionBudget (429) and for pods to go; default 5 min. */
  timeoutMs?: number;
  /** Between retries of a refused eviction and checks of pods still terminating; default 2 s. */
  retryMs?: number;
}

export interface DrainReport {
  node: string;
  evicted: string[];
  /** Pods left alone: DaemonSet pods (they run on every node) and static (mirror) pods. */
  skipped: string[];
}

const podKey = (p: V1Pod) => `${p.metadata?.namespace}/${p.metadata?.name}`;

/** What `kubectl drain` leaves behind as well. */
const drainExempt = (p: V1Pod): boolean =>
  (p.metadata?.ownerReferences ?? []).some((o) => o.kind === "DaemonSet") ||
  p.metadata?.annotations?.["kubernetes.io/config.mirror"] !== undefined;

const finished = (p: V1Pod) => p.status?.phase === "Succeeded" || p.status?.phase === "Failed";

/** Node lifecycle operations of the driver, bound to one cluster's node label. */
export class NodeOps {
  constructor(
    readonly api: KubeApi,
    /** The node label value marking nodes of this aios cluster. */
    readonly clusterLabel: { key: string; value: string },
  ) {}

  async #get(nodeId: string): Promise<V1Node> {
    const node = await callOrNull(`reading node ${nodeId}`, () => this.api.core.readNode({ name: nodeId }));
    if (!node) throw new Error(`there is no Kubernetes node named ${JSON.stringify(nodeId)}`);
    return node;
  }

  async #patch(nodeId: string, body: Record<string, unknown>, action: string): Promise<V1Node> {
    try {
      return await this.api.core.patchNode({ name: nodeId, body }, mergePatch);
    } catch (err) {
      if (isNotFound(err)) throw new Error(`there is no Kubernetes node named ${JSON.stringify(nodeId)}`);
      return call(`${action} node ${nodeId}`, () => Promise.reject(err));
    }
  }

  /**
   * Joins a node to this aios cluster: labels it (the cluster's label and any `labels` given) and makes
   * it schedulable again, as `kubectl uncordon` would.
   */
  async onboard(nodeId: string, labels: Record<string, string> = {}): Promise<V1Node> {
    await this.#get(nodeId);
    return this.#patch(
      nodeId,
      {
        metadata: { labels: { ...labels, [this.clusterLabel.key]: this.clusterLabel.value } },
        spec: { unschedulable: null },
      },
      "onboarding",
    );
  }

  /** Cordon (no new pods) or uncordon: `spec.unschedulable`. */
  async cordon(nodeId: string, cordoned: boolean): Promise<V1Node> {
    return this.#patch(
      nodeId,
      { spec: { unschedulable: cordoned ? true : null } },
      cordoned ? "cordoning" : "uncordoning",
    );
  }

  /**
   * Cordons the node and evicts its pods through the Eviction API (DaemonSet and static pods stay, as
   * with `kubectl drain`); retries evictions a PodDisruptionBudget refuses, and waits for the pods to
   * go, up to `timeoutMs`.
   */
  async drain(nodeId: string, options: DrainOptions = {}): Promise<DrainReport> {
    const timeoutMs = options.timeoutMs ?? 300_000;
    const retryMs = options.retryMs ?? 2000;
    const deadline = Date.now() + timeoutMs;
    await this.cordon(nodeId, true);
    const list = await call(`listing the pods of node ${nodeId}`, () =>
      this.api.core.listPodForAllNamespaces({ fieldSelector: `spec.nodeName=${nodeId}` }),
    );
    const pods = list.items.filter((p) => !finished(p));
    const skipped = pods.filter(drainExempt).map(podKey);
    let pending = pods.filter((p) => !drainExempt(p));
    const evicted: string[] = [];
    while (pending.length > 0) {
      const refused: V1Pod[] = [];
      for (const pod of pending) {
        const name = pod.metadata?.name ?? "";
        const namespace = pod.metadata?.namespace ?? "default";
        try {
          await this.api.core.createNamespacedPodEviction({
            name,
            namespace,
            body: { apiVersion: "policy/v1", kind: "Eviction", metadata: { name, namespace } },
          });
          evicted.push(podKey(pod));
        } catch (err) {
          const code = statusCode(err);
          if (code === 404) continue; // already gone
          if (code === 429)
            refused.push(pod); // a disruption budget says not now
          else await call(`evicting pod ${podKey(pod)}`, () => Promise.reject(err));
        }
      }
      pending = refused;
      if (pending.length === 0) break;
      if (Date.now() >= deadline) {
        throw new Error(
          `draining node ${nodeId}: evictions still refused by a PodDisruptionBudget after ${timeoutMs} ms: ${pending.map(podKey).join(", ")}`,
        );
      }
      await sleep(retryMs);
    }
    // Evicted pods terminate gracefully; the node is drained once they are gone.
    for (let left = evicted; left.length > 0; ) {
      const still: string[] = [];
      for (const key of left) {
        const [namespace = "", name = ""] = key.split("/");
        const pod = await callOrNull(`reading pod ${key}`, () =>
          this.api.core.readNamespacedPod({ name, namespace }),
        );
        if (pod && pod.spec?.nodeName === nodeId && !finished(pod)) still.push(key);
      }
      left = still;
      if (left.length === 0) break;
      if (Date.now() >= deadline) {
        throw new Error(
          `draining node ${nodeId}: pods still terminating after ${timeoutMs} ms: ${left.join(", ")}`,
        );
      }
      await sleep(retryMs);
    }
    return { node: nodeId, evicted, skipped };
  }

  /**
   * Takes a node out of this aios cluster: drained (and so left cordoned, ready to be decommissioned or
   * uncordoned by its operator), then its aios label removed.
   */
  async remove(nodeId: string, options: DrainOptions = {}): Promise<DrainReport> {
    await this.#get(nodeId);
    const report = await this.drain(nodeId, options);
    await this.#patch(nodeId, { metadata: { labels: { [this.clusterLabel.key]: null } } }, "unlabelling");
    return report;
  }
}
