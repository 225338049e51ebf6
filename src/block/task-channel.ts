/**
 * The executor's end of an instance's task channel (`GET {instance}/task/ws`, served by the instance
 * SDK: src/instance/task-socket.ts): one WebSocket per instance, opened on first use and reused, with
 * many tasks in flight on it, answered in any order. It spares every task the HTTP request and
 * response handling on both sides, which is most of what forwarding costs.
 *
 * Request `{"id": <integer>, "task": <the POST /task body>}`; answer `{"id", "status", "body"}`, status
 * and body being what `POST /task` would answer.
 *
 * - An instance that refuses the upgrade (not written with the SDK, a 404) makes `send` reject with
 *   ChannelUnavailable: the caller uses HTTP, and `refuse(ms)` keeps the channel out of use for a while.
 * - A socket that closes or errs rejects every task in flight on it with ChannelFailure("closed"), as a
 *   network error would; the next `send` opens a new one.
 * - Each task has its own timeout and abort signal; an answer arriving after either is dropped.
 * - The upgrade carries this process's credential (`Authorization: Bearer`, src/auth/credential.ts):
 *   the instance checks it once, for every task the socket then carries.
 */
import { authHeaders } from "../auth/credential.ts";

export type ChannelState = "idle" | "connecting" | "open" | "refused" | "closed";

/** An instance's answer over the channel: what `POST /task` would have answered. */
export interface ChannelAnswer {
  status: number;
  /** The answer body, parsed. */
  body: unknown;
  /** The body's length in UTF-16 units, as the HTTP path measures the text it reads. */
  size: number;
}

/** The channel could not be opened (or is closed): send the task over HTTP instead. */
export class ChannelUnavailable extends Error {
  override readonly name = "ChannelUnavailable";
}

/** The task was sent (or was waiting for the socket to open) and got no answer. */
export class ChannelFailure extends Error {
  override readonly name = "ChannelFailure";
  constructor(
    readonly kind: "closed" | "timeout" | "aborted",
    message: string,
  ) {
    super(message);
  }
}

interface Pending {
  resolve: (answer: ChannelAnswer) => void;
  reject: (err: Error) => void;
  timer: ReturnType<typeof setTimeout>;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
}

/** `http://host:port/base` -> `ws://host:port/base/task/ws` (https -> wss). */
export const taskSocketUrl = (instanceUrl: string): string => {
  const url = new URL(`${instanceUrl.replace(/\/+$/, "")}/task/ws`);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  return url.toString();
};

const BODY_KEY = ',"body":';

/** Bun's WebSocket takes the upgrade's headers (the DOM's type, which the project's lib uses, does not). */
const WebSocketWithHeaders = WebSocket as unknown as new (
  url: string,
  options: { headers: Record<string, string> },
) => WebSocket;

export class TaskChannel {
  /** The socket's address. */
  readonly url: string;
  #ws: WebSocket | null = null;
  /** Whether `#ws` has opened (a socket closing before that is a refusal, not a lost connection). */
  #opened = false;
  readonly #pending = new Map<number, Pending>();
  #nextId = 1;
  #refusedUntil = 0;
  #closed = false;
  /** Closing once the tasks in flight are answered (`close(true)`). */
  #closeWhenIdle = false;

  constructor(instanceUrl: string) {
    this.url = taskSocketUrl(instanceUrl);
  }

