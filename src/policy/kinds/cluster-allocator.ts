/**
 * clusterAllocator (block-spec-and-allocation.md): `selection` narrows the filtered clusters,
 * `post_dry_run` picks one entry by its dry-run score.
 */
import { z } from "zod";
import { defineKind, field, JsonObject, NodeInfo } from "./contract.ts";

const ScoreData = z.looseObject({ score: z.number().min(0).max(1), node_info: NodeInfo.nullish() });
const ScoredCluster = z.looseObject({ score_data: ScoreData });

const Input = z.discriminatedUnion("action", [
  z.looseObject({ action: z.literal("selection"), filter_result: z.array(JsonObject) }),
  z.looseObject({ action: z.literal("post_dry_run"), clusters: z.array(ScoredCluster).min(1) }),
]);

const SelectionOutput = z.looseObject({ clusters: z.array(JsonObject) });

export const clusterAllocator = defineKind({
  name: "clusterAllocator",
  description: "chooses candidate clusters for a new block, then one of them by feasibility score",
  input: Input,
  output: (input): z.ZodType<Record<string, unknown>> =>
    field(input, "action") === "selection" ? SelectionOutput : ScoredCluster,
});
