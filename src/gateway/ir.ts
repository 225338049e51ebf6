/**
 * `block_create_IR` (block-spec-and-allocation.md): a block specification and its component make the
 * block document. Pure: no I/O, the same inputs give the same block (but for a generated id).
 *
 * - `blockInitData`, `initSettings`, `parameters`: the block's when given, else the component's
 *   `componentInitData`, `componentInitSettings`, `componentParameters`.
 * - `blockMetadata`, `inputProtocol`, `outputProtocol`, `tags`: from `componentMetadata`,
 *   `componentInputProtocol`, `componentOutputProtocol`, `tags`.
 * - `policies`: the component's, then each `policyRulesSpec` entry by `name` (overriding a rule of the
 *   same name, adding a new one); without `policyRulesSpec`, the component's as they are.
 * - `runtime` (how an instance runs: `{command}` on the process runtime, `{image}` on Kubernetes):
 *   the component's; aios' addition to the specification, which leaves it to the container image.
 */
import { randomUUID } from "node:crypto";
import { type PolicyRule, PolicyRulesSchema, rulesByName } from "../policy/rules.ts";
import type { BlockSpecValues } from "./spec.ts";

export type Component = Record<string, unknown>;

export interface BlockIR extends Record<string, unknown> {
  id: string;
  blockComponentURI: string;
  minInstances: number;
  maxInstances: number;
  blockInitData: Record<string, unknown>;
  initSettings: Record<string, unknown>;
  parameters: Record<string, unknown>;
  blockMetadata: Record<string, unknown>;
  inputProtocol: unknown;
  outputProtocol: unknown;
  tags: string[];
  policies: Record<string, PolicyRule>;
  runtime: Record<string, unknown> | null;
}

const object = (v: unknown): Record<string, unknown> | undefined =>
  v !== null && typeof v === "object" && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;

/** `block-` and 8 hex digits, as the specification's examples name blocks (`block-771a8`). */
export const generateBlockId = (): string => `block-${randomUUID().replace(/-/g, "").slice(0, 8)}`;

export const blockCreateIR = (
  values: BlockSpecValues,
  component: Component,
  newId: () => string = generateBlockId,
): BlockIR => {
  const componentPolicies = PolicyRulesSchema.safeParse(component.policies ?? {});
  const policies = {
    ...(componentPolicies.success ? rulesByName(componentPolicies.data) : {}),
    ...rulesByName(values.policyRulesSpec),
  };
  const { policyRulesSpec: _spec, blockId, ...rest } = values;
  return {
    ...rest,
    id: blockId ?? newId(),
    blockComponentURI: values.blockComponentURI,
    minInstances: values.minInstances,
    maxInstances: values.maxInstances,
    blockInitData: values.blockInitData ?? object(component.componentInitData) ?? {},
    initSettings: values.initSettings ?? object(component.componentInitSettings) ?? {},
    parameters: values.parameters ?? object(component.componentParameters) ?? {},
    blockMetadata: object(component.componentMetadata) ?? {},
    inputProtocol: component.componentInputProtocol ?? null,
    outputProtocol: component.componentOutputProtocol ?? null,
    tags: Array.isArray(component.tags)
      ? component.tags.filter((t): t is string => typeof t === "string")
      : [],
    policies,
    runtime: object(component.runtime) ?? null,
  };
};