  get state(): ChannelState {
    if (this.#closed) return "closed";
    if (this.#refusedUntil > Date.now()) return "refused";
    if (this.#ws === null) return "idle";
    return this.#opened ? "open" : "connecting";
  }

  /** False while the channel is closed or remembered as refused: use HTTP. */
  get usable(): boolean {
    return !this.#closed && (this.#refusedUntil === 0 || this.#refusedUntil <= Date.now());
  }

  /** Tasks sent and not answered yet. */
  get inFlight(): number {
    return this.#pending.size;
  }

  /** Keeps the channel out of use for `ms` (the instance answered HTTP but refused the upgrade). */
  refuse(ms: number): void {
    this.#refusedUntil = Date.now() + ms;
  }

  /**
   * Sends one task (its JSON, as `POST /task` takes it) and resolves with the instance's answer. Rejects
   * with ChannelUnavailable when the socket could not be opened, ChannelFailure otherwise.
   */
  send(task: string, timeoutMs: number, signal?: AbortSignal): Promise<ChannelAnswer> {
    if (this.#closed || this.#closeWhenIdle) {
      return Promise.reject(new ChannelUnavailable("the task channel is closed"));
    }
    if (signal?.aborted) return Promise.reject(new ChannelFailure("aborted", "the caller gave up"));
    const id = this.#nextId;
    this.#nextId = id >= Number.MAX_SAFE_INTEGER ? 1 : id + 1;
    // Concatenated: the task's JSON is sent as it is, never parsed and written again.
    const frame = `{"id":${id},"task":${task}}`;
    return new Promise<ChannelAnswer>((resolve, reject) => {
      const pending: Pending = {
        resolve,
        reject,
        timer: setTimeout(
          () => this.#settle(id, new ChannelFailure("timeout", `no answer within ${timeoutMs} ms`)),
          timeoutMs,
        ),
        signal,
        onAbort: undefined,
      };
      if (signal) {
        pending.onAbort = () => this.#settle(id, new ChannelFailure("aborted", "the caller gave up"));
        signal.addEventListener("abort", pending.onAbort, { once: true });
      }
      this.#pending.set(id, pending);
      const ws = this.#ws ?? this.#connect();
      if (this.#opened) this.#write(ws, id, frame);
      else
        ws.addEventListener("open", () => this.#pending.has(id) && this.#write(ws, id, frame), {
          once: true,
        });
    });
  }

  #write(ws: WebSocket, id: number, frame: string): void {
    try {
      ws.send(frame);
    } catch (err) {
      // Closing under our feet: fail this task as a lost connection, never with a raw error.
      const why = err instanceof Error ? err.message : String(err);
      this.#settle(id, new ChannelFailure("closed", `the task channel closed (${why})`));
    }
  }

  /** Stops using `ws` at once (its tasks fail as a lost connection) and closes it with `code`. */
  #drop(ws: WebSocket, code: number, reason: string): void {
    if (this.#ws === ws) {
      this.#ws = null;
      this.#opened = false;
      this.#failAll(new ChannelFailure("closed", `the task channel closed (${reason})`));
    }
    ws.close(code, reason);
  }

  /**
   * Closes the socket. At once, failing the tasks in flight (ChannelFailure "closed"), or with `graceful`
   * once they are answered; either way no new task is taken.
   */
  close(graceful = false): void {
    if (this.#closed) return;
    if (graceful && this.#pending.size > 0) {
      this.#closeWhenIdle = true;
      return;
    }
    this.#closed = true;
    const ws = this.#ws;
    this.#ws = null;
    this.#failAll(new ChannelFailure("closed", "the task channel was closed"));
    ws?.close(1000, "executor closed the channel");
  }

  #connect(): WebSocket {
    const ws = new WebSocketWithHeaders(this.url, { headers: authHeaders() });
    this.#ws = ws;
    this.#opened = false;
    let error = "";
    ws.onopen = () => {
      if (this.#ws === ws) this.#opened = true;
    };
    ws.onerror = (ev) => {
      error = (ev as ErrorEvent).message ?? "";
    };
    ws.onclose = (ev) => {
      if (this.#ws !== ws) return;
      const opened = this.#opened;
      this.#ws = null;
      this.#opened = false;
      const why = error || `code ${ev.code}${ev.reason ? `: ${ev.reason}` : ""}`;
      this.#failAll(
        opened
          ? new ChannelFailure("closed", `the task channel closed (${why})`)
          : new ChannelUnavailable(`the task channel could not be opened (${why})`),
      );
    };
    ws.onmessage = (ev) => this.#answer(ws, ev.data);
    return ws;
  }

  #answer(ws: WebSocket, data: unknown): void {
    let frame: { id?: unknown; status?: unknown; body?: unknown } | null = null;
    if (typeof data === "string") {
      try {
        frame = JSON.parse(data);
      } catch {
        frame = null;
      }
    }
    if (frame === null || typeof frame !== "object" || typeof frame.status !== "number") {
      // Not the protocol: no task can be matched to it, so fail them all now (they are retried)
      // rather than let each wait for its timeout.
      this.#drop(ws, 1002, "malformed answer");
      return;
    }
    const pending = typeof frame.id === "number" ? this.#pending.get(frame.id) : undefined;
    if (!pending) {
      // The instance could not read one of our frames (`"id": null`): which task is unknown.
      if (frame.id === null) this.#drop(ws, 1002, "the instance could not read a task frame");
      return; // else a late answer, after its task's timeout or abort
    }
    const text = data as string;
    const at = text.indexOf(BODY_KEY);
    this.#settle(frame.id as number, {
      status: frame.status,
      body: frame.body,
      size: at < 0 ? text.length : text.length - at - BODY_KEY.length - 1,
    });
  }

  #settle(id: number, outcome: ChannelAnswer | Error): void {
    const pending = this.#pending.get(id);
    if (!pending) return;
    this.#pending.delete(id);
    clearTimeout(pending.timer);
    if (pending.onAbort) pending.signal?.removeEventListener("abort", pending.onAbort);
    if (outcome instanceof Error) pending.reject(outcome);
    else pending.resolve(outcome);
    if (this.#closeWhenIdle && this.#pending.size === 0) {
      this.#closeWhenIdle = false;
      this.close();
    }
  }

  #failAll(err: Error): void {
    for (const id of [...this.#pending.keys()]) this.#settle(id, err);
  }
}
