/**
 * The multi-cluster allocation flow (block-spec-and-allocation.md, "Block allocation Flow", steps 3-9):
 *
 * 1. the clusterAllocator rule's filter: `clusterQuery` over cluster documents, `clusterMetricsQuery`
 *    over their global metrics (a cluster must match both);
 * 2. the policy's `selection` over the filtered clusters, then at most `settings.max_candidates`;
 * 3. `dry_run` on every candidate's controller at once (the original ran them one at a time), each
 *    bounded by a timeout; a cluster that fails or times out drops out;
 * 4. the policy's `post_dry_run` picks one;
 * 5. `create_block` on that cluster's controller; when it fails, the next best by score is tried.
 *
 * Each step is reported to `record`, so the block's creation record says where it is and why it failed.
 */
import { ControllerClient } from "../controller/client.ts";
import { ServiceClientError } from "../http/client.ts";
import { ApiError, errorMessage } from "../http/errors.ts";
import type { PolicyRule } from "../policy/rules.ts";
import type { PolicySet } from "../policy/set.ts";
import type { RegistryClient } from "../registry/client.ts";
import { conditionsToFilter } from "../store/index.ts";
import type { BlockIR } from "./ir.ts";

export type Cluster = Record<string, unknown> & { id: string };

export interface Step {
  step: "filter" | "selection" | "dry_run" | "post_dry_run" | "allocation";
  ok: boolean;
  detail: unknown;
}

export interface AllocationDeps {
  registry: Pick<RegistryClient, "queryClusters" | "queryClusterMetrics">;
  policies: PolicySet;
  /** Longest wait for one cluster's dry run; default 10 s. */
  dryRunTimeoutMs?: number;
  /** Dry runs at once: all (default) or one at a time (the original system; the bench compares). */
  sequentialDryRuns?: boolean;
  record(step: Step): Promise<void>;
  /** Headers naming the user the creation is for (onBehalfOfHeader), sent with each controller call. */
  actingFor?: Record<string, string>;
}

export interface ScoredCluster {
  cluster_id: string;
  cluster: Cluster;
  score_data: { score: number; node_info?: unknown };
}

export interface Allocation {
  cluster_id: string;
  block: unknown;
  score: number;
}

/** A client of the cluster's controller (`config.urlMap.controllerService`); null when it names none. */
export const controllerOf = (cluster: Record<string, unknown>): ControllerClient | null => {
  const url = (cluster.config as { urlMap?: { controllerService?: unknown } } | undefined)?.urlMap
    ?.controllerService;
  return typeof url === "string" && url !== "" ? new ControllerClient(url) : null;
};

/** Step 1: the clusters the rule's filter admits (every cluster when it has none). */
export const filterClusters = async (
  deps: AllocationDeps,
  rule: PolicyRule | undefined,
): Promise<Cluster[]> => {
  const filter = (rule?.parameters as { filter?: Record<string, unknown> } | undefined)?.filter ?? {};
  const at = "policies.clusterAllocator.parameters.filter";
  const clusterFilter = filter.clusterQuery
    ? conditionsToFilter(filter.clusterQuery, `${at}.clusterQuery`)
    : {};
  let clusters = (await deps.registry.queryClusters(clusterFilter)) as Cluster[];
  if (filter.clusterMetricsQuery) {
    const metricsFilter = conditionsToFilter(filter.clusterMetricsQuery, `${at}.clusterMetricsQuery`);
    const ids = new Set((await deps.registry.queryClusterMetrics(metricsFilter)).map((m) => String(m.id)));
    clusters = clusters.filter((c) => ids.has(c.id));
  }
  return clusters;
};

const dryRun = async (deps: AllocationDeps, block: BlockIR, cluster: Cluster): Promise<ScoredCluster> => {
  const controller = controllerOf(cluster);
  if (!controller)
    throw new Error("the cluster document names no controller (config.urlMap.controllerService)");
  const timeoutMs = deps.dryRunTimeoutMs ?? 10_000;
  const signal = AbortSignal.timeout(timeoutMs);
  try {
    const out = await controller.executeAction<{ selection_score_data?: ScoredCluster["score_data"] }>(
      "dry_run",
      { block },
      { signal, headers: deps.actingFor ?? {} },
    );
    const score = out.selection_score_data;
    if (!score || typeof score.score !== "number")
      throw new Error("the dry run answered no selection_score_data.score");
    return { cluster_id: cluster.id, cluster, score_data: score };
  } catch (err) {
    if (signal.aborted) throw new Error(`no dry-run answer within ${timeoutMs} ms`);
    throw err;
  }
};

/**
 * Whether a controller refused the block itself (a 4xx: a policy it cannot load, a runtime it cannot
 * run, an id it has): the block is what to change, unlike a controller that is unreachable, fails or
 * times out, after which the same request may succeed.
 */
