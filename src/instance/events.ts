/**
 * `BlockEvents`, the SDK's event client (cluster-controller.md, "Integrating with AIOS instance"): an
 * instance pushes a named event with a JSON object, and the cluster controller's block events processor
 * later runs the policy the block registered for that name. The instance does not wait for the policy.
 *
 * Transport, from the environment: with `REDIS_URL`, the event is appended to the cluster's stream
 * `aios:block-events:<AIOS_CLUSTER_ID>` (the processor's queue); otherwise it is posted to `${AIOS_CONTROLLER_URL}/events`,
 * which answers 2xx (202 `{"id"}`) once the controller has queued it, with the instance's credential
 * (`AIOS_TOKEN`) as `Authorization: Bearer`. The body is the `BlockEvent` either way.
 */

import { serviceToken } from "../auth/credential.ts";
import { errorMessage } from "../http/errors.ts";
import {
  type BlockEvent,
  blockEventsStream,
  EVENT_DATA_MAX_BYTES,
  EVENT_NAME_MAX_LENGTH,
  type EventQueue,
  openQueue,
  QueueConfigError,
  queueConfigFrom,
} from "../queue/index.ts";
import { ConfigError, type Env, envValue, readBlockId, readInstanceId } from "./config.ts";

export type FetchLike = (url: string, init: RequestInit) => Promise<Response>;

export interface BlockEventsOptions {
  /** Where `REDIS_URL`, `AIOS_CONTROLLER_URL`, `AIOS_BLOCK_ID`, `AIOS_INSTANCE_ID` are read (default process.env). */
  env?: Env;
  /** Default: `AIOS_BLOCK_ID`. */
  blockId?: string;
  /** Default: `AIOS_INSTANCE_ID`, else the host name. */
  instanceId?: string;
  /** Used to post to the controller (default: the global fetch). */
  fetch?: FetchLike;
  /** How long a post to the controller may take, in ms (default 10000). */
  timeoutMs?: number;
  /** The bearer token posts carry; default `AIOS_TOKEN` of `env`, else this process's credential. */
  token?: string;
}

const isPlainObject = (v: unknown): v is Record<string, unknown> =>
  v !== null && typeof v === "object" && Object.prototype.toString.call(v) === "[object Object]";

/** The event's data as it will travel (what JSON keeps of it); a TypeError naming `data` when unfit. */
const normalizeData = (data: unknown): Record<string, unknown> => {
  if (!isPlainObject(data)) throw new TypeError("data: must be a JSON object");
  let text: string;
  try {
    text = JSON.stringify(data);
  } catch (err) {
    throw new TypeError(`data: cannot be serialized as JSON (${errorMessage(err)})`);
  }
  const bytes = new TextEncoder().encode(text).length;
  if (bytes > EVENT_DATA_MAX_BYTES) {
    throw new TypeError(`data: must be at most ${EVENT_DATA_MAX_BYTES} bytes as JSON, got ${bytes}`);
  }
  return JSON.parse(text) as Record<string, unknown>;
};

const checkName = (name: unknown): string => {
  if (typeof name !== "string" || name.trim() === "") throw new TypeError("name: must be a non-empty string");
  if (name.length > EVENT_NAME_MAX_LENGTH) {
    throw new TypeError(`name: must be at most ${EVENT_NAME_MAX_LENGTH} characters, got ${name.length}`);
  }
  return name;
};

export class BlockEvents {
  readonly blockId: string;
  readonly instanceId: string;
  readonly #redisUrl: string | undefined;
  readonly #controllerUrl: string | undefined;
  readonly #fetch: FetchLike;
  readonly #timeoutMs: number;
  readonly #token: string | undefined;
  /** `AIOS_CLUSTER_ID`: which cluster's event stream to use with Redis. */
  readonly #clusterId: string | undefined;
  #queue: EventQueue | undefined;
  #closed = false;

  /** A malformed `REDIS_URL` or `AIOS_CONTROLLER_URL` is a ConfigError here; a missing one only on push. */
  constructor(options: BlockEventsOptions = {}) {
    const env = options.env ?? process.env;
    this.blockId = options.blockId ?? readBlockId(env);
    this.instanceId = options.instanceId ?? readInstanceId(env);
    this.#fetch = options.fetch ?? ((url, init) => fetch(url, init));
    this.#timeoutMs = options.timeoutMs ?? 10_000;
    this.#token = options.token ?? envValue(env, "AIOS_TOKEN") ?? serviceToken();
    try {
      this.#redisUrl = queueConfigFrom(env).redisUrl;
    } catch (err) {
      if (err instanceof QueueConfigError) throw new ConfigError(err.variable, err.detail);
      throw err;
    }
    const controller = envValue(env, "AIOS_CONTROLLER_URL");
    if (controller !== undefined && !(/^https?:\/\//.test(controller) && URL.canParse(controller))) {
      throw new ConfigError(
        "AIOS_CONTROLLER_URL",
        `must be an http:// or https:// URL, got ${JSON.stringify(controller)}`,
      );
    }
    this.#controllerUrl = controller?.replace(/\/+$/, "");
    this.#clusterId = envValue(env, "AIOS_CLUSTER_ID");
  }

  /**
   * Pushes the event; resolves to its id (the stream entry's id, or the controller's answer, empty when it
   * gives none) once it is queued. Rejects with a TypeError naming `name` or `data` when they are unfit
   * (name: 1 to 200 characters; data: a JSON object of at most 64 KiB), or an Error when it could not be queued.
   */
  async pushEvent(name: string, data: Record<string, unknown> = {}): Promise<string> {
    const event: BlockEvent = {
      block_id: this.blockId,
      instance_id: this.instanceId,
      event_name: checkName(name),
      event_data: normalizeData(data),
      ts: Date.now(),
    };
    if (this.#closed) throw new Error("BlockEvents: closed");
    if (this.blockId === "") {
      throw new ConfigError("AIOS_BLOCK_ID", "must be set to push events (or pass the blockId option)");
    }
    if (this.#redisUrl !== undefined) {
      this.#queue ??= openQueue({ redisUrl: this.#redisUrl });
      return this.#queue.publish(blockEventsStream(this.#clusterId), event);
    }
    if (this.#controllerUrl !== undefined) return this.#post(event, this.#controllerUrl);
    throw new Error(
      "BlockEvents: nowhere to push events: set REDIS_URL (the cluster's Redis) or AIOS_CONTROLLER_URL (the cluster controller)",
    );
  }

  async #post(event: BlockEvent, controllerUrl: string): Promise<string> {
    const url = `${controllerUrl}/events`;
    let res: Response;
    let text: string;
    try {
      res = await this.#fetch(url, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          ...(this.#token ? { authorization: `Bearer ${this.#token}` } : {}),
        },
        body: JSON.stringify(event),
        signal: AbortSignal.timeout(this.#timeoutMs),
      });
      text = await res.text();
    } catch (err) {
      throw new Error(`BlockEvents: POST ${url} failed: ${errorMessage(err)}`, { cause: err });
    }
    if (!res.ok) throw new Error(`BlockEvents: POST ${url} answered ${res.status}: ${text.slice(0, 500)}`);
    try {
      const body: unknown = JSON.parse(text);
      return isPlainObject(body) && typeof body.id === "string" ? body.id : "";
    } catch {
      return "";
    }
  }

  /** Closes the queue connection, if one was opened; later pushes reject. */
  async close(): Promise<void> {
    this.#closed = true;
    const queue = this.#queue;
    this.#queue = undefined;
    await queue?.close();
  }
}
