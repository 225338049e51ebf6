/**
 * Pre-check hooks (cluster-controller.md): run before an action; `allowed: false` refuses it with
 * `input_data` as the reason, otherwise `input_data` is what gets executed (possibly rewritten).
 *
 * Input: `input_data` is the action's payload (unchanged from the specification). `context` holds the
 * call's metadata: the runtime's `rule_id`, `policy_uri`, `kind`, `now_ms`, and from the controller
 * `hook`, `cluster_id` and `caller` (PreCheckCaller): who asks, so a policy can allow an action to
 * one caller and refuse it to another.
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

/**
 * `context.caller` of a pre-check: the identity of the token that asked (src/auth/scopes.ts).
 * - `id`: the token id (`tok_...`); `anonymous` for a call without a token where anonymous access is
 *   on; `controller` when the controller acts on its own (an event policy's replace_instance).
 * - `name`: the token's name; `scopes`: its scopes (`admin`, `operator`, `internal`, `infer:<block>`).
 * - When a service forwarded the call for a user (the gateway creating a block for one), the caller
 *   is that user and `via` names the service's token.
 */
export const PreCheckCaller = z.object({
  id: z.string(),
  name: z.string(),
  scopes: z.array(z.string()),
  anonymous: z.literal(true).optional(),
  via: z.object({ id: z.string(), name: z.string() }).optional(),
});
export type PreCheckCaller = z.infer<typeof PreCheckCaller>;

/** `context` as the controller sends it to a pre-check (beside the runtime's rule_id, policy_uri...). */
export const PreCheckContext = z.looseObject({
  hook: z.enum(PRE_CHECK_HOOKS),
  cluster_id: z.string(),
  caller: PreCheckCaller,
});

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
