/**
 * The instance task protocol, as a Hono app: `POST /task`, `GET /health`, `GET /metrics`, `POST /mgmt`
 * (see serve.ts for the whole API). The executor (src/block/executor.ts) is the client:
 *
 * - `POST /task` `{"session_id","seq_no","data","ts","output_ptr","frame_ptr","files"}` answers
 *   `{"result": ...}`; a TaskError thrown by the handler is its 4xx `{"error": {"code","message"}}` (the
 *   executor answers `message: false`, no retry); anything else thrown is a 500 (the executor retries on
 *   another instance). A (session_id, seq_no) seen recently answers the stored outcome without running
 *   the handler again; a retry arriving while the first attempt still runs waits for it.
 * - `GET /task/ws` (served by `serveInstance`, task-socket.ts): the same tasks and answers over one
 *   WebSocket, many in flight; both go through one `TaskHandler` (`createTaskHandler`).
 * - `GET /health`: 200 once `init` finished and `health()` (if given) says true within the timeout;
 *   503 otherwise.
 *
 * Every route but `/health` needs a token (routes.ts, service `instance`): `options.guard`.
 */
import { type Context, Hono } from "hono";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { z } from "zod";
import { Guard } from "../auth/guard.ts";
import { guardRoutes } from "../auth/hono.ts";
import {
  ApiError,
  badRequest,
  onError,
  onNotFound,
  parseWith,
  readJson,
  readJsonWith,
  toApiError,
} from "../http/errors.ts";
import type { InstanceConfig } from "./config.ts";
import type { BlockEvents } from "./events.ts";
import type { InstanceMetrics } from "./metrics.ts";

export type TaskErrorStatus = 400 | 404 | 409 | 422;

/** Thrown by a handler to refuse a task (or a management action): a 4xx the caller should not retry. */
export class TaskError extends Error {
  override readonly name = "TaskError";
  constructor(
    readonly code: string,
    message: string,
    readonly status: TaskErrorStatus = 400,
    readonly details: unknown = null,
  ) {
    super(message);
  }
}

export interface Task {
  sessionId: string;
  seqNo: number;
  /** The task's input, already parsed from JSON. */
  data: unknown;
  /** UNIX epoch seconds when the task was created. */
  ts: number;
  outputPtr: string;
  framePtr: Uint8Array;
  files: { metadata: string; data: Uint8Array }[];
}

export interface InstanceContext {
  instanceId: string;
  blockId: string;
  initData: unknown;
  settings: unknown;
  /** The current parameters (replaced by each `parameter_update`). */
  readonly parameters: Record<string, unknown>;
  gpus: string[];
  metrics: InstanceMetrics;
  /** `ctx.events.pushEvent(name, data)`: the block's events, run by the controller's event policies. */
  events: Pick<BlockEvents, "pushEvent">;
}

export interface InstanceHandlers {
  /** Runs once before the instance reports healthy; throwing aborts `serveInstance`. */
  init?(ctx: InstanceContext): void | Promise<void>;
  onTask(task: Task, ctx: InstanceContext): unknown | Promise<unknown>;
  /** False, a throw or no answer within the health timeout is unhealthy (503). */
  health?(): boolean | Promise<boolean>;
  /** Any `/mgmt` action other than the built-ins; throw a TaskError to refuse. */
  management?(action: string, data: unknown, ctx: InstanceContext): unknown | Promise<unknown>;
  /** Called with the merged parameters after each `parameter_update`. */
  onParameterUpdate?(parameters: Record<string, unknown>): void | Promise<void>;
}

export interface InstanceAppOptions {
  /** How many (session_id, seq_no) outcomes are remembered; default 4096. */
  dedupWindow?: number;
  /** Tasks run at once; the rest wait in a queue (reported as `queue`). Default: no limit. */
  concurrency?: number;
  /** Longest wait for `health()`; default 5 s. */
  healthTimeoutMs?: number;
  /** Largest task body in bytes (files travel base64 in it); default 64 MiB. */
  bodyLimit?: number;
  /**
   * Checks the callers (routes.ts, service `instance`). `createInstanceApp` defaults to Guard.open();
   * `serveInstance` to the guard its environment describes (`instanceGuardFromEnv`).
   */
  guard?: Guard;
}

