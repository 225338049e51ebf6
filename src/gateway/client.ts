/**
 * A typed client of the gateway's console API, for the `aios` client verbs: one method per route, each
 * answer checked against the view schemas (src/gateway/views.ts), so a gateway that drifted from the
 * contract fails here with the field at fault instead of printing `undefined`. Errors are
 * GatewayClientError carrying the server's `{"error": {code, message, details}}`.
 */
import { z } from "zod";
import {
  fetchService,
  postJson,
  ServiceClientError,
  type ServiceTarget,
  trimBaseUrl,
} from "../http/client.ts";
import {
  type BlockDetail,
  BlockDetailSchema,
  type BlockLogs,
  BlockLogsSchema,
  type BlockView,
  BlockViewSchema,
  type ClusterView,
  ClusterViewSchema,
  type CreationView,
  CreationViewSchema,
  type ScaleRequest,
} from "./views.ts";

export const DEFAULT_GATEWAY_URL = "http://127.0.0.1:8080";

/** The gateway URL a client verb uses: the flag, else `$AIOS_GATEWAY_URL`, else the default. */
export const gatewayUrl = (flag?: string): string =>
  flag ?? (process.env.AIOS_GATEWAY_URL || undefined) ?? DEFAULT_GATEWAY_URL;

export class GatewayClientError extends ServiceClientError {
  override readonly name = "GatewayClientError";
}

/**
 * A stored policy's metadata as `GET /api/policies` relays it from the registry. Only what the CLI shows
 * is checked; the rest (limits, imports, hashes) passes through for `--json`.
 */
export const PolicySummarySchema = z.looseObject({
  uri: z.string(),
  kind: z.string(),
  size: z.number(),
  exports: z.array(z.string()),
  description: z.string().default(""),
});
export type PolicySummary = z.infer<typeof PolicySummarySchema>;

/**
 * What `POST /api/createBlock` and `DELETE /api/blocks/{id}` answer: the creation record. Checked
 * loosely (id and status), since the stored record carries more than the view (the block IR, score).
 */
export const CreationRecordSchema = CreationViewSchema.partial().extend({
  id: z.string(),
  status: CreationViewSchema.shape.status,
});
export type CreationRecord = z.infer<typeof CreationRecordSchema> & Partial<CreationView>;

export interface LogsQuery {
  instance?: string;
  tail?: number;
}

export class GatewayClient {
  readonly baseUrl: string;
  readonly #target: ServiceTarget;

  constructor(baseUrl: string = DEFAULT_GATEWAY_URL) {
    this.baseUrl = trimBaseUrl(baseUrl);
    this.#target = {
      baseUrl: this.baseUrl,
      service: "the gateway",
      hint: "is `aios up` running? start it with `npm start`, or pass --gateway URL",
      error: (...args) => new GatewayClientError(...args),
    };
  }

  async #get<T>(path: string, schema: z.ZodType<T>, signal?: AbortSignal): Promise<T> {
    const res = await fetchService(this.#target, path, signal ? { signal } : undefined);
    return this.#parse(path, schema, await res.json());
  }

  #parse<T>(path: string, schema: z.ZodType<T>, body: unknown): T {
    const parsed = schema.safeParse(body);
    if (parsed.success) return parsed.data;
    const issue = parsed.error.issues[0];
    throw new GatewayClientError(
      0,
      "bad_answer",
      `the gateway's answer to ${path} is not as expected (${issue?.path.join(".") || "body"}: ${issue?.message}); are the gateway and this aios the same version?`,
      parsed.error.issues,
    );
  }

  /** `POST /api/createBlock`: resolves once the block runs (seconds), with its creation record. */
  async createBlock(spec: unknown, signal?: AbortSignal): Promise<CreationRecord> {
    const body = await postJson(this.#target, "/api/createBlock", spec, signal ? { signal } : {});
    return this.#parse("/api/createBlock", CreationRecordSchema, body);
  }

  listClusters(signal?: AbortSignal): Promise<ClusterView[]> {
    return this.#get("/api/clusters", z.array(ClusterViewSchema), signal);
  }

  listBlocks(signal?: AbortSignal): Promise<BlockView[]> {
    return this.#get("/api/blocks", z.array(BlockViewSchema), signal);
  }

  /** `GET /api/blocks/{id}`: the block with its allocation steps; 404 (GatewayClientError) if unknown. */
  getBlock(id: string, signal?: AbortSignal): Promise<BlockDetail> {
    return this.#get(`/api/blocks/${encodeURIComponent(id)}`, BlockDetailSchema, signal);
  }

  listPolicies(kind?: string, signal?: AbortSignal): Promise<PolicySummary[]> {
    const query = kind ? `?kind=${encodeURIComponent(kind)}` : "";
    return this.#get(`/api/policies${query}`, z.array(PolicySummarySchema), signal);
  }

  /** `POST /api/blocks/{id}/scale`: `{instances: n}` sets the count, `{delta: n}` changes it. */
  async scaleBlock(id: string, request: ScaleRequest): Promise<BlockView> {
    const path = `/api/blocks/${encodeURIComponent(id)}/scale`;
    return this.#parse(path, BlockViewSchema, await postJson(this.#target, path, request));
  }

  /** `DELETE /api/blocks/{id}`: removes the block from its cluster; the record, marked removed. */
  async deleteBlock(id: string): Promise<CreationRecord> {
    const path = `/api/blocks/${encodeURIComponent(id)}`;
    const res = await fetchService(this.#target, path, { method: "DELETE" });
    return this.#parse(path, CreationRecordSchema, await res.json());
  }

  /** `GET /api/blocks/{id}/logs`: the block services' log, or one instance's with `instance`. */
  logs(id: string, query: LogsQuery = {}, signal?: AbortSignal): Promise<BlockLogs> {
    const params = new URLSearchParams();
    if (query.instance !== undefined) params.set("instance", query.instance);
    if (query.tail !== undefined) params.set("tail", String(query.tail));
    const qs = params.size > 0 ? `?${params}` : "";
    return this.#get(`/api/blocks/${encodeURIComponent(id)}/logs${qs}`, BlockLogsSchema, signal);
  }
}
