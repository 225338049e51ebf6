/**
 * `GET /task/ws`: the instance task protocol over one WebSocket, many tasks in flight at once (the
 * block executor's channel, src/block/task-channel.ts). Text frames, JSON:
 *
 * - request `{"id": <integer>, "task": <the POST /task body>}`;
 * - answer `{"id": <the same>, "status": <the HTTP status POST /task would answer>, "body": <its body>}`,
 *   in whatever order the tasks finish.
 *
 * A frame that is not JSON or has no integer `id` answers status 400 (with the id when there is one,
 * else `null`) and the socket stays open. The task body limit is the HTTP route's.
 */
import type { ServerWebSocket, WebSocketHandler } from "bun";
import { ApiError, badRequest, checkDepth, DEFAULT_MAX_DEPTH } from "../http/errors.ts";
import type { TaskAnswer, TaskHandler } from "./app.ts";

export const TASK_SOCKET_PATH = "/task/ws";

/** Frames above this many bytes are not even received (Bun closes the socket with 1009). */
const MIN_FRAME_LIMIT = 16 * 1024 * 1024;
/** Room for the envelope around a task of the largest accepted size. */
const ENVELOPE_BYTES = 64;

/** The envelope our executor writes, read without parsing the task: the id of an oversized frame. */
const ENVELOPE_START = /^\{"id":(\d{1,15}),"task":/;

const answerFrame = (id: number | null, answer: TaskAnswer): string =>
  `{"id":${id},"status":${answer.status},"body":${JSON.stringify(answer.body)}}`;

const refusal = (err: ApiError): TaskAnswer => ({ status: err.status, body: err.toBody() });

const isRecord = (v: unknown): v is Record<string, unknown> =>
  v !== null && typeof v === "object" && !Array.isArray(v);

export interface TaskSocketOptions {
  /** Largest task in bytes, as `bodyLimit` for `POST /task`. */
  bodyLimit: number;
}

export const taskSocketHandlers = (
  handleTask: TaskHandler,
  options: TaskSocketOptions,
): WebSocketHandler<undefined> => {
  const { bodyLimit } = options;

  const reply = (ws: ServerWebSocket<undefined>, id: number | null, answer: TaskAnswer): void => {
    if (ws.readyState !== WebSocket.OPEN) return; // the executor has already retried it elsewhere
    // 0 is a dropped answer (past backpressureLimit): close, so the executor retries what is pending
    // instead of waiting for its timeout.
    if (ws.send(answerFrame(id, answer)) === 0) ws.close(1011, "answer dropped");
  };

  /** The frame's task and id, or the 400 (413) answer with the id when one could be read. */
  const read = (message: string): { id: number; task: unknown } | { id: number | null; error: ApiError } => {
    // A UTF-16 unit is at least one UTF-8 byte, so the byte count is only computed when it could matter.
    if (message.length > bodyLimit) {
      const prefix = ENVELOPE_START.exec(message);
      const envelope = prefix ? prefix[0].length + 1 : 0;
      if (Buffer.byteLength(message) - envelope > bodyLimit) {
        return {
          id: prefix ? Number(prefix[1]) : null,
          error: new ApiError(413, "payload_too_large", `request body exceeds ${bodyLimit} bytes`, {
            limit: bodyLimit,
          }),
        };
      }
    }
    let frame: unknown;
    try {
      frame = JSON.parse(message);
    } catch (err) {
      const reason = err instanceof Error ? err.message : String(err);
      const prefix = ENVELOPE_START.exec(message);
      return {
        id: prefix ? Number(prefix[1]) : null,
        error: badRequest("invalid_json", `frame is not valid JSON: ${reason}`),
      };
    }
    if (!isRecord(frame) || !Number.isSafeInteger(frame.id)) {
      return { id: null, error: badRequest("invalid_frame", 'a frame is {"id": <integer>, "task": {...}}') };
    }
    const id = frame.id as number;
    try {
      checkDepth(frame.task, DEFAULT_MAX_DEPTH);
    } catch (err) {
      return { id, error: err as ApiError };
    }
    return { id, task: frame.task };
  };

  return {
    // Large enough for any task the HTTP route takes, and at least 16 MiB so a task over a small
    // bodyLimit gets its 413 answer rather than a closed socket.
    maxPayloadLength: Math.max(bodyLimit, MIN_FRAME_LIMIT) + ENVELOPE_BYTES,
    backpressureLimit: Math.max(bodyLimit, 64 * 1024 * 1024),
    perMessageDeflate: false,
    async message(ws, message) {
      if (typeof message !== "string") {
        reply(ws, null, refusal(badRequest("invalid_frame", "frames are text (JSON), not binary")));
        return;
      }
      const frame = read(message);
      if ("error" in frame) {
        reply(ws, frame.id, refusal(frame.error));
        return;
      }
      reply(ws, frame.id, await handleTask(frame.task));
    },
  };
};
