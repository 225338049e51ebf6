/**
 * Block specifications, fuzzed (block-spec-and-allocation.md): `parseBlockSpec` and `blockCreateIR`
 * directly, thousands of times, then the gateway's `POST /api/createBlock` end to end, over a registry,
 * a controller (in-memory runtime, real instance) and components whose own documents are odd (runtimes
 * that are empty, of the wrong type, policies that are not rules). Mutated sample specifications,
 * random JSON, wrong types, unknown policy names and URIs, filters with bad conditions: every answer is
 * 2xx or 4xx with the error contract, and a spec the gateway accepts is one the controller accepts.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import fc from "fast-check";
import { blockCreateIR } from "../../src/gateway/ir.ts";
import { parseBlockSpec } from "../../src/gateway/spec.ts";
import { ApiError } from "../../src/http/errors.ts";
import { QueryError } from "../../src/store/index.ts";
import { SAMPLE_BLOCK_SPEC } from "../support/spec-samples.ts";
import { CLUSTER_ID, clusterDocument, type Environment, startEnvironment } from "./env.ts";
import { COMPONENT_SAMPLE, COMPONENT_URI } from "./samples.ts";
import {
  FUZZ_SEED,
  fuzz,
  mutated,
  printSummary,
  rawBody,
  runs,
  sendAndCheck,
  syncFuzz,
  tally,
} from "./support.ts";

const SUITE = "block specs";
setDefaultTimeout(600_000);

let env: Environment;
const began = performance.now();

/** Components as the registry may hold them: the runtime and policies are whatever was uploaded. */
const ODD_COMPONENTS: Record<string, unknown>[] = [
  { runtime: { command: ["bun", "instance.ts"] } },
  { runtime: { command: [] } },
  { runtime: { command: [""] } },
  { runtime: { command: "bun instance.ts" } },
  { runtime: { image: "" } },
  { runtime: { command: ["x"], env: { A: 1 } } },
  { runtime: [] },
  { runtime: {} },
  { runtime: { command: ["x"] }, policies: { loadBalancer: "roundrobin" } },
  { runtime: { command: ["x"] }, policies: [{ name: "autoscaler", policyRuleURI: 5 }] },
  { runtime: { command: ["x"] }, componentInitData: "not an object", componentParameters: [1] },
  { runtime: { command: ["x"] }, tags: "gpu", componentMetadata: null },
].map((extra, i) => ({
  ...COMPONENT_SAMPLE,
  ...extra,
  id: `model.odd-${i}:1.0.0`,
  componentURI: `model.odd-${i}:1.0.0`,
}));

const COMPONENT_URIS = [COMPONENT_URI, ...ODD_COMPONENTS.map((c) => c.id as string), "model.none:0.0.1"];

const POLICY_URIS = [
  "policy.loadBalancer.roundrobin:v0.0.1",
  "policy.autoscaler.target-tracking:v0.0.1",
  "policy.clusterAllocator.highest-score:v0.0.1",
  "policy.resourceAllocator.gpu-free-memory:v0.0.1",
  "policy.nope:v1",
  "",
  "not a uri",
];

/** The sample specification with a fresh block id, a known (or odd) component and known policy URIs. */
const specSample = fc
  .record({
    n: fc.nat(1_000_000),
    component: fc.constantFrom(...COMPONENT_URIS),
    policies: fc.subarray([
      "loadBalancer",
      "autoscaler",
      "clusterAllocator",
      "resourceAllocator",
      "stabilityChecker",
      "mystery",
    ]),
    uri: fc.constantFrom(...POLICY_URIS),
    min: fc.integer({ min: 0, max: 3 }),
  })
  .map(({ n, component, policies, uri, min }) => {
    const values = structuredClone(
      (SAMPLE_BLOCK_SPEC as { body: { spec: { values: Record<string, unknown> } } }).body.spec.values,
    );
    values.blockId = `fz-${n}`;
    values.blockComponentURI = component;
    values.minInstances = min;
    values.maxInstances = min + 1;
    values.policyRulesSpec = policies.map((name) => ({
      values: { name, policyRuleURI: uri, parameters: {}, settings: {} },
    }));
    return { head: { templateUri: "Parser/V1", parameters: {} }, body: { spec: { values } } };
  });

const specBody = fc.oneof(
  { weight: 6, arbitrary: specSample.chain((s) => mutated([s])) },
  { weight: 2, arbitrary: specSample },
  { weight: 1, arbitrary: mutated([SAMPLE_BLOCK_SPEC]) },
  { weight: 1, arbitrary: fc.jsonValue() },
);

beforeAll(async () => {
  env = await startEnvironment();
  const components = env.store.collection("components");
  await components.upsert(COMPONENT_URI, {
    ...COMPONENT_SAMPLE,
    id: COMPONENT_URI,
    componentURI: COMPONENT_URI,
  });
  for (const c of ODD_COMPONENTS) await components.upsert(c.id as string, c as never);
  // A second cluster without a controller, as a registered cluster may be.
  await env.store.collection("clusters").upsert("c-no-controller", { id: "c-no-controller", status: "live" });
  await env.store.collection("clusters").upsert(CLUSTER_ID, clusterDocument(env.controllerUrl));
});

