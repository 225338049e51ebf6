/**
 * The block's auto-scaler sidecar (block-runtime.md, "Block Auto-scaler"): on its interval, runs the
 * block's autoscaler policy on `{"block_data", "cluster_data", "instances"}` with the block's metrics
 * behind `aios_get_metrics`, and sends an upscale/downscale decision to the cluster controller's
 * `scale` action. Decisions are kept within [minInstances, maxInstances] here too, so a policy that
 * overshoots asks for what is allowed rather than being refused.
 */
import type { ScaleRequest } from "../controller/client.ts";
import { errorMessage } from "../http/errors.ts";
import { isPolicyError } from "../policy/errors.ts";
import type { BlockConfig } from "./config.ts";
import { Sidecar, type SidecarPolicy } from "./sidecar.ts";

export type AutoscalerPolicy = SidecarPolicy;

export interface AutoscalerRun {
  at: string;
  instances: number;
  /** The policy's answer, as given. */
  decision: unknown;
  /** What was sent to the controller, if anything. */
  request: ScaleRequest | null;
  outcome: "skipped" | "scaled" | "at_bounds" | "no_policy" | "policy_error" | "controller_error";
  error?: string;
}

export interface AutoscalerOptions {
  block: BlockConfig;
  policy: AutoscalerPolicy | null;
  /** Default 30 s (`settings.interval_sec` of the autoscaler policy, read by the block runtime). */
  intervalMs?: number;
  /** `{"block_metrics", "cluster_metrics"}` as of now, gathered before each run. */
  metrics: () => Promise<unknown>;
  /** The cluster document, if the block runtime knows its cluster. */
  clusterData?: () => Promise<Record<string, unknown> | null>;
  /** The controller's `scale` action. */
  scale: (request: ScaleRequest) => Promise<unknown>;
}

interface Decision {
  skip?: boolean;
  operation?: string;
  instances_count?: number;
  instances_list?: string[];
}

export class Autoscaler extends Sidecar<AutoscalerRun> {
  readonly #options: AutoscalerOptions;

  constructor(options: AutoscalerOptions) {
    super(options.block, options.policy, options.intervalMs ?? 30_000);
    this.#options = options;
  }

  /** One decision now (or the one in progress). */
  evaluate(): Promise<AutoscalerRun> {
    return this.runNow();
  }

  protected async run(): Promise<AutoscalerRun> {
    const ids = this.instances.map((i) => i.id);
    const run = (fields: Omit<AutoscalerRun, "at" | "instances">): AutoscalerRun => ({
      at: new Date().toISOString(),
      instances: ids.length,
      ...fields,
    });
    const policy = this.policy;
    if (!policy) return run({ decision: null, request: null, outcome: "no_policy" });
    let decision: Decision;
    try {
      const [metrics, cluster] = await Promise.all([
        this.#options.metrics(),
        this.#options.clusterData?.() ?? Promise.resolve(null),
      ]);
      decision = await policy.eval<Decision>(
        { block_data: this.block.document, cluster_data: cluster ?? {}, instances: ids },
        { host: { getMetrics: () => metrics } },
      );
    } catch (err) {
      const error = isPolicyError(err) ? `${err.code}: ${err.message}` : errorMessage(err);
      return run({ decision: null, request: null, outcome: "policy_error", error });
    }
    const request = this.#bounded(decision, ids);
    if (decision.skip !== false) return run({ decision, request: null, outcome: "skipped" });
    if (!request) return run({ decision, request: null, outcome: "at_bounds" });
    try {
      await this.#options.scale(request);
      return run({ decision, request, outcome: "scaled" });
    } catch (err) {
      return run({ decision, request, outcome: "controller_error", error: errorMessage(err) });
    }
  }

  /** The decision within [min, max]; null when nothing is left to do. */
  #bounded(decision: Decision, ids: readonly string[]): ScaleRequest | null {
    const { minInstances, maxInstances, blockId } = this.block;
    if (decision.skip !== false) return null;
    if (decision.operation === "upscale") {
      const count = Math.min(decision.instances_count ?? 0, maxInstances - ids.length);
      return count > 0 ? { block_id: blockId, operation: "upscale", instances_count: count } : null;
    }
    if (decision.operation === "downscale") {
      const present = new Set(ids);
      const list = [...new Set(decision.instances_list ?? [])].filter((id) => present.has(id));
      const allowed = list.slice(0, Math.max(0, ids.length - minInstances));
      return allowed.length > 0
        ? { block_id: blockId, operation: "downscale", instances_list: allowed }
        : null;
    }
    return null;
  }
}
