/**
 * The allocator's request parsing and per-connection ordering, without a server or a store.
 */
import { describe, expect, test } from "bun:test";
import { canonicalJson } from "../../src/allocator/evaluate.ts";
import { OrderedPipeline } from "../../src/allocator/pipeline.ts";
import { type CandidateLimits, parseRequest } from "../../src/allocator/protocol.ts";
import { ApiError, toApiError } from "../../src/http/errors.ts";
import { SPEC_FILTER, ALLOCATOR_SAMPLE_PAYLOAD as SPEC_SAMPLE } from "../support/spec-samples.ts";

const URI = "policy.allocator.most-free-gpu:v0.0.1";
const ok = (overrides: Record<string, unknown>) =>
  parseRequest(JSON.stringify({ ...SPEC_SAMPLE, policy_rule_uri: URI, ...overrides }));

/** The error a payload gets: its code, message and the field it names. */
const refusal = (payload: unknown, limits?: CandidateLimits) => {
  try {
    parseRequest(typeof payload === "string" ? payload : JSON.stringify(payload), limits);
  } catch (err) {
    const e = toApiError(err);
    const details = e.details as { path?: string; issues?: { path: string }[] } | null;
    return { code: e.code, message: e.message, path: details?.path ?? details?.issues?.[0]?.path };
  }
  throw new Error("accepted");
};