afterAll(async () => {
  printSummary(SUITE, began);
  await env?.stop();
});

describe(`block specifications (seed ${FUZZ_SEED})`, () => {
  test(`parseBlockSpec + blockCreateIR: ${runs(5000)} specifications and odd components, 400 or a block`, () => {
    const entry = "parseBlockSpec + blockCreateIR";
    const component = mutated(ODD_COMPONENTS);
    syncFuzz(
      entry,
      fc.tuple(specBody, component),
      ([body, comp]) => {
        const t = performance.now();
        let values: ReturnType<typeof parseBlockSpec>;
        try {
          values = parseBlockSpec(body);
        } catch (err) {
          if (!(err instanceof ApiError) || err.status !== 400) throw err;
          expect(err.message).toMatch(/^(body|head)/);
          tally(SUITE, entry, "refused", performance.now() - t);
          return;
        }
        const ir = blockCreateIR(values, (comp ?? {}) as Record<string, unknown>);
        expect(typeof ir.id).toBe("string");
        expect(ir.minInstances).toBeLessThanOrEqual(ir.maxInstances);
        expect(JSON.parse(JSON.stringify(ir))).toBeTruthy();
        tally(SUITE, entry, "ok", performance.now() - t);
      },
      runs(5000),
    );
  });

  test(`gateway POST /api/createBlock: ${runs(1000)} specifications end to end, 2xx or 4xx`, async () => {
    const entry = "gateway POST /api/createBlock";
    const fetcher = (p: string, i: RequestInit) => env.gatewayApp.request(p, i);
    await fuzz(
      entry,
      fc.oneof(
        {
          weight: 9,
          arbitrary: specBody.map((b) => ({
            body: JSON.stringify(b) ?? "null",
            contentType: "application/json",
          })),
        },
        { weight: 1, arbitrary: rawBody([SAMPLE_BLOCK_SPEC]) },
      ),
      async (b) => {
        const status = await sendAndCheck(fetcher, SUITE, entry, {
          method: "POST",
          path: "/api/createBlock",
          headers: b.contentType ? { "content-type": b.contentType } : {},
          ...(b.body === undefined ? {} : { body: b.body }),
        });
        expect([201, 400, 403, 404, 409, 413, 415, 422]).toContain(status);
      },
      runs(1000),
    );
  });

  test("regressions: a block every cluster refuses is a 422 naming the refusal, not a 503", async () => {
    const create = (values: Record<string, unknown>) =>
      env.gatewayApp.request("/api/createBlock", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({
          head: {},
          body: { spec: { values: { minInstances: 1, maxInstances: 2, ...values } } },
        }),
      });
    // The dry run on every cluster with a controller fails to load the named policy (it answered 503).
    let res = await create({
      blockId: "fz-regression-1",
      blockComponentURI: COMPONENT_URI,
      policyRulesSpec: [{ values: { name: "resourceAllocator", policyRuleURI: "policy.nope:v1" } }],
    });
    let body = (await res.json()) as { error: { code: string; message: string } };
    expect(res.status).toBe(422);
    expect(body.error.code).toBe("dry_run_refused");
    expect(body.error.message).toContain(`${CLUSTER_ID}: `);
    expect(body.error.message).toContain("policy.nope:v1");
    // A component whose runtime the controller cannot run: every create_block refused (it answered 503).
    res = await create({ blockId: "fz-regression-2", blockComponentURI: ODD_COMPONENTS[1]!.id });
    body = (await res.json()) as { error: { code: string; message: string } };
    expect(res.status).toBe(422);
    expect(body.error.code).toBe("allocation_refused");
    expect(body.error.message).toContain("data.runtime.command");
    // The recorded creation says failed, with the same error.
    const detail = (await (await env.gatewayApp.request("/api/blocks/fz-regression-2")).json()) as {
      status: string;
      error: { code: string };
    };
    expect(detail.status).toBe("failed");
    expect(detail.error.code).toBe("allocation_refused");
    // The same spec with a runtime the controller runs is created.
    res = await create({ blockId: "fz-regression-3", blockComponentURI: COMPONENT_URI });
    expect(res.status).toBe(201);
  });

  test("a bad filter condition is a 400 naming its path", async () => {
    const res = await env.gatewayApp.request("/api/createBlock", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        body: {
          spec: {
            values: {
              blockId: "fz-filter",
              blockComponentURI: COMPONENT_URI,
              minInstances: 1,
              maxInstances: 1,
              policyRulesSpec: [
                {
                  values: {
                    name: "clusterAllocator",
                    policyRuleURI: "policy.clusterAllocator.highest-score:v0.0.1",
                    parameters: {
                      filter: {
                        clusterQuery: { conditions: [{ variable: "$where", operator: "==", value: "1" }] },
                      },
                    },
                  },
                },
              ],
            },
          },
        },
      }),
    });
    expect(res.status).toBe(400);
    const body = (await res.json()) as { error: { message: string } };
    expect(body.error.message).toStartWith(
      "policies.clusterAllocator.parameters.filter.clusterQuery.conditions.0.variable:",
    );
    expect(QueryError).toBeDefined();
  });
});
