/**
 * The specification's condition lists (`clusterQuery`, `clusterMetricsQuery` in
 * block-spec-and-allocation.md) -> MongoDB filters. The translation is pure and checked as such (the
 * filter it gives, and that filter run by mingo over sample documents); a few round trips through
 * every backend check that the stored documents the filter selects are the same. Values arrive as
 * text: numeric text compares numerically with a number field ("10" vs 9), never as text ("9" > "10").
 */
import { describe, expect, test } from "bun:test";
import { Query } from "mingo";
import { conditionsToFilter, QueryError } from "../../src/store/index.ts";
import { SPEC_FILTER } from "../support/spec-samples.ts";
import { backends, useCollection } from "../support/stores.ts";

type Obj = Record<string, unknown>;

const cluster = (id: string, extra: Obj): Obj => ({
  id,
  kind: "cluster",
  status: "live",
  config: { useGateway: true },
  tags: ["gpu", "production"],
  ...extra,
});

/** Clusters shaped like the cluster-controller specification's, trimmed to the fields queried. */
const CLUSTERS: Obj[] = [
  cluster("c-8-dma", { gpus: { count: 8, memory: 49152 }, clusterMetadata: { vendor: "dma-bangalore" } }),
  cluster("c-4-dma", {
    gpus: { count: 4 },
    clusterMetadata: { vendor: "dma-bangalore" },
    status: "draining",
    tags: ["gpu", "staging"],
  }),
  cluster("c-6-other", {
    gpus: { count: 6 },
    clusterMetadata: { vendor: "other" },
    config: { useGateway: false },
  }),
  cluster("c-5-dma", { gpus: { count: 5 }, clusterMetadata: { vendor: "dma-bangalore" }, tags: ["cpu"] }),
  cluster("c-10-dma", { gpus: { count: 10 }, clusterMetadata: { vendor: "dma-bangalore" }, status: "dead" }),
  cluster("c-nogpu-dma", { clusterMetadata: { vendor: "dma-bangalore" }, tags: "gpu" }),
  cluster("c-6.5-dma", { gpus: { count: 6.5 }, clusterMetadata: { vendor: "dma-bangalore" } }),
];

const metrics = (id: string, load: unknown, freeMem: unknown): Obj => ({
  id,
  kind: "metrics",
  cluster: { vcpu: { load_15m: load }, gpu: { totalFreeMem: freeMem } },
});

/** Cluster metrics with numbers where text comparison would give the other answer. */
const METRICS: Obj[] = [
  metrics("m-9-10000", 9, 10000), // "9" < "10" and "10000" > "9000" are both false as text
  metrics("m-11-10000", 11, 10000),
  metrics("m-9-9000", 9, 9000),
  metrics("m-2.5-20000.5", 2.5, 20000.5),
  metrics("m-10-50000", 10, 50000),
  metrics("m-9.99-9000.01", 9.99, 9000.01),
  metrics("m-missing", 1, undefined),
];

const DOCS = [...CLUSTERS, ...METRICS];

/** The ids of DOCS (of one kind) that mingo's evaluation of the filter selects. */
const mingoIds = (filter: Obj, kind: string): string[] =>
  DOCS.filter((d) => d.kind === kind && new Query(filter, {}).test(JSON.parse(JSON.stringify(d))))
    .map((d) => d.id as string)
    .sort();

const refused = (spec: unknown, path: string, at?: string): QueryError => {
  let error: unknown;
  try {
    conditionsToFilter(spec, at);
  } catch (e) {
    error = e;
  }
  expect(error).toBeInstanceOf(QueryError);
  expect((error as QueryError).path).toBe(path);
  return error as QueryError;
};

const cond = (variable: string, operator: string, value?: unknown): Obj =>
  value === undefined ? { variable, operator } : { variable, operator, value };
const all = (...conditions: unknown[]): Obj => ({ logicalOperator: "AND", conditions });
const any = (...conditions: unknown[]): Obj => ({ logicalOperator: "OR", conditions });

