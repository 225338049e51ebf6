/**
 * The block's executor (block-runtime.md, "Block Load Balancer"): decodes a task, asks the load
 * balancer policy which instance takes it, forwards it over the instance task protocol
 * (`POST {url}/task`) and retries on another instance when one fails. The policy can never fail a
 * request: without one, or when it errs, the executor routes round-robin and counts the fallback.
 */
import { create } from "@bufbuild/protobuf";
import { type InferenceResponse, InferenceResponseSchema } from "../gen/inference_pb.ts";
import type { AIOSPacket } from "../gen/payload_pb.ts";
import { isPolicyError } from "../policy/errors.ts";
import type { PolicyInstance } from "../policy/runtime.ts";
import type { InstanceRef } from "./mapper.ts";
import { BlockMetrics } from "./metrics.ts";
import { decodePacket, packetForPolicy } from "./packet.ts";

export type { InstanceRef };

/** What the executor uses of a load balancer policy instance (a PolicyInstance, or a test double). */
export type LoadBalancerPolicy = Pick<PolicyInstance, "uri" | "eval" | "management">;

export interface ExecutorOptions {
  blockId: string;
  instances?: readonly InstanceRef[];
  policy?: LoadBalancerPolicy | null;
  /** Longest wait for one instance before trying another; default 30 s. */
  attemptTimeoutMs?: number;
  /** Told of every instance failure (5xx, network error, timeout): the health checker acts on it. */
  onInstanceFailure?: (instanceId: string, reason: string) => void;
  metrics?: BlockMetrics;
  /**
   * How long an instance that just failed is passed over while others are available (as Envoy's
   * outlier ejection does), so a dead instance does not cost every request a failed attempt while
   * the health checker and the mapper catch up. Default 5 s; 0 turns it off.
   */
  ejectMs?: number;
  /** Largest instance answer accepted, in bytes; a larger one is a failed task. Default 32 MiB. */
  maxResultBytes?: number;
}

export type ExecutorErrorCode = "unavailable" | "deadline_exceeded";

const DEFAULT_MAX_RESULT_BYTES = 32 * 1024 * 1024;

/** The task could not be served: no instance, every instance failed, or the caller's deadline passed. */
export class ExecutorError extends Error {
  override readonly name = "ExecutorError";
  constructor(
    readonly code: ExecutorErrorCode,
    message: string,
    readonly tried: readonly string[] = [],
  ) {
    super(message);
  }
}

export interface InstanceFailure {
  reason: string;
  at: number;
}

/** The instance answered, with a result or a refusal (4xx): either way the task is done. */
type Outcome = { ok: true; result: unknown } | { ok: false; error: string };

class AttemptFailure extends Error {}

const DEFAULT_ATTEMPT_TIMEOUT_MS = 30_000;

const base64 = (bytes: Uint8Array): string =>
  bytes.byteLength === 0
    ? ""
    : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("base64");

const taskBody = (p: AIOSPacket): string =>
  JSON.stringify({
    session_id: p.sessionId,
    seq_no: Number(p.seqNo),
    data: JSON.parse(p.data),
    ts: p.ts,
    output_ptr: p.outputPtr,
    frame_ptr: base64(p.framePtr),
    files: p.files.map((f) => ({ metadata: f.metadata, file_data: base64(f.fileData) })),
  });

const refusal = (status: number, text: string): string => {
  try {
    const body = JSON.parse(text) as { error?: { code?: unknown; message?: unknown } };
    const code = typeof body.error?.code === "string" ? body.error.code : "";
    const message = typeof body.error?.message === "string" ? body.error.message : "";
    if (code || message) return code && message ? `${code}: ${message}` : code || message;
  } catch {
    // Not the protocol's error body: report the text itself.
  }
  return `instance refused the task (HTTP ${status})${text ? `: ${text.slice(0, 200)}` : ""}`;
};

export class Executor {
  readonly blockId: string;
  readonly metrics: BlockMetrics;
  #instances: readonly InstanceRef[] = [];
  #policy: LoadBalancerPolicy | null;
  #cursor = 0;
  readonly #attemptTimeoutMs: number;
  readonly #onInstanceFailure: ExecutorOptions["onInstanceFailure"];
  readonly #failures = new Map<string, InstanceFailure>();
  readonly #ejectMs: number;
  /** Instance id -> time (ms) until which it is passed over. */
  readonly #ejected = new Map<string, number>();
  readonly #maxResultBytes: number;
  /** Tasks being served now (policy choice included); `drain` waits for them. */
  #active = 0;
  #draining = false;
  #drained: (() => void) | null = null;

