/**
 * A typed client of one block's services (the mapper's instance API and the three `/mgmt` APIs), for
 * the cluster controller. `urls` are the listeners `aios block-runtime` printed.
 */
import { fetchService, postJson, type ServiceTarget } from "../http/client.ts";
import type { InstanceRef } from "./mapper.ts";

export type BlockServiceUrls = Partial<
  Record<"grpc" | "metrics" | "executor" | "mapper" | "autoscaler" | "health-checker", string>
>;

/** The block services that answer `/mgmt`, by the management executor's service names. */
export const MGMT_SERVICES = {
  executor: "executor",
  autoscaler: "autoscaler",
  health: "health-checker",
} as const;

export class BlockClient {
  constructor(
    readonly blockId: string,
    readonly urls: BlockServiceUrls,
  ) {}

  #target(name: keyof BlockServiceUrls): ServiceTarget {
    const baseUrl = this.urls[name];
    if (!baseUrl) throw new Error(`block ${this.blockId} has no ${name} listener`);
    return { baseUrl, service: `the ${name} of block ${this.blockId}` };
  }

  /** Adds an instance to the mapper (or moves it): it takes traffic at once. */
  addInstance(instance: InstanceRef): Promise<unknown> {
    return postJson(this.#target("mapper"), "/instances", instance);
  }

  /** Removes an instance from the mapper: it stops taking traffic at once. A missing one is fine. */
  async removeInstance(id: string): Promise<void> {
    try {
      await fetchService(this.#target("mapper"), `/instances/${encodeURIComponent(id)}`, {
        method: "DELETE",
      });
    } catch (err) {
      if ((err as { status?: number }).status !== 404) throw err;
    }
  }

  /** `POST /mgmt {"mgmt_action","mgmt_data"}` on the executor, the auto-scaler or the health checker. */
  mgmt(service: keyof typeof MGMT_SERVICES, action: string, data: unknown): Promise<unknown> {
    return postJson(this.#target(MGMT_SERVICES[service]), "/mgmt", { mgmt_action: action, mgmt_data: data });
  }

  /** `GET /metrics/json`: the executor's block metrics. */
  async metrics(): Promise<unknown> {
    return (await fetchService(this.#target("metrics"), "/metrics/json")).json();
  }
}
