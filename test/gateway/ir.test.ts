/**
 * The block specification and `block_create_IR`, rule by rule (block-spec-and-allocation.md):
 * inheritance from the component, override and addition by policy name, omission, generated ids,
 * and refusals naming the JSON path.
 */
import { describe, expect, test } from "bun:test";
import { blockCreateIR } from "../../src/gateway/ir.ts";
import { parseBlockSpec } from "../../src/gateway/spec.ts";
import { ApiError } from "../../src/http/errors.ts";

const component = {
  id: "model.object-detector:2.0.0-stable",
  componentInitData: { weights_path: "/models/default.pt" },
  componentInitSettings: { batch_size: 1 },
  componentParameters: { confidence_threshold: 0.3 },
  componentMetadata: { description: "detector" },
  componentInputProtocol: { type: "image" },
  componentOutputProtocol: { type: "boxes" },
  tags: ["vision", "gpu"],
  runtime: { command: ["bun", "examples/sentiment/instance.ts"] },
  policies: {
    loadBalancer: { policyRuleURI: "policy.loadBalancer.roundrobin:v0.0.1", parameters: {}, settings: {} },
    autoscaler: {
      policyRuleURI: "policy.autoscaler.target-tracking:v0.0.1",
      parameters: { a: 1 },
      settings: {},
    },
  },
};

const spec = (values: Record<string, unknown>) => ({
  head: { templateUri: "Parser/V1", parameters: {} },
  body: {
    spec: { values: { blockComponentURI: component.id, minInstances: 1, maxInstances: 3, ...values } },
  },
});

const refusal = (body: unknown): ApiError => {
  try {
    parseBlockSpec(body);
  } catch (err) {
    if (err instanceof ApiError) return err;
    throw err;
  }
  throw new Error("accepted");
};

describe("block_create_IR", () => {
  test("omitted fields are inherited from the component; metadata, protocols, tags and runtime copied", () => {
    const block = blockCreateIR(parseBlockSpec(spec({ blockId: "b-1" })), component);
    expect(block).toMatchObject({
      id: "b-1",
      blockInitData: component.componentInitData,
      initSettings: component.componentInitSettings,
      parameters: component.componentParameters,
      blockMetadata: component.componentMetadata,
      inputProtocol: component.componentInputProtocol,
      outputProtocol: component.componentOutputProtocol,
      tags: component.tags,
      runtime: component.runtime,
      minInstances: 1,
      maxInstances: 3,
    });
    // Without policyRulesSpec: the component's policies as they are.
    expect(block.policies).toEqual(component.policies);
  });

  test("given fields win over the component's, wholesale (no deep merge)", () => {
    const block = blockCreateIR(
      parseBlockSpec(spec({ blockInitData: { device: "cuda" }, initSettings: {}, parameters: { nms: 0.4 } })),
      component,
    );
    expect(block.blockInitData).toEqual({ device: "cuda" });
    expect(block.initSettings).toEqual({});
    expect(block.parameters).toEqual({ nms: 0.4 });
  });

  test("policyRulesSpec overrides a policy of the same name and adds new ones; the rest stay", () => {
    const block = blockCreateIR(
      parseBlockSpec(
        spec({
          policyRulesSpec: [
            {
              values: {
                name: "loadBalancer",
                policyRuleURI: "policy.loadBalancer.p2c:v0.0.1",
                parameters: { seed: 7 },
              },
            },
            {
              values: {
                name: "clusterAllocator",
                policyRuleURI: "policy.clusterAllocator.highest-score:v0.0.1",
                settings: { max_candidates: 3 },
              },
            },
          ],
        }),
      ),
      component,
    );
    expect(block.policies.loadBalancer).toEqual({
      policyRuleURI: "policy.loadBalancer.p2c:v0.0.1",
      parameters: { seed: 7 },
      settings: {},
    });
    expect(block.policies.clusterAllocator?.settings).toEqual({ max_candidates: 3 });
    expect(block.policies.autoscaler).toEqual(component.policies.autoscaler);
  });

  test("a component with its policies as a list; ids generated when blockId is omitted", () => {
    const listed = {
      ...component,
      policies: [{ name: "loadBalancer", policyRuleURI: "policy.loadBalancer.roundrobin:v0.0.1" }],
    };
    const a = blockCreateIR(parseBlockSpec(spec({})), listed);
    const b = blockCreateIR(parseBlockSpec(spec({})), listed);
    expect(a.id).toMatch(/^block-[0-9a-f]{8}$/);
    expect(a.id).not.toBe(b.id);
    expect(a.policies.loadBalancer?.policyRuleURI).toBe("policy.loadBalancer.roundrobin:v0.0.1");
  });

  test("a component without policies or runtime: none inherited", () => {
    const block = blockCreateIR(parseBlockSpec(spec({ blockId: "b-2" })), { id: component.id });
    expect(block.policies).toEqual({});
    expect(block.runtime).toBeNull();
    expect(block.tags).toEqual([]);
  });
});

describe("the block specification", () => {
  test("the specification's sample parses", async () => {
    const sample = {
      head: { templateUri: "Parser/V1", parameters: {} },
      body: {
        spec: {
          values: {
            blockId: "detector-yolo-88",
            blockComponentURI: "model.object-detector:2.0.0-stable",
            minInstances: 1,
            maxInstances: 5,
            blockInitData: { weights_path: "/models/yolov5s.pt", device: "cuda" },
            initSettings: { batch_size: 4, timeout_ms: 1000 },
            parameters: { confidence_threshold: 0.5, nms_threshold: 0.4 },
            policyRulesSpec: [
              {
                values: {
                  name: "loadBalancer",
                  policyRuleURI: "policy.loadBalancer.roundrobin:v0.0.1",
                  parameters: { cache_sessions: true },
                  settings: { session_cache_size: 1000 },
                },
              },
            ],
          },
        },
      },
    };
    expect(parseBlockSpec(sample).blockId).toBe("detector-yolo-88");
  });

  test("refusals name the JSON path", () => {
    expect(refusal({}).message).toContain("body");
    expect(refusal(spec({ minInstances: "one" })).message).toContain("body.spec.values.minInstances");
    expect(refusal(spec({ minInstances: 5, maxInstances: 2 })).message).toContain(
      "body.spec.values.minInstances",
    );
    expect(refusal(spec({ blockComponentURI: "no version" })).message).toContain(
      "body.spec.values.blockComponentURI",
    );
    expect(refusal(spec({ blockId: "bad id!" })).message).toContain("body.spec.values.blockId");
    expect(refusal(spec({ policyRulesSpec: [{ values: { policyRuleURI: "x" } }] })).message).toContain(
      "body.spec.values.policyRulesSpec.0",
    );
    expect(refusal(spec({ blockInitData: [1] })).status).toBe(400);
  });
});
