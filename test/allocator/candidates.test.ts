/**
 * Where the allocator's candidates come from, on every store backend: the store's `getMany` (ids in
 * order, with a filter and a limit) and `search` (full-text over cluster documents, ranked), and
 * `findCandidates` for each source, with the errors for none and too many.
 */
import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { findCandidates } from "../../src/allocator/candidates.ts";
import { parseRequest } from "../../src/allocator/protocol.ts";
import { ApiError } from "../../src/http/errors.ts";
import type { Doc } from "../../src/store/index.ts";
import { backends, indexedBackends, useCollection } from "../support/stores.ts";

setDefaultTimeout(120_000);

const CLUSTERS: Doc[] = [
  {
    id: "c-vision",
    tags: ["gpu", "vision"],
    gpus: { count: 8 },
    clusterMetadata: { description: "Serving computer vision models", vendor: "dma-bangalore" },
    nodes: { nodeData: [{ id: "n1", gpus: { modelName: ["NVIDIA A100"] } }] },
  },
  {
    id: "c-llm",
    tags: ["gpu", "llm"],
    gpus: { count: 4 },
    clusterMetadata: { description: "Large language models on H100 GPUs", vendor: "helix" },
  },
  {
    id: "c-both",
    tags: ["gpu", "vision", "llm"],
    gpus: { count: 16 },
    clusterMetadata: { description: "Vision and language models, A100 nodes", vendor: "dma-bangalore" },
  },
  {
    id: "c-cpu",
    tags: ["cpu"],
    gpus: { count: 0 },
    clusterMetadata: { description: "batch jobs", vendor: "helix" },
  },
  {
    id: "c-quote",
    tags: ["o'brien", "back\\slash"],
    clusterMetadata: { description: "xylo & yak | !zebu <-> wombat:*" },
  },
];
const METRICS: Doc[] = [
  { id: "c-vision", cluster: { vcpu: { load_15m: 3 }, gpu: { totalFreeMem: 20000 } } },
  { id: "c-llm", cluster: { vcpu: { load_15m: 15 }, gpu: { totalFreeMem: 30000 } } },
  { id: "c-both", cluster: { vcpu: { load_15m: 5 }, gpu: { totalFreeMem: 8000 } } },
  // c-cpu and c-quote have no metrics; "c-gone" has metrics but no cluster document.
  { id: "c-gone", cluster: { vcpu: { load_15m: 1 }, gpu: { totalFreeMem: 99999 } } },
];

const ids = (docs: { id: string }[]) => docs.map((d) => d.id);
const found = (results: { doc: Doc }[]) => results.map((r) => r.doc.id);

