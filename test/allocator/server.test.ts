/**
 * The resource allocator server over real WebSockets, on every store backend (in-memory PGlite, and
 * PostgreSQL when DATABASE_URL is set): each way of choosing candidates, the policy's input and host
 * functions, errors naming the field on a socket that stays usable, many clients with many requests
 * in flight, and a slow policy that holds up neither other connections nor other policies.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { Query } from "mingo";
import type { InlineRunner, WorkerPool } from "../../src/allocator/pool.ts";
import { type RunningAllocator, startAllocator } from "../../src/allocator/serve.ts";
import { installBuiltinPolicies } from "../../src/policy/builtins.ts";
import { PolicyStore } from "../../src/policy/store.ts";
import { conditionsToFilter, type Doc, openStore, type Store } from "../../src/store/index.ts";
import { SPEC_FILTER, ALLOCATOR_SAMPLE_PAYLOAD as SPEC_SAMPLE } from "../support/spec-samples.ts";
import { STORE_CONFIGS } from "../support/stores.ts";
import { AllocatorClient, type GeneratedCluster, generateCluster } from "./fixtures.ts";
import { echoPolicy, failingAllocatorPolicy, hostCallPolicy, slowPolicy, uploadWat } from "./policies.ts";

setDefaultTimeout(120_000);

const MOST_FREE_GPU = "policy.allocator.most-free-gpu:v0.0.1";
const ECHO = "test.allocator.echo:v1";
const FAILING = "test.allocator.failing:v1";
const SLOW = "test.allocator.slow:v1";
const NOT_ALLOCATOR = "test.allocator.wrong-kind:v1";
/** About a second and a half of spinning (the fuel budget is raised to allow it). */
const SLOW_ITERATIONS = 1_000_000_000;

const gpu = (memory: number) => ({ modelName: "NVIDIA A100", memory });

/**
 * `cluster-123` is built so that the built-in policy answers the specification's output example
 * ({"cluster_id": "cluster-123", "node_id": "node-0", "gpus": ["0", "2"]}) for two GPUs: GPUs 0 and 2
 * of node-0 have the most free memory of all.
 */
const HAND_MADE: GeneratedCluster[] = [
  {
    cluster: {
      id: "cluster-123",
      status: "live",
      nodes: {
        count: 2,
        nodeData: [
          {
            id: "node-0",
            gpus: { count: 4, memory: 65536, gpus: [gpu(16384), gpu(16384), gpu(16384), gpu(16384)] },
          },
          { id: "node-1", gpus: { count: 2, memory: 32768, gpus: [gpu(16384), gpu(16384)] } },
        ],
      },
      tags: ["gpu", "hand-made"],
      clusterMetadata: { name: "spec example", vendor: "spec" },
    },
    metrics: {
      id: "cluster-123",
      nodes: {
        "node-0": {
          status: "healthy",
          gpus: [
            { id: "0", memory_total: 16384, memory_free: 15000, utilization: 0.1 },
            { id: "1", memory_total: 16384, memory_free: 2000, utilization: 0.9 },
            { id: "2", memory_total: 16384, memory_free: 14000, utilization: 0.2 },
            { id: "3", memory_total: 16384, memory_free: 1000, utilization: 0.95 },
          ],
        },
        "node-1": {
          status: "healthy",
          gpus: [
            { id: "0", memory_total: 16384, memory_free: 9000, utilization: 0.3 },
            { id: "1", memory_total: 16384, memory_free: 8000, utilization: 0.3 },
          ],
        },
      },
    },
  },
  {
    cluster: {
      id: "cluster-small",
      status: "live",
      nodes: { count: 1, nodeData: [{ id: "s-0", gpus: { count: 1, memory: 16384, gpus: [gpu(16384)] } }] },
      tags: ["gpu", "hand-made"],
    },
    // No metrics document: the policy sees cluster_metrics null and counts the GPU as free.
    metrics: null as unknown as Doc,
  },
];

const GENERATED = Array.from({ length: 60 }, (_, i) => generateCluster(i, 0xa110c));

