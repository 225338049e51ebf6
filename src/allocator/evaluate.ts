/**
 * Running the allocator server's policy on one request's candidates: the instance for its URI,
 * parameters and settings (kept across requests, so a policy keeps its state as the specification's
 * Python objects do), `input_data` = {"cluster_data": {id: {"data", "cluster_metrics"}}, "inputs"},
 * and the cluster and metrics clients as host functions answering from the candidates' documents.
 * Used in the policy workers and, with no workers, inline.
 */

import { type CompiledPolicy, instantiatePolicy, type PolicyInstance } from "../policy/runtime.ts";
import { snapshotClients } from "../policy/snapshot.ts";
import type { Candidate } from "./candidates.ts";

export type JsonObject = Record<string, unknown>;

export interface AllocationCall {
  policy: CompiledPolicy;
  parameters: JsonObject;
  settings: JsonObject;
  candidates: Candidate[];
  inputs: JsonObject;
}

/** JSON with object keys sorted, so equal parameters give one key whatever their order. */
export const canonicalJson = (value: unknown): string =>
  JSON.stringify(value, (_k, v: unknown) =>
    v !== null && typeof v === "object" && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : v,
  );

interface Entry {
  instance: Promise<PolicyInstance>;
  pending: number;
}

/**
 * Policy instances by (module, URI, parameters, settings), least recently used evicted past `max`:
 * clients choose parameters and settings freely, and each instance may hold up to its memory cap.
 * An instance with a call in progress is never evicted.
 */
export class InstanceCache {
  readonly #entries = new Map<string, Entry>();

  // An idle instance keeps the linear memory it grew to (up to its cap, 64 MiB by default).
  constructor(readonly max = 16) {}

  get size(): number {
    return this.#entries.size;
  }

  async #acquire(call: AllocationCall): Promise<{ entry: Entry; instance: PolicyInstance }> {
    const { policy } = call;
    const key = `${policy.hash}\n${policy.uri}\n${canonicalJson(call.parameters)}\n${canonicalJson(call.settings)}`;
    let entry = this.#entries.get(key);
    if (entry) {
      this.#entries.delete(key); // re-inserted below: the map's order is the recency order
    } else {
      const instance = instantiatePolicy(policy, {
        ruleId: policy.uri,
        parameters: call.parameters,
        settings: call.settings,
      });
      entry = { instance, pending: 0 };
      const created = entry;
      // A failed start (init trapped) is not kept: the next request tries again.
      instance.catch(() => {
        if (this.#entries.get(key) === created) this.#entries.delete(key);
      });
    }
    this.#entries.set(key, entry);
    entry.pending++;
    this.#evict();
    try {
      return { entry, instance: await entry.instance };
    } catch (err) {
      entry.pending--;
      throw err;
    }
  }

  #evict(): void {
    for (const [key, entry] of this.#entries) {
      if (this.#entries.size <= this.max) return;
      if (entry.pending > 0) continue;
      this.#entries.delete(key);
      void entry.instance.then((i) => i.close()).catch(() => {});
    }
  }

  /** Runs the call's policy `eval` on its candidates; throws PolicyError when the policy fails. */
  async run(call: AllocationCall): Promise<JsonObject> {
    const { entry, instance } = await this.#acquire(call);
    try {
      const clusterData: Record<string, { data: JsonObject; cluster_metrics: JsonObject | null }> = {};
      for (const c of call.candidates) clusterData[c.id] = { data: c.data, cluster_metrics: c.metrics };
      const host = snapshotClients({
        clusters: call.candidates.map((c) => c.data),
        metrics: call.candidates.flatMap((c) => (c.metrics ? [c.metrics] : [])),
      });
      return await instance.eval<JsonObject>({ cluster_data: clusterData, inputs: call.inputs }, { host });
    } finally {
      entry.pending--;
    }
  }

  async close(): Promise<void> {
    const entries = [...this.#entries.values()];
    this.#entries.clear();
    await Promise.all(entries.map((e) => e.instance.then((i) => i.close()).catch(() => {})));
  }
}