const isRefusal = (err: unknown): boolean =>
  err instanceof ServiceClientError && err.status >= 400 && err.status < 500;

export const allocateBlock = async (deps: AllocationDeps, block: BlockIR): Promise<Allocation> => {
  const rule = block.policies.clusterAllocator;
  const policy =
    rule && rule.policyRuleURI !== ""
      ? await deps.policies.get(`cluster-allocator:${block.id}`, rule, "clusterAllocator")
      : null;

  const filtered = await filterClusters(deps, rule);
  await deps.record({
    step: "filter",
    ok: filtered.length > 0,
    detail: { clusters: filtered.map((c) => c.id) },
  });
  if (filtered.length === 0) {
    throw new ApiError(409, "no_candidate_cluster", `no cluster matches the filter of block ${block.id}`);
  }

  let candidates = filtered;
  if (policy) {
    const out = await policy.eval<{ clusters: Cluster[] }>({ action: "selection", filter_result: filtered });
    candidates = out.clusters;
  }
  const max = Number((rule?.settings as { max_candidates?: unknown } | undefined)?.max_candidates ?? 0);
  if (Number.isInteger(max) && max > 0) candidates = candidates.slice(0, max);
  await deps.record({
    step: "selection",
    ok: candidates.length > 0,
    detail: { clusters: candidates.map((c) => c.id) },
  });
  if (candidates.length === 0) {
    throw new ApiError(
      409,
      "no_candidate_cluster",
      `the cluster allocator selected no cluster for block ${block.id}`,
    );
  }

  const results: { cluster: Cluster; scored?: ScoredCluster; error?: string; refused?: boolean }[] = [];
  const run = async (cluster: Cluster) => {
    try {
      results.push({ cluster, scored: await dryRun(deps, block, cluster) });
    } catch (err) {
      results.push({ cluster, error: errorMessage(err), refused: isRefusal(err) });
    }
  };
  if (deps.sequentialDryRuns) for (const c of candidates) await run(c);
  else await Promise.all(candidates.map(run));
  const scored = results.flatMap((r) => (r.scored ? [r.scored] : []));
  await deps.record({
    step: "dry_run",
    ok: scored.length > 0,
    detail: Object.fromEntries(
      results.map((r) => [r.cluster.id, r.scored ? r.scored.score_data : { error: r.error }]),
    ),
  });
  if (scored.length === 0) {
    // A cluster that answered and refused the block says what is wrong with it: a 422, not a 503.
    const refused = results.find((r) => r.refused);
    if (refused) {
      throw new ApiError(
        422,
        "dry_run_refused",
        `every candidate cluster refused or failed the dry run of block ${block.id} (${refused.cluster.id}: ${refused.error})`,
        { errors: Object.fromEntries(results.map((r) => [r.cluster.id, r.error])) },
      );
    }
    throw new ApiError(
      503,
      "dry_run_failed",
      `no candidate cluster answered the dry run of block ${block.id}`,
      {
        errors: Object.fromEntries(results.map((r) => [r.cluster.id, r.error])),
      },
    );
  }

  const byScore = [...scored].sort((a, b) => b.score_data.score - a.score_data.score);
  let chosen = byScore[0] as ScoredCluster;
  if (policy) {
    const pick = await policy.eval<Partial<ScoredCluster>>({ action: "post_dry_run", clusters: scored });
    chosen =
      scored.find((s) => s.cluster_id === (pick.cluster_id ?? (pick.cluster as Cluster | undefined)?.id)) ??
      chosen;
  }
  await deps.record({
    step: "post_dry_run",
    ok: true,
    detail: { cluster_id: chosen.cluster_id, score: chosen.score_data.score },
  });

  const order = [chosen, ...byScore.filter((s) => s !== chosen && s.score_data.score > 0)];
  const failures: Record<string, string> = {};
  let refusedBy: string | null = null;
  for (const target of order) {
    try {
      const created = await controllerOf(target.cluster)!.executeAction("create_block", block, {
        headers: deps.actingFor ?? {},
      });
      await deps.record({ step: "allocation", ok: true, detail: { cluster_id: target.cluster_id } });
      return { cluster_id: target.cluster_id, block: created, score: target.score_data.score };
    } catch (err) {
      failures[target.cluster_id] = errorMessage(err);
      if (refusedBy === null && isRefusal(err)) refusedBy = target.cluster_id;
      await deps.record({
        step: "allocation",
        ok: false,
        detail: { cluster_id: target.cluster_id, error: errorMessage(err) },
      });
    }
  }
  if (refusedBy !== null) {
    throw new ApiError(
      422,
      "allocation_refused",
      `every candidate cluster refused or failed to create block ${block.id} (${refusedBy}: ${failures[refusedBy]})`,
      { failures },
    );
  }
  throw new ApiError(503, "allocation_failed", `no candidate cluster could allocate block ${block.id}`, {
    failures,
  });
};
