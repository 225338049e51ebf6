/**
 * The gateway's console API (src/gateway/console.ts) over a real cluster: a controller on the process
 * runtime with a block of the sentiment example created at the controller directly, a second cluster
 * whose controller accepts connections and never answers, and a creation that failed. Views merge all
 * three; the dead cluster costs the console's timeout, not a hang; bad requests are 4xx naming the field.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { type RunningGateway, startGateway } from "../../src/gateway/serve.ts";
import { BlockViewSchema, ClusterViewSchema } from "../../src/gateway/views.ts";
import { ClusterHarness, POLICY, SENTIMENT_COMMAND, waitFor } from "../support/cluster-controller.ts";
import { filteredBlockSpec } from "../support/spec-samples.ts";

setDefaultTimeout(60_000);

const cluster = new ClusterHarness({ name: "console" });
const BLOCK = cluster.id("sent");
const DEAD = cluster.id("dead");
let gateway: RunningGateway;
// Accepts the connection, never answers: the worst kind of dead controller.
const hung = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: () => new Promise<Response>(() => {}) });

const api = async (path: string, init?: RequestInit) => {
  const res = await fetch(`${gateway.url}${path}`, init);
  // biome-ignore lint/suspicious/noExplicitAny: answers are checked field by field
  return { status: res.status, body: (await res.json()) as any };
};
const post = (path: string, body: unknown) =>
  api(path, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });

beforeAll(async () => {
  await cluster.start();
  await fetch(`${cluster.registryUrl}/clusters`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      id: DEAD,
      status: "live",
      config: { urlMap: { controllerService: hung.url.href } },
    }),
  });
  const created = await cluster.action("create_block", {
    id: BLOCK,
    minInstances: 1,
    maxInstances: 2,
    runtime: { command: SENTIMENT_COMMAND },
    policies: {
      loadBalancer: { policyRuleURI: POLICY.roundrobin },
      resourceAllocator: { policyRuleURI: POLICY.gpuFreeMemory, parameters: { gpus: 0 } },
    },
  });
  expect(created.status).toBe(200);
  gateway = await startGateway({ port: 0, registryUrl: cluster.registryUrl });
  // A creation that failed, recorded: no cluster passes its filter.
  const component = "model.console-test:1.0.0";
  await fetch(`${cluster.registryUrl}/components`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ componentURI: component, runtime: { command: SENTIMENT_COMMAND } }),
  });
  const failed = await post(
    "/api/createBlock",
    filteredBlockSpec({ blockId: cluster.id("nope"), blockComponentURI: component, maxInstances: 1 }, [
      { variable: "tags", operator: "contains", value: `none-${cluster.run}` },
    ]),
  );
  expect(failed.status).toBeGreaterThanOrEqual(400);
  expect(failed.status).toBeLessThan(500);
});

afterAll(async () => {
  await gateway?.stop();
  hung.stop(true);
  await cluster.close();
});

describe("console API", () => {
  test("clusters: the live one with its nodes' health, the dead one unreachable within the timeout", async () => {
    const began = performance.now();
    const { status, body } = await api("/api/clusters");
    expect(performance.now() - began).toBeLessThan(5000);
    expect(status).toBe(200);
    const byId = new Map((body as unknown[]).map((c) => ClusterViewSchema.parse(c)).map((c) => [c.id, c]));
    expect(byId.get(cluster.clusterId)).toMatchObject({
      reachable: true,
      error: null,
      block_count: 1,
      controller_url: cluster.url,
    });
    expect(byId.get(cluster.clusterId)!.nodes.map((n) => [n.id, n.healthy])).toEqual([
      ["node-a", true],
      ["node-b", true],
    ]);
    expect(byId.get(DEAD)).toMatchObject({ reachable: false, nodes: [] });
    expect(byId.get(DEAD)!.error).toContain("cannot reach");
  });

  test("blocks: the controller's block with its instances, beside this gateway's failed creation", async () => {
    const { body } = await api("/api/blocks");
    const views = (body as unknown[]).map((b) => BlockViewSchema.parse(b));
    const mine = views.find((v) => v.id === BLOCK)!;
    expect(mine).toMatchObject({
      status: "running",
      cluster_id: cluster.clusterId,
      live: true,
      min_instances: 1,
    });
    expect(mine.instances).toHaveLength(1);
    expect(mine.instances[0]!.node_id).toMatch(/^node-[ab]$/);
    expect(mine.grpc_url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(views.find((v) => v.id === cluster.id("nope"))).toMatchObject({
      status: "failed",
      live: false,
      error: { code: expect.any(String) },
    });
    expect((await api("/api/blocks?status=failed")).body.map((v: { id: string }) => v.id)).not.toContain(
      BLOCK,
    );
    const detail = await api(`/api/blocks/${BLOCK}`);
    expect(detail.body).toMatchObject({ id: BLOCK, steps: [], live: true });
    expect((await api("/api/blocks/no-such-block")).status).toBe(404);
  });

  test("scale within bounds through the controller; out of bounds is a 422 naming them", async () => {
    const up = await post(`/api/blocks/${BLOCK}/scale`, { delta: 1 });
    expect(up.status).toBe(200);
    expect(up.body.instances).toHaveLength(2);
    const over = await post(`/api/blocks/${BLOCK}/scale`, { instances: 5 });
    expect(over.status).toBe(422);
    expect(over.body.error.message).toContain("between 1 and 2");
    expect((await post(`/api/blocks/${BLOCK}/scale`, { instances: 1, delta: 1 })).status).toBe(400);
    expect((await post(`/api/blocks/${BLOCK}/scale`, { instances: "two" })).body.error.message).toContain(
      "instances",
    );
    const down = await post(`/api/blocks/${BLOCK}/scale`, { instances: 1 });
    expect(down.body.instances).toHaveLength(1);
  });

  test("metrics count inferences; logs of the services and of an instance; events", async () => {
    const block = await cluster.block(BLOCK);
    const client = cluster.grpcClient(block.services.urls.grpc);
    for (let i = 0; i < 5; i++) await client.classify("great phone", `s-${i}`);
    const metrics = await api(`/api/blocks/${BLOCK}/metrics`);
    expect(metrics.body).toMatchObject({ block_id: BLOCK, requests_total: 5, errors_total: 0, instances: 1 });
    expect(metrics.body.latency_ms.p50).toBeGreaterThan(0);

    const services = await api(`/api/blocks/${BLOCK}/logs?tail=50`);
    expect(services.body.instance_id).toBeNull();
    expect(services.body.lines.some((l: string) => l.startsWith("listening grpc"))).toBe(true);
    const instance = block.instances[0].instance_id as string;
    const own = await waitFor("the instance's log", async () => {
      const r = await api(`/api/blocks/${BLOCK}/logs?instance=${instance}&tail=5`);
      return r.body.lines?.length > 0 ? r : null;
    });
    expect(own.body.instance_id).toBe(instance);
    expect(own.body.lines.length).toBeLessThanOrEqual(5);
    expect((await api(`/api/blocks/${BLOCK}/logs?instance=ghost`)).status).toBe(404);
    expect((await api(`/api/blocks/${BLOCK}/logs?tail=0`)).status).toBe(400);

    const events = await api(`/api/blocks/${BLOCK}/events`);
    expect(events.status).toBe(200);
    expect(Array.isArray(events.body)).toBe(true);
  });

  test("creations with their steps; policies through the registry", async () => {
    const creations = await api("/api/creations?limit=5");
    expect(creations.body[0]).toMatchObject({ id: cluster.id("nope"), status: "failed" });
    expect(creations.body[0].steps[0]).toMatchObject({ step: "filter", ok: false });
    expect((await api("/api/creations?limit=zero")).status).toBe(400);
    const policies = await api("/api/policies?kind=loadBalancer");
    expect(policies.status).toBe(200);
    expect(policies.body.map((p: { uri: string }) => p.uri)).toContain(POLICY.roundrobin);
    const bad = await fetch(`${gateway.url}/api/policies?uri=policy.loadBalancer.bad:v1&kind=loadBalancer`, {
      method: "POST",
      headers: { "content-type": "application/wasm" },
      body: "not wasm",
    });
    expect(bad.status).toBeGreaterThanOrEqual(400);
    expect(bad.status).toBeLessThan(500);
  });

  test("a block removed at its cluster is gone from the console: 404", async () => {
    await cluster.action("remove_block", { block_id: BLOCK });
    const gone = await api(`/api/blocks/${BLOCK}/metrics`);
    expect(gone.status).toBe(404);
  });
});
