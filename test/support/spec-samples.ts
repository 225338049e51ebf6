/**
 * The specification's own examples, one copy each: the sample block specification
 * (block-spec-and-allocation.md, verbatim in sample-block-spec.json), its cluster filter, and the
 * resource allocator's Python example payload (resource-allocator.md).
 */
import sample from "./sample-block-spec.json";

export const SAMPLE_BLOCK_SPEC = sample as Record<string, unknown>;

/** The sample's clusterAllocator filter (`clusterQuery`, `clusterMetricsQuery`). */
export type ConditionList = {
  logicalOperator: string;
  conditions: { variable: string; operator: string; value: string }[];
};

export const SPEC_FILTER = sample.body.spec.values.policyRulesSpec[0]!.values.parameters.filter as {
  clusterQuery: ConditionList;
  clusterMetricsQuery: ConditionList;
};

/** The allocator example's `sample_payload`: every field empty. */
export const ALLOCATOR_SAMPLE_PAYLOAD = {
  adhoc: true,
  policy_rule_uri: "",
  clusters: [],
  inputs: {},
  filter: {},
  search: {},
  parameters: {},
  settings: {},
};

/**
 * A block specification whose clusterAllocator (highest-score, at most 5 candidates) admits the clusters
 * matching `conditions`; `values` are the spec's values (blockId, blockComponentURI, min/max, ...).
 */
export const filteredBlockSpec = (
  values: { blockId: string; blockComponentURI: string } & Record<string, unknown>,
  conditions: { variable: string; operator: string; value: string }[],
) => ({
  head: { templateUri: "Parser/V1", parameters: {} },
  body: {
    spec: {
      values: {
        minInstances: 1,
        maxInstances: 4,
        policyRulesSpec: [
          {
            values: {
              name: "clusterAllocator",
              policyRuleURI: "policy.clusterAllocator.highest-score:v0.0.1",
              parameters: { filter: { clusterQuery: { logicalOperator: "AND", conditions } } },
              settings: { max_candidates: 5 },
            },
          },
        ],
        ...values,
      },
    },
  },
});
