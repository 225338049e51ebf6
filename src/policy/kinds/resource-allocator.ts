/**
 * resourceAllocator (block-spec-and-allocation.md, cluster-controller.md): places a block's instances
 * on a node and GPUs; `dry_run` scores how feasible the whole block is on this cluster.
 */
import { z } from "zod";
import { defineKind, field, JsonObject, listHas, NodeInfo } from "./contract.ts";

export const RESOURCE_ALLOCATOR_ACTIONS = ["dry_run", "allocation", "scale", "reassignment"] as const;

const Payload = z.looseObject({
  block: JsonObject,
  cluster: JsonObject,
  cluster_metrics: JsonObject.nullable(),
  healthy_nodes: z.array(z.string()),
  block_metrics: JsonObject.nullish(),
  instance_id: z.string().optional(),
  pod_name: z.string().optional(),
});

const Input = z.looseObject({ action: z.enum(RESOURCE_ALLOCATOR_ACTIONS), payload: Payload });

const DryRunOutput = z.looseObject({
  selection_score_data: z.looseObject({ score: z.number().min(0).max(1), node_info: NodeInfo.nullish() }),
});

export const resourceAllocator = defineKind({
  name: "resourceAllocator",
  description: "places a block's instances on nodes and GPUs of a cluster, or scores a dry run",
  input: Input,
  output: (input): z.ZodType<Record<string, unknown>> =>
    field(input, "action") === "dry_run" ? DryRunOutput : NodeInfo.loose(),
  check: (input, output) => {
    const nodeId = field(input, "action") === "dry_run" ? null : output.node_id;
    return nodeId === null || listHas(field(input, "payload"), "healthy_nodes", nodeId)
      ? []
      : [`node_id: '${nodeId}' is not one of the healthy nodes`];
  },
});
