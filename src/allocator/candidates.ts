/**
 * The candidate clusters of one request, each with its global metrics document (or null): from the
 * ids asked, from the filter (a cluster must match `clusterQuery` and its metrics
 * `clusterMetricsQuery`), from the full-text search (best first by ts_rank), or every registered
 * cluster. Read straight from the store the cluster registry and the metrics API serve.
 */
import { ApiError } from "../http/errors.ts";
import type { Doc, DocumentCollection } from "../store/index.ts";
import type { CandidateSource } from "./protocol.ts";

export interface Candidate {
  id: string;
  data: Doc;
  metrics: Doc | null;
}

export interface CandidateCollections {
  clusters: DocumentCollection;
  metrics: DocumentCollection;
}

const FIELD: Record<CandidateSource["kind"], string> = {
  ids: "clusters",
  filter: "filter",
  search: "search",
  all: "clusters",
};

const none = (source: CandidateSource): ApiError => {
  const field = FIELD[source.kind];
  const message =
    source.kind === "all"
      ? "clusters: no cluster is registered, so there is no candidate"
      : `${field}: matched no cluster`;
  return new ApiError(404, "no_candidates", message, { path: field });
};

const tooMany = (source: CandidateSource, max: number): ApiError => {
  const field = FIELD[source.kind];
  const what =
    source.kind === "all"
      ? "with no clusters, filter or search every registered cluster is a candidate, and there are"
      : `${field}: matched`;
  return new ApiError(
    422,
    "too_many_candidates",
    `${what} more than ${max} clusters (the server's limit); narrow the ${source.kind === "all" ? "request with a filter" : field}`,
    { path: source.kind === "all" ? "" : field, limit: max },
  );
};

/** Pairs clusters with their metrics documents (fetched unless given), keeping the clusters' order. */
const withMetrics = async (
  col: CandidateCollections,
  clusters: Doc[],
  known?: Doc[],
): Promise<Candidate[]> => {
  const metrics = known ?? (await col.metrics.getMany(clusters.map((c) => c.id)));
  const byId = new Map(metrics.map((m) => [m.id, m]));
  return clusters.map((c) => ({ id: c.id, data: c, metrics: byId.get(c.id) ?? null }));
};

const byIds = async (col: CandidateCollections, ids: string[]): Promise<Candidate[]> => {
  const [clusters, metrics] = await Promise.all([col.clusters.getMany(ids), col.metrics.getMany(ids)]);
  if (clusters.length < ids.length) {
    const found = new Set(clusters.map((c) => c.id));
    const missing = ids.filter((id) => !found.has(id));
    const more = missing.length > 1 ? ` (and ${missing.length - 1} more)` : "";
    throw new ApiError(404, "unknown_cluster", `clusters: no cluster '${missing[0]}' is registered${more}`, {
      path: "clusters",
      missing,
    });
  }
  const byId = new Map(metrics.map((m) => [m.id, m]));
  return clusters.map((c) => ({ id: c.id, data: c, metrics: byId.get(c.id) ?? null }));
};

const compareIds = (a: Doc, b: Doc) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
const idsOf = (docs: Doc[]) => docs.map((d) => d.id).sort();

/**
 * A cluster must match `clusterQuery` and its metrics `clusterMetricsQuery`. The cluster query runs
 * first when there is one (equalities on cluster documents are what the GIN index serves, and they
 * usually narrow most), then the metrics query only over those clusters' metrics, by primary key.
 * Sorting happens here, not in SQL: ordering by a JSON path costs more than the query.
 */
const byFilter = async (
  col: CandidateCollections,
  source: Extract<CandidateSource, { kind: "filter" }>,
  max: number,
): Promise<{ clusters: Doc[]; metrics?: Doc[] }> => {
  const { clusterFilter, metricsFilter } = source;
  if (metricsFilter === null) {
    return { clusters: (await col.clusters.find(clusterFilter ?? {}, { limit: max + 1 })).sort(compareIds) };
  }
  if (clusterFilter === null) {
    const ids = idsOf(await col.metrics.find(metricsFilter, { projection: { id: 1 } }));
    return { clusters: await col.clusters.getMany(ids, { limit: max + 1 }) };
  }
  const ids = idsOf(await col.clusters.find(clusterFilter, { projection: { id: 1 } }));
  const metrics = await col.metrics.getMany(ids, { filter: metricsFilter });
  return { clusters: await col.clusters.getMany(idsOf(metrics), { limit: max + 1 }), metrics };
};

/** The candidates of a request; an ApiError naming the field when there are none or too many. */
export const findCandidates = async (
  col: CandidateCollections,
  source: CandidateSource,
  maxCandidates: number,
): Promise<Candidate[]> => {
  let clusters: Doc[];
  let metrics: Doc[] | undefined;
  switch (source.kind) {
    case "ids":
      return byIds(col, source.ids);
    case "filter":
      ({ clusters, metrics } = await byFilter(col, source, maxCandidates));
      break;
    case "search":
      clusters = (await col.clusters.search(source.query, { limit: source.limit })).map((r) => r.doc);
      break;
    case "all":
      clusters = (await col.clusters.find({}, { limit: maxCandidates + 1 })).sort(compareIds);
      break;
  }
  if (clusters.length === 0) throw none(source);
  if (clusters.length > maxCandidates) throw tooMany(source, maxCandidates);
  return withMetrics(col, clusters, metrics);
};
