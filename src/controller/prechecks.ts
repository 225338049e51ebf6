/**
 * Pre-check policies (cluster-controller.md, "Pre-check Policies"): before one of the ten hooked
 * actions runs, the cluster's policy for that hook allows it (possibly rewriting its input, which is
 * then what runs) or refuses it.
 *
 * Configuration: the cluster document's `config.preCheckPolicies` maps a hook name to a policy rule
 * `{"policyRuleURI", "parameters"?, "settings"?}`, e.g.
 * `{"scale_block": {"policyRuleURI": "policy.preCheck.instance-quota:v0.0.1", "parameters": {"max_instances": 4}}}`.
 * The specification names the hooks but not where a cluster configures them; a map in the cluster's
 * `config` sits next to its other policy settings, is changed with `update_cluster` like them, and is
 * read fresh for each action (the PolicySet re-creates an instance only when its rule changes).
 * A hook without an entry (or with `null`) runs its action unchecked.
 *
 * The policy sees who asks: `context.caller` `{"id", "name", "scopes", "anonymous"?, "via"?}` is the
 * token's identity (the user a service acted for, when a trusted service forwarded the call; `via`
 * then names the service), or CONTROLLER_CALLER when the controller acts on its own (an event
 * policy's action). So governance can depend on who asks, not only on what is asked.
 */
import { z } from "zod";
import { effectiveCaller, type Principal } from "../auth/scopes.ts";
import { ApiError, errorMessage, formatPath } from "../http/errors.ts";
import { PRE_CHECK_HOOKS, type PreCheckCaller, type PreCheckHook } from "../policy/kinds/pre-check.ts";
import type { PolicyRef } from "../policy/set.ts";
import type { ControllerContext } from "./context.ts";

/** A policy rule as cluster and block documents write it. */
export const PolicyRefSchema = z.object({
  policyRuleURI: z.string().min(1),
  parameters: z.record(z.string(), z.unknown()).optional(),
  settings: z.record(z.string(), z.unknown()).optional(),
});

const isRecord = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v);

/** The value at `path` of a document; undefined when a step is missing or not an object. */
export const pathValue = (doc: unknown, path: readonly string[]): unknown => {
  let v: unknown = doc;
  for (const key of path) {
    if (!isRecord(v)) return undefined;
    v = v[key];
  }
  return v;
};

/**
 * The policy rule at `path` of a document: null when absent (or null); a 422 ApiError naming the path when
 * present but malformed, so a typo in the configuration is reported rather than read as "no policy".
 */
export const policyRefAt = (doc: unknown, path: readonly string[]): PolicyRef | null => {
  const value = pathValue(doc, path);
  if (value === undefined || value === null) return null;
  const parsed = PolicyRefSchema.safeParse(value);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  const where = formatPath([...path, ...(issue?.path ?? [])]);
  throw new ApiError(
    422,
    "invalid_policy_config",
    `${where}: ${issue?.message ?? "must be {policyRuleURI, parameters?, settings?}"}`,
    { path: where },
  );
};

export const isPreCheckHook = (name: string): name is PreCheckHook =>
  (PRE_CHECK_HOOKS as readonly string[]).includes(name);

export const preCheckRuleId = (hook: PreCheckHook): string => `precheck:${hook}`;

/** The rule configured for `hook` in a cluster document (null: none). Throws on a malformed entry. */
export const preCheckPolicyOf = (cluster: unknown, hook: PreCheckHook): PolicyRef | null =>
  policyRefAt(cluster, ["config", "preCheckPolicies", hook]);

/** Who asks for an action, as a pre-check policy sees it (`context.caller`; the contract in pre-check.ts). */
export type Caller = PreCheckCaller;

/** The controller acting on its own (an event handler's action), not for a caller. */
export const CONTROLLER_CALLER: Caller = Object.freeze({
  id: "controller",
  name: "controller",
  scopes: ["internal"],
}) as Caller;

/** The caller of a request from the guard's principal (CONTROLLER_CALLER when there is none). */
export const callerOf = (principal: Principal | undefined): Caller => {
  if (!principal) return CONTROLLER_CALLER;
  const who = effectiveCaller(principal);
  return {
    id: who.id,
    name: who.name,
    scopes: [...who.scopes],
    ...(principal.anonymous ? { anonymous: true as const } : {}),
    ...(principal.onBehalfOf ? { via: { id: principal.id, name: principal.name } } : {}),
  };
};

/** A refusal by governance: the request was understood and well-formed, the cluster's rules forbid it. */
const FORBIDDEN = 403;

/** A short human reason out of what a refusing policy put in `input_data`. */
const reasonText = (reason: unknown): string => {
  if (typeof reason === "string") return reason;
  if (isRecord(reason) && typeof reason.reason === "string") return reason.reason;
  const text = JSON.stringify(reason) ?? String(reason);
  return text.length > 300 ? `${text.slice(0, 300)}...` : text;
};

/**
 * Runs the pre-check of `hook` on an action's input; resolves to the input to execute (the policy's
 * `input_data`, possibly rewritten; `inputData` itself when the hook has no policy).
 *
 * - refused (`allowed: false`): ApiError 403 `precheck_refused`, details `{hook, policy, reason, caller}`
 *   with the policy's `input_data` as the reason and the caller's `{id, name}`;
 * - the check could not be made (the cluster document, the policy or its configuration unavailable or
 *   broken: unreachable registry, trap, fuel exhausted, malformed output, wrong kind): ApiError 503
 *   `precheck_unavailable`, details `{hook, policy, error}`. This fails closed: a pre-check is a
 *   governance gate, and running an action its gate could not judge would let a broken or unreachable
 *   policy silently disable the rules. 503 rather than 4xx since the caller's request was not at fault
 *   and may succeed unchanged once the operator fixes the policy or the registry is back.
 *
 * The policy's `context` is `{hook, cluster_id, caller}` (with the runtime's rule_id, policy_uri, kind,
 * now_ms); `caller` defaults to CONTROLLER_CALLER.
 *
 * An unknown hook name is a bug of the caller: a TypeError.
 */
export const runPreCheck = async (
  ctx: ControllerContext,
  hook: string,
  inputData: unknown,
  caller: Caller = CONTROLLER_CALLER,
): Promise<unknown> => {
  if (!isPreCheckHook(hook)) {
    throw new TypeError(`unknown pre-check hook '${hook}' (one of ${PRE_CHECK_HOOKS.join(", ")})`);
  }
  let ref: PolicyRef | null = null;
  let output: { allowed: boolean; input_data: unknown };
  try {
    ref = preCheckPolicyOf(await ctx.cluster(), hook);
    if (ref === null) return inputData;
    const instance = await ctx.policies.get(preCheckRuleId(hook), ref, "preCheck");
    output = await instance.eval<{ allowed: boolean; input_data: unknown }>(inputData, {
      context: { hook, cluster_id: ctx.clusterId, caller },
    });
  } catch (err) {
    const policy = ref?.policyRuleURI ?? null;
    throw new ApiError(
      503,
      "precheck_unavailable",
      `pre-check ${hook}${policy ? ` (${policy})` : ""} could not be evaluated, so the action is refused: ${errorMessage(err)}`,
      { hook, policy, error: errorMessage(err) },
    );
  }
  if (!output.allowed) {
    throw new ApiError(
      FORBIDDEN,
      "precheck_refused",
      `${hook} refused by pre-check policy ${ref.policyRuleURI}: ${reasonText(output.input_data)}`,
      {
        hook,
        policy: ref.policyRuleURI,
        reason: output.input_data,
        caller: { id: caller.id, name: caller.name },
      },
    );
  }
  return output.input_data;
};
