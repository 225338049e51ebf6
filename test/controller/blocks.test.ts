/**
 * The cluster controller end to end on real processes (1/3): a block of the sentiment example
 * (examples/sentiment) created, queried, updated, called, scaled, repaired, reconfigured and managed
 * through the controller's API (cluster-controller.md), with a registry in this process holding the
 * cluster document and the built-in policies. The tests run in order and share the block.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import {
  type BlockInstanceDoc,
  ClusterHarness,
  POLICY,
  pidAlive,
  SENTIMENT_COMMAND,
  waitFor,
} from "../support/cluster-controller.ts";
import { HELD_OUT } from "../support/sentiment.ts";

setDefaultTimeout(60_000);

const cluster = new ClusterHarness({ name: "cc-blocks" });
const BLOCK = cluster.id("sentiment");
let session = 0;
const nextSession = () => `s-${++session}`;

const blockSpec = () => ({
  id: BLOCK,
  minInstances: 2,
  maxInstances: 3,
  runtime: { command: SENTIMENT_COMMAND },
  blockInitData: { events: { note: POLICY.failureCounter, instance_failure: POLICY.failureCounter } },
  parameters: { min_confidence: 0.6 },
  policies: {
    loadBalancer: { policyRuleURI: POLICY.roundrobin },
    // CPU-only instances (gpus: 0), spread over the declared nodes, none of which has GPUs.
    resourceAllocator: {
      policyRuleURI: POLICY.gpuFreeMemory,
      parameters: { gpus: 0 },
      settings: { selection_mode: "spread" },
    },
  },
  blockMetadata: { description: "sentiment e2e" },
});

beforeAll(async () => {
  await cluster.start();
});

afterAll(async () => {
  await cluster.close();
  expect(cluster.strays()).toEqual([]);
});

describe("a block on the process runtime", () => {
  test("create_block starts minInstances instances and the block services; query, update, infer", async () => {
    const created = await cluster.action("create_block", blockSpec());
    expect(created.status).toBe(200);
    expect(created.body).toMatchObject({ id: BLOCK, status: "running", cluster_id: cluster.clusterId });
    const instances = created.body.instances as BlockInstanceDoc[];
    expect(instances).toHaveLength(2);
    for (const i of instances) expect(i.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    // The allocator spread them over both nodes.
    expect(instances.map((i) => i.node_id).sort()).toEqual(["node-a", "node-b"]);
    const urls = created.body.services.urls as Record<string, string>;
    for (const name of ["grpc", "metrics", "executor", "mapper", "autoscaler", "health-checker"]) {
      expect(urls[name]).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    }

    const all = await cluster.call("GET", "/blocks");
    expect(all.status).toBe(200);
    expect((all.body as { id: string }[]).map((b) => b.id)).toContain(BLOCK);
    const one = await cluster.call("GET", `/blocks/${BLOCK}`);
    expect(one.body.instances).toEqual(instances);

    const query = await cluster.call("POST", "/blocks/query", {
      query: {
        cluster_id: cluster.clusterId,
        maxInstances: { $gt: 2 },
        "policies.resourceAllocator.policyRuleURI": { $ne: "" },
      },
      options: { sort: { id: 1 }, limit: 10 },
    });
    expect(query.status).toBe(200);
    expect((query.body as { id: string }[]).map((b) => b.id)).toEqual([BLOCK]);
    const none = await cluster.call("POST", "/blocks/query", {
      query: { cluster_id: cluster.clusterId, maxInstances: { $gt: 3 } },
    });
    expect(none.body).toEqual([]);

    const updated = await cluster.call("PUT", `/block/update/${BLOCK}`, {
      $set: { "blockMetadata.description": "Updated description", minInstances: 2 },
    });
    expect(updated.status).toBe(200);
    expect(updated.body.blockMetadata).toEqual({ description: "Updated description" });
    expect((await cluster.block(BLOCK)).blockMetadata.description).toBe("Updated description");

    // Inference through the block's gRPC listener and through the public gateway.
    const grpc = cluster.grpcClient(urls.grpc!);
    const seen = new Set<string>();
    for (const [text, label] of HELD_OUT.slice(0, 4).concat(HELD_OUT.slice(-4))) {
      const viaGrpc = await grpc.classify(text, nextSession());
      expect({ text, message: viaGrpc.message, label: viaGrpc.result?.label }).toEqual({
        text,
        message: true,
        label,
      });
      seen.add(viaGrpc.instanceId);
      const viaGateway = await cluster.gatewayClassify(BLOCK, text, nextSession());
      expect({ text, message: viaGateway.message, label: viaGateway.result?.label }).toEqual({
        text,
        message: true,
        label,
      });
      seen.add(viaGateway.instanceId);
    }
    // Round robin: both instances served.
    expect([...seen].sort()).toEqual(instances.map((i) => i.instance_id).sort());

    const metrics = await fetch(`${cluster.url}/block/${BLOCK}/metrics`);
    expect(metrics.status).toBe(200);
    const prom = await metrics.text();
    expect(prom).toMatch(/^# (HELP|TYPE) /m);
    expect(prom).toContain(`block="${BLOCK}"`);

    const mgmt = await cluster.call("POST", `/block/${BLOCK}/executor/mgmt`, { mgmt_action: "policy_info" });
    expect(mgmt.status).toBe(200);
    expect(mgmt.body).toMatchObject({ block_id: BLOCK, policy: POLICY.roundrobin });
  });

  test("bad input is refused with the right status, and nothing changes", async () => {
    // This cluster's blocks (a shared PostgreSQL may hold other runs' too).
    const ownBlocks = async () =>
      ((await cluster.call("GET", "/blocks")).body as { cluster_id: string }[]).filter(
        (b) => b.cluster_id === cluster.clusterId,
      );
    const before = {
      blocks: await ownBlocks(),
      instances: (await cluster.controller.ctx.runtime.listInstances(BLOCK)).map((i) => i.instanceId).sort(),
    };

    const dup = await cluster.action("create_block", blockSpec());
    expect(dup.status).toBe(409);
    expect(dup.body.error.code).toBe("block_exists");

    const { minInstances: _, ...noMin } = blockSpec();
    const missing = await cluster.action("create_block", { ...noMin, id: cluster.id("other") });
    expect(missing.status).toBe(400);
    expect(missing.text).toContain("minInstances");
    const noRuntime = await cluster.action("create_block", {
      ...blockSpec(),
      id: cluster.id("other"),
      runtime: {},
    });
    expect(noRuntime.status).toBe(400);
    expect(noRuntime.text).toContain("data.runtime");
    const noBlockId = await cluster.action("scale", { operation: "upscale", instances_count: 1 });
    expect(noBlockId.status).toBe(400);
    expect(noBlockId.text).toContain("block_id");

    const unknownAction = await cluster.action("explode_block", { block_id: BLOCK });
    expect(unknownAction.status).toBe(400);
    expect(unknownAction.body.error.code).toBe("unknown_action");
    expect(unknownAction.body.error.details.actions).toEqual(
      expect.arrayContaining([
        "create_block",
        "remove_block",
        "scale",
        "remove_instance",
        "parameter_update",
      ]),
    );

    const ghost = cluster.id("ghost");
    for (const res of [
      await cluster.action("scale", { block_id: ghost, operation: "upscale", instances_count: 1 }),
      await cluster.action("remove_block", { block_id: ghost }),
      await cluster.action("remove_instance", { block_id: ghost, instance_id: "x" }),
      await cluster.call("GET", `/blocks/${ghost}`),
      await cluster.call("PUT", `/block/update/${ghost}`, { $set: { minInstances: 1 } }),
      await cluster.call("POST", `/block/${ghost}/rpc/InferenceProxy/infer`, { rpcData: "" }),
    ]) {
      expect({ status: res.status, code: res.body?.error?.code }).toEqual({ status: 404, code: "not_found" });
    }

    for (const path of ["/executeAction", "/blocks/query", "/mgmt", "/events", "/vdag-controller"]) {
      const bad = await cluster.call("POST", path, "{not json");
      expect({ path, status: bad.status }).toEqual({ path, status: 400 });
    }
    const badUpdate = await cluster.call("PUT", `/block/update/${BLOCK}`, "{not json");
    expect(badUpdate.status).toBe(400);

    // Nothing was stored or started by any of them.
    expect(await ownBlocks()).toEqual(before.blocks);
    expect(await cluster.controller.ctx.runtime.listInstances(cluster.id("other"))).toEqual([]);
    expect(
      (await cluster.controller.ctx.runtime.listInstances(BLOCK)).map((i) => i.instanceId).sort(),
    ).toEqual(before.instances);
  });

  test("scale: upscale to maxInstances (the new instance takes traffic), downscale to minInstances", async () => {
    const grpc = cluster.grpcClient((await cluster.block(BLOCK)).services.urls.grpc);
    const up = await cluster.action("scale", { block_id: BLOCK, operation: "upscale", instances_count: 1 });
    expect(up.status).toBe(200);
    expect(up.body.added).toHaveLength(1);
    const added = up.body.added[0] as BlockInstanceDoc;
    const instances = await cluster.instances(BLOCK);
    expect(instances).toHaveLength(3);
    expect(instances.map((i) => i.instance_id)).toContain(added.instance_id);
    // Round robin over three: the new one answers within a few requests.
    await waitFor(
      "the new instance to answer",
      async () => (await grpc.classify(HELD_OUT[0]![0], nextSession())).instanceId === added.instance_id,
      10_000,
      0,
    );

    const atMax = await cluster.action("scale", {
      block_id: BLOCK,
      operation: "upscale",
      instances_count: 1,
    });
    expect(atMax.status).toBe(409);
    expect(atMax.body.error.code).toBe("at_max_instances");
    expect(await cluster.instances(BLOCK)).toHaveLength(3);

    const unknown = await cluster.action("scale", {
      block_id: BLOCK,
      operation: "downscale",
      instances_list: [`${BLOCK}-nosuch`],
    });
    expect(unknown.status).toBe(404);
    expect(await cluster.instances(BLOCK)).toHaveLength(3);

    const victim = instances.find((i) => i.instance_id !== added.instance_id)!;
    const pid = (await cluster.pids(BLOCK)).get(victim.instance_id)!;
    expect(pidAlive(pid)).toBe(true);
    const down = await cluster.action("scale", {
      block_id: BLOCK,
      operation: "downscale",
      instances_list: [victim.instance_id],
    });
    expect(down.status).toBe(200);
    expect(down.body.removed).toEqual([victim.instance_id]);
    const left = await cluster.instances(BLOCK);
    expect(left.map((i) => i.instance_id)).not.toContain(victim.instance_id);
    expect(left).toHaveLength(2);
    expect(pidAlive(pid)).toBe(false);
    expect((await cluster.pids(BLOCK)).has(victim.instance_id)).toBe(false);
    for (let n = 0; n < 6; n++) {
      expect((await grpc.classify(HELD_OUT[n]![0], nextSession())).instanceId).not.toBe(victim.instance_id);
    }

    const atMin = await cluster.action("scale", {
      block_id: BLOCK,
      operation: "downscale",
      instances_list: [left[0]!.instance_id],
    });
    expect(atMin.status).toBe(409);
    expect(atMin.body.error.code).toBe("at_min_instances");
    expect(await cluster.instances(BLOCK)).toEqual(left);
  });

  test("parameter_update: every instance applies it and the block document records it", async () => {
    const mild = "The room was fine and the breakfast was okay";
    const block = await cluster.block(BLOCK);
    const res = await cluster.action("parameter_update", {
      block_id: BLOCK,
      parameters: { min_confidence: 0.99 },
    });
    expect(res.status).toBe(200);
    expect(res.body.parameters).toEqual({ min_confidence: 0.99 });
    const answers = res.body.instances as Record<string, { status: number; body: { parameters: unknown } }>;
    expect(Object.keys(answers).sort()).toEqual(
      (block.instances as BlockInstanceDoc[]).map((i) => i.instance_id).sort(),
    );
    for (const a of Object.values(answers)) {
      expect(a.status).toBe(200);
      expect(a.body.parameters).toMatchObject({ min_confidence: 0.99 });
    }
    expect((await cluster.block(BLOCK)).parameters).toEqual({ min_confidence: 0.99 });

    const grpc = cluster.grpcClient(block.services.urls.grpc);
    const answeredBy = new Set<string>();
    for (let n = 0; n < 4; n++) {
      const a = await grpc.classify(mild, nextSession());
      expect(a.result).toMatchObject({ label: "uncertain" });
      expect(a.result!.confidence).toBeLessThan(0.99);
      answeredBy.add(a.instanceId);
    }
    expect(answeredBy.size).toBe(2);

    const refused = await cluster.action("parameter_update", { block_id: BLOCK, parameters: "high" });
    expect(refused.status).toBe(400);
    expect(refused.text).toContain("data.parameters");
  });

  test("remove_instance with replace: a fresh instance takes its place, the old one is stopped", async () => {
    const before = await cluster.instances(BLOCK);
    const old = before[0]!;
    const pid = (await cluster.pids(BLOCK)).get(old.instance_id)!;
    const res = await cluster.action("remove_instance", {
      block_id: BLOCK,
      instance_id: old.instance_id,
      replace: true,
    });
    expect(res.status).toBe(200);
    expect(res.body.removed).toBe(old.instance_id);
    const replacement = res.body.replacement as BlockInstanceDoc;
    expect(replacement.instance_id).not.toBe(old.instance_id);

    const after = await cluster.instances(BLOCK);
    expect(after.map((i) => i.instance_id).sort()).toEqual(
      [before[1]!.instance_id, replacement.instance_id].sort(),
    );
    expect(pidAlive(pid)).toBe(false);
    const executor = await cluster.call("POST", `/block/${BLOCK}/executor/mgmt`, {
      mgmt_action: "get_instances",
    });
    expect((executor.body.instances as { id: string }[]).map((i) => i.id).sort()).toEqual(
      after.map((i) => i.instance_id).sort(),
    );
    // The replacement started with the block's current parameters.
    const params = await fetch(`${replacement.url}/mgmt`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ mgmt_action: "get_parameters" }),
    });
    expect(((await params.json()) as { parameters: unknown }).parameters).toEqual({ min_confidence: 0.99 });

    const grpc = cluster.grpcClient((await cluster.block(BLOCK)).services.urls.grpc);
    const seen = new Set<string>();
    for (let n = 0; n < 6; n++) seen.add((await grpc.classify(HELD_OUT[n]![0], nextSession())).instanceId);
    expect([...seen].sort()).toEqual(after.map((i) => i.instance_id).sort());

    const gone = await cluster.action("remove_instance", { block_id: BLOCK, instance_id: old.instance_id });
    expect(gone.status).toBe(404);
  });

  test("/mgmt: the block's executor, instances, autoscaler and health; the stability checker", async () => {
    const mgmt = (body: Record<string, unknown>) => cluster.call("POST", "/mgmt", body);
    const instances = await cluster.instances(BLOCK);

    const executor = await mgmt({ block_id: BLOCK, service: "executor", mgmt_action: "policy_info" });
    expect(executor.status).toBe(200);
    expect(executor.body).toMatchObject({ block_id: BLOCK, policy: POLICY.roundrobin });

    const params = await mgmt({ block_id: BLOCK, service: "instances", mgmt_action: "get_parameters" });
    expect(params.status).toBe(200);
    expect(Object.keys(params.body.results).sort()).toEqual(instances.map((i) => i.instance_id).sort());
    for (const r of Object.values(params.body.results) as { status: number; body: unknown }[]) {
      expect(r).toEqual({ status: 200, body: { parameters: { min_confidence: 0.99 } } });
    }
    const modelInfo = await mgmt({ block_id: BLOCK, service: "instances", mgmt_action: "model_info" });
    for (const [id, r] of Object.entries(modelInfo.body.results) as [
      string,
      { body: { result: unknown } },
    ][]) {
      expect(r.body.result).toMatchObject({ instance_id: id, classes: ["positive", "negative"] });
    }

    for (const service of ["autoscaler", "health"]) {
      const res = await mgmt({ block_id: BLOCK, service, mgmt_action: "get_instances" });
      expect({ service, status: res.status }).toEqual({ service, status: 200 });
      expect((res.body.instances as { id: string }[]).map((i) => i.id).sort()).toEqual(
        instances.map((i) => i.instance_id).sort(),
      );
    }

    const badService = await mgmt({ block_id: BLOCK, service: "mapper", mgmt_action: "get_instances" });
    expect(badService.status).toBe(400);
    expect(badService.text).toContain("instances, executor, autoscaler, health");
    const noBlock = await mgmt({ service: "executor", mgmt_action: "policy_info" });
    expect(noBlock.status).toBe(400);
    expect(noBlock.text).toContain("block_id");

    // Without block_id: the stability checker, once the cluster configures one.
    const none = await mgmt({ service: "stability_checker", mgmt_action: "get_state" });
    expect(none.status).toBe(404);
    expect(none.body.error.code).toBe("no_stability_policy");
    const configured = await cluster.updateCluster({
      $set: {
        "config.stabilityCheckerPolicy": {
          policyRuleURI: POLICY.unhealthyRatio,
          parameters: { max_unhealthy_ratio: 0.5 },
        },
      },
    });
    expect(configured.status).toBe(200);
    const routed = await mgmt({ service: "stability_checker", mgmt_action: "get_state" });
    // unhealthy-ratio has no management entry point: the policy runtime says so (not "no policy").
    expect(routed.status).toBe(422);
    expect(routed.body.error).toMatchObject({
      code: "missing_export",
      details: { uri: POLICY.unhealthyRatio },
    });

    const stability = await cluster.call("GET", "/check_stability");
    expect(stability.status).toBe(200);
    expect(stability.body).toMatchObject({
      is_stable: true,
      policy: POLICY.unhealthyRatio,
      stability_check_data: { unhealthy_nodes: [], threshold: 0.5 },
    });
    expect((stability.body.nodes as { node_id: string }[]).map((n) => n.node_id).sort()).toEqual([
      "node-a",
      "node-b",
    ]);
  });

  test("events: a registered event runs its policy, an unregistered one is recorded as a failure", async () => {
    const instance = (await cluster.instances(BLOCK))[0]!;
    const event = (name: string, data: Record<string, unknown>) =>
      cluster.call("POST", "/events", {
        block_id: BLOCK,
        instance_id: instance.instance_id,
        event_name: name,
        event_data: data,
        ts: Date.now() / 1000,
      });
    const handled = await event("note", { instance_id: instance.instance_id, step: 1 });
    expect(handled.status).toBe(202);
    const id = handled.body.id as string;
    expect(id).toBeTruthy();
    const recent = await waitFor("the event to be processed", async () => {
      const { body } = await cluster.call("GET", "/events");
      return (body.recent as { id: string }[]).find((e) => e.id === id);
    });
    expect(recent).toMatchObject({
      block_id: BLOCK,
      event_name: "note",
      outcome: "handled",
      policy: POLICY.failureCounter,
      output: { handled: true, count: 1 },
    });

    const stray = await event("never-registered", { x: 1 });
    expect(stray.status).toBe(202);
    const failure = await waitFor("the failure to be recorded", async () => {
      const { body } = await cluster.call("GET", "/events");
      return (body.failures as { message_id: string }[]).find((f) => f.message_id === stray.body.id);
    });
    expect(failure).toMatchObject({
      block_id: BLOCK,
      event_name: "never-registered",
      code: "unregistered_event",
    });
    expect((failure as unknown as { error: string }).error).toContain("note");

    const invalid = await cluster.call("POST", "/events", { block_id: BLOCK, event_name: "note" });
    expect(invalid.status).toBe(400);
  });

  test("events: the policy's actions are carried out (the third instance_failure replaces the instance)", async () => {
    const instance = (await cluster.instances(BLOCK))[0]!;
    let last = "";
    for (let i = 0; i < 3; i++) {
      const res = await cluster.call("POST", "/events", {
        block_id: BLOCK,
        instance_id: instance.instance_id,
        event_name: "instance_failure",
        event_data: { instance_id: instance.instance_id, attempt: i },
        ts: Date.now() / 1000,
      });
      expect(res.status).toBe(202);
      last = res.body.id as string;
    }
    const processed = await waitFor("the third event to be processed", async () => {
      const { body } = await cluster.call("GET", "/events");
      return (body.recent as { id: string; action_results?: unknown[] }[]).find((e) => e.id === last);
    });
    expect(processed).toMatchObject({
      output: { count: 3 },
      action_results: [{ action: "replace_instance", instance_id: instance.instance_id, outcome: "done" }],
    });
    const after = (await cluster.instances(BLOCK)).map((i) => i.instance_id);
    expect(after).not.toContain(instance.instance_id);
    expect(after).toHaveLength(2);
  });
});
