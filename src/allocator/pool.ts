/**
 * Where the allocator server's policies run. A WebAssembly call runs to its end on the thread that
 * makes it (only its fuel budget stops it; terminating a Bun worker does not), so policies run in a
 * pool of workers: a slow policy holds up its own worker, not the server's sockets nor the policies
 * of other workers. Each policy URI lives on one worker, chosen when first seen (the least busy), so
 * its instances and its context store stay in one place across requests.
 *
 * `InlineRunner` runs policies on the calling thread (no workers: tests, small deployments).
 */
import { availableParallelism } from "node:os";
import { PolicyError, type PolicyErrorCode } from "../policy/errors.ts";
import type { CompiledPolicy } from "../policy/runtime.ts";
import { type AllocationCall, InstanceCache, type JsonObject } from "./evaluate.ts";

export interface PolicyRunner {
  /** Runs the call's policy; throws PolicyError when the policy fails. */
  run(call: AllocationCall): Promise<JsonObject>;
  close(): Promise<void>;
}

export class InlineRunner implements PolicyRunner {
  readonly #instances: InstanceCache;

  constructor(maxInstances?: number) {
    this.#instances = new InstanceCache(maxInstances);
  }

  /** Policy instances held. */
  get size(): number {
    return this.#instances.size;
  }

  run(call: AllocationCall): Promise<JsonObject> {
    return this.#instances.run(call);
  }

  close(): Promise<void> {
    return this.#instances.close();
  }
}

/** A call as posted to a worker; the module travels only with a worker's first call of it. */
export interface WorkerRequest {
  id: number;
  policy: Omit<CompiledPolicy, "module"> & { module?: WebAssembly.Module };
  parameters: JsonObject;
  settings: JsonObject;
  /** Candidate[] as JSON: stringifying costs the server's thread a quarter of a structured clone. */
  candidates: string;
  inputs: JsonObject;
}

export type WireError =
  | {
      policy: true;
      code: PolicyErrorCode;
      uri: string;
      message: string;
      details: Record<string, unknown> | null;
    }
  | { policy: false; message: string };

export type WorkerReply =
  | { id: number; ok: true; output: JsonObject }
  | { id: number; ok: false; error: WireError };

interface Pending {
  resolve(output: JsonObject): void;
  reject(err: Error): void;
}

interface Slot {
  index: number;
  worker: Worker;
  pending: Map<number, Pending>;
  /** Module hashes this worker holds. */
  modules: Set<string>;
  /** Policy URIs living on this worker. */
  uris: Set<string>;
}

const WORKER_URL = new URL("./policy-worker.ts", import.meta.url).href;

/** Two workers at least (one slow policy must leave room for the others), at most four by default. */
export const defaultWorkerCount = (): number => Math.max(2, Math.min(4, availableParallelism()));

const fromWire = (error: WireError): Error => {
  if (!error.policy) return new Error(`policy worker: ${error.message}`);
  // PolicyError prefixes "policy <uri>: " to its message; the wire carries the prefixed one.
  const prefix = `policy ${error.uri}: `;
  const message = error.message.startsWith(prefix) ? error.message.slice(prefix.length) : error.message;
  return new PolicyError(error.code, error.uri, message, error.details ?? undefined);
};

export class WorkerPool implements PolicyRunner {
  readonly #slots: Slot[];
  readonly #home = new Map<string, Slot>();
  #nextId = 1;
  #closed = false;

  constructor(readonly size = defaultWorkerCount()) {
    if (!Number.isInteger(size) || size < 1)
      throw new Error(`a worker pool needs at least one worker, got ${size}`);
    this.#slots = Array.from({ length: size }, (_, index) => {
      const slot = { index, pending: new Map(), modules: new Set(), uris: new Set() } as unknown as Slot;
      this.#start(slot);
      return slot;
    });
  }

  /** Which worker each policy URI lives on (tests). */
  get homes(): ReadonlyMap<string, number> {
    return new Map([...this.#home].map(([uri, slot]) => [uri, slot.index]));
  }

  #start(slot: Slot): void {
    const worker = new Worker(WORKER_URL);
    // A pool nobody closed must not keep the process alive (Bun's Worker has unref; DOM's type lacks it).
    (worker as unknown as { unref?: () => void }).unref?.();
    slot.worker = worker;
    slot.modules.clear();
    worker.onmessage = (event: MessageEvent<WorkerReply>) => {
      const reply = event.data;
      const pending = slot.pending.get(reply.id);
      if (!pending) return;
      slot.pending.delete(reply.id);
      if (reply.ok) pending.resolve(reply.output);
      else pending.reject(fromWire(reply.error));
    };
    const lost = (why: string) => {
      if (slot.worker !== worker) return;
      const err = new Error(`policy worker ${slot.index} stopped: ${why}`);
      for (const p of slot.pending.values()) p.reject(err);
      slot.pending.clear();
      if (!this.#closed) this.#start(slot);
    };
    worker.addEventListener("error", (event) => lost((event as ErrorEvent).message || "error"));
    worker.addEventListener("close", () => lost("exited"));
  }

  #slotFor(uri: string): Slot {
    let slot = this.#home.get(uri);
    if (!slot) {
      slot = this.#slots.reduce((best, s) =>
        s.pending.size < best.pending.size ||
        (s.pending.size === best.pending.size && s.uris.size < best.uris.size)
          ? s
          : best,
      );
      this.#home.set(uri, slot);
      slot.uris.add(uri);
    }
    return slot;
  }

  run(call: AllocationCall): Promise<JsonObject> {
    if (this.#closed) return Promise.reject(new Error("the policy worker pool is closed"));
    const slot = this.#slotFor(call.policy.uri);
    const { module, ...meta } = call.policy;
    const first = !slot.modules.has(meta.hash);
    const id = this.#nextId++;
    const request: WorkerRequest = {
      id,
      policy: first ? { ...meta, module } : meta,
      parameters: call.parameters,
      settings: call.settings,
      candidates: JSON.stringify(call.candidates),
      inputs: call.inputs,
    };
    return new Promise<JsonObject>((resolve, reject) => {
      slot.pending.set(id, { resolve, reject });
      try {
        slot.worker.postMessage(request);
        if (first) slot.modules.add(meta.hash);
      } catch (err) {
        slot.pending.delete(id);
        reject(err instanceof Error ? err : new Error(String(err)));
      }
    });
  }

  async close(): Promise<void> {
    this.#closed = true;
    for (const slot of this.#slots) {
      for (const p of slot.pending.values()) p.reject(new Error("the policy worker pool is closed"));
      slot.pending.clear();
      slot.worker.terminate();
    }
  }
}