  constructor(options: ExecutorOptions) {
    this.blockId = options.blockId;
    this.metrics = options.metrics ?? new BlockMetrics(options.blockId);
    this.#policy = options.policy ?? null;
    this.#attemptTimeoutMs = options.attemptTimeoutMs ?? DEFAULT_ATTEMPT_TIMEOUT_MS;
    this.#onInstanceFailure = options.onInstanceFailure;
    this.#ejectMs = options.ejectMs ?? 5000;
    this.#maxResultBytes = options.maxResultBytes ?? DEFAULT_MAX_RESULT_BYTES;
    this.setInstances(options.instances ?? []);
  }

  get instances(): readonly InstanceRef[] {
    return this.#instances;
  }

  /** Replaces the instance list (the mapper pushes every change); requests in progress keep theirs. */
  setInstances(list: readonly InstanceRef[]): void {
    const seen = new Set<string>();
    this.#instances = list.filter((i) => !seen.has(i.id) && seen.add(i.id)).map((i) => ({ ...i }));
    this.metrics.retain(this.#instances.map((i) => i.id));
    for (const id of this.#failures.keys()) if (!seen.has(id)) this.#failures.delete(id);
    for (const id of this.#ejected.keys()) if (!seen.has(id)) this.#ejected.delete(id);
  }

  get policy(): LoadBalancerPolicy | null {
    return this.#policy;
  }

  setPolicy(policy: LoadBalancerPolicy | null): void {
    this.#policy = policy;
  }

  /** The last failure of each current instance, if any. */
  get failures(): ReadonlyMap<string, InstanceFailure> {
    return this.#failures;
  }

  /**
   * Serves one task. Throws PacketError for a bad packet and ExecutorError when no instance could
   * take it; a refusal by the instance (4xx) is an answer with `message` false.
   */
  async infer(rpcData: Uint8Array, signal?: AbortSignal): Promise<InferenceResponse> {
    const packet = decodePacket(rpcData);
    if (this.#draining) {
      throw new ExecutorError("unavailable", `block ${this.blockId} is shutting down; send the task again`);
    }
    this.#active += 1;
    try {
      return await this.#serve(packet, signal);
    } finally {
      this.#active -= 1;
      if (this.#active === 0) this.#drained?.();
    }
  }

  /** Tasks being served right now. */
  get active(): number {
    return this.#active;
  }

  /**
   * Refuses new tasks (Unavailable, so callers retry on another replica) and resolves once the tasks
   * in progress are answered, or after `timeoutMs`; true when none was left behind.
   */
  async drain(timeoutMs: number): Promise<boolean> {
    this.#draining = true;
    if (this.#active === 0) return true;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const done = await Promise.race([
      new Promise<true>((resolve) => {
        this.#drained = () => resolve(true);
      }),
      new Promise<false>((resolve) => {
        timer = setTimeout(() => resolve(false), timeoutMs);
      }),
    ]);
    clearTimeout(timer);
    this.#drained = null;
    return done;
  }

  async #serve(packet: AIOSPacket, signal?: AbortSignal): Promise<InferenceResponse> {
    const instances = this.#instances;
    if (instances.length === 0) {
      throw new ExecutorError("unavailable", `block ${this.blockId} has no instances to serve the task`);
    }
    const body = taskBody(packet);
    const tried: string[] = [];
    let candidate = await this.#choose(packet, instances);
    if (this.#ejected.size > 0 && this.#isEjected(candidate.id)) {
      // The policy still sees every instance (its session cache survives); only the pick moves.
      const healthy = instances.filter((i) => !this.#isEjected(i.id));
      if (healthy.length > 0) candidate = this.#roundRobin(healthy);
    }
    for (;;) {
      if (signal?.aborted) throw this.#deadline(tried);
      tried.push(candidate.id);
      try {
        const outcome = await this.#attempt(candidate, body, signal);
        if (this.#ejected.size > 0) this.#ejected.delete(candidate.id);
        return create(InferenceResponseSchema, {
          message: outcome.ok,
          result: outcome.ok ? JSON.stringify(outcome.result ?? null) : "",
          error: outcome.ok ? "" : outcome.error,
          instanceId: candidate.id,
          sessionId: packet.sessionId,
          seqNo: packet.seqNo,
        });
      } catch (err) {
        if (!(err instanceof AttemptFailure)) throw err;
        if (signal?.aborted) throw this.#deadline(tried);
        this.#instanceFailed(candidate.id, err.message);
      }
      // Retries go round-robin over the instances not tried yet, never through the policy: offering
      // it a shrunken list would look like a membership change and drop its session cache.
      const untried = this.#instances.filter((i) => !tried.includes(i.id));
      const healthy = untried.filter((i) => !this.#isEjected(i.id));
      const rest = healthy.length > 0 ? healthy : untried;
      if (rest.length === 0) {
        throw new ExecutorError(
          "unavailable",
          `every instance of block ${this.blockId} failed the task (tried ${tried.join(", ")})`,
          tried,
        );
      }
      candidate = this.#roundRobin(rest);
    }
  }

  #deadline(tried: readonly string[]): ExecutorError {
    const where = tried.length > 0 ? ` (tried ${tried.join(", ")})` : "";
    return new ExecutorError("deadline_exceeded", `the task's deadline passed${where}`, tried);
  }

  #roundRobin(list: readonly InstanceRef[]): InstanceRef {
    const i = this.#cursor % list.length;
    this.#cursor = (this.#cursor + 1) % Number.MAX_SAFE_INTEGER;
    return list[i]!;
  }

  async #choose(packet: AIOSPacket, instances: readonly InstanceRef[]): Promise<InstanceRef> {
    const policy = this.#policy;
    if (!policy) return this.#roundRobin(instances);
    let code: string;
    try {
      const out = await policy.eval<{ instance_id?: unknown }>(
        { packet: packetForPolicy(packet), instances: instances.map((i) => i.id) },
        {
          host: { getMetrics: () => ({ block_metrics: this.metrics.blockMetrics(), cluster_metrics: null }) },
        },
      );
      const chosen = instances.find((i) => i.id === out.instance_id);
      if (chosen) return chosen;
      // The runtime checks this already; a policy double (or a future host) might not.
      code = "bad_output";
    } catch (err) {
      code = isPolicyError(err) ? err.code : "host_error";
    }
    this.metrics.policyFallback(code);
    return this.#roundRobin(instances);
  }

  async #attempt(instance: InstanceRef, body: string, signal?: AbortSignal): Promise<Outcome> {
    const timeout = AbortSignal.timeout(this.#attemptTimeoutMs);
    const done = this.metrics.start(instance.id);
    let ok = false;
    try {
      let res: Response;
      try {
        res = await fetch(`${instance.url.replace(/\/+$/, "")}/task`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body,
          signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
        });
      } catch (err) {
        if (timeout.aborted) throw new AttemptFailure(`no answer within ${this.#attemptTimeoutMs} ms`);
        throw new AttemptFailure(`unreachable: ${err instanceof Error ? err.message : String(err)}`);
      }
      const declared = Number(res.headers.get("content-length") ?? 0);
      if (declared > this.#maxResultBytes) {
        await res.body?.cancel().catch(() => {});
        ok = true;
        return { ok: false, error: this.#tooLarge(declared) };
      }
      const text = await res.text().catch((err: unknown) => {
        throw new AttemptFailure(`answer cut short: ${err instanceof Error ? err.message : String(err)}`);
      });
      if (text.length > this.#maxResultBytes) {
        ok = true;
        return { ok: false, error: this.#tooLarge(text.length) };
      }
      if (res.status >= 400 && res.status < 500) {
        ok = true;
        return { ok: false, error: refusal(res.status, text) };
      }
      if (res.status < 200 || res.status >= 300) {
        throw new AttemptFailure(`answered HTTP ${res.status}${text ? `: ${text.slice(0, 200)}` : ""}`);
      }
      let parsed: unknown;
      try {
        parsed = JSON.parse(text);
      } catch {
        throw new AttemptFailure("answered 200 with a body that is not JSON");
      }
      if (parsed === null || typeof parsed !== "object" || !("result" in parsed)) {
        throw new AttemptFailure('answered 200 without a "result"');
      }
      ok = true;
      return { ok: true, result: parsed.result };
    } finally {
      done({ ok });
    }
  }

  #tooLarge(bytes: number): string {
    return `result_too_large: the instance answered ${bytes} bytes, over the block's ${this.#maxResultBytes} byte limit`;
  }

  #isEjected(id: string): boolean {
    const until = this.#ejected.get(id);
    if (until === undefined) return false;
    if (until > Date.now()) return true;
    this.#ejected.delete(id);
    return false;
  }

  /** Instances currently passed over after a failure, with the time they return (ms since epoch). */
  get ejected(): ReadonlyMap<string, number> {
    for (const id of [...this.#ejected.keys()]) this.#isEjected(id);
    return this.#ejected;
  }

  #instanceFailed(id: string, reason: string): void {
    const now = Date.now();
    this.#failures.set(id, { reason, at: now });
    if (this.#ejectMs > 0) this.#ejected.set(id, now + this.#ejectMs);
    try {
      this.#onInstanceFailure?.(id, reason);
    } catch (err) {
      // A faulty listener must not turn an instance failure into a failed request.
      console.error(`[executor ${this.blockId}] onInstanceFailure threw:`, err);
    }
  }
}
