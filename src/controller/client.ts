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

  /** `POST /executeAction`; resolves with the controller's answer, rejects with ServiceClientError. */
  executeAction<T = unknown>(action: string, data: unknown, signal?: AbortSignal): Promise<T> {
    return postJson<T>(this.#target, "/executeAction", { action, data }, signal ? { signal } : {});
  }

  scale(request: ScaleRequest, signal?: AbortSignal): Promise<unknown> {
    return this.executeAction("scale", request, signal);
  }

  removeInstance(request: RemoveInstanceRequest, signal?: AbortSignal): Promise<unknown> {
    return this.executeAction("remove_instance", request, signal);
  }

  async getBlock(blockId: string, signal?: AbortSignal): Promise<Record<string, unknown>> {
    const res = await fetchService(
      this.#target,
      `/blocks/${encodeURIComponent(blockId)}`,
      signal ? { signal } : undefined,
    );
    return (await res.json()) as Record<string, unknown>;
  }
}
