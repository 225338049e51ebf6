/**
 * Pre-check policies: allow-all, instance-quota (refuses over max_instances, naming the limit and the
 * count) and clamp-instances (allows, lowering the counts). input_data is the action's payload.
 */
import { afterEach, beforeAll, describe, expect, test } from "bun:test";
import { ensureBuilt, openPolicy, type PolicyHandle } from "../../wasm-policies/harness.ts";

const open: PolicyHandle[] = [];
const start = async (name: string) => {
  const p = await openPolicy(name);
  open.push(p);
  await p.init();
  return p;
};

beforeAll(() => ensureBuilt(), 180_000);
afterEach(async () => {
  for (const p of open.splice(0)) await p.close();
});

const scale = { block_id: "detector-yolo-88", instances_count: 4 };
const createController = {
  vdag_controller_id: "vdag-controller-123",
  vdag_uri: "vdag.uri:1.0",
  config: { policy_execution_mode: "local", replicas: 6 },
  search_tags: [],
};
const addBlock = {
  block: { blockId: "b1", minInstances: 2, maxInstances: 12, parameters: { replicas_hint: 3 } },
};

describe("allow-all", () => {
  test("allows anything unchanged", async () => {
    const p = await start("allow-all");
    for (const input of [scale, createController, "text", null, [1, 2]]) {
      expect(await p.eval(input)).toEqual({ allowed: true, input_data: input });
    }
  });
});

describe("instance-quota", () => {
  test("within the quota: allowed, unchanged", async () => {
    const p = await start("instance-quota");
    expect(await p.eval(scale, { max_instances: 4 })).toEqual({ allowed: true, input_data: scale });
  });

  test("over the quota: refused, naming the field, the count and the limit", async () => {
    const p = await start("instance-quota");
    expect(await p.eval(scale, { max_instances: 3 })).toEqual({
      allowed: false,
      input_data: {
        reason: "requested instance count 4 (instances_count) exceeds the quota of 3",
        field: "instances_count",
        requested: 4,
        limit: 3,
      },
    });
  });

  test("finds replicas, config.replicas and block specs' maxInstances", async () => {
    const p = await start("instance-quota");
    expect((await p.eval(createController, { max_instances: 5 })).input_data).toMatchObject({
      field: "config.replicas",
      requested: 6,
    });
    expect(
      (await p.eval({ vdag_controller_id: "v", replicas: 9 }, { max_instances: 5 })).input_data,
    ).toMatchObject({
      field: "replicas",
      requested: 9,
    });
    expect((await p.eval(addBlock, { max_instances: 10 })).input_data).toMatchObject({
      field: "block.maxInstances",
      requested: 12,
      limit: 10,
    });
  });

  test("no max_instances: no quota", async () => {
    const p = await start("instance-quota");
    expect(await p.eval(scale)).toEqual({ allowed: true, input_data: scale });
  });
});

describe("clamp-instances", () => {
  test("lowers counts above max_instances and allows", async () => {
    const p = await start("clamp-instances");
    expect(await p.eval(scale, { max_instances: 2 })).toEqual({
      allowed: true,
      input_data: { block_id: "detector-yolo-88", instances_count: 2 },
    });
    expect(await p.eval(createController, { max_instances: 5 })).toEqual({
      allowed: true,
      input_data: { ...createController, config: { policy_execution_mode: "local", replicas: 5 } },
    });
    expect(await p.eval(addBlock, { max_instances: 1 })).toEqual({
      allowed: true,
      input_data: {
        block: { blockId: "b1", minInstances: 1, maxInstances: 1, parameters: { replicas_hint: 3 } },
      },
    });
  });

  test("counts within the limit, or no limit: unchanged", async () => {
    const p = await start("clamp-instances");
    expect(await p.eval(scale, { max_instances: 10 })).toEqual({ allowed: true, input_data: scale });
    expect(await p.eval(scale)).toEqual({ allowed: true, input_data: scale });
  });
});
