/**
 * The allocation flow end to end: one registry, real cluster controller processes with different GPU
 * inventories (their instances real processes too), a cluster whose controller never answers its dry run,
 * one whose pre-check refuses the block, one the filter leaves out; `POST /api/createBlock` must put
 * the block on the best cluster that takes it, and record every step.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, type ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { type RunningServers, startRegistry } from "../../src/cli/serve.ts";
import { type RunningGateway, startGateway } from "../../src/gateway/serve.ts";
import { InferenceProxy } from "../../src/gen/inference_pb.ts";
import { installBuiltinPolicies } from "../../src/policy/builtins.ts";
import { PolicyStore } from "../../src/policy/store.ts";
import { RegistryClient } from "../../src/registry/client.ts";
import { BUILTIN_POLICIES } from "../../wasm-policies/catalog.ts";
import { Processes } from "../support/processes.ts";
import { textPacket } from "../support/sentiment.ts";
import { filteredBlockSpec, SAMPLE_BLOCK_SPEC } from "../support/spec-samples.ts";

setDefaultTimeout(120_000);

/** Per run, so a shared PostgreSQL (DATABASE_URL) never mixes this run's documents with another's. */
const RUN = crypto.randomUUID().slice(0, 6);
const cid = (name: string) => `${name}-${RUN}`;
const COMPONENT = `model.sentiment-${RUN}:1.0.0`;

/** The sample's policy URIs, each served by a built-in of the same kind. */
const SAMPLE_POLICIES: Record<string, string> = {
  "policy.clusterAllocator.yolo-cluster-selector:v1": "highest-score",
  "policy.resourceAllocator.yolo-gpu-scheduler:v0.0.1-beta": "gpu-free-memory",
  "policy.autoscaler.gpu-based-autoscaler:v0.0.01": "target-tracking",
};

/** block-spec-and-allocation.md, "Sample block specification", verbatim. */
const SAMPLE_SPEC = SAMPLE_BLOCK_SPEC;
const gpuNode = (id: string, gpus: number) => ({
  id,
  gpus: {
    count: gpus,
    memory: gpus * 16384,
    gpus: Array.from({ length: gpus }, () => ({ modelName: "NVIDIA A100", memory: 16384 })),
  },
  vcpus: { count: 16 },
  memory: 65536,
});
/** Cluster id -> GPUs on its one node, reputation (the filter keeps > 50). */
const CLUSTERS = { big: [3, 90], small: [1, 90], refusing: [4, 90], outcast: [4, 10] } as const;

