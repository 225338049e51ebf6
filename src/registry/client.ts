/**
 * A typed client of the registry's HTTP API, for the CLI and other services. Errors come back as
 * RegistryClientError carrying the server's `{"error": {code, message, details}}`.
 */
import { type CompiledPolicy, type ModuleCache, processModuleCache } from "../policy/runtime.ts";
import { compileStoredPolicy, type PolicyDoc } from "../policy/store.ts";

export const DEFAULT_REGISTRY_URL = "http://127.0.0.1:3000";

export class RegistryClientError extends Error {
  override readonly name = "RegistryClientError";
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details?: unknown,
  ) {
    super(message);
  }
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
    this.baseUrl = baseUrl.replace(/\/+$/, "");
  }

  async #fetch(path: string, init?: RequestInit): Promise<Response> {
    let res: Response;
    try {
      res = await fetch(`${this.baseUrl}${path}`, init);
    } catch (err) {
      throw new RegistryClientError(
        0,
        "unreachable",
        `cannot reach the registry at ${this.baseUrl} (${err instanceof Error ? err.message : String(err)}); is it running? (aios registry, or aios up)`,
      );
    }
    if (res.ok) return res;
    const body = (await res.json().catch(() => null)) as {
      error?: { code?: string; message?: string; details?: unknown };
    } | null;
    throw new RegistryClientError(
      res.status,
      body?.error?.code ?? "http_error",
      body?.error?.message ?? `${init?.method ?? "GET"} ${path}: HTTP ${res.status}`,
      body?.error?.details,
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

  async deletePolicy(uri: string): Promise<void> {
    await this.#fetch(`/policies/${encodeURIComponent(uri)}`, { method: "DELETE" });
  }
}
