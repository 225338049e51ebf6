/**
 * Cluster actions (cluster-controller.md): add and remove nodes, read and update the cluster document.
 * The document lives in the registry; the controller changes it through the registry's API, after
 * the `add_node`, `remove_node` or `update_cluster` pre-check. A node is removed only once the
 * instances placed on it have moved to other nodes.
 */
import { z } from "zod";
import { ApiError, errorMessage, notFound, parseWith } from "../http/errors.ts";
import type { RegistryClient } from "../registry/client.ts";
import { NodeSchema, UpdateSchema } from "../registry/schemas.ts";
import { findBlocks, removeInstance } from "./blocks.ts";
import type { ControllerContext } from "./context.ts";
import { declaredNodeIds } from "./placement.ts";
import { type Caller, runPreCheck } from "./prechecks.ts";

export const NewNode = NodeSchema.extend({ id: z.string().min(1) });

/** The runtime's part of adding or removing a node; its refusal (no such node, say) is the caller's 422. */
const nodeLifecycle = async (step: () => Promise<unknown> | undefined, what: string): Promise<void> => {
  try {
    await step();
  } catch (err) {
    throw new ApiError(422, "node_lifecycle_failed", `${what}: ${errorMessage(err)}`);
  }
};

export const addNode = async (
  ctx: ControllerContext,
  registry: RegistryClient,
  body: unknown,
  caller?: Caller,
) => {
  const node = parseWith(NewNode, await runPreCheck(ctx, "add_node", body ?? {}, caller), ["node"]);
  if (declaredNodeIds(await ctx.cluster()).includes(node.id)) {
    throw new ApiError(409, "node_exists", `cluster ${ctx.clusterId} already has node '${node.id}'`);
  }
  await nodeLifecycle(() => ctx.runtime.onboardNode?.(node.id), `onboarding node '${node.id}'`);
  return registry.updateCluster(ctx.clusterId, {
    $push: { "nodes.nodeData": node },
    $inc: { "nodes.count": 1 },
  });
};

/** Moves every instance placed on `nodeId` elsewhere (fresh placements); the instances moved. */
export const evacuateNode = async (ctx: ControllerContext, nodeId: string): Promise<string[]> => {
  const moved: string[] = [];
  const blocks = await findBlocks(ctx, { "instances.node_id": nodeId });
  for (const block of blocks) {
    const instances = (block.instances as { instance_id: string; node_id: string }[]) ?? [];
    for (const i of instances.filter((x) => x.node_id === nodeId)) {
      await removeInstance(ctx, block.id, i.instance_id, true);
      moved.push(i.instance_id);
    }
  }
  return moved;
};

export const removeNode = async (
  ctx: ControllerContext,
  registry: RegistryClient,
  rawId: string,
  caller?: Caller,
) => {
  const { node_id: nodeId } = parseWith(
    z.object({ node_id: z.string().min(1) }),
    await runPreCheck(ctx, "remove_node", { node_id: rawId }, caller),
    ["node"],
  );
  if (!declaredNodeIds(await ctx.cluster()).includes(nodeId)) {
    throw notFound(`cluster ${ctx.clusterId} has no node '${nodeId}'`);
  }
  // Out of placement first, so the evacuated instances do not land on it again.
  ctx.cordon(nodeId, true);
  const moved = await evacuateNode(ctx, nodeId);
  await nodeLifecycle(() => ctx.runtime.removeNode?.(nodeId), `draining node '${nodeId}'`);
  const cluster = await registry.updateCluster(ctx.clusterId, {
    $pull: { "nodes.nodeData": { id: nodeId } },
    $inc: { "nodes.count": -1 },
  });
  ctx.cordon(nodeId, false);
  return { removed: nodeId, moved_instances: moved, cluster };
};

export const updateCluster = async (
  ctx: ControllerContext,
  registry: RegistryClient,
  body: unknown,
  caller?: Caller,
) => {
  const update = parseWith(UpdateSchema, await runPreCheck(ctx, "update_cluster", body ?? {}, caller), [
    "update",
  ]);
  return registry.updateCluster(ctx.clusterId, update);
};