describe("parseRequest", () => {
  test("the specification's sample payload is refused for its empty policy_rule_uri only", () => {
    const r = refusal(SPEC_SAMPLE);
    expect(r.path).toBe("policy_rule_uri");
    expect(r.message).toStartWith("policy_rule_uri: ");
    expect(r.message).not.toContain("(and");
    // Filled in, the same payload is accepted: empty clusters, filter and search mean no source.
    const req = ok({});
    expect(req).toEqual({
      policy_rule_uri: URI,
      source: { kind: "all" },
      inputs: {},
      parameters: {},
      settings: {},
    });
  });

  test("clusters: ids in order, duplicates dropped", () => {
    expect(ok({ clusters: ["b", "a", "b"] }).source).toEqual({ kind: "ids", ids: ["b", "a"] });
  });

  test("filter: the block specification's condition lists become MongoDB filters", () => {
    const source = ok({ filter: SPEC_FILTER }).source;
    expect(source.kind).toBe("filter");
    if (source.kind !== "filter") return;
    expect(source.clusterFilter).toEqual({
      $and: [
        { $or: [{ "gpus.count": { $gt: "5" } }, { "gpus.count": { $gt: 5 } }] },
        { "clusterMetadata.vendor": "dma-bangalore" },
      ],
    });
    expect(source.metricsFilter).toEqual({
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
    // Either list alone.
    const one = ok({ filter: { clusterQuery: SPEC_FILTER.clusterQuery } }).source;
    expect(one).toMatchObject({ kind: "filter", metricsFilter: null });
    expect(
      ok({ filter: { clusterMetricsQuery: SPEC_FILTER.clusterMetricsQuery, clusterQuery: null } }).source,
    ).toMatchObject({ kind: "filter", clusterFilter: null });
  });

  test("search: query and limit, the limit defaulting", () => {
    expect(ok({ search: { query: "  vision A100 " } }).source).toEqual({
      kind: "search",
      query: "vision A100",
      limit: 50,
    });
    expect(ok({ search: { query: "llm", limit: 3 } }).source).toEqual({
      kind: "search",
      query: "llm",
      limit: 3,
    });
    const small = { maxCandidates: 10, defaultSearchLimit: 50 };
    expect(
      parseRequest(JSON.stringify({ ...SPEC_SAMPLE, policy_rule_uri: URI, search: { query: "x" } }), small)
        .source,
    ).toMatchObject({ limit: 10 });
  });

  test("null for the optional fields counts as absent", () => {
    const req = ok({ clusters: null, filter: null, search: null, parameters: null, settings: null });
    expect(req.source).toEqual({ kind: "all" });
    expect(req.parameters).toEqual({});
  });

  test("parameters, settings and inputs pass through as sent", () => {
    const req = ok({ inputs: { gpus: 2, nested: { a: [1] } }, parameters: { p: 1 }, settings: { s: "x" } });
    expect(req.inputs).toEqual({ gpus: 2, nested: { a: [1] } });
    expect(req.parameters).toEqual({ p: 1 });
    expect(req.settings).toEqual({ s: "x" });
  });

  const bad: [string, unknown, string, string?][] = [
    ["adhoc false", { ...SPEC_SAMPLE, policy_rule_uri: URI, adhoc: false }, "adhoc"],
    ["adhoc missing", { policy_rule_uri: URI, inputs: {} }, "adhoc"],
    ["adhoc as text", { ...SPEC_SAMPLE, policy_rule_uri: URI, adhoc: "true" }, "adhoc"],
    ["policy_rule_uri missing", { adhoc: true, inputs: {} }, "policy_rule_uri"],
    [
      "policy_rule_uri not name:version",
      { ...SPEC_SAMPLE, policy_rule_uri: "most free gpu" },
      "policy_rule_uri",
    ],
    ["inputs missing", { adhoc: true, policy_rule_uri: URI }, "inputs"],
    ["inputs a list", { ...SPEC_SAMPLE, policy_rule_uri: URI, inputs: [1] }, "inputs"],
    ["clusters not a list", { ...SPEC_SAMPLE, policy_rule_uri: URI, clusters: "c-1" }, "clusters"],
    ["a cluster id not text", { ...SPEC_SAMPLE, policy_rule_uri: URI, clusters: ["c-1", 7] }, "clusters.1"],
    ["an empty cluster id", { ...SPEC_SAMPLE, policy_rule_uri: URI, clusters: [""] }, "clusters.0"],
    ["filter not an object", { ...SPEC_SAMPLE, policy_rule_uri: URI, filter: "gpus > 5" }, "filter"],
    [
      "filter with an unknown key",
      { ...SPEC_SAMPLE, policy_rule_uri: URI, filter: { query: {} } },
      "filter.query",
    ],
    [
      "filter with an unknown operator",
      {
        ...SPEC_SAMPLE,
        policy_rule_uri: URI,
        filter: { clusterQuery: { conditions: [{ variable: "gpus.count", operator: "~", value: "1" }] } },
      },
      "filter.clusterQuery.conditions.0.operator",
      "bad_condition",
    ],
    [
      "filter with a bad logicalOperator",
      {
        ...SPEC_SAMPLE,
        policy_rule_uri: URI,
        filter: { clusterMetricsQuery: { logicalOperator: "XOR", conditions: [] } },
      },
      "filter.clusterMetricsQuery.logicalOperator",
      "bad_condition",
    ],
    ["search query empty", { ...SPEC_SAMPLE, policy_rule_uri: URI, search: { query: " " } }, "search.query"],
    [
      "search without a query",
      { ...SPEC_SAMPLE, policy_rule_uri: URI, search: { limit: 5 } },
      "search.query",
    ],
    [
      "search limit 0",
      { ...SPEC_SAMPLE, policy_rule_uri: URI, search: { query: "x", limit: 0 } },
      "search.limit",
    ],
    [
      "search limit 2.5",
      { ...SPEC_SAMPLE, policy_rule_uri: URI, search: { query: "x", limit: 2.5 } },
      "search.limit",
    ],
    [
      "search with an unknown key",
      { ...SPEC_SAMPLE, policy_rule_uri: URI, search: { text: "x" } },
      "search.text",
    ],
    [
      "clusters and search",
      { ...SPEC_SAMPLE, policy_rule_uri: URI, clusters: ["a"], search: { query: "x" } },
      "search",
    ],
    [
      "filter and search",
      { ...SPEC_SAMPLE, policy_rule_uri: URI, filter: SPEC_FILTER, search: { query: "x" } },
      "search",
    ],
    [
      "clusters and filter",
      { ...SPEC_SAMPLE, policy_rule_uri: URI, clusters: ["a"], filter: SPEC_FILTER },
      "filter",
    ],
    ["parameters a list", { ...SPEC_SAMPLE, policy_rule_uri: URI, parameters: [] }, "parameters"],
    ["settings text", { ...SPEC_SAMPLE, policy_rule_uri: URI, settings: "x" }, "settings"],
    ["an unknown field", { ...SPEC_SAMPLE, policy_rule_uri: URI, request_id: 1 }, "request_id"],
  ];
  // Every row with its code spelled out: bun passes a `done` callback in place of a missing argument.
  const rows = bad.map(
    ([name, payload, path, code]) => [name, payload, path, code ?? "invalid_input"] as const,
  );
  test.each(rows)("refused, naming the field: %s", (_name, payload, path, code) => {
    const r = refusal(payload);
    expect(r.path).toBe(path);
    expect(r.message).toStartWith(`${path}: `);
    expect(r.code).toBe(code);
  });

  test("too many cluster ids for the server's limit", () => {
    const r = refusal(
      { ...SPEC_SAMPLE, policy_rule_uri: URI, clusters: ["a", "b", "c"] },
      { maxCandidates: 2, defaultSearchLimit: 2 },
    );
    expect(r.path).toBe("clusters");
    expect(r.message).toContain("at most 2");
  });

  test("not JSON, not an object, too deep", () => {
    expect(refusal("{adhoc: true").code).toBe("invalid_json");
    expect(refusal("").code).toBe("invalid_json");
    expect(refusal("[1, 2]").message).toContain("must be a JSON object");
    const deep = `${"[".repeat(100)}${"]".repeat(100)}`;
    expect(refusal(`{"adhoc": true, "inputs": ${deep}}`).code).toBe("too_deep");
  });
});

describe("OrderedPipeline", () => {
  const deferred = () => {
    let resolve: (v: string) => void = () => {};
    const promise = new Promise<string>((r) => {
      resolve = r;
    });
    return { promise, resolve };
  };

  test("answers leave in arrival order while requests run concurrently, up to the limit", async () => {
    const jobs = new Map<string, ReturnType<typeof deferred>>();
    const started: string[] = [];
    const delivered: string[] = [];
    const pipeline = new OrderedPipeline<string>(
      2,
      (input) => {
        started.push(input);
        const d = deferred();
        jobs.set(input, d);
        return d.promise;
      },
      (answer) => delivered.push(answer),
    );
    for (const x of ["a", "b", "c"]) pipeline.push(x);
    expect(started).toEqual(["a", "b"]); // c waits for a slot
    jobs.get("b")!.resolve("B");
    await Bun.sleep(0);
    expect(delivered).toEqual([]); // b is done but a is not: nothing leaves yet
    expect(started).toEqual(["a", "b", "c"]); // b's slot went to c
    jobs.get("c")!.resolve("C");
    await Bun.sleep(0);
    expect(delivered).toEqual([]);
    jobs.get("a")!.resolve("A");
    await Bun.sleep(0);
    expect(delivered).toEqual(["A", "B", "C"]);
    expect(pipeline.backlog).toBe(0);
  });

  test("a failing request is answered with an internal error in its turn; close drops the rest", async () => {
    const delivered: string[] = [];
    const pipeline = new OrderedPipeline<string>(
      4,
      (input) => (input === "boom" ? Promise.reject(new Error("secret cause")) : Promise.resolve(input)),
      (answer) => delivered.push(answer),
    );
    pipeline.push("boom");
    pipeline.push("x");
    await Bun.sleep(0);
    await Bun.sleep(0);
    expect(delivered).toHaveLength(2);
    expect(JSON.parse(delivered[0]!)).toEqual({
      error: { code: "internal", message: "internal error", details: null },
    });
    expect(delivered[1]).toBe("x");
    const never = new OrderedPipeline<string>(
      1,
      () => new Promise<string>(() => {}),
      (a) => delivered.push(a),
    );
    never.push("y");
    never.close();
    never.push("z");
    expect(never.backlog).toBe(0);
  });

  test("past the backlog limit a request is refused in its turn, not dropped", async () => {
    const d = deferred();
    const delivered: string[] = [];
    const pipeline = new OrderedPipeline<string>(
      1,
      () => d.promise,
      (a) => delivered.push(a),
      2,
    );
    pipeline.push("1");
    pipeline.push("2");
    pipeline.push("3");
    d.resolve("ok");
    await Bun.sleep(0);
    await Bun.sleep(0);
    expect(delivered.slice(0, 2)).toEqual(["ok", "ok"]);
    expect(JSON.parse(delivered[2]!).error.code).toBe("too_many_requests");
  });
});

test("canonicalJson: equal objects in any key order give one key", () => {
  expect(canonicalJson({ b: 1, a: { d: [2, { y: 1, x: 2 }], c: null } })).toBe(
    canonicalJson({ a: { c: null, d: [2, { x: 2, y: 1 }] }, b: 1 }),
  );
  expect(canonicalJson({ a: 1 })).not.toBe(canonicalJson({ a: 2 }));
});

test("errors of the protocol are ApiErrors with a 4xx status", () => {
  try {
    parseRequest("{}");
  } catch (err) {
    expect(err).toBeInstanceOf(ApiError);
    expect((err as ApiError).status).toBe(400);
  }
});
