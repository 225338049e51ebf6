/**
 * Cluster documents shaped like the cluster-controller specification's example (nodes with GPUs,
 * config with urlMap, tags, clusterMetadata, reputation) and their global metrics documents (the
 * specification's `cluster.vcpu.load_15m`, `cluster.gpu.totalFreeMem`, and per-node metrics as the
 * built-in placement policies read them), generated from a seed; plus helpers to store them and to
 * talk to the allocator over WebSocket. Shared by the allocator tests and test/bench/allocator.ts.
 */
import type { Doc, Store } from "../../src/store/index.ts";

/** A small seeded generator (mulberry32): the same documents on every run. */
export const rng = (seed: number) => {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    next,
    int: (lo: number, hi: number) => lo + Math.floor(next() * (hi - lo + 1)),
    pick: <T>(list: readonly T[]): T => list[Math.floor(next() * list.length)]!,
  };
};

const GPU_MODELS = [
  { name: "NVIDIA A100", memory: 40960, features: ["fp16", "tensor_cores", "mig"] },
  { name: "NVIDIA H100", memory: 81920, features: ["fp8", "fp16", "tensor_cores"] },
  { name: "NVIDIA V100", memory: 16384, features: ["fp16"] },
  { name: "NVIDIA L4", memory: 24576, features: ["fp16", "int8"] },
  { name: "NVIDIA T4", memory: 16384, features: ["int8"] },
] as const;
const REGIONS = ["us-west-2", "us-east-1", "eu-central-1", "eu-west-1", "ap-south-1", "ap-northeast-1"];
const VENDORS = ["dma-bangalore", "cloudworks", "northwind", "aurora-compute", "helix"];
const WORKLOADS = [
  ["vision", "Dedicated to serving large-scale computer vision models in production"],
  ["llm", "Large language model inference with long contexts and batched decoding"],
  ["speech", "Speech recognition and text to speech for call centers"],
  ["recsys", "Recommendation models with embedding tables and feature stores"],
  ["batch", "Offline batch scoring and evaluation jobs"],
] as const;
const COUNTRIES: Record<string, string[]> = {
  us: ["USA", "Canada"],
  eu: ["Germany", "Ireland", "France"],
  ap: ["India", "Japan", "Singapore"],
};

export interface GeneratedCluster {
  cluster: Doc;
  metrics: Doc;
}

/** One cluster (2 to 8 nodes of 0 to 8 GPUs of one model) and its metrics document. */
export const generateCluster = (index: number, seed = 0x5eed): GeneratedCluster => {
  const r = rng(seed ^ Math.imul(index + 1, 0x9e3779b1));
  const id = `cluster-${String(index).padStart(5, "0")}`;
  const region = r.pick(REGIONS);
  const model = r.pick(GPU_MODELS);
  const [workload, description] = r.pick(WORKLOADS);
  const vendor = r.pick(VENDORS);
  const nodeCount = r.int(2, 8);
  const nodeData: Doc[] = [];
  const nodeMetrics: Record<string, unknown> = {};
  let gpuCount = 0;
  let vcpus = 0;
  let memory = 0;
  let freeGpuMemory = 0;
  let load = 0;
  for (let n = 0; n < nodeCount; n++) {
    const gpus = workload === "batch" && r.next() < 0.5 ? 0 : r.pick([1, 2, 4, 8]);
    const nodeVcpus = r.pick([16, 32, 64, 96]);
    const nodeMemory = nodeVcpus * 4096;
    const nodeId = `node-${n + 1}`;
    nodeData.push({
      id: nodeId,
      gpus: {
        count: gpus,
        memory: gpus * model.memory,
        gpus: Array.from({ length: gpus }, () => ({ modelName: model.name, memory: model.memory })),
        features: [...model.features],
        modelName: gpus > 0 ? [model.name] : [],
      },
      vcpus: { count: nodeVcpus },
      memory: nodeMemory,
      swap: 8192,
      storage: { disks: r.int(1, 4), size: r.pick([524288, 1048576, 2097152]) },
      network: { interfaces: 2, txBandwidth: 10000, rxBandwidth: 10000 },
    });
    const gpuMetrics = Array.from({ length: gpus }, (_, g) => {
      const free = Math.round(model.memory * r.next());
      freeGpuMemory += free;
      return { id: String(g), memory_total: model.memory, memory_free: free, utilization: r.next() };
    });
    const nodeLoad = Math.round(r.next() * 200) / 10;
    load += nodeLoad;
    nodeMetrics[nodeId] = {
      status: r.next() < 0.95 ? "healthy" : "unhealthy",
      vcpu: { load_15m: nodeLoad },
      memory: { total: nodeMemory, free: Math.round(nodeMemory * r.next()) },
      gpus: gpuMetrics,
    };
    gpuCount += gpus;
    vcpus += nodeVcpus;
    memory += nodeMemory;
  }
  const host = `${id}.${vendor}.example.net`;
  const cluster: Doc = {
    id,
    regionId: region,
    status: r.next() < 0.9 ? "live" : "draining",
    nodes: { count: nodeCount, nodeData },
    gpus: { count: gpuCount, memory: gpuCount * model.memory },
    vcpus: { count: vcpus },
    memory,
    swap: 8192 * nodeCount,
    storage: { disks: nodeCount * 2, size: nodeCount * 1048576 },
    network: { interfaces: nodeCount * 2, txBandwidth: nodeCount * 10000, rxBandwidth: nodeCount * 10000 },
    config: {
      policyExecutorId: `policy-exec-${index % 17}`,
      policyExecutionMode: "local",
      customPolicySystem: { name: "AdvancedPolicyRunner", version: "2.1.0" },
      publicHostname: host,
      useGateway: true,
      actionsPolicyMap: { onScaleUp: "evaluate-gpu-availability", onFailure: "notify-admin" },
      urlMap: {
        controllerService: `http://${host}:32000/controller`,
        metricsService: `http://${host}:32000/metrics`,
        blocksQuery: `http://${host}:32000/blocks`,
        publicGateway: `http://${host}:32000`,
        parameterUpdater: `http://${host}:32000/mgmt`,
      },
    },
    tags: [
      "gpu",
      workload,
      region.split("-")[0]!,
      gpuCount >= 16 ? "large" : "small",
      model.name.split(" ")[1]!,
    ],
    clusterMetadata: {
      name: `${workload} cluster ${index}`,
      description,
      owner: `${vendor} infrastructure team`,
      email: `ai-infra@${vendor}.example.net`,
      vendor,
      countries: COUNTRIES[region.slice(0, 2)] ?? ["USA"],
      miscContactInfo: { slack: `#${workload}-infra` },
      additionalInfo: {},
    },
    reputation: r.int(50, 100),
  };
  const metrics: Doc = {
    id,
    cluster: {
      vcpu: { load_15m: Math.round((load / nodeCount) * 10) / 10 },
      gpu: { totalFreeMem: freeGpuMemory, count: gpuCount },
    },
    nodes: nodeMetrics,
  };
  return { cluster, metrics };
};

