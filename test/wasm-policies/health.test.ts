/**
 * Health policies: the block health checker's unhealthy-retry (consecutive failures per instance,
 * replacement at the threshold) and the cluster controller's unhealthy-ratio stability checker.
 */
import { afterEach, beforeAll, describe, expect, test } from "bun:test";
import { ensureBuilt, openPolicy, type PolicyHandle } from "../../wasm-policies/harness.ts";

const open: PolicyHandle[] = [];
const start = async (name: string) => {
  const p = await openPolicy(name);
  open.push(p);
  return p;
};

beforeAll(() => ensureBuilt(), 180_000);
afterEach(async () => {
  for (const p of open.splice(0)) await p.close();
});

describe("unhealthy-retry", () => {
  const instances = ["instance-0", "instance-1", "instance-2"];
  const check = (
    p: PolicyHandle,
    health: Record<string, boolean>,
    parameters: Record<string, unknown> = {},
  ) => p.eval({ health_check_data: health, instances }, parameters);
  const replace = (id: string, n: number) => ({
    action: "replace_instance",
    instance_id: id,
    reason: `unhealthy for ${n} consecutive health checks`,
  });

  test("all healthy: nothing to do", async () => {
    const p = await start("unhealthy-retry");
    expect(await check(p, { "instance-0": true, "instance-1": true })).toEqual({
      actions: [],
      unhealthy: [],
    });
  });

  test("the third consecutive failure asks for a replacement, then counting starts over", async () => {
    const p = await start("unhealthy-retry");
    const down = { "instance-0": true, "instance-1": false, "instance-2": true };
    expect(await check(p, down)).toEqual({ actions: [], unhealthy: ["instance-1"] });
    expect(await check(p, down)).toEqual({ actions: [], unhealthy: ["instance-1"] });
    expect(await check(p, down)).toEqual({ actions: [replace("instance-1", 3)], unhealthy: ["instance-1"] });
    expect(await check(p, down)).toEqual({ actions: [], unhealthy: ["instance-1"] });
  });

  test("a healthy check resets the count", async () => {
    const p = await start("unhealthy-retry");
    const down = { "instance-1": false };
    await check(p, down);
    await check(p, down);
    await check(p, { "instance-1": true });
    expect((await p.management("get_state")).consecutive_failures).toEqual({});
    await check(p, down);
    expect(await check(p, down)).toEqual({ actions: [], unhealthy: ["instance-1"] });
    expect((await check(p, down)).actions).toEqual([replace("instance-1", 3)]);
  });

  test("unhealthy_threshold comes from parameters; instances are counted separately", async () => {
    const p = await start("unhealthy-retry");
    const params = { unhealthy_threshold: 2 };
    await check(p, { "instance-0": false, "instance-2": true }, params);
    const answer = await check(p, { "instance-0": false, "instance-2": false }, params);
    expect(answer).toEqual({ actions: [replace("instance-0", 2)], unhealthy: ["instance-0", "instance-2"] });
    expect((await check(p, { "instance-0": true, "instance-2": false }, params)).actions).toEqual([
      replace("instance-2", 2),
    ]);
  });

  test("counters of instances that left the block are dropped", async () => {
    const p = await start("unhealthy-retry");
    await check(p, { "instance-0": false, "instance-1": false });
    expect((await p.management("get_state")).consecutive_failures).toEqual({
      "instance-0": 1,
      "instance-1": 1,
    });
    await p.eval({ health_check_data: { "instance-0": false }, instances: ["instance-0"] });
    expect((await p.management("get_state")).consecutive_failures).toEqual({ "instance-0": 2 });
  });

  test("management reset clears the counters; bad input is an error", async () => {
    const p = await start("unhealthy-retry");
    await check(p, { "instance-0": false });
    expect(await p.management("reset")).toEqual({ ok: true });
    expect((await p.management("get_state")).consecutive_failures).toEqual({});
    await expect(p.eval({ instances })).rejects.toThrow("health_check_data must be an object");
  });
});

describe("unhealthy-ratio (cluster stability)", () => {
  const cluster = {
    id: "cluster-west-vision-001",
    nodes: { count: 4, nodeData: [{ id: "node-1" }, { id: "node-2" }, { id: "node-3" }, { id: "node-4" }] },
  };
  const node = (node_id: string, status: string) => ({ node_id, status, cpu_utilization_percent: 30 });

  test("the specification's example: one of two nodes unhealthy is unstable", async () => {
    const p = await start("unhealthy-ratio");
    const answer = await p.eval({
      cluster_data: { id: "c", nodes: { count: 2, nodeData: [{ id: "node-1" }, { id: "node-2" }] } },
      nodes_data: [node("node-1", "healthy"), node("node-2", "unhealthy")],
    });
    expect(answer).toEqual({
      is_stable: false,
      stability_check_data: {
        unhealthy_nodes: ["node-2"],
        missing_nodes: [],
        unhealthy_ratio: 0.5,
        threshold: 0.25,
        total_nodes: 2,
      },
    });
  });

  test("at the threshold is stable, above it is not", async () => {
    const p = await start("unhealthy-ratio");
    const all = ["node-1", "node-2", "node-3", "node-4"];
    const oneDown = await p.eval({
      cluster_data: cluster,
      nodes_data: all.map((id) => node(id, id === "node-4" ? "NotReady" : "Ready")),
    });
    expect(oneDown.is_stable).toBe(true);
    expect(oneDown.stability_check_data.unhealthy_ratio).toBe(0.25);
    const twoDown = await p.eval({
      cluster_data: cluster,
      nodes_data: all.map((id) => node(id, id >= "node-3" ? "unhealthy" : "healthy")),
    });
    expect(twoDown.is_stable).toBe(false);
  });

  test("nodes the scanner did not report count as unhealthy; max_unhealthy_ratio is a parameter", async () => {
    const p = await start("unhealthy-ratio");
    const answer = await p.eval(
      { cluster_data: cluster, nodes_data: [node("node-1", "healthy"), node("node-2", "healthy")] },
      { max_unhealthy_ratio: 0.5 },
    );
    expect(answer).toEqual({
      is_stable: true,
      stability_check_data: {
        unhealthy_nodes: ["node-3", "node-4"],
        missing_nodes: ["node-3", "node-4"],
        unhealthy_ratio: 0.5,
        threshold: 0.5,
        total_nodes: 4,
      },
    });
  });

  test("no nodes at all is not stable; missing nodes_data is an error", async () => {
    const p = await start("unhealthy-ratio");
    const answer = await p.eval({ cluster_data: { id: "empty" }, nodes_data: [] });
    expect(answer.is_stable).toBe(false);
    expect(answer.stability_check_data.reason).toBe("no nodes reported");
    await expect(p.eval({ cluster_data: cluster })).rejects.toThrow("nodes_data must be an array");
  });
});