/** The cases run both through mingo and through every backend: [name, kind, spec, expected ids]. */
const CASES: [string, string, Obj, string[]][] = [
  [
    "the specification's clusterQuery",
    "cluster",
    SPEC_FILTER.clusterQuery,
    ["c-10-dma", "c-6.5-dma", "c-8-dma"],
  ],
  [
    "the specification's clusterMetricsQuery",
    "metrics",
    SPEC_FILTER.clusterMetricsQuery,
    ["m-2.5-20000.5", "m-9-10000", "m-9.99-9000.01"],
  ],
  [
    '"<" "10" against 9 matches, against 11 does not',
    "metrics",
    all(cond("cluster.vcpu.load_15m", "<", "10")),
    ["m-2.5-20000.5", "m-9-10000", "m-9-9000", "m-9.99-9000.01", "m-missing"],
  ],
  ['">=" "10"', "metrics", all(cond("cluster.vcpu.load_15m", ">=", "10")), ["m-10-50000", "m-11-10000"]],
  [
    '"<=" " 9 " (trimmed)',
    "metrics",
    all(cond("cluster.vcpu.load_15m", "<=", " 9 ")),
    ["m-2.5-20000.5", "m-9-10000", "m-9-9000", "m-missing"],
  ],
  [
    '">" "9e3" (exponent)',
    "metrics",
    all(cond("cluster.gpu.totalFreeMem", ">", "9e3")),
    ["m-10-50000", "m-11-10000", "m-2.5-20000.5", "m-9-10000", "m-9.99-9000.01"],
  ],
  ['"==" "8" matches the number 8', "cluster", all(cond("gpus.count", "==", "8")), ["c-8-dma"]],
  [
    '"!=" "8" matches every other, missing included',
    "cluster",
    all(cond("gpus.count", "!=", "8")),
    ["c-10-dma", "c-4-dma", "c-5-dma", "c-6-other", "c-6.5-dma", "c-nogpu-dma"],
  ],
  [
    '"==" "true" matches the boolean',
    "cluster",
    all(cond("config.useGateway", "==", "true")),
    ["c-10-dma", "c-4-dma", "c-5-dma", "c-6.5-dma", "c-8-dma", "c-nogpu-dma"],
  ],
  [
    "OR",
    "cluster",
    any(cond("gpus.count", "<", "5"), cond("clusterMetadata.vendor", "==", "other")),
    ["c-4-dma", "c-6-other"],
  ],
  [
    "lower-case or, spelled operators",
    "cluster",
    { logicalOperator: "or", conditions: [cond("gpus.count", "GT", "9"), cond("gpus.count", "lte", "4")] },
    ["c-10-dma", "c-4-dma"],
  ],
  [
    "nested groups",
    "cluster",
    all(
      cond("clusterMetadata.vendor", "==", "dma-bangalore"),
      any(cond("gpus.count", ">=", "8"), all(cond("status", "==", "draining"), cond("gpus.count", "<", "5"))),
    ),
    ["c-10-dma", "c-4-dma", "c-8-dma"],
  ],
  ["in with an array", "cluster", all(cond("status", "in", ["draining", "dead"])), ["c-10-dma", "c-4-dma"]],
  ["in with comma text", "cluster", all(cond("status", "in", "draining, dead")), ["c-10-dma", "c-4-dma"]],
  [
    "in with numeric comma text",
    "cluster",
    all(cond("gpus.count", "in", "4,8, 6.5")),
    ["c-4-dma", "c-6.5-dma", "c-8-dma"],
  ],
  ["not in with an array", "cluster", all(cond("status", "not in", ["live"])), ["c-10-dma", "c-4-dma"]],
  [
    "not in with numeric comma text (missing included)",
    "cluster",
    all(cond("gpus.count", "not in", "4, 8,10,5,6")),
    ["c-6.5-dma", "c-nogpu-dma"],
  ],
  ["contains one tag", "cluster", all(cond("tags", "contains", "staging")), ["c-4-dma"]],
  [
    "contains every listed tag",
    "cluster",
    all(cond("tags", "contains", "gpu,production")),
    ["c-10-dma", "c-6-other", "c-6.5-dma", "c-8-dma"],
  ],
  [
    "contains on a scalar field is equality",
    "cluster",
    all(cond("tags", "contains", ["gpu"]), cond("gpus", "exists", false)),
    ["c-nogpu-dma"],
  ],
  ["contains_any", "cluster", all(cond("tags", "contains_any", ["cpu", "staging"])), ["c-4-dma", "c-5-dma"]],
  ["exists", "cluster", all(cond("gpus.memory", "exists")), ["c-8-dma"]],
  ["exists false", "cluster", all(cond("gpus", "exists", "false")), ["c-nogpu-dma"]],
  [
    "exists true",
    "metrics",
    all(cond("cluster.gpu.totalFreeMem", "exists", true), cond("cluster.vcpu.load_15m", "<", "3")),
    ["m-2.5-20000.5"],
  ],
  ["no conditions match everything", "metrics", all(), METRICS.map((m) => m.id as string).sort()],
];