const post = async (url: string, body: unknown, method = "POST") => {
  const res = await fetch(url, {
    method,
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  // biome-ignore lint/suspicious/noExplicitAny: answers are checked field by field
  return { status: res.status, body: (await res.json()) as any };
};

const spec = (blockId: string, extra: Record<string, unknown> = {}) =>
  filteredBlockSpec({ blockId, blockComponentURI: COMPONENT, ...extra }, [
    { variable: "reputation", operator: ">", value: "50" },
    { variable: "tags", operator: "contains", value: RUN },
  ]);

describe("POST /api/createBlock across clusters", () => {
  const work = mkdtempSync(join(tmpdir(), "aios-gateway-"));
  let registry: RunningServers;
  let registryUrl: string;
  /** Cluster id -> its controller's URL: each one a real `aios controller` process. */
  const controllers = new Map<string, { url: string }>();
  const procs = new Processes();
  const startControllerProcess = async (id: string) => {
    const child = procs.bun(`controller-${id}`, [
      "run",
      "src/cli/main.ts",
      "controller",
      ...["--cluster-id", id, "--registry", registryUrl, "--port", "0", "--run-dir", join(work, id)],
      // The registry and gateway here are the library's, without tokens (test/auth covers them).
      "--anonymous",
    ]);
    const { controller } = await child.listening(["controller"], 60_000);
    return { url: controller! };
  };
  let hung: ReturnType<typeof Bun.serve>;
  let gateway: RunningGateway;

  beforeAll(async () => {
    registry = await startRegistry({ host: "127.0.0.1", port: 0, metricsPort: 0 });
    registryUrl = registry.listeners[0]!.url;
    await installBuiltinPolicies(new PolicyStore(registry.store));
    expect(
      (
        await post(`${registryUrl}/components`, {
          componentURI: COMPONENT,
          componentParameters: { min_confidence: 0 },
          runtime: { command: ["bun", "examples/sentiment/instance.ts"] },
          policies: {
            loadBalancer: { policyRuleURI: "policy.loadBalancer.roundrobin:v0.0.1" },
            resourceAllocator: {
              policyRuleURI: "policy.resourceAllocator.gpu-free-memory:v0.0.1",
              parameters: { gpus: 1, gpu_memory_per_instance: 16000 },
            },
          },
        })
      ).status,
    ).toBe(201);
    for (const [name, [gpus, reputation]] of Object.entries(CLUSTERS)) {
      const id = cid(name);
      const config =
        name === "refusing"
          ? {
              preCheckPolicies: {
                add_block: {
                  policyRuleURI: "policy.preCheck.instance-quota:v0.0.1",
                  parameters: { max_instances: 1 },
                },
              },
            }
          : {};
      await post(`${registryUrl}/clusters`, {
        id,
        status: "live",
        reputation,
        tags: [RUN],
        nodes: { count: 1, nodeData: [gpuNode(`${id}-node`, gpus)] },
        config,
      });
      controllers.set(name, await startControllerProcess(id));
    }
    // The specification's sample (block-spec-and-allocation.md) as written: its component, its policies
    // (built-ins stored under the sample's URIs) and a cluster its filter matches.
    const client = new RegistryClient(registryUrl);
    for (const [uri, name] of Object.entries(SAMPLE_POLICIES)) {
      const entry = BUILTIN_POLICIES.find((p) => p.name === name)!;
      await client.uploadPolicy(uri, new Uint8Array(readFileSync(entry.file)), { kind: entry.kind });
    }
    await post(`${registryUrl}/components`, {
      componentURI: "model.object-detector:2.0.0-stable",
      runtime: { command: ["bun", "examples/sentiment/instance.ts"] },
    });
    await post(`${registryUrl}/clusters`, {
      id: cid("dma"),
      status: "live",
      reputation: 40, // below the other tests' filter
      gpus: { count: 8, memory: 8 * 16384 },
      clusterMetadata: { vendor: "dma-bangalore" },
      nodes: { count: 2, nodeData: [gpuNode("dma-n1", 4), gpuNode("dma-n2", 4)] },
    });
    await post(
      `${registryUrl}/cluster/${cid("dma")}`,
      { cluster: { vcpu: { load_15m: 2.5 }, gpu: { totalFreeMem: 120000 } } },
      "PUT",
    );
    controllers.set("dma", await startControllerProcess(cid("dma")));

    // A cluster whose controller accepts connections and never answers.
    hung = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: () => new Promise<Response>(() => {}) });
    await post(`${registryUrl}/clusters`, {
      id: cid("hung"),
      status: "live",
      reputation: 95,
      tags: [RUN],
      nodes: { count: 1, nodeData: [gpuNode("hung-node", 8)] },
      config: { urlMap: { controllerService: `http://127.0.0.1:${hung.port}` } },
    });
    gateway = await startGateway({ port: 0, registryUrl, store: {}, dryRunTimeoutMs: 1500 });
  });

  afterAll(async () => {
    await gateway?.stop();
    // Controllers leave their workloads running when stopped: remove every block first.
    for (const c of controllers.values()) {
      const blocks = (await (await fetch(`${c.url}/blocks`)).json().catch(() => [])) as { id: string }[];
      for (const b of blocks)
        await post(`${c.url}/executeAction`, { action: "remove_block", data: { block_id: b.id } });
    }
    await procs.stopAll();
    for (const name of [...Object.keys(CLUSTERS), "dma", "hung"]) {
      await fetch(`${registryUrl}/clusters/${cid(name)}`, { method: "DELETE" });
      await fetch(`${registryUrl}/cluster/${cid(name)}`, { method: "DELETE" });
    }
    await fetch(`${registryUrl}/components/${encodeURIComponent(COMPONENT)}`, { method: "DELETE" });
    await hung?.stop(true);
    await registry?.stop();
    rmSync(work, { recursive: true, force: true });
  });

  test("the best cluster that takes the block gets it; every step is recorded", async () => {
    const { status, body } = await post(`${gateway.url}/api/createBlock`, spec("sent-a"));
    expect(status).toBe(201);
    // refusing scores 1.0 (4 GPUs for 4 instances) but its pre-check refuses; big (3 of 4) is next.
    expect(body).toMatchObject({ id: "sent-a", status: "running", cluster_id: cid("big") });
    const steps = body.steps as { step: string; ok: boolean; detail: Record<string, unknown> }[];
    const step = (name: string) => steps.filter((s) => s.step === name);
    expect([...((step("filter")[0]?.detail.clusters as string[] | undefined) ?? [])].sort()).toEqual(
      ["big", "hung", "refusing", "small"].map(cid),
    );
    const dry = step("dry_run")[0]?.detail as Record<string, { score?: number; error?: string }>;
    expect(dry[cid("refusing")]?.score).toBe(1);
    expect(dry[cid("big")]?.score).toBe(0.75);
    expect(dry[cid("small")]?.score).toBe(0.25);
    expect(dry[cid("hung")]?.error).toContain("no dry-run answer within 1500 ms");
    expect(step("post_dry_run")[0]?.detail).toMatchObject({ cluster_id: cid("refusing") });
    const allocations = step("allocation");
    expect(allocations.map((a) => [a.detail.cluster_id, a.ok])).toEqual([
      [cid("refusing"), false],
      [cid("big"), true],
    ]);
    expect(String(allocations[0]?.detail.error)).toContain("add_block");

    // The block runs on big, placed on its GPU node, and classifies.
    const onBig = await (await fetch(`${controllers.get("big")!.url}/blocks/sent-a`)).json();
    expect(onBig).toMatchObject({ status: "running", minInstances: 1, maxInstances: 4 });
    expect(onBig.instances[0]).toMatchObject({ node_id: `${cid("big")}-node`, gpus: ["0"] });
    const client = createClient(InferenceProxy, createGrpcTransport({ baseUrl: onBig.services.urls.grpc }));
    const res = await client.infer({ rpcData: textPacket("a wonderful, great film", "s-1") });
    expect(JSON.parse(res.result)).toMatchObject({ label: "positive", gpus: ["0"] });
    expect((await fetch(`${controllers.get("refusing")!.url}/blocks/sent-a`)).status).toBe(404);
    // Plain gRPC through the cluster's public gateway (/block/{id}/rpc), relayed stream to stream.
    const big = controllers.get("big")!.url;
    const viaGateway = createClient(
      InferenceProxy,
      createGrpcTransport({ baseUrl: `${big}/block/sent-a/rpc` }),
    );
    const relayed = await viaGateway.infer({ rpcData: textPacket("a wonderful, great film", "s-g") });
    expect(JSON.parse(relayed.result)).toMatchObject({ label: "positive" });
    const nowhere = createClient(InferenceProxy, createGrpcTransport({ baseUrl: `${big}/block/nope/rpc` }));
    const missing = await nowhere.infer({ rpcData: textPacket("x", "s-n") }).catch((e: ConnectError) => e);
    expect((missing as ConnectError).code).toBe(Code.NotFound);
    expect(
      (await post(`${gateway.url}/api/blocks/sent-a`, undefined, "GET").catch(() => null)) ?? null,
    ).toBeDefined();
  });

  test("the specification's sample block specification, as written, runs", async () => {
    const { status, body } = await post(`${gateway.url}/api/createBlock`, SAMPLE_SPEC);
    expect([status, body.status, body.cluster_id]).toEqual([201, "running", cid("dma")]);
    const onDma = await (await fetch(`${controllers.get("dma")!.url}/blocks/detector-yolo-88`)).json();
    expect(onDma).toMatchObject({
      minInstances: 1,
      maxInstances: 5,
      initSettings: { batch_size: 4, timeout_ms: 1000 },
    });
    expect(onDma.policies.loadBalancer).toMatchObject({ parameters: { cache_sessions: true } });
    expect(onDma.instances[0].gpus).toHaveLength(1);
    const client = createClient(InferenceProxy, createGrpcTransport({ baseUrl: onDma.services.urls.grpc }));
    const res = await client.infer({ rpcData: textPacket("a dull and boring film", "s-2") });
    expect(JSON.parse(res.result)).toMatchObject({ label: "negative" });
    expect((await fetch(`${gateway.url}/api/blocks/detector-yolo-88`, { method: "DELETE" })).status).toBe(
      200,
    );
  });

  test("the record is readable, listed, and removal stops the block on its cluster", async () => {
    const record = await (await fetch(`${gateway.url}/api/blocks/sent-a`)).json();
    expect(record).toMatchObject({ status: "running", cluster_id: cid("big") });
    const listed = (await (await fetch(`${gateway.url}/api/blocks?status=running`)).json()) as {
      id: string;
    }[];
    expect(listed.map((b) => b.id)).toContain("sent-a");
    const removed = await fetch(`${gateway.url}/api/blocks/sent-a`, { method: "DELETE" });
    expect(removed.status).toBe(200);
    expect(((await removed.json()) as { status: string }).status).toBe("removed");
    expect((await fetch(`${controllers.get("big")!.url}/blocks/sent-a`)).status).toBe(404);
  });

  test("no cluster can take it: the creation fails with why, recorded", async () => {
    const { status, body } = await post(
      `${gateway.url}/api/createBlock`,
      spec("too-big", {
        policyRulesSpec: [
          {
            values: {
              name: "clusterAllocator",
              policyRuleURI: "policy.clusterAllocator.highest-score:v0.0.1",
              parameters: {
                filter: {
                  clusterQuery: {
                    logicalOperator: "AND",
                    conditions: [{ variable: "reputation", operator: ">", value: "99" }],
                  },
                },
              },
            },
          },
        ],
      }),
    );
    expect(status).toBe(409);
    expect(body.error.code).toBe("no_candidate_cluster");
    const record = await (await fetch(`${gateway.url}/api/blocks/too-big`)).json();
    expect(record).toMatchObject({ status: "failed", error: { code: "no_candidate_cluster" } });
  });

  test("bad input: a 4xx naming what is wrong, nothing recorded", async () => {
    const bad = await post(`${gateway.url}/api/createBlock`, spec("x", { maxInstances: 0 }));
    expect(bad.status).toBe(400);
    expect(bad.body.error.message).toContain("body.spec.values.maxInstances");
    const unknown = await post(
      `${gateway.url}/api/createBlock`,
      spec("y", { blockComponentURI: "model.none:1.0" }),
    );
    expect(unknown.status).toBe(422);
    expect(unknown.body.error.message).toContain("blockComponentURI");
    const notJson = await fetch(`${gateway.url}/api/createBlock`, { method: "POST", body: "{oops" });
    expect(notJson.status).toBe(400);
    expect((await fetch(`${gateway.url}/api/blocks/x`)).status).toBe(404);
    expect((await fetch(`${gateway.url}/api/blocks/y`)).status).toBe(404);
  });
});
