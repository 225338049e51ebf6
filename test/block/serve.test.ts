/**
 * One block hosted by startBlockRuntime (what `aios block-runtime` runs): its policies loaded from the
 * block document, instances taking traffic as the mapper hears of them, the executor's failures
 * waking the health checker, and the command line's refusals.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { create, toBinary } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import {
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
} from "@connectrpc/connect-node";
import { type RunningBlock, startBlockRuntime } from "../../src/block/serve.ts";
import { main } from "../../src/cli/main.ts";
import { InferenceProxy } from "../../src/gen/inference_pb.ts";
import { AIOSPacketSchema } from "../../src/gen/payload_pb.ts";
import { type ServedInstance, serveInstance } from "../../src/instance/index.ts";
import { compiledBuiltin } from "../support/builtin-policies.ts";
import { type RecordingController, startRecordingController } from "../support/recording-controller.ts";

const FREE = { grpc: 0, metrics: 0, executor: 0, mapper: 0, autoscaler: 0, health: 0 };

/** The specification's block shape: policies as policyRulesSpec entries. */
const BLOCK = {
  id: "blk-serve",
  minInstances: 1,
  maxInstances: 4,
  policyRulesSpec: [
    { values: { name: "loadBalancer", policyRuleURI: "policy.loadBalancer.roundrobin:v0.0.1" } },
    {
      values: {
        name: "autoscaler",
        policyRuleURI: "policy.autoscaler.target-tracking:v0.0.1",
        parameters: { target_inflight_per_instance: 4 },
        settings: { interval_sec: 3600 },
      },
    },
    {
      values: {
        name: "stabilityChecker",
        policyRuleURI: "policy.stabilityChecker.unhealthy-retry:v0.0.1",
        parameters: { unhealthy_threshold: 1 },
        settings: { check_interval_sec: 3600 },
      },
    },
  ],
};

const instance = (id: string) =>
  serveInstance(
    { onTask: (task) => ({ n: (task.data as { n: number }).n * 2, by: id }) },
    { env: { AIOS_INSTANCE_ID: id, AIOS_BLOCK_ID: "blk-serve" }, hostname: "127.0.0.1" },
  );

let seq = 0n;
const packet = (n: number) =>
  toBinary(
    AIOSPacketSchema,
    create(AIOSPacketSchema, { sessionId: `s-${seq}`, seqNo: ++seq, data: JSON.stringify({ n }), ts: 1 }),
  );