export const DEFAULT_TASK_BODY_LIMIT = 64 * 1024 * 1024;

/** The mutable state shared by the app and `serveInstance`. */
export interface InstanceState {
  ready: boolean;
  config: InstanceConfig;
  parameters: Record<string, unknown>;
  metrics: InstanceMetrics;
}

const TaskBody = z.object({
  session_id: z.string().min(1),
  seq_no: z.number().int().nonnegative(),
  data: z.unknown().refine((v) => v !== undefined, "data is required"),
  ts: z.number(),
  output_ptr: z.string().default(""),
  frame_ptr: z.base64().default(""),
  files: z.array(z.object({ metadata: z.string().default(""), file_data: z.base64() })).default([]),
});

const MgmtBody = z.object({
  mgmt_action: z.string().min(1),
  mgmt_data: z.unknown().optional(),
});

type Outcome = { ok: true; result: unknown } | { ok: false; error: TaskError };

const bytes = (b64: string): Uint8Array => new Uint8Array(Buffer.from(b64, "base64"));

const isRecord = (v: unknown): v is Record<string, unknown> =>
  v !== null && typeof v === "object" && !Array.isArray(v);

const refusalAnswer = (err: TaskError): TaskAnswer => ({
  status: err.status,
  body: { error: { code: err.code, message: err.message, details: err.details } },
});

const refuse = (c: Context, err: TaskError) => {
  const answer = refusalAnswer(err);
  return c.json(answer.body, answer.status as ContentfulStatusCode);
};

