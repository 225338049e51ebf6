/**
 * Pre-check hooks (cluster-controller.md): run before an action; `allowed: false` refuses it with
 * `input_data` as the reason, otherwise `input_data` is what gets executed (possibly rewritten).
 */
import { z } from "zod";
import { defineKind } from "./contract.ts";

export const PRE_CHECK_HOOKS = [
  "add_node",
  "remove_node",
  "update_cluster",
  "scale_block",
  "add_block",
  "remove_block",
  "add_vdag_controller",
  "remove_vdag_controller",
  "block_mgmt",
  "cluster_mgmt",
] as const;
export type PreCheckHook = (typeof PRE_CHECK_HOOKS)[number];

const Output = z
  .looseObject({ allowed: z.boolean(), input_data: z.unknown() })
  .refine((o) => o.input_data !== undefined, {
    path: ["input_data"],
    message: "input_data is required (the input as executed, or the reason for refusing)",
  });

export const preCheck = defineKind({
  name: "preCheck",
  description: "allows, refuses or rewrites a cluster action before it runs",
  input: z.unknown(),
  output: () => Output,
});
