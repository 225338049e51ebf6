/**
 * Policy rules as documents write them: `{policyRuleURI, parameters?, settings?}`, keyed by the rule's
 * name. Components and blocks carry them as a map (`policies.loadBalancer`) or as the block
 * specification's list (`policyRulesSpec: [{"values": {name, ...}}]`, or `[{name, ...}]`).
 */
import { z } from "zod";

const JsonObject = z.record(z.string(), z.unknown());

export const PolicyRuleSchema = z.looseObject({
  policyRuleURI: z.string(),
  parameters: JsonObject.default({}),
  settings: JsonObject.default({}),
});
export type PolicyRule = z.infer<typeof PolicyRuleSchema>;

export const NamedPolicyRuleSchema = PolicyRuleSchema.extend({ name: z.string().min(1) });

/** The specification's list form: `{"values": {...}}` entries, or the rules themselves. */
export const PolicyRuleListSchema = z.array(
  z.union([z.object({ values: NamedPolicyRuleSchema }), NamedPolicyRuleSchema]),
);

/** Either form. */
export const PolicyRulesSchema = z.union([z.record(z.string(), PolicyRuleSchema), PolicyRuleListSchema]);

/** A list or a map of rules, as a map by name (a later entry of a list wins). */
export const rulesByName = (
  rules: z.infer<typeof PolicyRulesSchema> | undefined,
): Record<string, PolicyRule> => {
  if (rules === undefined) return {};
  if (!Array.isArray(rules)) return { ...rules };
  return Object.fromEntries(
    rules.map((entry) => {
      const values = ("values" in entry && entry.values !== undefined ? entry.values : entry) as z.infer<
        typeof NamedPolicyRuleSchema
      >;
      const { name, ...rule } = values;
      return [name, rule];
    }),
  );
};