/** Limits how many tasks run at once; `waiting` is the queue length. */
class Slots {
  #free: number;
  readonly #waiters: (() => void)[] = [];
  constructor(limit: number) {
    this.#free = limit;
  }
  get waiting(): number {
    return this.#waiters.length;
  }
  async acquire(): Promise<void> {
    if (this.#free > 0) {
      this.#free -= 1;
      return;
    }
    await new Promise<void>((resolve) => this.#waiters.push(resolve));
  }
  release(): void {
    const next = this.#waiters.shift();
    if (next) next();
    else this.#free += 1;
  }
}

/** A task's answer, as `POST /task` sends it: the HTTP status and the JSON body. */
export interface TaskAnswer {
  status: number;
  body: unknown;
}

/**
 * Serves one task body (already parsed from JSON, not yet validated): the answer `POST /task` gives, for
 * every transport (the HTTP route and the `/task/ws` channel). Never throws.
 */
export type TaskHandler = (body: unknown) => Promise<TaskAnswer>;

const notReady = (): TaskAnswer => ({
  status: 503,
  body: new ApiError(503, "not_ready", "the instance is still initializing").toBody(),
});

/** The task protocol without its transport: validation, dedup by (session_id, seq_no), slots, metrics. */
export const createTaskHandler = (
  handlers: InstanceHandlers,
  state: InstanceState,
  ctx: InstanceContext,
  options: InstanceAppOptions = {},
): TaskHandler => {
  const window = Math.max(1, options.dedupWindow ?? 4096);
  const slots = new Slots(options.concurrency ?? Number.POSITIVE_INFINITY);
  // Insertion-ordered: the oldest key is evicted first. A running task's promise is stored too.
  const recent = new Map<string, Promise<Outcome>>();

  const run = async (task: Task): Promise<Outcome> => {
    state.metrics.queue += 1;
    try {
      await slots.acquire();
    } finally {
      state.metrics.queue -= 1;
    }
    const done = state.metrics.start();
    let ok = false;
    try {
      const result = await handlers.onTask(task, ctx);
      ok = true;
      return { ok: true, result: result ?? null };
    } catch (err) {
      if (err instanceof TaskError) return { ok: false, error: err };
      throw err;
    } finally {
      done(ok);
      slots.release();
    }
  };

  return async (raw) => {
    // Not a bug (no stderr log): the executor retries elsewhere.
    if (!state.ready) return notReady();
    try {
      const body = parseWith(TaskBody, raw);
      const key = `${body.session_id}\u0000${body.seq_no}`;
      let outcome = recent.get(key);
      if (!outcome) {
        outcome = run({
          sessionId: body.session_id,
          seqNo: body.seq_no,
          data: body.data,
          ts: body.ts,
          outputPtr: body.output_ptr,
          framePtr: bytes(body.frame_ptr),
          files: body.files.map((f) => ({ metadata: f.metadata, data: bytes(f.file_data) })),
        });
        recent.set(key, outcome);
        while (recent.size > window) recent.delete(recent.keys().next().value as string);
        // A failure (500) is not an outcome: forget it so a retry runs the task again.
        const stored = outcome;
        stored.catch(() => {
          if (recent.get(key) === stored) recent.delete(key);
        });
      }
      const settled = await outcome;
      return settled.ok ? { status: 200, body: { result: settled.result } } : refusalAnswer(settled.error);
    } catch (err) {
      const apiError = toApiError(err);
      if (apiError.status >= 500) console.error("[aios] task failed:", err);
      return { status: apiError.status, body: apiError.toBody() };
    }
  };
};

export const createInstanceApp = (
  handlers: InstanceHandlers,
  state: InstanceState,
  ctx: InstanceContext,
  options: InstanceAppOptions = {},
  /** The task handler to serve `POST /task` with; `serveInstance` shares its own with `/task/ws`. */
  handleTask: TaskHandler = createTaskHandler(handlers, state, ctx, options),
): Hono => {
  const healthTimeoutMs = options.healthTimeoutMs ?? 5000;
  const bodyLimit = options.bodyLimit ?? DEFAULT_TASK_BODY_LIMIT;

  const app = new Hono({ strict: false });
  app.onError((err, c) => (err instanceof TaskError ? refuse(c, err) : onError(err, c)));
  app.notFound(onNotFound);
  app.use(guardRoutes(options.guard ?? Guard.open(), "instance"));

  app.post("/task", async (c) => {
    // Checked before the body is read: a task sent too early costs the instance nothing.
    if (!state.ready) {
      const answer = notReady();
      return c.json(answer.body, 503);
    }
    const answer = await handleTask(await readJson(c.req.raw, { limit: bodyLimit }));
    return c.json(answer.body, answer.status as ContentfulStatusCode);
  });

  app.get("/health", async (c) => {
    const unhealthy = (reason: string) => c.json({ status: "unhealthy", reason }, 503);
    if (!state.ready) return unhealthy("initializing");
    if (handlers.health) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      try {
        const timeout = new Promise<"timeout">((resolve) => {
          timer = setTimeout(() => resolve("timeout"), healthTimeoutMs);
        });
        const answer = await Promise.race([Promise.resolve().then(() => handlers.health?.()), timeout]);
        if (answer === "timeout")
          return unhealthy(`health check gave no answer within ${healthTimeoutMs} ms`);
        if (answer !== true) return unhealthy("health check answered false");
      } catch (err) {
        return unhealthy(`health check threw: ${err instanceof Error ? err.message : String(err)}`);
      } finally {
        clearTimeout(timer);
      }
    }
    return c.json({
      status: "healthy",
      instance_id: state.config.instanceId,
      block_id: state.config.blockId,
      in_flight: state.metrics.inFlight,
    });
  });

  app.get("/metrics", (c) => {
    const format = c.req.query("format") ?? "json";
    if (format === "prometheus") {
      return c.text(state.metrics.prometheus(), 200, {
        "content-type": "text/plain; version=0.0.4; charset=utf-8",
      });
    }
    if (format !== "json")
      throw badRequest("invalid_input", `format must be json or prometheus, got ${format}`);
    return c.json(state.metrics.json());
  });

  app.post("/mgmt", async (c) => {
    const { mgmt_action: action, mgmt_data: data } = await readJsonWith(c.req.raw, MgmtBody);
    if (action === "get_parameters") return c.json({ parameters: state.parameters });
    if (action === "parameter_update") {
      if (!isRecord(data)) throw badRequest("invalid_input", "mgmt_data: parameter_update needs an object");
      // Applied only once the component accepts it: a refused update leaves the parameters as they were.
      const next = { ...state.parameters, ...data };
      await handlers.onParameterUpdate?.(next);
      state.parameters = next;
      return c.json({ parameters: state.parameters });
    }
    if (!handlers.management) {
      throw badRequest("unknown_action", `unknown mgmt_action ${JSON.stringify(action)}`, {
        builtin: ["get_parameters", "parameter_update"],
      });
    }
    const result = await handlers.management(action, data, ctx);
    return c.json({ result: result ?? null });
  });

  return app;
};
