/**
 * The cluster controller end to end on real processes (2/3): self-healing and nodes. A block of the
 * sentiment example survives an instance SIGKILLed under load (the scanner replaces it), a node marked
 * unhealthy (its instances move; the verdict and the healing records outlive a controller restart), a pre-check policy refusing a scale, and nodes added and removed
 * through `/cluster-actions`. The tests run in order and share the block.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import {
  type BlockInstanceDoc,
  type Classification,
  ClusterHarness,
  POLICY,
  pidAlive,
  SENTIMENT_COMMAND,
  waitFor,
} from "../support/cluster-controller.ts";
import { HELD_OUT } from "../support/sentiment.ts";

setDefaultTimeout(60_000);

const cluster = new ClusterHarness({ name: "cc-heal", scanIntervalMs: 500 });
const BLOCK = cluster.id("sentiment");
let session = 0;
const nextSession = () => `h-${++session}`;

interface HealingRecord {
  kind: string;
  block_id?: string;
  instance_id?: string;
  node_id?: string;
  detail: Record<string, unknown>;
}

const healing = async (): Promise<HealingRecord[]> =>
  (await cluster.call("GET", "/events")).body.healing as HealingRecord[];

const nodesOf = async () => (await cluster.instances(BLOCK)).map((i) => i.node_id).sort();

/** Classifies HELD_OUT[n] through `classify`; throws unless the label is right. */
const checked = async (classify: (text: string, s: string) => Promise<Classification>, n: number) => {
  const [text, label] = HELD_OUT[n % HELD_OUT.length]!;
  const a = await classify(text, nextSession());
  if (!a.message || a.result?.label !== label) {
    throw new Error(`'${text}': expected ${label}, got ${JSON.stringify(a)}`);
  }
  return a;
};

beforeAll(async () => {
  await cluster.start();
  const created = await cluster.action("create_block", {
    id: BLOCK,
    minInstances: 2,
    maxInstances: 3,
    runtime: { command: SENTIMENT_COMMAND },
    policies: {
      loadBalancer: { policyRuleURI: POLICY.roundrobin },
      resourceAllocator: {
        policyRuleURI: POLICY.gpuFreeMemory,
        parameters: { gpus: 0 },
        settings: { selection_mode: "spread" },
      },
    },
  });
  if (created.status !== 200) throw new Error(`create_block: ${created.status} ${created.text}`);
});

afterAll(async () => {
  await cluster.close();
  expect(cluster.strays()).toEqual([]);
});

