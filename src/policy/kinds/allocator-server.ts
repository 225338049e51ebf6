/** The resource allocator server's policy (resource-allocator.md): which cluster, node and GPUs. */
import { z } from "zod";
import { defineKind, field, GpuIds, JsonObject } from "./contract.ts";

const Input = z.looseObject({
  cluster_data: z.record(
    z.string(),
    z.looseObject({ data: JsonObject, cluster_metrics: JsonObject.nullable().optional() }),
  ),
  inputs: z.unknown(),
});

const Output = z.looseObject({
  cluster_id: z.string().min(1),
  node_id: z.string().optional(),
  gpus: GpuIds.optional(),
});

export const allocatorServer = defineKind({
  name: "allocatorServer",
  description: "answers a placement request of the resource allocator server",
  input: Input,
  output: () => Output,
  check: (input, output) =>
    Object.hasOwn(Object(field(input, "cluster_data")), output.cluster_id)
      ? []
      : [`cluster_id: '${output.cluster_id}' is not one of the candidate clusters`],
});
