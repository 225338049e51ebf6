/**
 * The cluster controller end to end on real processes (3/3): vDAG controllers (replicas of a small
 * server) created, scaled and removed; and a controller restarted over the same store and run
 * directory, which adopts the block's running processes, keeps serving the block (inference, healing)
 * and removes it in the end.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
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

const cluster = new ClusterHarness({ name: "cc-life" });
let session = 0;
const nextSession = () => `l-${++session}`;

beforeAll(async () => {
  await cluster.start();
});

afterAll(async () => {
  await cluster.close();
  expect(cluster.strays()).toEqual([]);
});

describe("vDAG controllers", () => {
  const VDAG = cluster.id("vdag");
  const vdag = (action: string, payload: unknown) =>
    cluster.call("POST", "/vdag-controller", { action, payload });
  interface Listed {
    vdag_controller_id: string;
    urls: string[];
    public_url: string | null;
    cluster_id: string;
    config: { replicas: number };
  }
  const listed = async (): Promise<Listed | undefined> =>
    ((await vdag("list_controllers", {})).body.controllers as Listed[]).find(
      (c) => c.vdag_controller_id === VDAG,
    );
  const replicaPids = async () =>
    (await cluster.controller.ctx.runtime.listVdagControllers())
      .find((v) => v.id === VDAG)
      ?.handles.map(Number) ?? [];

  test("create_controller with 2 replicas, scale_controller to 1, remove_controller", async () => {
    const server = join(cluster.tmp, "vdag-server.ts");
    writeFileSync(
      server,
      `Bun.serve({
  hostname: "127.0.0.1",
  port: Number(process.env.AIOS_PORT),
  fetch: () => Response.json({ vdag: process.env.AIOS_VDAG_ID, replica: Number(process.env.AIOS_VDAG_REPLICA) }),
});
`,
    );
    const created = await vdag("create_controller", {
      vdag_controller_id: VDAG,
      vdag_uri: "vdag.sentiment-pipeline:1.0.0",
      config: { policy_execution_mode: "local", replicas: 2, runtime: { command: ["bun", server] } },
      search_tags: ["e2e"],
    });
    expect(created.status).toBe(200);
    expect(created.body).toMatchObject({
      id: VDAG,
      cluster_id: cluster.clusterId,
      vdag_uri: "vdag.sentiment-pipeline:1.0.0",
    });
    expect(created.body.urls).toHaveLength(2);
    expect(created.body.public_url).toBe(created.body.urls[0]);

    const entry = await listed();
    expect(entry?.urls).toEqual(created.body.urls);
    const answers = await Promise.all(
      (entry!.urls as string[]).map(
        async (u) => (await fetch(u)).json() as Promise<{ vdag: string; replica: number }>,
      ),
    );
    expect(answers.sort((a, b) => a.replica - b.replica)).toEqual([
      { vdag: VDAG, replica: 0 },
      { vdag: VDAG, replica: 1 },
    ]);
    const pids = await replicaPids();
    expect(pids).toHaveLength(2);
    for (const pid of pids) expect(pidAlive(pid)).toBe(true);

    const dup = await vdag("create_controller", {
      vdag_controller_id: VDAG,
      vdag_uri: "vdag.sentiment-pipeline:1.0.0",
      config: { replicas: 1, runtime: { command: ["bun", server] } },
    });
    expect(dup.status).toBe(409);
    const noRuntime = await vdag("create_controller", {
      vdag_controller_id: cluster.id("vdag-x"),
      vdag_uri: "vdag.x:1.0.0",
      config: { replicas: 1 },
    });
    expect(noRuntime.status).toBe(400);
    expect(noRuntime.text).toContain("payload.config.runtime");
    const unknownAction = await vdag("restart_controller", { vdag_controller_id: VDAG });
    expect(unknownAction.status).toBe(400);
    expect(unknownAction.body.error.code).toBe("unknown_action");

    const scaled = await vdag("scale_controller", { vdag_controller_id: VDAG, replicas: 1 });
    expect(scaled.status).toBe(200);
    expect(scaled.body.config.replicas).toBe(1);
    expect(scaled.body.urls).toHaveLength(1);
    expect((await listed())?.urls).toEqual(scaled.body.urls);
    const left = await replicaPids();
    expect(left).toHaveLength(1);
    expect(pids.filter((p) => pidAlive(p))).toEqual(left);
    expect(((await (await fetch(scaled.body.urls[0])).json()) as { replica: number }).replica).toBe(0);

    const removed = await vdag("remove_controller", { vdag_controller_id: VDAG });
    expect(removed.status).toBe(200);
    expect(removed.body).toEqual({ removed: VDAG });
    expect(await listed()).toBeUndefined();
    for (const pid of pids) expect(pidAlive(pid)).toBe(false);
    expect(await replicaPids()).toEqual([]);
    expect((await vdag("remove_controller", { vdag_controller_id: VDAG })).status).toBe(404);
    expect((await vdag("scale_controller", { vdag_controller_id: VDAG, replicas: 2 })).status).toBe(404);
  });
});

describe("a restarted controller", () => {
  const BLOCK = cluster.id("sentiment");

  test("adopts the running block, keeps serving and healing it, then removes it", async () => {
    const created = await cluster.action("create_block", {
      id: BLOCK,
      minInstances: 2,
      maxInstances: 3,
      runtime: { command: SENTIMENT_COMMAND },
      policies: { loadBalancer: { policyRuleURI: POLICY.roundrobin } },
    });
    expect(created.status).toBe(200);
    const instances = created.body.instances as BlockInstanceDoc[];
    const pids = await cluster.pids(BLOCK);
    const servicesPid = (await cluster.servicesPid(BLOCK))!;
    const oldUrl = cluster.url;

    const restarted = await cluster.restart();
    expect(restarted.url).toBe(oldUrl);
    expect(restarted.adopted.adopted).toEqual(
      expect.arrayContaining([
        `services:${BLOCK}`,
        ...instances.map((i) => `instance:${BLOCK}:${i.instance_id}`),
      ]),
    );
    expect(restarted.adopted.cleaned.filter((id) => id.includes(cluster.run))).toEqual([]);
    // The same processes, the same block.
    for (const pid of [...pids.values(), servicesPid]) expect(pidAlive(pid)).toBe(true);
    expect(await cluster.pids(BLOCK)).toEqual(pids);
    const block = await cluster.block(BLOCK);
    expect(block).toMatchObject({ status: "running", instances, services: created.body.services });

    const grpc = cluster.grpcClient(block.services.urls.grpc);
    const seen = new Set<string>();
    for (let n = 0; n < HELD_OUT.length; n++) {
      const [text, label] = HELD_OUT[n]!;
      const viaGrpc = await grpc.classify(text, nextSession());
      expect({ text, label: viaGrpc.result?.label }).toEqual({ text, label });
      seen.add(viaGrpc.instanceId);
      const viaGateway = await cluster.gatewayClassify(BLOCK, text, nextSession());
      expect({ text, label: viaGateway.result?.label }).toEqual({ text, label });
      seen.add(viaGateway.instanceId);
    }
    expect([...seen].sort()).toEqual(instances.map((i) => i.instance_id).sort());

    // An adopted instance that dies is replaced by the new controller (found by polling its pid).
    const victim = instances[0]!;
    process.kill(pids.get(victim.instance_id)!, "SIGKILL");
    const replaced = await waitFor(
      "the adopted instance to be replaced",
      async () =>
        ((await cluster.call("GET", "/events")).body.healing as { kind: string; instance_id: string }[]).find(
          (h) => h.kind === "instance_replaced" && h.instance_id === victim.instance_id,
        ),
      2 * cluster.scanIntervalMs + 15_000,
    );
    expect(replaced).toBeTruthy();
    const now = await cluster.instances(BLOCK);
    expect(now).toHaveLength(2);
    expect(now.map((i) => i.instance_id)).not.toContain(victim.instance_id);
    const allPids = [...(await cluster.pids(BLOCK)).values(), servicesPid];

    // The stray-process check of afterAll sees this block's processes while they run.
    expect(cluster.strays()).toEqual(expect.arrayContaining(allPids));

    const removed = await cluster.action("remove_block", { block_id: BLOCK });
    expect(removed.status).toBe(200);
    expect(removed.body).toEqual({ removed: BLOCK });
    for (const pid of [...allPids, ...pids.values()]) expect(pidAlive(pid)).toBe(false);
    expect((await cluster.call("GET", `/blocks/${BLOCK}`)).status).toBe(404);
    expect(await cluster.controller.ctx.runtime.listInstances(BLOCK)).toEqual([]);
    expect(await cluster.controller.ctx.runtime.getBlockServices(BLOCK)).toBeNull();
    expect((await cluster.action("remove_block", { block_id: BLOCK })).status).toBe(404);
  });
});
