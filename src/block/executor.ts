/**
 * The block's executor (block-runtime.md, "Block Load Balancer"): decodes a task, asks the load
 * balancer policy which instance takes it, forwards it over the instance task protocol and retries on
 * another instance when one fails. The policy can never fail a request: without one, or when it errs,
 * the executor routes round-robin and counts the fallback.
 *
 * Tasks go over the instance's task channel (one WebSocket per instance, many tasks in flight:
 * task-channel.ts) when the instance serves it, as the instance SDK does; otherwise, and for tasks
 * too large to hold up a shared socket, as `POST {url}/task`. Both give the same answers.
 */
import { create } from "@bufbuild/protobuf";
import { authHeaders } from "../auth/credential.ts";
import { type InferenceResponse, InferenceResponseSchema } from "../gen/inference_pb.ts";
import type { AIOSPacket } from "../gen/payload_pb.ts";
import { isPolicyError } from "../policy/errors.ts";
import type { PolicyInstance } from "../policy/runtime.ts";
import type { InstanceRef } from "./mapper.ts";
import { BlockMetrics } from "./metrics.ts";
import { decodePacket, packetForPolicy } from "./packet.ts";
import { type ChannelAnswer, ChannelFailure, ChannelUnavailable, TaskChannel } from "./task-channel.ts";

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
  /**
   * "auto" (default): over the instance's task channel (`/task/ws`) when it accepts one, else HTTP.
   * "http": always `POST /task`.
   */
  transport?: "auto" | "http";
}

export type ExecutorErrorCode = "unavailable" | "deadline_exceeded";

const DEFAULT_MAX_RESULT_BYTES = 32 * 1024 * 1024;
/**
 * Larger tasks go over HTTP: one frame holds up every other task's answer on the socket while it is
 * sent, and the instance could refuse it only by closing the socket (failing those tasks as well).
 */
const MAX_CHANNEL_TASK_CHARS = 1024 * 1024;
/** How long an instance that answered HTTP but refused the channel's upgrade is served over HTTP. */
const CHANNEL_REFUSED_MS = 30_000;

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

const taskBody = (p: AIOSPacket): string => {
  const rest = JSON.stringify({
    session_id: p.sessionId,
    seq_no: Number(p.seqNo),
    ts: p.ts,
    output_ptr: p.outputPtr,
    frame_ptr: base64(p.framePtr),
    files: p.files.map((f) => ({ metadata: f.metadata, file_data: base64(f.fileData) })),
  });
  // `data` is JSON text decodePacket already checked: spliced in as it came, not parsed and written again.
  return `{"data":${p.data},${rest.slice(1)}`;
};

/**
 * An instance's answer, from either transport: the body as the text read (HTTP), or already parsed
 * (channel, `text` null).
 */
interface Answer {
  status: number;
  /** Length of the body (UTF-16 units, or the declared byte length when too large to read). */
  size: number;
  text: string | null;
  body: unknown;
}

const parseBody = (answer: Answer): { ok: true; body: unknown } | { ok: false } => {
  if (answer.text === null) return { ok: true, body: answer.body };
  try {
    return { ok: true, body: JSON.parse(answer.text) };
  } catch {
    return { ok: false };
  }
};

const bodyText = (answer: Answer): string =>
  answer.text ?? (answer.body === undefined ? "" : JSON.stringify(answer.body));