describe("conditionsToFilter (pure)", () => {
  test("the specification's sample becomes MongoDB filters reading numeric text both ways", () => {
    expect(conditionsToFilter(SPEC_FILTER.clusterQuery)).toEqual({
      $and: [
        { $or: [{ "gpus.count": { $gt: "5" } }, { "gpus.count": { $gt: 5 } }] },
        { "clusterMetadata.vendor": "dma-bangalore" },
      ],
    });
    expect(conditionsToFilter(SPEC_FILTER.clusterMetricsQuery)).toEqual({
      $and: [
        { $or: [{ "cluster.vcpu.load_15m": { $lt: "10" } }, { "cluster.vcpu.load_15m": { $lt: 10 } }] },
        {
          $or: [
            { "cluster.gpu.totalFreeMem": { $gt: "9000" } },
            { "cluster.gpu.totalFreeMem": { $gt: 9000 } },
          ],
        },
      ],
    });
  });

  test("shapes: one condition unwrapped, empty or absent lists match all, AND by default", () => {
    expect(conditionsToFilter(all(cond("a", "==", "x")))).toEqual({ a: "x" });
    expect(conditionsToFilter(all())).toEqual({});
    expect(conditionsToFilter(undefined)).toEqual({});
    expect(conditionsToFilter(null)).toEqual({});
    expect(conditionsToFilter({ conditions: [cond("a", "==", "x"), cond("b", "!=", "y")] })).toEqual({
      $and: [{ a: "x" }, { b: { $nin: ["y"] } }],
    });
    expect(conditionsToFilter(any(cond("a", "==", 1), cond("b", "==", true)))).toEqual({
      $or: [{ a: 1 }, { b: true }],
    });
  });

  test("operators", () => {
    expect(conditionsToFilter(all(cond("n", "==", "5")))).toEqual({ n: { $in: ["5", 5] } });
    expect(conditionsToFilter(all(cond("n", "!=", "5")))).toEqual({ n: { $nin: ["5", 5] } });
    expect(conditionsToFilter(all(cond("b", "=", "false")))).toEqual({ b: { $in: ["false", false] } });
    expect(conditionsToFilter(all(cond("s", "==", "5 apples")))).toEqual({ s: "5 apples" });
    expect(conditionsToFilter(all(cond("n", ">=", 3)))).toEqual({ n: { $gte: 3 } });
    expect(conditionsToFilter(all(cond("s", "in", "a, b")))).toEqual({ s: { $in: ["a", "b"] } });
    expect(conditionsToFilter(all(cond("n", "in", ["1", "x"])))).toEqual({ n: { $in: ["1", 1, "x"] } });
    expect(conditionsToFilter(all(cond("n", "not in", "1")))).toEqual({ n: { $nin: ["1", 1] } });
    expect(conditionsToFilter(all(cond("t", "contains", "a,b")))).toEqual({
      $and: [{ t: { $in: ["a"] } }, { t: { $in: ["b"] } }],
    });
    expect(conditionsToFilter(all(cond("t", "contains", "a")))).toEqual({ t: { $in: ["a"] } });
    expect(conditionsToFilter(all(cond("x", "exists")))).toEqual({ x: { $exists: true } });
    expect(conditionsToFilter(all(cond("x", "exists", false)))).toEqual({ x: { $exists: false } });
    expect(conditionsToFilter(all(cond("x", " Not In ", ["a"])))).toEqual({ x: { $nin: ["a"] } });
  });

  test("errors name the condition at fault: query.conditions.N.<field>", () => {
    const ok = cond("a", "==", "1");
    expect(refused(all(ok, cond("a", "~=", "1")), "query.conditions.1.operator").message).toContain("~=");
    refused(all({ operator: "==", value: "1" }), "query.conditions.0.variable");
    refused(all(ok, { variable: 5, operator: "==", value: "1" }), "query.conditions.1.variable");
    refused(all(cond("a..b", "==", "1")), "query.conditions.0.variable");
    refused(all({ variable: "a", value: "1" }), "query.conditions.0.operator");
    refused(all(cond("a", ">")), "query.conditions.0.value");
    refused(all(cond("a", "in", 5)), "query.conditions.0.value");
    refused(all(ok, 7), "query.conditions.1");
    refused({ logicalOperator: "XOR", conditions: [ok] }, "query.logicalOperator");
    refused({ logicalOperator: 1, conditions: [ok] }, "query.logicalOperator");
    refused(all(ok, { logicalOperator: "NAND", conditions: [ok] }), "query.conditions.1.logicalOperator");
    refused(all(ok, any(ok, cond("b", "like", "x"))), "query.conditions.1.conditions.1.operator");
    refused({ logicalOperator: "AND", conditions: "a == 1" }, "query.conditions");
    refused({ logicalOperator: "AND" }, "query.conditions");
    refused("gpus.count > 5", "query");
    refused(all(cond("a", "~", "1")), "clusterQuery.conditions.0.operator", "clusterQuery");
  });

  for (const [name, kind, spec, expected] of CASES) {
    test(`mingo over the sample documents: ${name}`, () => {
      expect(mingoIds(conditionsToFilter(spec), kind)).toEqual(expected);
    });
  }

  test("a text field compares as text: the reading as a number only applies to number fields", () => {
    const docs = [
      { id: "s9", v: "9" },
      { id: "n9", v: 9 },
      { id: "s10", v: "10" },
    ];
    const lt10 = conditionsToFilter(all(cond("v", "<", "10")));
    expect(docs.filter((d) => new Query(lt10, {}).test(d)).map((d) => d.id)).toEqual(["n9"]);
  });
});