const upload = async (store: Store) => {
  const policies = new PolicyStore(store);
  for (const uri of [ECHO, FAILING, SLOW, NOT_ALLOCATOR]) await policies.delete(uri).catch(() => {});
  await uploadWat(store, ECHO, echoPolicy("cluster-123"));
  await uploadWat(store, FAILING, failingAllocatorPolicy("no GPU fits the request"));
  await uploadWat(store, SLOW, slowPolicy("cluster-123", SLOW_ITERATIONS), { fuel: 2_000_000_000 });
  await uploadWat(store, NOT_ALLOCATOR, echoPolicy("cluster-123"), { kind: "loadBalancer" });
  await installBuiltinPolicies(policies);
};

type Answer = Record<string, unknown>;
const errorOf = (answer: Answer) => answer.error as { code: string; message: string; details: unknown };

/** The field an error names: details.path, or the first zod issue's path. */
const fieldOf = (answer: Answer): string | undefined => {
  const details = errorOf(answer).details as { path?: string; issues?: { path: string }[] } | null;
  return details?.path ?? details?.issues?.[0]?.path;
};

const echoed = (answer: Answer) => {
  expect(answer.error).toBeUndefined();
  return answer.echo as {
    parameters: Record<string, unknown>;
    input_data: {
      cluster_data: Record<string, { data: Doc; cluster_metrics: Doc | null }>;
      inputs: Record<string, unknown>;
    };
    context: Record<string, unknown>;
  };
};