describe.each([...backends, ...indexedBackends].map((b) => [b.name, b] as const))(
  "candidates on %s",
  (_name, backend) => {
    const clusters = useCollection(backend, "clusters", async (col) => {
      for (const c of CLUSTERS) await col.insert(c);
    });
    const metrics = useCollection(backend, "cluster_metrics", async (col) => {
      for (const m of METRICS) await col.insert(m);
    });

    test("getMany: in the order asked, missing ids left out, with a filter and a limit", async () => {
      expect(ids(await clusters.col.getMany(["c-llm", "nope", "c-vision", "c-cpu"]))).toEqual([
        "c-llm",
        "c-vision",
        "c-cpu",
      ]);
      expect(await clusters.col.getMany([])).toEqual([]);
      const gpu = { "gpus.count": { $gt: 0 } };
      expect(ids(await clusters.col.getMany(["c-cpu", "c-both", "c-llm"], { filter: gpu }))).toEqual([
        "c-both",
        "c-llm",
      ]);
      expect(
        ids(await clusters.col.getMany(["c-cpu", "c-both", "c-llm"], { filter: gpu, limit: 1 })),
      ).toEqual(["c-both"]);
      const many = Array.from({ length: 5000 }, (_, i) => `x-${i}`).concat(["c-vision"]);
      expect(ids(await clusters.col.getMany(many))).toEqual(["c-vision"]);
    });

    test("search: any word, stemmed, best first; a document holding more of them ranks higher", async () => {
      const results = await clusters.col.search("vision A100 models");
      expect(found(results)).toContain("c-vision");
      expect(found(results)).toContain("c-both");
      expect(found(results)).toContain("c-llm"); // "models" alone
      expect(found(results)).not.toContain("c-cpu");
      const rank = new Map(results.map((r) => [r.doc.id, r.rank]));
      expect(rank.get("c-llm")!).toBeLessThan(rank.get("c-vision")!);
      for (let i = 1; i < results.length; i++)
        expect(results[i]!.rank).toBeLessThanOrEqual(results[i - 1]!.rank);
      // Stemming: "serve" finds "Serving"; case does not matter.
      expect(found(await clusters.col.search("SERVE"))).toEqual(["c-vision"]);
      // Limit and filter.
      expect(await clusters.col.search("vision", { limit: 1 })).toHaveLength(1);
      expect(
        found(
          await clusters.col.search("vision", {
            filter: { "clusterMetadata.vendor": "dma-bangalore", "gpus.count": { $gt: 10 } },
          }),
        ),
      ).toEqual(["c-both"]);
    });

    test("search: text with only stop words or punctuation matches nothing; quotes are plain text", async () => {
      expect(await clusters.col.search("the and of")).toEqual([]);
      expect(await clusters.col.search("&|!():*")).toEqual([]);
      expect(found(await clusters.col.search("o'brien"))).toEqual(["c-quote"]);
      expect(found(await clusters.col.search("xylo & yak | !zebu <-> wombat:*"))).toEqual(["c-quote"]);
    });

    test("search: the vector follows the document as it changes", async () => {
      await clusters.col.insert({ id: "c-new", tags: ["quantum"] });
      expect(found(await clusters.col.search("quantum"))).toEqual(["c-new"]);
      await clusters.col.update("c-new", { $set: { tags: ["classical"] } });
      expect(await clusters.col.search("quantum")).toEqual([]);
      expect(found(await clusters.col.search("classical"))).toEqual(["c-new"]);
      await clusters.col.delete("c-new");
    });

    test("search is only for searchable collections", async () => {
      await expect(metrics.col.search("x")).rejects.toThrow("no search vector");
    });

    const candidates = (payload: Record<string, unknown>, max = 100) =>
      findCandidates(
        { clusters: clusters.col, metrics: metrics.col },
        parseRequest(JSON.stringify({ adhoc: true, policy_rule_uri: "p:v1", inputs: {}, ...payload })).source,
        max,
      );
    const refusal = async (payload: Record<string, unknown>, max = 100) => {
      try {
        await candidates(payload, max);
      } catch (err) {
        expect(err).toBeInstanceOf(ApiError);
        return { code: (err as ApiError).code, message: (err as ApiError).message };
      }
      throw new Error("no error");
    };

    test("findCandidates: ids, each with its metrics or null", async () => {
      const found = await candidates({ clusters: ["c-cpu", "c-vision"] });
      expect(found).toEqual([
        { id: "c-cpu", data: CLUSTERS[3]!, metrics: null },
        { id: "c-vision", data: CLUSTERS[0]!, metrics: METRICS[0]! },
      ]);
      const unknown = await refusal({ clusters: ["c-cpu", "c-x", "c-y"] });
      expect(unknown.code).toBe("unknown_cluster");
      expect(unknown.message).toBe("clusters: no cluster 'c-x' is registered (and 1 more)");
    });

    test("findCandidates: filter over clusters, metrics, or both (a cluster must match both)", async () => {
      const gpus = { clusterQuery: { conditions: [{ variable: "gpus.count", operator: ">", value: "2" }] } };
      const cool = {
        clusterMetricsQuery: {
          conditions: [{ variable: "cluster.vcpu.load_15m", operator: "<", value: "10" }],
        },
      };
      expect(ids(await candidates({ filter: gpus }))).toEqual(["c-both", "c-llm", "c-vision"]);
      // c-gone's metrics match but it is not a registered cluster.
      expect(ids(await candidates({ filter: cool }))).toEqual(["c-both", "c-vision"]);
      const both = await candidates({
        filter: {
          clusterQuery: {
            conditions: [{ variable: "clusterMetadata.vendor", operator: "==", value: "dma-bangalore" }],
          },
          clusterMetricsQuery: {
            conditions: [{ variable: "cluster.gpu.totalFreeMem", operator: ">", value: "9000" }],
          },
        },
      });
      expect(both).toEqual([{ id: "c-vision", data: CLUSTERS[0]!, metrics: METRICS[0]! }]);
      const none = await refusal({
        filter: { clusterQuery: { conditions: [{ variable: "tags", operator: "==", value: "tpu" }] } },
      });
      expect(none).toEqual({ code: "no_candidates", message: "filter: matched no cluster" });
      expect((await refusal({ filter: gpus }, 2)).code).toBe("too_many_candidates");
    });

    test("findCandidates: search ranked, and every cluster when there is no source", async () => {
      expect(ids(await candidates({ search: { query: "vision A100", limit: 2 } }))).toEqual([
        "c-both",
        "c-vision",
      ]);
      expect((await refusal({ search: { query: "tpu" } })).message).toBe("search: matched no cluster");
      expect(ids(await candidates({}))).toEqual(["c-both", "c-cpu", "c-llm", "c-quote", "c-vision"]);
      expect((await refusal({}, 4)).code).toBe("too_many_candidates");
    });
  },
);