describe("self-healing and nodes", () => {
  test("an instance SIGKILLed under load: every request succeeds and a replacement is started", async () => {
    const block = await cluster.block(BLOCK);
    const grpc = cluster.grpcClient(block.services.urls.grpc);
    const before = block.instances as BlockInstanceDoc[];
    const victim = before[0]!;
    const pid = (await cluster.pids(BLOCK)).get(victim.instance_id)!;
    expect(pidAlive(pid)).toBe(true);

    const TOTAL = 200;
    const IN_FLIGHT = 8;
    const errors: unknown[] = [];
    const servedBy = new Map<string, number>();
    let next = 0;
    let done = 0;
    let killedAt = 0;
    const worker = async () => {
      while (next < TOTAL) {
        const n = next++;
        try {
          const a = await checked(grpc.classify, n);
          servedBy.set(a.instanceId, (servedBy.get(a.instanceId) ?? 0) + 1);
        } catch (err) {
          errors.push(err);
        }
        done++;
        if (done === 50 && killedAt === 0) {
          killedAt = Date.now();
          process.kill(pid, "SIGKILL");
        }
      }
    };
    await Promise.all(Array.from({ length: IN_FLIGHT }, worker));
    expect(killedAt).toBeGreaterThan(0);
    expect(errors).toEqual([]);
    expect(done).toBe(TOTAL);
    expect(servedBy.get(victim.instance_id) ?? 0).toBeGreaterThan(0);

    // Replaced within two scan intervals plus the time a sentiment instance takes to start.
    const replaced = await waitFor(
      "the replacement",
      async () =>
        (await healing()).find((h) => h.kind === "instance_replaced" && h.instance_id === victim.instance_id),
      2 * cluster.scanIntervalMs + 15_000,
    );
    expect(Date.now() - killedAt).toBeLessThan(2 * cluster.scanIntervalMs + 15_000);
    expect(replaced.block_id).toBe(BLOCK);
    const replacement = replaced.detail.replacement as string;
    expect(replacement).toBeTruthy();
    const after = await cluster.instances(BLOCK);
    expect(after.map((i) => i.instance_id).sort()).toEqual([before[1]!.instance_id, replacement].sort());
    // Placed by the allocator's reassignment, which moves an instance off its node when another fits.
    const placed = after.find((i) => i.instance_id === replacement)!;
    expect(placed.node_id).not.toBe(victim.node_id);
    expect(["node-a", "node-b"]).toContain(placed.node_id);
    expect(pidAlive(pid)).toBe(false);
    const pids = await cluster.pids(BLOCK);
    expect(pids.has(victim.instance_id)).toBe(false);
    expect(pidAlive(pids.get(replacement)!)).toBe(true);

    // The replacement takes traffic.
    const seen = new Set<string>();
    for (let n = 0; n < 6; n++) seen.add((await checked(grpc.classify, n)).instanceId);
    expect([...seen].sort()).toEqual(after.map((i) => i.instance_id).sort());
  });

  test("a node marked unhealthy loses its instances to a healthy node, and comes back", async () => {
    // One instance on each node first: a scale places the third on the node holding fewer (spread).
    const up0 = await cluster.action("scale", { block_id: BLOCK, operation: "upscale", instances_count: 1 });
    expect(up0.status).toBe(200);
    const nodes0 = await nodesOf();
    expect(nodes0).toHaveLength(3);
    expect(nodes0).toContain("node-a");
    expect(nodes0).toContain("node-b");
    const onA = (await cluster.instances(BLOCK)).filter((i) => i.node_id === "node-a");
    const pids = await cluster.pids(BLOCK);

    const marked = await cluster.call("PUT", "/nodes_status/node-a", { status: "unhealthy" });
    expect(marked.status).toBe(200);
    expect(marked.body.nodes).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ node_id: "node-a", status: "unhealthy", source: "operator" }),
        expect.objectContaining({ node_id: "node-b", status: "healthy", source: "probe" }),
      ]),
    );
    expect((await cluster.call("GET", "/healthy_nodes")).body).toEqual({ healthy_nodes: ["node-b"] });

    await waitFor("node-a to be evacuated", async () => (await nodesOf()).every((n) => n === "node-b"));
    expect(await nodesOf()).toEqual(["node-b", "node-b", "node-b"]);
    for (const i of onA) expect(pidAlive(pids.get(i.instance_id)!)).toBe(false);
    const evacuated = (await healing()).find((h) => h.kind === "node_evacuated" && h.node_id === "node-a");
    expect(evacuated?.detail.moved).toEqual(onA.map((i) => i.instance_id));

    // A restarted controller keeps the operator's verdict and what it healed (both in its store).
    await cluster.restart();
    const afterRestart = await cluster.call("GET", "/nodes_status");
    expect(afterRestart.body.nodes).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ node_id: "node-a", status: "unhealthy", source: "operator" }),
      ]),
    );
    expect((await cluster.call("GET", "/healthy_nodes")).body).toEqual({ healthy_nodes: ["node-b"] });
    const kept = await healing();
    expect(kept.find((h) => h.kind === "node_evacuated" && h.node_id === "node-a")).toEqual(evacuated!);
    expect(kept.some((h) => h.kind === "instance_replaced")).toBe(true);
    expect(await nodesOf()).toEqual(["node-b", "node-b", "node-b"]);

    // The stability checker sees the scanner's verdict.
    const stability = await cluster.call("GET", "/check_stability");
    expect(stability.body.is_stable).toBe(false);
    expect(stability.body.nodes).toEqual(
      expect.arrayContaining([expect.objectContaining({ node_id: "node-a", status: "unhealthy" })]),
    );

    const grpc = cluster.grpcClient((await cluster.block(BLOCK)).services.urls.grpc);
    for (let n = 0; n < 4; n++) await checked(grpc.classify, n);
    // Back to minInstances while node-a is out.
    const down = await cluster.action("scale", {
      block_id: BLOCK,
      operation: "downscale",
      instances_list: [(await cluster.instances(BLOCK))[0]!.instance_id],
    });
    expect(down.status).toBe(200);
    expect(await nodesOf()).toEqual(["node-b", "node-b"]);

    const restored = await cluster.call("PUT", "/nodes_status/node-a", { status: null });
    expect(restored.status).toBe(200);
    expect((await cluster.call("GET", "/healthy_nodes")).body.healthy_nodes.sort()).toEqual([
      "node-a",
      "node-b",
    ]);
    const status = await cluster.call("GET", "/nodes_status");
    expect(status.status).toBe(200);
    const byId = new Map((status.body.nodes as { node_id: string }[]).map((n) => [n.node_id, n]));
    expect([...byId.keys()].sort()).toEqual(["node-a", "node-b"]);
    for (const id of ["node-a", "node-b"]) {
      expect(byId.get(id)).toMatchObject({ status: "healthy", source: "probe", reason: null });
    }
    expect((await cluster.call("GET", "/check_stability")).body.is_stable).toBe(true);

    const invalid = await cluster.call("PUT", "/nodes_status/node-a", { status: "sick" });
    expect(invalid.status).toBe(400);
  });

  test("a scale_block pre-check that refuses: 403 with the policy's reason, nothing starts", async () => {
    const quota = await cluster.updateCluster({
      $set: {
        "config.preCheckPolicies.scale_block": {
          policyRuleURI: POLICY.instanceQuota,
          parameters: { max_instances: 0 },
        },
      },
    });
    expect(quota.status).toBe(200);
    const before = await cluster.instances(BLOCK);
    const runtimeBefore = (await cluster.controller.ctx.runtime.listInstances(BLOCK)).length;

    const refused = await cluster.action("scale", {
      block_id: BLOCK,
      operation: "upscale",
      instances_count: 1,
    });
    expect(refused.status).toBe(403);
    expect(refused.body.error.code).toBe("precheck_refused");
    expect(refused.body.error.message).toContain("exceeds the quota of 0");
    expect(refused.body.error.details).toMatchObject({
      hook: "scale_block",
      policy: POLICY.instanceQuota,
      reason: { field: "instances_count", requested: 1, limit: 0 },
    });
    expect(await cluster.instances(BLOCK)).toEqual(before);
    expect((await cluster.controller.ctx.runtime.listInstances(BLOCK)).length).toBe(runtimeBefore);

    const removed = await cluster.updateCluster({ $unset: { "config.preCheckPolicies.scale_block": "" } });
    expect(removed.status).toBe(200);
    const up = await cluster.action("scale", { block_id: BLOCK, operation: "upscale", instances_count: 1 });
    expect(up.status).toBe(200);
    expect(await cluster.instances(BLOCK)).toHaveLength(3);
    // Spread: node-a held none of the block's instances.
    expect(up.body.added[0].node_id).toBe("node-a");
    const down = await cluster.action("scale", {
      block_id: BLOCK,
      operation: "downscale",
      instances_list: [up.body.added[0].instance_id],
    });
    expect(down.status).toBe(200);
    expect(await cluster.instances(BLOCK)).toHaveLength(2);
  });

  test("/cluster-actions: add a node, remove it, and remove a node that holds instances", async () => {
    const added = await cluster.call("POST", "/cluster-actions/add-node", {
      id: "node-c",
      vcpus: { count: 2 },
      memory: 2048,
    });
    expect(added.status).toBe(200);
    const got = await cluster.call("GET", "/cluster-actions/get-cluster");
    expect(got.status).toBe(200);
    expect(got.body.id).toBe(cluster.clusterId);
    expect((got.body.nodes.nodeData as { id: string }[]).map((n) => n.id)).toEqual([
      "node-a",
      "node-b",
      "node-c",
    ]);
    expect(got.body.nodes.count).toBe(3);
    expect(got.body.config.urlMap.controllerService).toBe(cluster.url);
    const dup = await cluster.call("POST", "/cluster-actions/add-node", { id: "node-c" });
    expect(dup.status).toBe(409);
    const noId = await cluster.call("POST", "/cluster-actions/add-node", {});
    expect(noId.status).toBe(400);
    // The scanner reports the new node.
    await waitFor("node-c in /nodes_status", async () =>
      ((await cluster.call("GET", "/nodes_status")).body.nodes as { node_id: string }[]).some(
        (n) => n.node_id === "node-c",
      ),
    );

    const instancesBefore = await cluster.instances(BLOCK);
    const removedC = await cluster.call("DELETE", "/cluster-actions/remove-node/node-c");
    expect(removedC.status).toBe(200);
    expect(removedC.body).toMatchObject({ removed: "node-c", moved_instances: [] });
    expect(await cluster.instances(BLOCK)).toEqual(instancesBefore);
    const afterC = await cluster.call("GET", "/cluster-actions/get-cluster");
    expect((afterC.body.nodes.nodeData as { id: string }[]).map((n) => n.id)).toEqual(["node-a", "node-b"]);
    expect(afterC.body.nodes.count).toBe(2);

    const unknown = await cluster.call("DELETE", "/cluster-actions/remove-node/node-z");
    expect(unknown.status).toBe(404);

    // node-b holds instances: they move to node-a first.
    const onB = instancesBefore.filter((i) => i.node_id === "node-b").map((i) => i.instance_id);
    expect(onB.length).toBeGreaterThan(0);
    const pids = await cluster.pids(BLOCK);
    const removedB = await cluster.call("DELETE", "/cluster-actions/remove-node/node-b");
    expect(removedB.status).toBe(200);
    expect([...(removedB.body.moved_instances as string[])].sort()).toEqual([...onB].sort());
    expect(await nodesOf()).toEqual(["node-a", "node-a"]);
    for (const id of onB) expect(pidAlive(pids.get(id)!)).toBe(false);
    const afterB = await cluster.call("GET", "/cluster-actions/get-cluster");
    expect((afterB.body.nodes.nodeData as { id: string }[]).map((n) => n.id)).toEqual(["node-a"]);
    // The scanner forgets node-b at its next scan.
    await waitFor("node-b to leave /healthy_nodes", async () => {
      const { body } = await cluster.call("GET", "/healthy_nodes");
      return JSON.stringify(body) === JSON.stringify({ healthy_nodes: ["node-a"] });
    });

    const grpc = cluster.grpcClient((await cluster.block(BLOCK)).services.urls.grpc);
    for (let n = 0; n < 4; n++) await checked(grpc.classify, n);
  });
});