describe.each(STORE_CONFIGS)("the allocator server on %s", (_name, config) => {
  let store: Store;
  let server: RunningAllocator;
  let client: AllocatorClient;

  beforeAll(async () => {
    store = await openStore(config);
    const clusters = store.collection("clusters");
    const metrics = store.collection("cluster_metrics");
    await clusters.clear();
    await metrics.clear();
    for (const g of [...HAND_MADE, ...GENERATED]) {
      await clusters.insert(g.cluster);
      if (g.metrics) await metrics.insert(g.metrics);
    }
    await upload(store);
    server = await startAllocator({ store, port: 0, workers: 2 });
    client = await AllocatorClient.connect(server.url);
  });

  afterAll(async () => {
    client?.close();
    await server?.stop();
    await store?.collection("clusters").clear();
    await store?.collection("cluster_metrics").clear();
    await store?.close();
  });

  const request = (overrides: Record<string, unknown>) =>
    client.request({ ...SPEC_SAMPLE, policy_rule_uri: MOST_FREE_GPU, ...overrides });

  test("the specification's sample payload: an error naming policy_rule_uri, and the socket stays open", async () => {
    const answer = await client.request(SPEC_SAMPLE);
    expect(errorOf(answer).code).toBe("invalid_input");
    expect(errorOf(answer).message).toStartWith("policy_rule_uri: ");
    expect(fieldOf(answer)).toBe("policy_rule_uri");
    expect(client.open).toBe(true);
  });

  test("clusters: the specification's output example from the built-in policy", async () => {
    const answer = await request({ clusters: ["cluster-small", "cluster-123"], inputs: { gpus: 2 } });
    expect(answer).toEqual({ cluster_id: "cluster-123", node_id: "node-0", gpus: ["0", "2"] });
    // One GPU: cluster-small's GPU has no metrics, so it counts as wholly free (16384 > 15000).
    expect(await request({ clusters: ["cluster-123", "cluster-small"], inputs: { gpus: 1 } })).toEqual({
      cluster_id: "cluster-small",
      node_id: "s-0",
      gpus: ["0"],
    });
    // The request's parameters are the policy's defaults for what inputs leave out.
    expect(
      await request({
        clusters: ["cluster-123"],
        inputs: {},
        parameters: { gpus: 1, min_gpu_free_memory: 14500 },
      }),
    ).toEqual({ cluster_id: "cluster-123", node_id: "node-0", gpus: ["0"] });
  });

  test("input_data is {cluster_data: {id: {data, cluster_metrics}}, inputs}, in the order asked", async () => {
    const ids = ["cluster-00007", "cluster-123", "cluster-small"];
    const echo = echoed(
      await client.request({
        ...SPEC_SAMPLE,
        policy_rule_uri: ECHO,
        clusters: ids,
        inputs: { gpus: 1, model: "llama" },
        parameters: { threshold: 0.5 },
        settings: { selection_mode: "greedy" },
      }),
    );
    expect(Object.keys(echo.input_data.cluster_data)).toEqual(ids);
    const byId = new Map([...HAND_MADE, ...GENERATED].map((g) => [g.cluster.id, g]));
    for (const id of ids) {
      const g = byId.get(id)!;
      expect(echo.input_data.cluster_data[id]).toEqual({
        data: g.cluster,
        cluster_metrics: g.metrics ?? null,
      });
    }
    expect(echo.input_data.cluster_data["cluster-small"]!.cluster_metrics).toBeNull();
    expect(echo.input_data.inputs).toEqual({ gpus: 1, model: "llama" });
    expect(echo.parameters).toEqual({ threshold: 0.5 });
    expect(echo.context).toMatchObject({ policy_uri: ECHO, kind: "allocatorServer", rule_id: ECHO });
  });

  test("filter: the block specification's filter, both lists, each alone, matched as mingo would", async () => {
    const docs = GENERATED.concat(HAND_MADE);
    const clusterQuery = new Query(conditionsToFilter(SPEC_FILTER.clusterQuery));
    const metricsQuery = new Query(conditionsToFilter(SPEC_FILTER.clusterMetricsQuery));
    const expected = (useCluster: boolean, useMetrics: boolean) =>
      docs
        .filter((g) => !useCluster || clusterQuery.test(g.cluster))
        .filter((g) => !useMetrics || (g.metrics !== null && metricsQuery.test(g.metrics)))
        .map((g) => g.cluster.id)
        .sort();
    const keys = async (filter: unknown) =>
      Object.keys(
        echoed(await client.request({ ...SPEC_SAMPLE, policy_rule_uri: ECHO, filter })).input_data
          .cluster_data,
      );
    // The hand-made cluster must be a candidate for the echo policy's fixed answer: add it with OR.
    const orOurs = (list: { logicalOperator: string; conditions: unknown[] }) => ({
      logicalOperator: "OR",
      conditions: [list, { variable: "id", operator: "==", value: "cluster-123" }],
    });
    const both = expected(true, true);
    expect(both.length).toBeGreaterThan(0);
    expect(both.length).toBeLessThan(GENERATED.length / 2);
    expect(
      await keys({
        clusterQuery: orOurs(SPEC_FILTER.clusterQuery),
        clusterMetricsQuery: orOurs(SPEC_FILTER.clusterMetricsQuery),
      }),
    ).toEqual([...new Set([...both, "cluster-123"])].sort());
    expect(await keys({ clusterQuery: orOurs(SPEC_FILTER.clusterQuery) })).toEqual(
      [...new Set([...expected(true, false), "cluster-123"])].sort(),
    );
    expect(await keys({ clusterMetricsQuery: orOurs(SPEC_FILTER.clusterMetricsQuery) })).toEqual(
      [...new Set([...expected(false, true), "cluster-123"])].sort(),
    );
    // The built-in policy over the specification's filter picks one of the filtered clusters.
    const answer = await request({ filter: SPEC_FILTER, inputs: { gpus: 1 } });
    expect(both).toContain(answer.cluster_id as string);
  });

  test("search: full-text over cluster documents, best match first, limited", async () => {
    const found = await store.collection("clusters").search("vision A100", { limit: 8 });
    expect(found.length).toBe(8);
    const text = (d: Doc) => JSON.stringify(d).toLowerCase();
    for (const r of found) expect(/vision|a100/.test(text(r.doc))).toBe(true);
    // Ranked: a document holding both words ranks above one holding either alone.
    const both = GENERATED.filter(
      (g) => text(g.cluster).includes("vision") && text(g.cluster).includes("a100"),
    );
    expect(both.length).toBeGreaterThan(0);
    expect(/vision/.test(text(found[0]!.doc)) && /a100/.test(text(found[0]!.doc))).toBe(true);
    for (let i = 1; i < found.length; i++) expect(found[i]!.rank).toBeLessThanOrEqual(found[i - 1]!.rank);

    // Through the server: the same candidates in the same order, then the built-in policy's choice.
    const ids = found.map((r) => r.doc.id);
    const answer = await request({ search: { query: "vision A100", limit: 8 }, inputs: { gpus: 1 } });
    expect(answer.error).toBeUndefined();
    expect(ids).toContain(answer.cluster_id as string);
    // "spec" (clusterMetadata.vendor) is only in the hand-made cluster: search finds it alone.
    const echo = echoed(
      await client.request({ ...SPEC_SAMPLE, policy_rule_uri: ECHO, search: { query: "spec" } }),
    );
    expect(Object.keys(echo.input_data.cluster_data)).toEqual(["cluster-123"]);
    // Stemming: "GPUs serving" finds documents saying "serving"/"gpu".
    const served = await store.collection("clusters").search("serving", { limit: 100 });
    expect(served.length).toBeGreaterThan(0);
  });

  test("no source: every registered cluster, unless there are more than the server's limit", async () => {
    const echo = echoed(await client.request({ ...SPEC_SAMPLE, policy_rule_uri: ECHO }));
    expect(Object.keys(echo.input_data.cluster_data).length).toBe(GENERATED.length + HAND_MADE.length);
    const limited = await startAllocator({ store, port: 0, workers: 0, limits: { maxCandidates: 10 } });
    try {
      const c = await AllocatorClient.connect(limited.url);
      const answer = await c.request({ ...SPEC_SAMPLE, policy_rule_uri: ECHO });
      expect(errorOf(answer).code).toBe("too_many_candidates");
      const byFilter = await c.request({
        ...SPEC_SAMPLE,
        policy_rule_uri: ECHO,
        filter: { clusterQuery: { conditions: [{ variable: "tags", operator: "contains", value: "gpu" }] } },
      });
      expect(errorOf(byFilter).code).toBe("too_many_candidates");
      expect(fieldOf(byFilter)).toBe("filter");
      c.close();
    } finally {
      await limited.stop();
    }
  });

  test("the cluster and metrics clients are host functions over the candidates", async () => {
    const { store: s } = server;
    const host = async (fn: Parameters<typeof hostCallPolicy>[1], arg: string) => {
      const uri = `test.allocator.host-${fn.replaceAll("_", "-")}:v${arg.length}`;
      await new PolicyStore(s).delete(uri).catch(() => {});
      await uploadWat(s, uri, hostCallPolicy("cluster-123", fn, arg));
      const answer = await client.request({
        ...SPEC_SAMPLE,
        policy_rule_uri: uri,
        clusters: ["cluster-123", "cluster-00003"],
      });
      expect(answer.error).toBeUndefined();
      return answer.host as { ok: boolean; data?: unknown; error?: string };
    };
    const g3 = GENERATED[3]!;
    expect(await host("aios_cluster_read", "cluster-00003")).toEqual({ ok: true, data: g3.cluster });
    expect(await host("aios_metrics_get", "cluster-00003")).toEqual({ ok: true, data: g3.metrics });
    expect(await host("aios_cluster_query", JSON.stringify({ tags: "hand-made" }))).toEqual({
      ok: true,
      data: [HAND_MADE[0]!.cluster],
    });
    expect(await host("aios_metrics_query", JSON.stringify({ query: { id: "cluster-00003" } }))).toEqual({
      ok: true,
      data: [g3.metrics],
    });
    // Only the candidates are there: a cluster outside them reads as not found.
    const outside = await host("aios_cluster_read", "cluster-00004");
    expect(outside.ok).toBe(false);
    expect(outside.error).toContain("cluster-00004");
  });

  test("bad requests are answered with errors naming the field, on a socket that stays usable", async () => {
    const cases: [unknown, string, string][] = [
      [{ ...SPEC_SAMPLE, policy_rule_uri: MOST_FREE_GPU, adhoc: false }, "invalid_input", "adhoc"],
      [{ policy_rule_uri: MOST_FREE_GPU, adhoc: true }, "invalid_input", "inputs"],
      [{ ...SPEC_SAMPLE, policy_rule_uri: MOST_FREE_GPU, clusters: [1] }, "invalid_input", "clusters.0"],
      [{ ...SPEC_SAMPLE, policy_rule_uri: "nope:v1" }, "policy_not_found", "policy_rule_uri"],
      [
        { ...SPEC_SAMPLE, policy_rule_uri: NOT_ALLOCATOR, clusters: ["cluster-123"] },
        "wrong_policy_kind",
        "policy_rule_uri",
      ],
      [
        { ...SPEC_SAMPLE, policy_rule_uri: MOST_FREE_GPU, clusters: ["cluster-123", "ghost"] },
        "unknown_cluster",
        "clusters",
      ],
      [
        {
          ...SPEC_SAMPLE,
          policy_rule_uri: MOST_FREE_GPU,
          filter: {
            clusterQuery: {
              conditions: [{ variable: "clusterMetadata.vendor", operator: "==", value: "nobody" }],
            },
          },
        },
        "no_candidates",
        "filter",
      ],
      [
        {
          ...SPEC_SAMPLE,
          policy_rule_uri: MOST_FREE_GPU,
          filter: { clusterQuery: { conditions: [{ variable: "a", operator: "~", value: "1" }] } },
        },
        "bad_condition",
        "filter.clusterQuery.conditions.0.operator",
      ],
      [
        { ...SPEC_SAMPLE, policy_rule_uri: MOST_FREE_GPU, search: { query: "zzyzx" } },
        "no_candidates",
        "search",
      ],
      [
        { ...SPEC_SAMPLE, policy_rule_uri: MOST_FREE_GPU, search: { limit: 2 } },
        "invalid_input",
        "search.query",
      ],
      [
        { ...SPEC_SAMPLE, policy_rule_uri: MOST_FREE_GPU, clusters: ["a"], filter: SPEC_FILTER },
        "invalid_input",
        "filter",
      ],
      [{ ...SPEC_SAMPLE, policy_rule_uri: MOST_FREE_GPU, id: 7 }, "invalid_input", "id"],
    ];
    // All sent at once: the answers come back in the same order.
    for (const [payload] of cases) client.send(payload);
    for (const [, code, field] of cases) {
      const answer = await client.next();
      expect({ code: errorOf(answer).code, field: fieldOf(answer) }).toEqual({ code, field });
      expect(errorOf(answer).message).toStartWith(`${field}: `);
    }
    client.send("{not json");
    expect(errorOf(await client.next()).code).toBe("invalid_json");
    client.ws.send(new Uint8Array([0xff, 0xfe, 0x00]));
    expect(errorOf(await client.next()).code).toBe("invalid_json");
    // A binary message in UTF-8 is a request like a text one.
    client.ws.send(
      new TextEncoder().encode(
        JSON.stringify({
          ...SPEC_SAMPLE,
          policy_rule_uri: MOST_FREE_GPU,
          clusters: ["cluster-123"],
          inputs: { gpus: 2 },
        }),
      ),
    );
    expect(await client.next()).toEqual({ cluster_id: "cluster-123", node_id: "node-0", gpus: ["0", "2"] });
    expect(client.open).toBe(true);
  });

  test("a policy's own failures and bad answers are errors with its code", async () => {
    const failed = await client.request({
      ...SPEC_SAMPLE,
      policy_rule_uri: FAILING,
      clusters: ["cluster-123"],
    });
    expect(errorOf(failed).code).toBe("policy_error");
    expect(errorOf(failed).message).toContain("no GPU fits the request");
    // The echo policy answers cluster-123, which is not a candidate here: the contract refuses it.
    const outside = await client.request({
      ...SPEC_SAMPLE,
      policy_rule_uri: ECHO,
      clusters: ["cluster-small"],
    });
    expect(errorOf(outside).code).toBe("bad_output");
    expect(errorOf(outside).message).toContain("cluster_id");
    // The built-in policy explains when nothing fits.
    const none = await request({ clusters: ["cluster-small"], inputs: { gpus: 4 } });
    expect(errorOf(none).code).toBe("policy_error");
    expect(client.open).toBe(true);
  });

  test("plain HTTP: /health, and 426 elsewhere", async () => {
    const http = server.url.replace("ws://", "http://");
    expect(await (await fetch(`${http}/health`)).json()).toEqual({ status: "ok" });
    const res = await fetch(`${http}/`);
    expect(res.status).toBe(426);
    expect(((await res.json()) as Answer).error).toMatchObject({ code: "upgrade_required" });
  });

  test("many clients with many requests in flight: every answer, each connection in its order", async () => {
    const healthy = GENERATED.filter((g) =>
      Object.values(g.metrics.nodes as Record<string, { status: string }>).some(
        (n) => n.status === "healthy",
      ),
    ).map((g) => g.cluster.id);
    const CLIENTS = 16;
    const PER_CLIENT = 12;
    const clients = await Promise.all(
      Array.from({ length: CLIENTS }, () => AllocatorClient.connect(server.url)),
    );
    const started = performance.now();
    await Promise.all(
      clients.map(async (c, ci) => {
        const expected: string[] = [];
        for (let k = 0; k < PER_CLIENT; k++) {
          const id = healthy[(ci * PER_CLIENT + k * 7) % healthy.length]!;
          expected.push(id);
          // Mixed: the built-in policy on one cluster, or the echo policy tagged with its sequence number.
          if (k % 3 === 2)
            c.send({
              ...SPEC_SAMPLE,
              policy_rule_uri: ECHO,
              clusters: ["cluster-123", id],
              inputs: { seq: k },
            });
          else
            c.send({ ...SPEC_SAMPLE, policy_rule_uri: MOST_FREE_GPU, clusters: [id], inputs: { gpus: 0 } });
        }
        for (let k = 0; k < PER_CLIENT; k++) {
          const answer = await c.next();
          if (k % 3 === 2) {
            expect(echoed(answer).input_data.inputs).toEqual({ seq: k });
            expect(Object.keys(echoed(answer).input_data.cluster_data)).toEqual([
              "cluster-123",
              expected[k]!,
            ]);
          } else {
            expect(answer.error).toBeUndefined();
            expect(answer.cluster_id).toBe(expected[k]!);
          }
        }
      }),
    );
    const elapsed = performance.now() - started;
    for (const c of clients) c.close();
    expect(elapsed).toBeLessThan(60_000);
  });

  test("a slow policy holds up neither other connections nor its own connection's order", async () => {
    // A server of its own, so which worker each policy lives on is known: the fast one is seen first.
    const own = await startAllocator({ store, port: 0, workers: 2 });
    try {
      const fast = await AllocatorClient.connect(own.url);
      const slow = await AllocatorClient.connect(own.url);
      const fastRequest = {
        ...SPEC_SAMPLE,
        policy_rule_uri: MOST_FREE_GPU,
        clusters: ["cluster-123"],
        inputs: { gpus: 2 },
      };
      expect(await fast.request(fastRequest)).toMatchObject({ cluster_id: "cluster-123" });

      const t0 = performance.now();
      slow.send({ ...SPEC_SAMPLE, policy_rule_uri: SLOW, clusters: ["cluster-123"] });
      slow.send(fastRequest); // behind the slow one on the same connection
      let slowDone = 0;
      const slowAnswers = (async () => {
        const first = await slow.next();
        slowDone = performance.now();
        return [first, await slow.next()];
      })();
      await Bun.sleep(50);
      const fastTimes: number[] = [];
      for (let i = 0; i < 20; i++) {
        const t = performance.now();
        expect(await fast.request(fastRequest)).toEqual({
          cluster_id: "cluster-123",
          node_id: "node-0",
          gpus: ["0", "2"],
        });
        fastTimes.push(performance.now() - t);
      }
      const fastDone = performance.now();
      const [first, second] = await slowAnswers;
      const slowMs = slowDone - t0;
      expect(first).toEqual({ cluster_id: "cluster-123", spun: 1 });
      expect(second).toMatchObject({ cluster_id: "cluster-123", node_id: "node-0" });
      expect(slowMs).toBeGreaterThan(200); // it really was slow (about 0.5 s of spinning; machines vary)
      expect(fastDone).toBeLessThan(slowDone); // and the other connection was served meanwhile
      expect(Math.max(...fastTimes)).toBeLessThan(slowMs / 2);
      const homes = (own.runner as WorkerPool).homes;
      expect(homes.get(SLOW)).not.toBe(homes.get(MOST_FREE_GPU));
      fast.close();
      slow.close();
    } finally {
      await own.stop();
    }
  });

  test("policy instances are kept per URI, parameters and settings", async () => {
    const inline = await startAllocator({ store, port: 0, workers: 0 });
    try {
      const c = await AllocatorClient.connect(inline.url);
      const base = { ...SPEC_SAMPLE, policy_rule_uri: ECHO, clusters: ["cluster-123"] };
      for (const extra of [
        {},
        { parameters: { a: 1 } },
        { parameters: { a: 1 } },
        { settings: { s: 1 } },
        {},
      ]) {
        expect((await c.request({ ...base, ...extra })).cluster_id).toBe("cluster-123");
      }
      // Same key in another key order: the same instance.
      await c.request({ ...base, parameters: { b: 2, a: 1 } });
      await c.request({ ...base, parameters: { a: 1, b: 2 } });
      // {}, {a:1}, settings {s:1}, {a:1,b:2} in either order.
      expect((inline.runner as InlineRunner).size).toBe(4);
      c.close();
    } finally {
      await inline.stop();
    }
  });
});
