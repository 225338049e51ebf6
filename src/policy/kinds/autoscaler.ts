/** autoscaler (block-runtime.md): periodically decides to keep, add or remove instances. */
import { z } from "zod";
import { defineKind, field, JsonObject } from "./contract.ts";

const Input = z.looseObject({
  block_data: JsonObject,
  cluster_data: JsonObject.optional(),
  instances: z.array(z.string()).optional(),
});

const Output = z.union([
  z.looseObject({ skip: z.literal(true) }),
  z.looseObject({
    skip: z.literal(false),
    operation: z.literal("upscale"),
    instances_count: z.number().int().min(1),
  }),
  z.looseObject({
    skip: z.literal(false),
    operation: z.literal("downscale"),
    instances_list: z.array(z.string()).min(1),
  }),
]);

export const autoscaler = defineKind({
  name: "autoscaler",
  description: "decides whether a block scales up (how many) or down (which instances)",
  input: Input,
  output: () => Output,
  check: (input, output) => {
    const instances = field(input, "instances");
    if (output.skip || output.operation !== "downscale" || !Array.isArray(instances)) return [];
    const offered = new Set(instances);
    return (output.instances_list as string[])
      .map((id, i) => (offered.has(id) ? "" : `instances_list.${i}: '${id}' is not an instance of the block`))
      .filter(Boolean);
  },
});
