/**
 * What every policy kind declares: the shape of its `input_data` and of its `eval` output (zod,
 * taken from the specification), plus checks that need both (an answer naming an instance that was
 * not offered is wrong even when well-formed). The runtime validates every output against these.
 */
import { z } from "zod";

export interface PolicyKind<I = unknown, O = unknown> {
  /** The kind's name as stored with a policy, e.g. `loadBalancer`. */
  readonly name: string;
  readonly description: string;
  readonly input: z.ZodType<I>;
  /** The output schema; kinds with actions answer differently per action. */
  output(input: I): z.ZodType<O>;
  /** Cross-checks of output against input; each string names the output path at fault. */
  check?(input: I, output: O): string[];
}

export const defineKind = <I, O>(kind: PolicyKind<I, O>): PolicyKind<I, O> => kind;

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
