/** Reading a block document for the block runtime: its policies in every shape the specification uses. */
import { describe, expect, test } from "bun:test";
import { readBlockConfig, secondsSetting } from "../../src/block/config.ts";
import { ApiError } from "../../src/http/errors.ts";

const lb = { policyRuleURI: "policy.loadBalancer.roundrobin:v0.0.1", parameters: { a: 1 }, settings: {} };

describe("readBlockConfig", () => {
  test("policies as a map, as a named list, or as policyRulesSpec entries", () => {
    expect(readBlockConfig({ id: "b", policies: { loadBalancer: lb } }).policies.loadBalancer).toEqual(lb);
    expect(
      readBlockConfig({ id: "b", policies: [{ name: "loadBalancer", ...lb }] }).policies.loadBalancer,
    ).toEqual(lb);
    const spec = readBlockConfig({ id: "b", policyRulesSpec: [{ values: { name: "loadBalancer", ...lb } }] });
    expect(spec.policies.loadBalancer).toEqual(lb);
  });

  test("a block specification file stands for its values; policies other than the runtime's are left out", () => {
    const config = readBlockConfig({
      head: { templateUri: "Parser/V1" },
      body: {
        spec: {
          values: {
            blockId: "detector-1",
            minInstances: 2,
            maxInstances: 5,
            policyRulesSpec: [
              { values: { name: "autoscaler", policyRuleURI: "policy.autoscaler.target-tracking:v0.0.1" } },
              { values: { name: "resourceAllocator", policyRuleURI: "policy.resourceAllocator.x:v1" } },
              { values: { name: "stabilityChecker", policyRuleURI: "" } },
            ],
          },
        },
      },
    });
    expect(config.blockId).toBe("detector-1");
    expect([config.minInstances, config.maxInstances]).toEqual([2, 5]);
    expect(Object.keys(config.policies)).toEqual(["autoscaler"]);
    expect(config.document).toMatchObject({ id: "detector-1", blockId: "detector-1" });
  });

  test("defaults: one instance at least, no upper bound; the given block id wins", () => {
    const config = readBlockConfig({ id: "doc-id" }, "flag-id");
    expect(config).toMatchObject({
      blockId: "flag-id",
      minInstances: 1,
      maxInstances: Number.MAX_SAFE_INTEGER,
    });
    expect(readBlockConfig({ minInstances: 3, maxInstances: 1 }, "b").maxInstances).toBe(3);
  });

  test("bad documents are 400s naming the field", () => {
    const fails = (doc: unknown, field: string) => {
      try {
        readBlockConfig(doc, "b");
        throw new Error("accepted");
      } catch (err) {
        expect(err).toBeInstanceOf(ApiError);
        expect((err as ApiError).message).toContain(field);
      }
    };
    fails({ minInstances: 1.5 }, "block.minInstances");
    fails({ policies: { loadBalancer: { policyRuleURI: 3 } } }, "block.policies");
    fails({ policyRulesSpec: [{ values: { policyRuleURI: "x" } }] }, "block.policyRulesSpec.0");
    expect(() => readBlockConfig({})).toThrow("block.id");
  });
});

test("secondsSetting: the first positive number among the keys, in ms", () => {
  expect(secondsSetting({ check_interval_sec: 15 }, ["check_interval_sec", "interval_sec"], 1)).toBe(15_000);
  expect(
    secondsSetting({ interval_sec: -1, check_interval_sec: "x" }, ["interval_sec", "check_interval_sec"], 7),
  ).toBe(7);
  expect(secondsSetting(undefined, ["interval_sec"], 9)).toBe(9);
});