const refusal = (answer: Answer): string => {
  const parsed = parseBody(answer);
  if (parsed.ok) {
    const body = parsed.body as { error?: { code?: unknown; message?: unknown } } | null;
    const code = typeof body?.error?.code === "string" ? body.error.code : "";
    const message = typeof body?.error?.message === "string" ? body.error.message : "";
    if (code || message) return code && message ? `${code}: ${message}` : code || message;
  }
  // Not the protocol's error body: report the text itself.
  const text = bodyText(answer);
  return `instance refused the task (HTTP ${answer.status})${text ? `: ${text.slice(0, 200)}` : ""}`;
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
  readonly #transport: "auto" | "http";
  /** Task channels by instance URL, for the current instances only. */
  readonly #channels = new Map<string, TaskChannel>();
  #closed = false;

  constructor(options: ExecutorOptions) {
    this.blockId = options.blockId;
    this.metrics = options.metrics ?? new BlockMetrics(options.blockId);
    this.#policy = options.policy ?? null;
    this.#attemptTimeoutMs = options.attemptTimeoutMs ?? DEFAULT_ATTEMPT_TIMEOUT_MS;
    this.#onInstanceFailure = options.onInstanceFailure;
    this.#ejectMs = options.ejectMs ?? 5000;
    this.#maxResultBytes = options.maxResultBytes ?? DEFAULT_MAX_RESULT_BYTES;
    this.#transport = options.transport ?? "auto";
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
    const urls = new Set(this.#instances.map((i) => i.url));
    for (const [url, channel] of this.#channels) {
      if (urls.has(url)) continue;
      // Graceful: the tasks already on a removed instance still get their answers, as over HTTP.
      channel.close(true);
      this.#channels.delete(url);
    }
  }

  /** The task channel of each instance URL that has one (for diagnostics and tests). */
  get channels(): ReadonlyMap<string, TaskChannel> {
    return this.#channels;
  }

  /**
   * Closes every task channel, failing the tasks still on them (call it after `drain`); tasks served
   * afterwards go over HTTP.
   */
  close(): void {
    this.#closed = true;
    for (const channel of this.#channels.values()) channel.close();
    this.#channels.clear();
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
    const done = this.metrics.start(instance.id);
    let ok = false;
    try {
      const channel = body.length <= MAX_CHANNEL_TASK_CHARS ? this.#channel(instance) : null;
      let answer: Answer;
      if (channel) {
        const started = Date.now();
        try {
          answer = await this.#viaChannel(channel, body, signal);
        } catch (err) {
          if (!(err instanceof ChannelUnavailable)) throw err;
          // The time the upgrade took counts against the attempt's timeout.
          const left = Math.max(1, this.#attemptTimeoutMs - (Date.now() - started));
          answer = await this.#viaHttp(instance, body, signal, left);
          // HTTP answered where the channel could not open: an instance without one (not our SDK).
          channel.refuse(CHANNEL_REFUSED_MS);
        }
      } else {
        answer = await this.#viaHttp(instance, body, signal, this.#attemptTimeoutMs);
      }
      const outcome = this.#outcome(answer);
      ok = true;
      return outcome;
    } finally {
      done({ ok });
    }
  }

  /** The instance's channel when it should be used now; null for HTTP. */
  #channel(instance: InstanceRef): TaskChannel | null {
    if (this.#transport === "http" || this.#closed) return null;
    let channel = this.#channels.get(instance.url);
    if (!channel) {
      // A retry can still reach an instance just removed; a channel opened for it would never close.
      if (!this.#instances.some((i) => i.url === instance.url)) return null;
      channel = new TaskChannel(instance.url);
      this.#channels.set(instance.url, channel);
    }
    return channel.usable ? channel : null;
  }

  async #viaChannel(channel: TaskChannel, body: string, signal?: AbortSignal): Promise<Answer> {
    let answer: ChannelAnswer;
    try {
      answer = await channel.send(body, this.#attemptTimeoutMs, signal);
    } catch (err) {
      if (!(err instanceof ChannelFailure)) throw err;
      if (err.kind === "timeout") throw new AttemptFailure(`no answer within ${this.#attemptTimeoutMs} ms`);
      throw new AttemptFailure(`unreachable: ${err.message}`);
    }
    return { status: answer.status, size: answer.size, text: null, body: answer.body };
  }

  async #viaHttp(
    instance: InstanceRef,
    body: string,
    signal: AbortSignal | undefined,
    timeoutMs: number,
  ): Promise<Answer> {
    const timeout = AbortSignal.timeout(timeoutMs);
    let res: Response;
    try {
      res = await fetch(`${instance.url.replace(/\/+$/, "")}/task`, {
        method: "POST",
        headers: { "content-type": "application/json", ...authHeaders() },
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
      return { status: res.status, size: declared, text: "", body: undefined };
    }
    const text = await res.text().catch((err: unknown) => {
      throw new AttemptFailure(`answer cut short: ${err instanceof Error ? err.message : String(err)}`);
    });
    return { status: res.status, size: text.length, text, body: undefined };
  }

  /** The task's outcome from the instance's answer; throws AttemptFailure when another should try. */
  #outcome(answer: Answer): Outcome {
    const { status } = answer;
    if (answer.size > this.#maxResultBytes) return { ok: false, error: this.#tooLarge(answer.size) };
    if (status >= 400 && status < 500) return { ok: false, error: refusal(answer) };
    if (status < 200 || status >= 300) {
      const text = bodyText(answer);
      throw new AttemptFailure(`answered HTTP ${status}${text ? `: ${text.slice(0, 200)}` : ""}`);
    }
    const parsed = parseBody(answer);
    if (!parsed.ok) throw new AttemptFailure("answered 200 with a body that is not JSON");
    const result = parsed.body;
    if (result === null || typeof result !== "object" || !("result" in result)) {
      throw new AttemptFailure('answered 200 without a "result"');
    }
    return { ok: true, result: result.result };
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
