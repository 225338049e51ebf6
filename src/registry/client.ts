/**
 * A typed client of the registry's HTTP API, for the CLI and other services. Errors come back as
 * RegistryClientError carrying the server's `{"error": {code, message, details}}`.
 */

import { fetchService, ServiceClientError, trimBaseUrl } from "../http/client.ts";
import { type CompiledPolicy, type ModuleCache, processModuleCache } from "../policy/runtime.ts";
import { compileStoredPolicy, type PolicyDoc } from "../policy/store.ts";

export const DEFAULT_REGISTRY_URL = "http://127.0.0.1:3000";

export class RegistryClientError extends ServiceClientError {
  override readonly name = "RegistryClientError";
}

export interface PolicyUploadOptions {
  kind: string;
  description?: string;
  fuel?: number;
  memoryBytes?: number;
  outputBytes?: number;
}

export class RegistryClient {
  readonly baseUrl: string;

  constructor(baseUrl: string = DEFAULT_REGISTRY_URL) {
    this.baseUrl = trimBaseUrl(baseUrl);
  }

  #fetch(path: string, init?: RequestInit): Promise<Response> {
    return fetchService(
      {
        baseUrl: this.baseUrl,
        service: "the registry",
        hint: "is it running? (aios registry, or aios up)",
        error: (...args) => new RegistryClientError(...args),
      },
      path,
      init,
    );
  }

  async uploadPolicy(
    uri: string,
    bytes: Uint8Array,
    options: PolicyUploadOptions,
  ): Promise<{ policy: PolicyDoc; created: boolean }> {
    const query = new URLSearchParams({ kind: options.kind });
    if (options.description !== undefined) query.set("description", options.description);
    if (options.fuel !== undefined) query.set("fuel", String(options.fuel));
    if (options.memoryBytes !== undefined) query.set("memory_bytes", String(options.memoryBytes));
    if (options.outputBytes !== undefined) query.set("output_bytes", String(options.outputBytes));
    const res = await this.#fetch(`/policies/${encodeURIComponent(uri)}?${query}`, {
      method: "PUT",
      headers: { "content-type": "application/wasm" },
      body: bytes as Uint8Array<ArrayBuffer>,
    });
    return { policy: (await res.json()) as PolicyDoc, created: res.status === 201 };
  }

  async listPolicies(kind?: string): Promise<PolicyDoc[]> {
    const query = kind ? `?kind=${encodeURIComponent(kind)}` : "";
    return (await (await this.#fetch(`/policies${query}`)).json()) as PolicyDoc[];
  }

  async getPolicy(uri: string): Promise<PolicyDoc> {
    return (await (await this.#fetch(`/policies/${encodeURIComponent(uri)}`)).json()) as PolicyDoc;
  }

  async downloadPolicy(uri: string, form: "original" | "instrumented" = "original"): Promise<Uint8Array> {
    const res = await this.#fetch(`/policies/${encodeURIComponent(uri)}/wasm?form=${form}`);
    return new Uint8Array(await res.arrayBuffer());
  }

  /** A stored policy, ready for `instantiatePolicy`: its metadata and instrumented module, compiled. */
  async compiledPolicy(uri: string, cache: ModuleCache = processModuleCache): Promise<CompiledPolicy> {
    const meta = await this.getPolicy(uri);
    const bytes = await this.downloadPolicy(uri, "instrumented");
    return compileStoredPolicy(meta, bytes, cache);
  }

  /** `GET /clusters/{id}`: the cluster document. */
  async getCluster(id: string, signal?: AbortSignal): Promise<Record<string, unknown>> {
    const res = await this.#fetch(`/clusters/${encodeURIComponent(id)}`, signal ? { signal } : undefined);
    return (await res.json()) as Record<string, unknown>;
  }

  /** `POST /clusters/query {"query", "options"}`: cluster documents matching a MongoDB filter. */
  async queryClusters(query: Record<string, unknown>, options?: unknown): Promise<Record<string, unknown>[]> {
    const res = await this.#fetch("/clusters/query", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(options === undefined ? { query } : { query, options }),
    });
    return (await res.json()) as Record<string, unknown>[];
  }

  /** `POST /cluster/query {"query"}`: global cluster metrics documents matching a MongoDB filter. */
  async queryClusterMetrics(query: Record<string, unknown>): Promise<Record<string, unknown>[]> {
    const res = await this.#fetch("/cluster/query", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ query }),
    });
    return ((await res.json()) as { data?: Record<string, unknown>[] }).data ?? [];
  }

  /** `GET /components/{uri}`: a component document. */
  async getComponent(uri: string): Promise<Record<string, unknown>> {
    return (await (await this.#fetch(`/components/${encodeURIComponent(uri)}`)).json()) as Record<
      string,
      unknown
    >;
  }

  /** `PUT /components/{uri}`: stores the component, replacing what was there. */
  async putComponent(uri: string, doc: Record<string, unknown>): Promise<Record<string, unknown>> {
    const res = await this.#fetch(`/components/${encodeURIComponent(uri)}`, {
      method: "PUT",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(doc),
    });
    return (await res.json()) as Record<string, unknown>;
  }

  /** `PATCH /clusters/{id}` with a MongoDB update document; the updated cluster. */
  async updateCluster(id: string, update: Record<string, unknown>): Promise<Record<string, unknown>> {
    const res = await this.#fetch(`/clusters/${encodeURIComponent(id)}`, {
      method: "PATCH",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(update),
    });
    return (await res.json()) as Record<string, unknown>;
  }

  /** `POST /clusters`: registers a cluster document. */
  async createCluster(doc: Record<string, unknown>): Promise<Record<string, unknown>> {
    const res = await this.#fetch("/clusters", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(doc),
    });
    return (await res.json()) as Record<string, unknown>;
  }

  /** `GET /cluster/{id}`: the cluster's global metrics (the envelope's `data`). */
  async getClusterMetrics(id: string, signal?: AbortSignal): Promise<unknown> {
    const res = await this.#fetch(`/cluster/${encodeURIComponent(id)}`, signal ? { signal } : undefined);
    return ((await res.json()) as { data?: unknown }).data ?? null;
  }

  /** `PUT /cluster/{id}`: writes the cluster's global metrics document. */
  async putClusterMetrics(id: string, doc: Record<string, unknown>): Promise<void> {
    await this.#fetch(`/cluster/${encodeURIComponent(id)}`, {
      method: "PUT",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(doc),
    });
  }

  async deletePolicy(uri: string): Promise<void> {
    await this.#fetch(`/policies/${encodeURIComponent(uri)}`, { method: "DELETE" });
  }
}
