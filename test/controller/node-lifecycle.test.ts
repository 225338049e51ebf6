/**
 * Cluster actions hand a node's joining and leaving to the runtime when it has a lifecycle for nodes
 * (Kubernetes: label and uncordon; cordon, drain, unlabel), and a refusal there is a 422 that names
 * the step, with the cluster document left as it was.
 */
import { describe, expect, test } from "bun:test";
import { addNode, removeNode } from "../../src/controller/cluster.ts";
import { PolicySet } from "../../src/policy/set.ts";
import type { RegistryClient } from "../../src/registry/client.ts";
import type { RuntimeDriver } from "../../src/runtime/types.ts";
import { openStore } from "../../src/store/index.ts";
import { testContext } from "../support/controller-context.ts";

const setup = async (lifecycle: Partial<Pick<RuntimeDriver, "onboardNode" | "removeNode">>) => {
  const store = await openStore({});
  const updates: unknown[] = [];
  const nodes = [{ id: "node-a" }];
  const ctx = testContext({
    policies: new PolicySet(async () => {
      throw new Error("no policies here");
    }),
    store,
    runtime: lifecycle as RuntimeDriver,
    cluster: async () => ({ id: "cluster-1", nodes: { count: nodes.length, nodeData: nodes } }),
  });
  const registry = {
    updateCluster: async (_id: string, update: unknown) => {
      updates.push(update);
      return { id: "cluster-1" };
    },
  } as unknown as RegistryClient;
  return { ctx, registry, updates, close: () => store.close() };
};

describe("node lifecycle through the runtime", () => {
  test("add-node onboards, remove-node drains, each before the cluster document changes", async () => {
    const order: string[] = [];
    const s = await setup({
      onboardNode: async (id) => order.push(`onboard ${id}`),
      removeNode: async (id) => order.push(`drain ${id}`),
    });
    const registry = {
      updateCluster: async (_id: string, update: Record<string, unknown>) => {
        order.push(`update ${Object.keys(update).join(",")}`);
        return {};
      },
    } as unknown as RegistryClient;
    await addNode(s.ctx, registry, { id: "node-b" });
    await removeNode(s.ctx, registry, "node-a");
    expect(order).toEqual(["onboard node-b", "update $push,$inc", "drain node-a", "update $pull,$inc"]);
    await s.close();
  });

  test("a node the infrastructure does not have: 422 naming the step, nothing written", async () => {
    const s = await setup({
      onboardNode: async (id) => {
        throw new Error(`node ${id} is not a member of the Kubernetes cluster`);
      },
    });
    const err = await addNode(s.ctx, s.registry, { id: "node-x" }).catch((e: unknown) => e);
    expect(err).toMatchObject({ status: 422, code: "node_lifecycle_failed" });
    expect((err as Error).message).toContain("onboarding node 'node-x': node node-x is not a member");
    expect(s.updates).toEqual([]);
    await s.close();
  });

  test("the process runtime has no node lifecycle: the document alone changes", async () => {
    const s = await setup({});
    await addNode(s.ctx, s.registry, { id: "node-b" });
    expect(s.updates).toHaveLength(1);
    await s.close();
  });
});
