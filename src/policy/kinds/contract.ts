/**
 * What every policy kind declares: the shape of its `input_data` and of its `eval` output (zod,
 * taken from the specification), plus checks that need both (an answer naming an instance that was
 * not offered is wrong even when well-formed). The runtime validates every output against these.
 */
import { z } from "zod";

export interface PolicyKind<O = unknown> {
  /** The kind's name as stored with a policy, e.g. `loadBalancer`. */
  readonly name: string;
  readonly description: string;
  /** The `input_data` hosts send; checked on request only, since hosts build it themselves. */
  readonly input: z.ZodType;
  /**
   * The output schema for this input (kinds with actions answer differently per action). Takes the
   * input unchecked: the load balancer's hot path cannot afford to validate what its host built.
   */
  output(input: unknown): z.ZodType<O>;
  /** Cross-checks of output against the unchecked input; each string names the output path at fault. */
  check?(input: unknown, output: O): string[];
  /**
   * A quick test that accepts a well-formed, consistent output without zod (on the load balancer's
   * per-request path); when it answers false the schema and checks run and explain what is wrong.
   */
  accepts?(input: unknown, output: Record<string, unknown>): boolean;
}

export const defineKind = <O>(kind: PolicyKind<O>): PolicyKind<O> => kind;

/** A field of an unchecked input, if the input is an object. */
export const field = (input: unknown, key: string): unknown =>
  typeof input === "object" && input !== null ? (input as Record<string, unknown>)[key] : undefined;

/** Whether an unchecked input's `key` is an array holding `value`. */
export const listHas = (input: unknown, key: string, value: unknown): boolean => {
  const list = field(input, key);
  return Array.isArray(list) && list.includes(value);
};

/** A JSON object whose listed keys are checked and whose other keys pass through. */
export const JsonObject = z.record(z.string(), z.unknown());

/** GPU ids as the specification writes them: strings ("0", "2"). */
export const GpuIds = z.array(z.string());

export const NodeInfo = z.object({ node_id: z.string().min(1), gpus: GpuIds });

/** An action a policy asks its host to carry out (policies decide, hosts act). */
export const HostAction = z.looseObject({
  action: z.string().min(1),
  block_id: z.string().optional(),
  instance_id: z.string().optional(),
  reason: z.string().optional(),
});
export const HostActions = z.array(HostAction);
