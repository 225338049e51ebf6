/**
 * The parts of a block document (block-spec-and-allocation.md, as the controller stores it) that the
 * block runtime reads: its id, instance bounds and the three runtime policies with their parameters
 * and settings. Policies come as a map by name (`policies.loadBalancer`), or as the spec's list
 * (`policyRulesSpec: [{"values": {...}}]`, or `[{name, policyRuleURI, ...}]`).
 */
import { z } from "zod";
import { badRequest, parseWith } from "../http/errors.ts";
import {
  type PolicyRule,
  PolicyRuleListSchema,
  PolicyRuleSchema,
  PolicyRulesSchema,
  rulesByName,
} from "../policy/rules.ts";

export const BlockPolicySchema = PolicyRuleSchema;
export type BlockPolicy = PolicyRule;

export const BlockDocumentSchema = z.looseObject({
  id: z.string().min(1).optional(),
  minInstances: z.number().int().min(0).optional(),
  maxInstances: z.number().int().min(0).optional(),
  policies: PolicyRulesSchema.optional(),
  policyRulesSpec: PolicyRuleListSchema.optional(),
});

/** The block runtime's policies, by the specification's names. */
export const RUNTIME_POLICIES = ["loadBalancer", "autoscaler", "stabilityChecker"] as const;
export type RuntimePolicyName = (typeof RUNTIME_POLICIES)[number];

export interface BlockConfig {
  blockId: string;
  minInstances: number;
  maxInstances: number;
  /** Only those with a non-empty policyRuleURI. */
  policies: Partial<Record<RuntimePolicyName, BlockPolicy>>;
  /** The document as given: the policies' `block_data`. */
  document: Record<string, unknown>;
}

/**
 * A block specification file (`{"body": {"spec": {"values": {...}}}}`, block-spec-and-allocation.md)
 * stands for its values, with `blockId` as `id`, so a spec can be run as it is written.
 */
const unwrapSpec = (document: unknown): unknown => {
  const values = (document as { body?: { spec?: { values?: unknown } } } | null)?.body?.spec?.values;
  if (values === null || typeof values !== "object") return document;
  const v = values as Record<string, unknown>;
  return v.id === undefined && typeof v.blockId === "string" ? { ...v, id: v.blockId } : v;
};

/** Reads a block document; a 400 ApiError naming the field at fault. `blockId` wins over `id`. */
export const readBlockConfig = (input: unknown, blockId?: string): BlockConfig => {
  const document = unwrapSpec(input);
  const doc = parseWith(BlockDocumentSchema, document ?? {}, ["block"]);
  const id = blockId ?? doc.id;
  if (!id)
    throw badRequest("invalid_input", "block.id: the block document has no id and no block id was given");
  const policies = { ...rulesByName(doc.policies), ...rulesByName(doc.policyRulesSpec) };
  const chosen: BlockConfig["policies"] = {};
  for (const name of RUNTIME_POLICIES) {
    const p = policies[name];
    if (p && p.policyRuleURI !== "") chosen[name] = p;
  }
  const minInstances = doc.minInstances ?? 1;
  return {
    blockId: id,
    minInstances,
    maxInstances: Math.max(minInstances, doc.maxInstances ?? Number.MAX_SAFE_INTEGER),
    policies: chosen,
    document: { ...(document as Record<string, unknown>), id },
  };
};

/** A duration setting in seconds (`settings[key]`), as milliseconds; the default when absent or bad. */
export const secondsSetting = (
  settings: Record<string, unknown> | undefined,
  keys: readonly string[],
  fallbackMs: number,
): number => {
  for (const key of keys) {
    const v = settings?.[key];
    if (typeof v === "number" && Number.isFinite(v) && v > 0) return v * 1000;
  }
  return fallbackMs;
};
