/**
 * Cluster and metrics clients over documents a service already fetched (the candidates of one
 * allocation, say), for the host functions of policies that run inline and cannot wait on the
 * network. Reads answer like the specification's HTTP clients (`(ok, data)`); queries run the MongoDB
 * filter in memory with mingo, whose semantics the store's SQL translation is property-tested
 * against (test/store/filter.property.test.ts), so a filter selects the same documents here as in
 * `POST /clusters/query`.
 */
import { Query } from "mingo";
import type { HostResult, PolicyHost } from "./host.ts";

type Document = Record<string, unknown> & { id?: unknown };

const byId = (docs: readonly Document[]) => new Map(docs.map((d) => [String(d.id), d]));

const select = (docs: readonly Document[], filter: unknown, what: string): HostResult => {
  if (typeof filter !== "object" || filter === null || Array.isArray(filter)) {
    return { ok: false, error: `${what}: the query must be a JSON object (a MongoDB filter)` };
  }
  try {
    const query = new Query(filter as Record<string, unknown>);
    return { ok: true, data: docs.filter((d) => query.test(d)) };
  } catch (err) {
    return { ok: false, error: `${what}: ${err instanceof Error ? err.message : String(err)}` };
  }
};

/**
 * The `clusters` and `metrics` providers of a PolicyHost over snapshots of cluster documents and
 * cluster metrics documents. A metrics query takes a filter, or `{"query": filter}` as the metrics
 * API's `GET /cluster/query?query=` does.
 */
export const snapshotClients = (snapshot: {
  clusters: readonly Document[];
  metrics?: readonly Document[];
}): Pick<PolicyHost, "clusters" | "metrics"> => {
  const clusters = byId(snapshot.clusters);
  const metricsDocs = snapshot.metrics ?? [];
  const metrics = byId(metricsDocs);
  return {
    clusters: {
      read: (id) => {
        const doc = clusters.get(id);
        return doc ? { ok: true, data: doc } : { ok: false, error: `cluster '${id}' not found` };
      },
      query: (filter) => select(snapshot.clusters, filter, "cluster query"),
    },
    metrics: {
      get: (id) => {
        const doc = metrics.get(id);
        return doc ? { ok: true, data: doc } : { ok: false, error: `no metrics for cluster '${id}'` };
      },
      query: (params) => {
        const filter =
          typeof params === "object" && params !== null && "query" in params
            ? (params as { query: unknown }).query
            : params;
        return select(metricsDocs, filter ?? {}, "metrics query");
      },
    },
  };
};
