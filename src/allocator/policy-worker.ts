/**
 * A policy worker of the allocator server (runs in a Bun Worker): keeps policy instances and runs
 * their `eval` on the candidates the main thread sends. A policy runs synchronously on its thread, so
 * one that computes for seconds holds up only the requests waiting on this worker.
 */
import { PolicyError } from "../policy/errors.ts";
import type { Candidate } from "./candidates.ts";
import { type AllocationCall, InstanceCache } from "./evaluate.ts";
import type { WireError, WorkerReply, WorkerRequest } from "./pool.ts";

declare const self: Worker;

const instances = new InstanceCache();
const modules = new Map<string, WebAssembly.Module>();

const wireError = (err: unknown): WireError =>
  err instanceof PolicyError
    ? { policy: true, code: err.code, uri: err.uri, message: err.message, details: err.details ?? null }
    : { policy: false, message: err instanceof Error ? (err.stack ?? err.message) : String(err) };

const handle = async (req: WorkerRequest): Promise<WorkerReply> => {
  try {
    const { module: sent, ...meta } = req.policy;
    if (sent) modules.set(meta.hash, sent);
    const module = modules.get(meta.hash);
    if (!module) throw new Error(`worker has no module ${meta.hash} (the pool sends it with the first call)`);
    const call: AllocationCall = {
      policy: { ...meta, module },
      parameters: req.parameters,
      settings: req.settings,
      candidates: JSON.parse(req.candidates) as Candidate[],
      inputs: req.inputs,
    };
    return { id: req.id, ok: true, output: await instances.run(call) };
  } catch (err) {
    return { id: req.id, ok: false, error: wireError(err) };
  }
};

self.onmessage = (event: MessageEvent<WorkerRequest>) => {
  void handle(event.data).then((reply) => self.postMessage(reply));
};
