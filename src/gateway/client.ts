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

export interface GatewayClientOptions {
  /** The bearer token to present; default: this process's credential (src/auth/credential.ts). */
  token?: string;
  /** Added to the message of a 401: how the user supplies a token. */
  unauthenticatedHint?: string;
}

/** A token as `GET /api/tokens` lists it (never its secret). */
export const TokenInfoSchema = z.looseObject({
  id: z.string(),
  name: z.string(),
  scopes: z.array(z.string()),
  created_at: z.string(),
  created_by: z.string(),
  expires_at: z.string().nullable().optional(),
  revoked_at: z.string().nullable().optional(),
});
export type TokenInfo = z.infer<typeof TokenInfoSchema>;

/** `POST /api/tokens`: the token, once, with its record. */
export const CreatedTokenSchema = TokenInfoSchema.extend({ token: z.string() });
export type CreatedToken = z.infer<typeof CreatedTokenSchema>;

/** One entry of `GET /api/audit`. */
export const AuditEntrySchema = z.looseObject({
  id: z.string(),
  at: z.string(),
  actor: z.object({ id: z.string(), name: z.string() }),
  on_behalf_of: z.object({ id: z.string(), name: z.string() }).nullable().optional(),
  service: z.string(),
  method: z.string(),
  path: z.string(),
  target: z.string().nullable().optional(),
  status: z.number(),
  outcome: z.string(),
});
export type AuditEntry = z.infer<typeof AuditEntrySchema>;

/** The filters of `GET /api/audit` (src/auth/audit.ts AuditQuerySchema). */
export interface AuditFilter {
  actor?: string;
  service?: string;
  method?: string;
  outcome?: string;
  target?: string;
  since?: string;
  until?: string;
  limit?: number;
}

export const WhoamiSchema = z.object({
  principal: z.looseObject({ id: z.string(), name: z.string(), scopes: z.array(z.string()) }),
});
export type Whoami = z.infer<typeof WhoamiSchema>;

export class GatewayClient {
  readonly baseUrl: string;
  readonly #target: ServiceTarget;

  constructor(baseUrl: string = DEFAULT_GATEWAY_URL, options: GatewayClientOptions = {}) {
    this.baseUrl = trimBaseUrl(baseUrl);
    const hint = options.unauthenticatedHint;
    this.#target = {
      baseUrl: this.baseUrl,
      service: "the gateway",
      hint: "is `aios up` running? start it with `npm start`, or pass --gateway URL",
      error: (status, code, message, details) =>
        new GatewayClientError(
          status,
          code,
          status === 401 && hint ? `${message}\n${hint}` : message,
          details,
        ),
      ...(options.token !== undefined ? { token: options.token } : {}),
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

  /** `GET /api/whoami`: the token this client presents, as the gateway sees it. */
  whoami(): Promise<Whoami> {
    return this.#get("/api/whoami", WhoamiSchema);
  }

  /** `GET /api/tokens` (admin): every token, never a secret. */
  listTokens(): Promise<TokenInfo[]> {
    return this.#get("/api/tokens", z.array(TokenInfoSchema));
  }

  /** `POST /api/tokens` (admin): the new token, in this answer only. */
  async createToken(request: { name: string; scopes: string[]; expires_in?: number }): Promise<CreatedToken> {
    return this.#parse(
      "/api/tokens",
      CreatedTokenSchema,
      await postJson(this.#target, "/api/tokens", request),
    );
  }

  /** `DELETE /api/tokens/{id}` (admin): the token's record, revoked. */
  async revokeToken(id: string): Promise<TokenInfo> {
    const path = `/api/tokens/${encodeURIComponent(id)}`;
    const res = await fetchService(this.#target, path, { method: "DELETE" });
    return this.#parse(path, TokenInfoSchema, await res.json());
  }

  /** `GET /api/audit` (admin): entries newest first. */
  audit(filter: AuditFilter = {}): Promise<AuditEntry[]> {
    const params = new URLSearchParams();
    for (const [k, v] of Object.entries(filter)) if (v !== undefined) params.set(k, String(v));
    const qs = params.size > 0 ? `?${params}` : "";
    return this.#get(`/api/audit${qs}`, z.array(AuditEntrySchema));
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
