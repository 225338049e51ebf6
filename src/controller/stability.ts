/**
 * The cluster stability checker (cluster-controller.md, "Stability checker", "Stability checker
 * policy"): runs the cluster's stability policy on the cluster document and the scanner's node data,
 * and calls a webhook when the cluster turns unstable.
 *
 * Configuration, in the cluster document: `config.stabilityCheckerPolicy` = `{"policyRuleURI",
 * "parameters"?, "settings"?}` and `config.stabilityWebhook` = an http(s) URL (which wins over the
 * `webhookUrl` option, so an operator can change it with `update_cluster` without a restart).
 * Without a policy the cluster is stable iff it has nodes and every one is healthy (the answer says
 * `policy: null`); no nodes at all is unstable, as with the built-in unhealthy-ratio policy.
 */
import { ApiError, errorMessage } from "../http/errors.ts";
import type { PolicyRef } from "../policy/set.ts";
import type { NodeStatus } from "../runtime/types.ts";
import type { ControllerContext } from "./context.ts";
import { pathValue, policyRefAt } from "./prechecks.ts";

/** What the checker needs of a node's status (the runtime's NodeStatus, or a scanner's record). */
export type NodeStatusLike = Pick<NodeStatus, "nodeId" | "healthy"> &
  Partial<Pick<NodeStatus, "reason" | "cpu_utilization_percent" | "memory" | "disk">>;

/** One entry of `nodes_data` as the specification shows it; `reason` added when a node is unhealthy. */
export interface NodeData {
  node_id: string;
  status: "healthy" | "unhealthy";
  cpu_utilization_percent: number | null;
  memory: NodeStatus["memory"];
  disk: NodeStatus["disk"];
  reason?: string;
}

export interface StabilityResult {
  is_stable: boolean;
  stability_check_data: Record<string, unknown>;
  /** ISO time of the check. */
  checked_at: string;
  nodes: NodeData[];
  /** The policy URI that judged, null for the built-in rule (every node healthy). */
  policy: string | null;
}

/** The last webhook delivery: `ok` when the webhook answered 2xx. */
export interface WebhookOutcome {
  url: string;
  at: string;
  ok: boolean;
  status?: number;
  error?: string;
}

export type FetchLike = (url: string, init: RequestInit) => Promise<Response>;

export interface StabilityCheckerOptions {
  /** The nodes' current status (the scanner's latest probe, or `runtime.probeNodes`). */
  nodesData: () => Promise<NodeStatusLike[]>;
  /** Where to POST when the cluster turns unstable, unless the cluster sets `config.stabilityWebhook`. */
  webhookUrl?: string;
  /** How long a webhook call may take, in ms (default 5000). */
  webhookTimeoutMs?: number;
  fetch?: FetchLike;
}

export const STABILITY_RULE_ID = "stability";

export const toNodesData = (nodes: readonly NodeStatusLike[]): NodeData[] =>
  nodes.map((n) => ({
    node_id: n.nodeId,
    status: n.healthy ? "healthy" : "unhealthy",
    cpu_utilization_percent: n.cpu_utilization_percent ?? null,
    memory: n.memory ?? null,
    disk: n.disk ?? null,
    ...(!n.healthy && n.reason !== undefined ? { reason: n.reason } : {}),
  }));

/** The rule without a policy: stable iff there are nodes and all are healthy. */
export const defaultStability = (
  nodes: readonly NodeData[],
): Pick<StabilityResult, "is_stable" | "stability_check_data"> => {
  const unhealthy = nodes.filter((n) => n.status !== "healthy").map((n) => n.node_id);
  return {
    is_stable: nodes.length > 0 && unhealthy.length === 0,
    stability_check_data: {
      rule: "no stability checker policy configured: stable iff every node is healthy",
      unhealthy_nodes: unhealthy,
      total_nodes: nodes.length,
      ...(nodes.length === 0 ? { reason: "no nodes reported" } : {}),
    },
  };
};

export class StabilityChecker {
  readonly #ctx: ControllerContext;
  readonly #options: StabilityCheckerOptions;
  readonly #fetch: FetchLike;
  /** Whether the last successful check found the cluster stable; undefined before the first. */
  #stable: boolean | undefined;
  #last: StabilityResult | null = null;
  #lastWebhook: WebhookOutcome | null = null;
  #chain: Promise<unknown> = Promise.resolve();
  readonly #deliveries = new Set<Promise<void>>();

  constructor(ctx: ControllerContext, options: StabilityCheckerOptions) {
    this.#ctx = ctx;
    this.#options = options;
    this.#fetch = options.fetch ?? ((url, init) => fetch(url, init));
  }

