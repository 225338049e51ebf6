/**
 * The global cluster metrics API (resource-allocator specification, `GlobalClusterMetricsClient`): one
 * metrics document per cluster, keyed by the cluster id. Every answer is the envelope
 * `{"success": true, "data": ..., "error": null}`; a failure is `{"success": false, "data": null,
 * "error": "<message>", "code", "details"}` with a 4xx status (the client raises with `error`).
 *
 * `GET /cluster/query` takes either `query=<JSON MongoDB filter>` or plain `key=value` pairs meaning
 * equality (a repeated key means any of its values; a numeric-looking value matches the number or the
 * string), plus `limit`, `skip`, `sort` and `projection` (the last two as JSON) in both forms.
 */
import { type ApiError, badRequest, notFound, parseJsonText, parseWith } from "../http/errors.ts";
import type { Doc, DocumentCollection, Store } from "../store/index.ts";
import { capped, checkDocumentKeys, parseListParams, withPathId } from "./documents.ts";
import { ClusterId, MetricsSchema, QueryBodySchema } from "./schemas.ts";

export interface Envelope<T> {
  success: boolean;
  data: T | null;
  error: string | null;
}

export const ok = <T>(data: T): Envelope<T> => ({ success: true, data, error: null });

export interface ErrorEnvelope extends Envelope<never> {
  success: false;
  code: string;
  details: unknown;
}

export const failure = (err: ApiError): ErrorEnvelope => ({
  success: false,
  data: null,
  error: err.message,
  code: err.code,
  details: err.details,
});

/** Query-string names that are find options, not fields, in both forms of `GET /cluster/query`. */
const OPTION_PARAMS = ["limit", "skip", "sort", "projection"] as const;

const NUMERIC = /^-?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;

/** A query-string value as the values it may equal: a numeric-looking one as its number and itself. */
const equalityValues = (raw: string): unknown[] => {
  if (NUMERIC.test(raw)) {
    const n = Number(raw);
    if (Number.isFinite(n)) return [n, raw];
  }
  return [raw];
};

export interface FindRequest {
  filter: Record<string, unknown>;
  options: Record<string, unknown>;
}

const jsonParam = (name: string, raw: string): unknown => {
  const value = parseJsonText(raw, undefined, name);
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw badRequest("bad_option", `${name} must be a JSON object`, { path: name });
  }
  return value;
};

/**
 * Turns the query string of `GET /cluster/query` (as name -> all its values) into a filter and find
 * options. Throws 400 naming the parameter at fault.
 */
export const parseQueryParams = (params: Record<string, string[]>): FindRequest => {
  const single = (name: string): string | undefined => {
    const values = params[name];
    if (values === undefined || values.length === 0) return undefined;
    if (values.length > 1) throw badRequest("bad_option", `${name} is given more than once`, { path: name });
    return values[0];
  };
  const options: Record<string, unknown> = {
    ...parseListParams({ limit: single("limit"), skip: single("skip") }),
  };
  for (const name of ["sort", "projection"] as const) {
    const raw = single(name);
    if (raw !== undefined) options[name] = jsonParam(name, raw);
  }
  const rawQuery = single("query");
  if (rawQuery !== undefined) {
    const extra = Object.keys(params).filter(
      (k) => k !== "query" && !(OPTION_PARAMS as readonly string[]).includes(k),
    );
    if (extra.length > 0) {
      throw badRequest(
        "bad_query",
        `with query=<filter>, put every condition in the filter (found ${extra[0]})`,
        {
          path: extra[0],
        },
      );
    }
    return { filter: jsonParam("query", rawQuery) as Record<string, unknown>, options };
  }
  const filter: Record<string, unknown> = {};
  for (const [key, values] of Object.entries(params)) {
    if ((OPTION_PARAMS as readonly string[]).includes(key) || values.length === 0) continue;
    const candidates = values.flatMap(equalityValues);
    filter[key] = candidates.length === 1 ? candidates[0] : { $in: candidates };
  }
  return { filter, options };
};

/** The metrics documents, one per cluster id. */
export class MetricsRegistry {
  constructor(readonly collection: DocumentCollection) {}

  private parseId(id: string): string {
    return parseWith(ClusterId, id, ["id"]);
  }

  async get(rawId: string): Promise<Doc> {
    const id = this.parseId(rawId);
    const doc = await this.collection.get(id);
    if (doc === null) throw notFound(`no metrics for cluster '${id}'`, { id });
    return doc;
  }

  /** Replaces (or creates) the metrics document of a cluster. */
  async put(rawId: string, body: unknown): Promise<Doc> {
    const id = this.parseId(rawId);
    checkDocumentKeys(body);
    const doc = parseWith(MetricsSchema, withPathId(body, "id", id)) as Doc;
    return this.collection.upsert(id, doc);
  }

  async remove(rawId: string): Promise<{ id: string; deleted: true }> {
    const id = this.parseId(rawId);
    if (!(await this.collection.delete(id))) throw notFound(`no metrics for cluster '${id}'`, { id });
    return { id, deleted: true };
  }

  find(request: FindRequest): Promise<Doc[]> {
    return this.collection.find(request.filter, capped(request.options));
  }

  /** `GET /cluster/query?...` */
  queryParams(params: Record<string, string[]>): Promise<Doc[]> {
    return this.find(parseQueryParams(params));
  }

  /** `POST /cluster/query {"query", "options"}` */
  queryBody(body: unknown): Promise<Doc[]> {
    const { query, options } = parseWith(QueryBodySchema, body);
    return this.collection.find(query ?? {}, capped(options));
  }
}

export const metricsRegistry = (store: Store): MetricsRegistry =>
  new MetricsRegistry(store.collection("cluster_metrics"));
