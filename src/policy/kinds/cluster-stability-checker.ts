/** The cluster stability checker (cluster-controller.md): is the cluster stable, given its nodes? */
import { z } from "zod";
import { defineKind, JsonObject } from "./contract.ts";

const Input = z.looseObject({
  cluster_data: JsonObject,
  nodes_data: z.array(z.looseObject({ node_id: z.string(), status: z.string().optional() })),
});

const Output = z.looseObject({ is_stable: z.boolean(), stability_check_data: JsonObject.optional() });

export const clusterStabilityChecker = defineKind({
  name: "clusterStabilityChecker",
  description: "judges whether a cluster is stable from the scanner's node data",
  input: Input,
  output: () => Output,
});