describe("startBlockRuntime", () => {
  let controller: RecordingController;
  let block: RunningBlock;
  const instances: ServedInstance[] = [];
  let client: ReturnType<typeof createClient<typeof InferenceProxy>>;

  beforeAll(async () => {
    controller = startRecordingController();
    controller.blocks.set("blk-serve", BLOCK);
    instances.push(await instance("i-1"), await instance("i-2"));
    block = await startBlockRuntime({
      blockId: "blk-serve",
      controllerUrl: controller.url,
      ports: FREE,
      instances: instances.map((s) => ({ id: s.config.instanceId, url: s.url })),
      resolvePolicy: compiledBuiltin,
    });
    client = createClient(InferenceProxy, createGrpcTransport({ baseUrl: block.url("grpc") }));
  });
  afterAll(async () => {
    await block?.stop();
    for (const s of instances) await s.stop();
    await controller?.stop();
  });

  const post = async (listener: string, path: string, body: unknown, method = "POST") =>
    fetch(`${block.url(listener)}${path}`, {
      method,
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    });

  test("six listeners, the block document read from the controller, its three policies loaded", async () => {
    expect(block.listeners.map((l) => l.name)).toEqual([
      "grpc",
      "metrics",
      "executor",
      "mapper",
      "autoscaler",
      "health-checker",
    ]);
    expect(block.block.maxInstances).toBe(4);
    const info = await (await post("executor", "/mgmt", { mgmt_action: "policy_info" })).json();
    expect(info).toMatchObject({ policy: "policy.loadBalancer.roundrobin:v0.0.1" });
    const scaler = await (await post("autoscaler", "/mgmt", { mgmt_action: "policy_info" })).json();
    expect(scaler).toMatchObject({
      policy: "policy.autoscaler.target-tracking:v0.0.1",
      interval_ms: 3_600_000,
    });
    // The load balancer's own management action, through the executor's /mgmt.
    const state = await post("executor", "/mgmt", { mgmt_action: "get_state" });
    expect(state.status).toBe(200);
  });

  test("round-robin over both instances through gRPC", async () => {
    const by = new Set<string>();
    for (let i = 0; i < 4; i++) {
      const res = await client.infer({ rpcData: packet(i) });
      expect(res.message).toBe(true);
      expect(JSON.parse(res.result)).toMatchObject({ n: i * 2 });
      by.add(res.instanceId);
    }
    expect([...by].sort()).toEqual(["i-1", "i-2"]);
  });

  test("one port answers gRPC, and Connect and gRPC-web over both HTTP/2 and HTTP/1.1", async () => {
    const baseUrl = block.url("grpc");
    const transports = {
      "connect h2": createConnectTransport({ baseUrl, httpVersion: "2" }),
      "connect h1": createConnectTransport({ baseUrl, httpVersion: "1.1" }),
      "grpc-web h2": createGrpcWebTransport({ baseUrl, httpVersion: "2" }),
      "grpc-web h1": createGrpcWebTransport({ baseUrl, httpVersion: "1.1" }),
    };
    for (const [name, transport] of Object.entries(transports)) {
      const res = await createClient(InferenceProxy, transport).infer({ rpcData: packet(21) });
      expect([name, JSON.parse(res.result).n]).toEqual([name, 42]);
    }
    // What a browser or curl sends: Connect's JSON over HTTP/1.1; a bad packet names the field.
    const plain = await fetch(`${baseUrl}/InferenceProxy/infer`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ rpcData: Buffer.from(packet(5)).toString("base64") }),
    });
    expect(plain.status).toBe(200);
    expect(JSON.parse(((await plain.json()) as { result: string }).result)).toMatchObject({ n: 10 });
    const bad = await fetch(`${baseUrl}/InferenceProxy/infer`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ rpcData: "" }),
    });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { code: string; message: string }).code).toBe("invalid_argument");
  });

  test("an instance added through the mapper takes traffic; a removed one stops, without a restart", async () => {
    const third = await instance("i-3");
    instances.push(third);
    expect((await post("mapper", "/instances", { id: "i-3", url: third.url })).status).toBe(200);
    const seen = new Set<string>();
    for (let i = 0; i < 6; i++) seen.add((await client.infer({ rpcData: packet(i) })).instanceId);
    expect(seen.has("i-3")).toBe(true);
    expect((await fetch(`${block.url("mapper")}/instances/i-1`, { method: "DELETE" })).status).toBe(200);
    const after = new Set<string>();
    for (let i = 0; i < 6; i++) after.add((await client.infer({ rpcData: packet(i) })).instanceId);
    expect([...after].sort()).toEqual(["i-2", "i-3"]);
    // The sidecars follow the same list.
    const listed = (await (
      await post("health-checker", "/mgmt", { mgmt_action: "get_instances" })
    ).json()) as {
      instances: { id: string }[];
    };
    expect(listed.instances.map((i) => i.id)).toEqual(["i-2", "i-3"]);
  });

  test("an instance dying: requests still succeed, and the health checker is woken to replace it", async () => {
    controller.actions.length = 0;
    const dead = instances.find((s) => s.config.instanceId === "i-2");
    await dead?.stop();
    for (let i = 0; i < 4; i++) {
      const res = await client.infer({ rpcData: packet(i) });
      expect(res.instanceId).toBe("i-3");
    }
    // unhealthy_threshold 1: the early check asks the controller for a replacement at once.
    const deadline = Date.now() + 5000;
    while (!controller.actions.some((a) => a.action === "remove_instance") && Date.now() < deadline) {
      await Bun.sleep(20);
    }
    expect(controller.actions.find((a) => a.action === "remove_instance")?.data).toMatchObject({
      block_id: "blk-serve",
      instance_id: "i-2",
      replace: true,
    });
    const listed = (await (await post("executor", "/mgmt", { mgmt_action: "get_instances" })).json()) as {
      instances: { id: string; last_failure: unknown; ejected_until: number | null }[];
    };
    const i2 = listed.instances.find((i) => i.id === "i-2");
    expect(i2?.last_failure).toMatchObject({ reason: expect.stringContaining("unreachable") });
    expect(i2?.ejected_until).toBeGreaterThan(Date.now());
  });
});

