/**
 * A typed client of the cluster controller (cluster-controller.md), for the block's sidecars and the
 * CLI. The controller itself is served by `aios controller`; this client is the contract the block
 * runtime relies on:
 *
 * - `POST /executeAction {"action","data"}` with
 *   - `scale`: `{"block_id", "operation": "upscale", "instances_count"}` or
 *     `{"block_id", "operation": "downscale", "instances_list": [ids]}` (the autoscaler's decision);
 *   - `remove_instance`: `{"block_id", "instance_id", "replace", "reason"}`; `replace: true` asks for a
 *     fresh instance in its place (the health checker's `replace_instance`).
 * - `GET /blocks/{id}`: the block document (policies, minInstances, maxInstances, instances...).
 * - and what the gateway's console reads: blocks, node status, events, a block's metrics and logs.
 */
import { fetchService, postJson, type ServiceTarget, trimBaseUrl } from "../http/client.ts";

export type ScaleRequest =
  | { block_id: string; operation: "upscale"; instances_count: number }
  | { block_id: string; operation: "downscale"; instances_list: string[] };

export interface RemoveInstanceRequest {
  block_id: string;
  instance_id: string;
  /** Start a new instance in its place (placement by the block's resourceAllocator policy). */
  replace: boolean;
  reason?: string;
}

export class ControllerClient {
  readonly baseUrl: string;
  readonly #target: ServiceTarget;

  constructor(baseUrl: string) {
    this.baseUrl = trimBaseUrl(baseUrl);
    this.#target = {
      baseUrl: this.baseUrl,
      service: "the cluster controller",
      hint: "is it running? (aios controller, or aios up)",
    };
  }

  /**
   * `POST /executeAction`; resolves with the controller's answer, rejects with ServiceClientError.
   * `headers`: e.g. the user a service acts for (onBehalfOfHeader, src/auth/guard.ts).
   */
  executeAction<T = unknown>(
    action: string,
    data: unknown,
    init: { signal?: AbortSignal; headers?: Record<string, string> } = {},
  ): Promise<T> {
    return postJson<T>(this.#target, "/executeAction", { action, data }, init);
  }

  scale(
    request: ScaleRequest,
    init: { signal?: AbortSignal; headers?: Record<string, string> } = {},
  ): Promise<unknown> {
    return this.executeAction("scale", request, init);
  }

  removeInstance(request: RemoveInstanceRequest, signal?: AbortSignal): Promise<unknown> {
    return this.executeAction("remove_instance", request, signal ? { signal } : {});
  }

  async getBlock(blockId: string, signal?: AbortSignal): Promise<Record<string, unknown>> {
    return this.#get(`/blocks/${encodeURIComponent(blockId)}`, signal);
  }

  /** `GET /blocks`: every block document of the cluster. */
  listBlocks(signal?: AbortSignal): Promise<Record<string, unknown>[]> {
    return this.#get("/blocks", signal);
  }

  /** `GET /nodes_status`: each node's health and resources as the scanner last saw them. */
  nodesStatus(signal?: AbortSignal): Promise<{ nodes: Record<string, unknown>[] }> {
    return this.#get("/nodes_status", signal);
  }

  /** `GET /events`: the recently processed block events, recorded failures, healing in progress. */
  events(signal?: AbortSignal): Promise<{ recent: Record<string, unknown>[] }> {
    return this.#get("/events", signal);
  }

  /** The block executor's metrics JSON, through the cluster's public gateway. */
  blockMetrics(blockId: string, signal?: AbortSignal): Promise<Record<string, unknown>> {
    return this.#get(`/block/${encodeURIComponent(blockId)}/metrics/json`, signal);
  }

  /** `GET /blocks/{id}/logs`: the services' log (no instance) or an instance's. */
  blockLogs(
    blockId: string,
    options: { instance?: string; tail?: number },
    signal?: AbortSignal,
  ): Promise<{ block_id: string; instance_id: string | null; lines: string[] }> {
    const query = new URLSearchParams();
    if (options.instance !== undefined) query.set("instance", options.instance);
    if (options.tail !== undefined) query.set("tail", String(options.tail));
    return this.#get(`/blocks/${encodeURIComponent(blockId)}/logs?${query}`, signal);
  }

  async #get<T>(path: string, signal?: AbortSignal): Promise<T> {
    return (await (await fetchService(this.#target, path, signal ? { signal } : undefined)).json()) as T;
  }
}
