/**
 * The resource allocator's WebSocket protocol (resource-allocator.md): a client sends one JSON request
 * per message and reads one JSON answer per request, on the same socket, in the order it sent them.
 *
 * Request: {"adhoc": true, "policy_rule_uri", "clusters"?, "filter"?, "search"?, "inputs",
 *           "parameters"?, "settings"?}
 * Answer:  the policy's {"cluster_id", "node_id"?, "gpus"?}, or {"error": {"code", "message", "details"}}
 *          whose message starts with the field at fault.
 *
 * The candidates come from one source: the ids in `clusters`, the condition lists of `filter`
 * (`clusterQuery` over cluster documents, `clusterMetricsQuery` over their metrics, as in the block
 * specification's cluster allocator filter), or the full-text `search` {"query", "limit"?}. Empty
 * values count as absent (the specification's example client sends `[]` and `{}` for all three), and
 * with no source every registered cluster is a candidate.
 */
import { z } from "zod";
import { badRequest, fromZodError, parseJsonText } from "../http/errors.ts";
import { PolicyUri } from "../policy/store.ts";
import { conditionsToFilter } from "../store/index.ts";
import { MAX_ID_LENGTH } from "../store/uri.ts";

export type JsonObject = Record<string, unknown>;

/** Where the candidate clusters come from. */
export type CandidateSource =
  | { kind: "ids"; ids: string[] }
  | { kind: "filter"; clusterFilter: JsonObject | null; metricsFilter: JsonObject | null }
  | { kind: "search"; query: string; limit: number }
  | { kind: "all" };

export interface AllocationRequest {
  policy_rule_uri: string;
  source: CandidateSource;
  inputs: JsonObject;
  parameters: JsonObject;
  settings: JsonObject;
}

export interface ProtocolLimits {
  /** Most clusters a request may put before its policy (ids, filter matches, search results). */
  maxCandidates: number;
  /** Search results when `search.limit` is not given. */
  defaultSearchLimit: number;
  /**
   * Messages a second one connection may send, on average (a token bucket): a message over it is
   * answered with a `rate_limited` error and not run; a client that keeps sending is disconnected.
   */
  messagesPerSecond: number;
  /** Messages one connection may send at once above that average (the bucket's size). */
  messageBurst: number;
}

/** The limits a request is parsed with. */
export type CandidateLimits = Pick<ProtocolLimits, "maxCandidates" | "defaultSearchLimit">;

export const DEFAULT_LIMITS: ProtocolLimits = {
  maxCandidates: 1000,
  defaultSearchLimit: 50,
  messagesPerSecond: 1000,
  messageBurst: 2000,
};

/** Longest accepted `search.query`, in characters. */
export const MAX_SEARCH_QUERY = 1000;

/** Requests nest a few levels (filters, inputs); deeper ones are refused before any use. */
const MAX_DEPTH = 64;

const object = (what: string) =>
  z.record(z.string(), z.unknown(), {
    error: (issue) => (issue.input === undefined ? "is required" : `${what} must be a JSON object`),
  });

const optionalObject = z.record(z.string(), z.unknown(), { error: "must be a JSON object" }).nullish();

const schema = (limits: CandidateLimits) =>
  z.strictObject({
    adhoc: z.literal(true, { error: "must be true (the server answers ad hoc allocation requests)" }),
    policy_rule_uri: z
      .string({ error: (i) => (i.input === undefined ? "is required" : "must be text") })
      .min(1, "must name a stored policy (name:version), got an empty string")
      .pipe(PolicyUri),
    clusters: z
      .array(
        z
          .string({ error: "must be a cluster id (text)" })
          .min(1, "must not be empty")
          .max(MAX_ID_LENGTH, `must be at most ${MAX_ID_LENGTH} characters`),
        { error: "must be a list of cluster ids" },
      )
      .max(limits.maxCandidates, `at most ${limits.maxCandidates} cluster ids`)
      .nullish(),
    filter: z
      .strictObject(
        { clusterQuery: z.unknown().optional(), clusterMetricsQuery: z.unknown().optional() },
        { error: "must be an object with clusterQuery and/or clusterMetricsQuery" },
      )
      .nullish(),
    search: z
      .strictObject(
        {
          query: z
            .string({ error: "must be text" })
            .trim()
            .min(1, "must not be empty")
            .max(MAX_SEARCH_QUERY, `must be at most ${MAX_SEARCH_QUERY} characters`)
            .optional(),
          limit: z
            .int({ error: "must be an integer" })
            .min(1, "must be at least 1")
            .max(limits.maxCandidates, `must be at most ${limits.maxCandidates}`)
            .optional(),
        },
        { error: "must be an object {query, limit?}" },
      )
      .nullish(),
    inputs: object("inputs"),
    parameters: optionalObject,
    settings: optionalObject,
  });

type Parsed = z.output<ReturnType<typeof schema>>;

// One schema per limits object: building it costs more than using it.
const schemas = new WeakMap<CandidateLimits, ReturnType<typeof schema>>();
const schemaFor = (limits: CandidateLimits) => {
  let s = schemas.get(limits);
  if (!s) {
    s = schema(limits);
    schemas.set(limits, s);
  }
  return s;
};

const present = (value: unknown): boolean =>
  value !== undefined &&
  value !== null &&
  (Array.isArray(value)
    ? value.length > 0
    : typeof value !== "object" || Object.values(value).some((v) => v !== undefined && v !== null));

const conflict = (field: string, other: string) =>
  badRequest(
    "invalid_input",
    `${field}: give only one of clusters, filter and search (${other} is given too)`,
    { path: field },
  );

const sourceOf = (req: Parsed, limits: CandidateLimits): CandidateSource => {
  const given = (["clusters", "filter", "search"] as const).filter((f) => present(req[f]));
  if (given.length > 1) throw conflict(given[1]!, given[0]!);
  if (req.clusters && given[0] === "clusters") return { kind: "ids", ids: [...new Set(req.clusters)] };
  if (req.filter && given[0] === "filter") {
    const { clusterQuery, clusterMetricsQuery } = req.filter;
    return {
      kind: "filter",
      clusterFilter: present(clusterQuery) ? conditionsToFilter(clusterQuery, "filter.clusterQuery") : null,
      metricsFilter: present(clusterMetricsQuery)
        ? conditionsToFilter(clusterMetricsQuery, "filter.clusterMetricsQuery")
        : null,
    };
  }
  if (req.search && given[0] === "search") {
    if (req.search.query === undefined) {
      throw badRequest("invalid_input", "search.query: is required when search is given", {
        path: "search.query",
      });
    }
    return {
      kind: "search",
      query: req.search.query,
      limit: req.search.limit ?? Math.min(limits.defaultSearchLimit, limits.maxCandidates),
    };
  }
  return { kind: "all" };
};

/**
 * Parses one message. Throws an ApiError (or QueryError for a bad condition) whose message starts
 * with the field at fault and whose details name it (`details.path` or `details.issues[].path`).
 */
export const parseRequest = (text: string, limits: CandidateLimits = DEFAULT_LIMITS): AllocationRequest => {
  const value = parseJsonText(text, MAX_DEPTH, "the message");
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw badRequest("invalid_input", "the message must be a JSON object (the allocation request)", {
      path: "",
    });
  }
  const result = schemaFor(limits).safeParse(value);
  if (!result.success) throw fromZodError(result.error);
  const req = result.data;
  return {
    policy_rule_uri: req.policy_rule_uri,
    source: sourceOf(req, limits),
    inputs: req.inputs,
    parameters: req.parameters ?? {},
    settings: req.settings ?? {},
  };
};