describe("startBlockRuntime refusals", () => {
  test("a policy of the wrong kind stops the start, naming the policy; every port is released", async () => {
    const wrong = {
      id: "blk-wrong",
      policies: { loadBalancer: { policyRuleURI: "policy.autoscaler.target-tracking:v0.0.1" } },
    };
    const start = startBlockRuntime({
      blockId: "blk-wrong",
      block: wrong,
      ports: FREE,
      resolvePolicy: compiledBuiltin,
    });
    await expect(start).rejects.toThrow(
      "policies.loadBalancer: policy.autoscaler.target-tracking:v0.0.1 is a autoscaler policy",
    );
  });

  test("a bad block document is a 400 naming the field", async () => {
    const start = startBlockRuntime({ blockId: "b", block: { minInstances: "two" }, ports: FREE });
    await expect(start).rejects.toThrow("block.minInstances");
  });
});

describe("aios block-runtime", () => {
  const quiet = async (argv: string[]) => {
    const error = console.error;
    const lines: string[] = [];
    console.error = (...args: unknown[]) => lines.push(args.join(" "));
    try {
      return { code: await main(argv), stderr: lines.join("\n") };
    } finally {
      console.error = error;
    }
  };

  test("usage mistakes exit 2 and say what is wrong", async () => {
    expect(await quiet(["block-runtime"])).toMatchObject({
      code: 2,
      stderr: expect.stringContaining("--block-id is required"),
    });
    expect(await quiet(["block-runtime", "--block-id", "b", "--instance", "nourl"])).toMatchObject({
      code: 2,
      stderr: expect.stringContaining("--instance must be ID=URL"),
    });
    expect(await quiet(["block-runtime", "--block-id", "b", "--block", "{oops"])).toMatchObject({
      code: 2,
      stderr: expect.stringContaining("--block: not valid JSON"),
    });
    expect(await quiet(["block-runtime", "--block-id", "b", "--port", "70000"])).toMatchObject({ code: 2 });
    expect(
      await quiet(["block-runtime", "--block-id", "b", "--anonymous", "--block", '{"minInstances": -1}']),
    ).toMatchObject({
      code: 2,
      stderr: expect.stringContaining("block.minInstances"),
    });
  });

  test("a block runtime that could check no token refuses to start", async () => {
    const saved = { token: process.env.AIOS_TOKEN, anonymous: process.env.AIOS_ANONYMOUS };
    const controller = process.env.AIOS_CONTROLLER_URL;
    delete process.env.AIOS_TOKEN;
    delete process.env.AIOS_ANONYMOUS;
    delete process.env.AIOS_CONTROLLER_URL;
    try {
      expect(await quiet(["block-runtime", "--block-id", "b", "--block", "{}"])).toMatchObject({
        code: 2,
        stderr: expect.stringContaining("no way to check a caller's token"),
      });
    } finally {
      if (saved.token !== undefined) process.env.AIOS_TOKEN = saved.token;
      if (saved.anonymous !== undefined) process.env.AIOS_ANONYMOUS = saved.anonymous;
      if (controller !== undefined) process.env.AIOS_CONTROLLER_URL = controller;
    }
  });
});
