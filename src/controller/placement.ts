/**
 * The Dry-Run & Resource Allocator (cluster-controller.md): runs a block's resourceAllocator policy
 * with the specification's payloads to place a new, scaled or reassigned instance on a healthy node
 * and its GPUs, or to score a dry run. Without a policy, instances go to the first healthy node
 * without GPUs and a dry run scores 1 when any node is healthy.
 */
import { createHash } from "node:crypto";
import { ApiError } from "../http/errors.ts";
import type { PolicyRef } from "../policy/set.ts";
import type { ControllerContext } from "./context.ts";
import { pathValue, policyRefAt } from "./prechecks.ts";

export type PlacementAction = "allocation" | "scale" | "reassignment";

export interface Placement {
  node_id: string;
  gpus: string[];
}

export interface DryRunScore {
  score: number;
  node_info: Placement | null;
}

/** The ids of the nodes a cluster document declares (`nodes.nodeData[].id`). */
export const declaredNodeIds = (cluster: Record<string, unknown>): string[] =>
  ((cluster.nodes as { nodeData?: { id?: unknown }[] } | undefined)?.nodeData ?? [])
    .map((n) => n.id)
    .filter((id): id is string => typeof id === "string" && id !== "");

/**
 * The ids of the cluster's nodes that can take instances now: its declared nodes (or, with none
 * declared, those the runtime sees) minus those the scanner found unhealthy or an operator cordoned.
 */
export const healthyNodes = async (ctx: ControllerContext): Promise<string[]> => {
  const declared = declaredNodeIds(await ctx.cluster());
  const nodes = declared.length > 0 ? declared : (await ctx.runtime.probeNodes()).map((n) => n.nodeId);
  const out = ctx.unhealthyNodes();
  return nodes.filter((id) => !out.has(id));
};

/** A short stable key of a rule's configuration. */
const ruleKey = (ref: PolicyRef): string =>
  createHash("sha1")
    .update(JSON.stringify([ref.policyRuleURI, ref.parameters ?? {}, ref.settings ?? {}]))
    .digest("hex")
    .slice(0, 16);

/** The block's allocator rule; an empty URI (as block documents write "none") counts as absent. */
const allocatorRef = (block: Record<string, unknown>): PolicyRef | null => {
  const path = ["policies", "resourceAllocator"];
  return pathValue(block, [...path, "policyRuleURI"]) === "" ? null : policyRefAt(block, path);
};

const payload = async (
  ctx: ControllerContext,
  block: Record<string, unknown>,
  extra: Record<string, unknown>,
) => ({
  block,
  cluster: await ctx.cluster(),
  cluster_metrics: ((await ctx.clusterMetrics()) as Record<string, unknown> | null) ?? null,
  healthy_nodes: await healthyNodes(ctx),
  ...extra,
});

/** Where a new instance of `block` goes; a 409 when no healthy node can take it. */
export const placeInstance = async (
  ctx: ControllerContext,
  block: Record<string, unknown>,
  action: PlacementAction,
  extra: Record<string, unknown> = {},
): Promise<Placement> => {
  const input = { action, payload: await payload(ctx, block, extra) };
  const ref = allocatorRef(block);
  if (!ref) {
    const node = input.payload.healthy_nodes[0];
    if (node === undefined)
      throw new ApiError(409, "no_healthy_node", `cluster ${ctx.clusterId} has no healthy node`);
    return { node_id: node, gpus: [] };
  }
  const policy = await ctx.policies.get(`allocator:${String(block.id)}`, ref, "resourceAllocator");
  const out = await policy.eval<Placement>(input);
  return { node_id: out.node_id, gpus: out.gpus.map(String) };
};

/** The feasibility of `block` on this cluster (`dry_run`). */
export const dryRun = async (
  ctx: ControllerContext,
  block: Record<string, unknown>,
): Promise<DryRunScore> => {
  const input = { action: "dry_run" as const, payload: await payload(ctx, block, {}) };
  const ref = allocatorRef(block);
  if (!ref) {
    const node = input.payload.healthy_nodes[0];
    return node === undefined
      ? { score: 0, node_info: null }
      : { score: 1, node_info: { node_id: node, gpus: [] } };
  }
  // Dry runs are for blocks this cluster may never run: their instances are keyed by the rule's
  // configuration, not by block, so every gateway's dry runs share a handful of instances.
  const policy = await ctx.policies.get(`allocator-dry-run:${ruleKey(ref)}`, ref, "resourceAllocator");
  const out = await policy.eval<{ selection_score_data: DryRunScore }>(input);
  return out.selection_score_data;
};