for (const backend of backends) {
  describe(`condition filters on stored documents, ${backend.name}`, () => {
    const db = useCollection(backend, "vdag_controllers", async (col) => {
      for (const d of DOCS) await col.insert(JSON.parse(JSON.stringify(d)));
    });

    const stored = async (spec: Obj, kind: string): Promise<string[]> =>
      (await db.col.find({ $and: [{ kind }, conditionsToFilter(spec)] }, { projection: { id: 1 } }))
        .map((d) => d.id)
        .sort();

    for (const [name, kind, spec, expected] of CASES) {
      test(name, async () => {
        expect(await stored(spec, kind)).toEqual(expected);
      });
    }

    test("numeric text against a number field is compared numerically, never as text", async () => {
      await db.col.insert({ id: "n-9", kind: "num", v: 9 });
      await db.col.insert({ id: "n-11", kind: "num", v: 11 });
      await db.col.insert({ id: "n-10", kind: "num", v: 10 });
      expect(await stored(all(cond("v", "<", "10")), "num")).toEqual(["n-9"]);
      expect(await stored(all(cond("v", ">", "10")), "num")).toEqual(["n-11"]);
      expect(await stored(all(cond("v", ">", "9")), "num")).toEqual(["n-10", "n-11"]);
      expect(await stored(all(cond("v", "==", "10.0")), "num")).toEqual(["n-10"]);
      expect(await stored(all(cond("v", "in", "9,11")), "num")).toEqual(["n-11", "n-9"]);
    });

    test("a text field compares as text (MongoDB's string order), equal to the same text", async () => {
      await db.col.insert({ id: "s-9", kind: "txt", v: "9" });
      await db.col.insert({ id: "s-10", kind: "txt", v: "10" });
      expect(await stored(all(cond("v", "<", "10")), "txt")).toEqual([]);
      expect(await stored(all(cond("v", ">", "10")), "txt")).toEqual(["s-9"]);
      expect(await stored(all(cond("v", "==", "9")), "txt")).toEqual(["s-9"]);
    });
  });
}