  /** The last successful check, null before the first. */
  get last(): StabilityResult | null {
    return this.#last;
  }

  /** The last webhook delivery, null when none was made. */
  get lastWebhook(): WebhookOutcome | null {
    return this.#lastWebhook;
  }

  /**
   * Runs a check. Checks run one after another, so the stable -> unstable transition is decided on
   * results in the order they were asked for. When this check finds the cluster unstable and the
   * previous one did not (or there was none), the result is POSTed to the webhook in the background
   * (see `flush`); a check that fails (nodes, cluster document or policy) rejects and leaves the state
   * as it was.
   */
  check(): Promise<StabilityResult> {
    const run = this.#chain.then(
      () => this.#check(),
      () => this.#check(),
    );
    this.#chain = run.catch(() => {});
    return run;
  }

  async #check(): Promise<StabilityResult> {
    const [cluster, statuses] = await Promise.all([this.#ctx.cluster(), this.#options.nodesData()]);
    const nodes = toNodesData(statuses);
    const ref = policyRefAt(cluster, ["config", "stabilityCheckerPolicy"]);
    const verdict = ref === null ? defaultStability(nodes) : await this.#evaluate(ref, cluster, nodes);
    const result: StabilityResult = {
      is_stable: verdict.is_stable,
      stability_check_data: verdict.stability_check_data,
      checked_at: new Date().toISOString(),
      nodes,
      policy: ref?.policyRuleURI ?? null,
    };
    const turnedUnstable = !result.is_stable && this.#stable !== false;
    this.#stable = result.is_stable;
    this.#last = result;
    if (turnedUnstable) this.#notify(cluster, result);
    return result;
  }

  async #evaluate(
    ref: PolicyRef,
    cluster: Record<string, unknown>,
    nodes: NodeData[],
  ): Promise<Pick<StabilityResult, "is_stable" | "stability_check_data">> {
    const instance = await this.#ctx.policies.get(STABILITY_RULE_ID, ref, "clusterStabilityChecker");
    const output = await instance.eval<{
      is_stable: boolean;
      stability_check_data?: Record<string, unknown>;
    }>({ cluster_data: cluster, nodes_data: nodes }, { context: { cluster_id: this.#ctx.clusterId } });
    return { is_stable: output.is_stable, stability_check_data: output.stability_check_data ?? {} };
  }

  /** The webhook for this cluster document: its `config.stabilityWebhook`, else the option. */
  webhookUrl(cluster: unknown): string | null {
    const configured = pathValue(cluster, ["config", "stabilityWebhook"]);
    if (typeof configured === "string" && configured !== "") return configured;
    return this.#options.webhookUrl ?? null;
  }

  #notify(cluster: unknown, result: StabilityResult): void {
    const url = this.webhookUrl(cluster);
    if (url === null) return;
    const delivery = this.#deliver(url, {
      event: "cluster_unstable",
      cluster_id: this.#ctx.clusterId,
      ...result,
    });
    this.#deliveries.add(delivery);
    void delivery.finally(() => this.#deliveries.delete(delivery));
  }

  /** Never rejects: a webhook that is down must not fail stability checks; the outcome is recorded. */
  async #deliver(url: string, body: Record<string, unknown>): Promise<void> {
    const at = new Date().toISOString();
    try {
      if (!/^https?:\/\//.test(url) || !URL.canParse(url)) {
        throw new Error(`not an http(s) URL: ${JSON.stringify(url)}`);
      }
      const res = await this.#fetch(url, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(this.#options.webhookTimeoutMs ?? 5000),
      });
      await res.body?.cancel().catch(() => {});
      this.#lastWebhook = { url, at, ok: res.ok, status: res.status };
    } catch (err) {
      this.#lastWebhook = { url, at, ok: false, error: errorMessage(err) };
    }
  }

  /** Waits for webhook deliveries in flight (tests, shutdown). */
  async flush(): Promise<void> {
    await Promise.all([...this.#deliveries]);
  }

  /**
   * Forwards a management command to the cluster's stability policy (`POST /mgmt` with
   * `service: "stability_checker"`); a 404 ApiError when the cluster configures none.
   */
  async management(action: string, data: unknown = {}): Promise<unknown> {
    const ref = policyRefAt(await this.#ctx.cluster(), ["config", "stabilityCheckerPolicy"]);
    if (ref === null) {
      throw new ApiError(
        404,
        "no_stability_policy",
        `cluster ${this.#ctx.clusterId} configures no stability checker policy (config.stabilityCheckerPolicy)`,
      );
    }
    const instance = await this.#ctx.policies.get(STABILITY_RULE_ID, ref, "clusterStabilityChecker");
    return instance.management(action, data);
  }
}
