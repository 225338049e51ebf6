/** The registry's plain modules, without a store or a server. */
import { describe, expect, test } from "bun:test";
import type { ApiError } from "../../src/http/errors.ts";
import { checkDocumentKeys, checkUpdate, parseListParams } from "../../src/registry/documents.ts";
import { parseQueryParams } from "../../src/registry/metrics.ts";
import { ClusterSchema, schemaAtPath } from "../../src/registry/schemas.ts";

const thrown = (fn: () => unknown): ApiError => {
  try {
    fn();
  } catch (err) {
    return err as ApiError;
  }
  throw new Error("expected a throw");
};

describe("parseQueryParams", () => {
  test("plain pairs are equalities; numeric-looking values match the number or the string", () => {
    expect(parseQueryParams({ region: ["eu"], "cluster.vcpu.load_15m": ["3"] })).toEqual({
      filter: { region: "eu", "cluster.vcpu.load_15m": { $in: [3, "3"] } },
      options: {},
    });
    expect(parseQueryParams({ id: ["a", "b"], limit: ["5"], skip: ["2"], sort: ['{"id":-1}'] })).toEqual({
      filter: { id: { $in: ["a", "b"] } },
      options: { limit: 5, skip: 2, sort: { id: -1 } },
    });
    expect(parseQueryParams({ v: ["-1.5e3"] }).filter).toEqual({ v: { $in: [-1500, "-1.5e3"] } });
    expect(parseQueryParams({ v: ["1.2.3"] }).filter).toEqual({ v: "1.2.3" });
  });

  test("query=<JSON> is the filter; other conditions beside it are refused", () => {
    expect(parseQueryParams({ query: ['{"a":{"$gt":1}}'], projection: ['{"a":1}'] })).toEqual({
      filter: { a: { $gt: 1 } },
      options: { projection: { a: 1 } },
    });
    expect(thrown(() => parseQueryParams({ query: ["{}"], a: ["1"] })).status).toBe(400);
    expect(thrown(() => parseQueryParams({ query: ["[1]"] })).message).toContain("query");
    expect(thrown(() => parseQueryParams({ query: ["{"] })).code).toBe("invalid_json");
    expect(thrown(() => parseQueryParams({ limit: ["1", "2"] })).message).toContain("limit");
    expect(thrown(() => parseQueryParams({ skip: ["1.5"] })).message).toContain("skip");
  });
});

describe("checkUpdate", () => {
  const check = (u: unknown) => checkUpdate(u, ClusterSchema);

  test("passes good updates through unchanged", () => {
    const u = {
      $set: { "nodes.count": 3, "config.urlMap.x": "http://x", unknown: { deep: true } },
      $inc: { memory: 1 },
    };
    expect(check(u)).toBe(u);
    expect(check({ $push: { tags: { $each: ["a", "b"] } } })).toBeDefined();
  });

  // Non-operators, the immutable id and operand shapes are the store's to refuse (see the API tests).
  test("refuses wrong types and $-keys in values", () => {
    expect(thrown(() => check({ $set: { "config.useGateway": "yes" } })).message).toStartWith(
      "$set.config.useGateway:",
    );
    expect(thrown(() => check({ $push: { tags: { $each: ["a", 1] } } })).message).toStartWith(
      "$push.tags.$each.1:",
    );
    expect(thrown(() => check({ $min: { status: 5 } })).message).toStartWith("$min.status:");
    expect(thrown(() => check({ $set: { extra: { $gt: 1 } } })).code).toBe("bad_field_name");
    // An "idx" field is not the id.
    expect(check({ $set: { idx: 1 } })).toBeDefined();
  });
});

describe("schemas", () => {
  test("schemaAtPath follows objects, arrays and records", () => {
    expect(
      schemaAtPath(ClusterSchema, ["nodes", "nodeData", "0", "gpus", "count"])?.safeParse(2).success,
    ).toBe(true);
    expect(
      schemaAtPath(ClusterSchema, ["nodes", "nodeData", "0", "gpus", "count"])?.safeParse("2").success,
    ).toBe(false);
    expect(schemaAtPath(ClusterSchema, ["config", "urlMap", "anything"])?.safeParse(1).success).toBe(false);
    expect(schemaAtPath(ClusterSchema, ["custom", "x"])).toBeUndefined();
  });

  test("documents may not carry $-keys or __proto__; list params are non-negative integers", () => {
    expect(thrown(() => checkDocumentKeys({ a: [{ $b: 1 }] })).message).toContain("a.0.$b");
    expect(thrown(() => checkDocumentKeys(JSON.parse('{"__proto__": {"x": 1}}'))).code).toBe(
      "bad_field_name",
    );
    expect(parseListParams({ limit: "10", skip: undefined })).toEqual({ limit: 10 });
    expect(thrown(() => parseListParams({ limit: "1e3" })).message).toContain("limit");
  });
});