/** Stores `count` generated clusters and their metrics (the store's tables emptied first). */
export const seedClusters = async (
  store: Store,
  count: number,
  options: { seed?: number; concurrency?: number } = {},
): Promise<GeneratedCluster[]> => {
  const clusters = store.collection("clusters");
  const metrics = store.collection("cluster_metrics");
  await clusters.clear();
  await metrics.clear();
  const all = Array.from({ length: count }, (_, i) => generateCluster(i, options.seed));
  const concurrency = options.concurrency ?? 16;
  for (let i = 0; i < all.length; i += concurrency) {
    await Promise.all(
      all.slice(i, i + concurrency).flatMap((g) => [clusters.insert(g.cluster), metrics.insert(g.metrics)]),
    );
  }
  return all;
};

/** A WebSocket client reading answers in order (the protocol's way: one answer per request). */
export class AllocatorClient {
  readonly #answers: string[] = [];
  readonly #waiting: ((answer: string) => void)[] = [];
  #closed: Promise<CloseEvent>;

  private constructor(readonly ws: WebSocket) {
    ws.onmessage = (event) => {
      const text = String(event.data);
      const waiter = this.#waiting.shift();
      if (waiter) waiter(text);
      else this.#answers.push(text);
    };
    this.#closed = new Promise((resolve) => ws.addEventListener("close", resolve));
  }

  /** Connects; `token` is sent as `Authorization: Bearer` with the upgrade (Bun's client takes headers). */
  static async connect(url: string, token?: string): Promise<AllocatorClient> {
    const ws = token
      ? // Bun's client takes headers; the DOM typings know only protocols.
        new WebSocket(url, { headers: { authorization: `Bearer ${token}` } } as unknown as string[])
      : new WebSocket(url);
    await new Promise<void>((resolve, reject) => {
      ws.onopen = () => resolve();
      ws.onerror = () => reject(new Error(`cannot connect to ${url}`));
    });
    return new AllocatorClient(ws);
  }

  send(request: unknown): void {
    this.ws.send(typeof request === "string" ? request : JSON.stringify(request));
  }

  /** The next answer, parsed. */
  next(): Promise<Record<string, unknown>> {
    const ready = this.#answers.shift();
    if (ready !== undefined) return Promise.resolve(JSON.parse(ready));
    return new Promise((resolve) => this.#waiting.push((text) => resolve(JSON.parse(text))));
  }

  async request(request: unknown): Promise<Record<string, unknown>> {
    this.send(request);
    return this.next();
  }

  get open(): boolean {
    return this.ws.readyState === WebSocket.OPEN;
  }

  get closed(): Promise<CloseEvent> {
    return this.#closed;
  }

  close(): void {
    this.ws.close();
  }
}
