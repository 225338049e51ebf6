/**
 * The event queue: Redis Streams when `REDIS_URL` is set, else in-process (see types.ts for the
 * delivery semantics), and the block events that travel on it from instances to the cluster controller.
 */
import { z } from "zod";
import { MemoryQueue } from "./memory.ts";
import { RedisQueue } from "./redis.ts";
import type { EventQueue } from "./types.ts";

export { DEFAULTS as CONSUME_DEFAULTS } from "./consumer.ts";
export { MemoryQueue } from "./memory.ts";
export { RedisQueue } from "./redis.ts";
export type {
  ConsumeOptions,
  Consumer,
  DeadLetter,
  EventQueue,
  MessageHandler,
  QueueMessage,
} from "./types.ts";
export { deadLetterStream, QueueClosedError } from "./types.ts";

export interface QueueConfig {
  /** `redis://` or `rediss://` URL; undefined for the in-process queue. */
  redisUrl?: string | undefined;
}

/** A malformed queue setting; `variable` names it. */
export class QueueConfigError extends Error {
  override readonly name = "QueueConfigError";
  constructor(
    readonly variable: string,
    readonly detail: string,
  ) {
    super(`${variable}: ${detail}`);
  }
}

/** Reads `REDIS_URL` (empty counts as unset); a value that is not a redis URL is a QueueConfigError. */
export const queueConfigFrom = (
  env: Readonly<Record<string, string | undefined>> = process.env,
): QueueConfig => {
  const url = env.REDIS_URL?.trim();
  if (url === undefined || url === "") return { redisUrl: undefined };
  if (!/^rediss?:\/\//.test(url) || !URL.canParse(url)) {
    throw new QueueConfigError(
      "REDIS_URL",
      `must be a redis:// or rediss:// URL, got ${JSON.stringify(url)}`,
    );
  }
  return { redisUrl: url };
};

/**
 * The queue for this configuration: Redis when a URL is given, else a new in-process queue (one per call:
 * share the returned queue between publishers and consumers of one process). Connects on first use.
 */
export const openQueue = ({ redisUrl }: QueueConfig = {}): EventQueue =>
  redisUrl === undefined || redisUrl === "" ? new MemoryQueue() : new RedisQueue(redisUrl);

/** The stream instances push block events to and the cluster controller's events processor consumes. */
export const BLOCK_EVENTS_STREAM = "aios:block-events";

/**
 * The block events stream of one cluster (`aios:block-events:<cluster>`), so the controllers sharing a
 * Redis each consume only their own blocks' events; the bare stream when the cluster is unknown.
 */
export const blockEventsStream = (clusterId?: string): string =>
  clusterId ? `${BLOCK_EVENTS_STREAM}:${clusterId}` : BLOCK_EVENTS_STREAM;

export const EVENT_NAME_MAX_LENGTH = 200;
/** Bytes of `event_data` as JSON (UTF-8). */
export const EVENT_DATA_MAX_BYTES = 64 * 1024;

export const jsonByteLength = (value: unknown): number =>
  new TextEncoder().encode(JSON.stringify(value)).length;

/** One event a block pushed (cluster-controller.md, "Block events processor"); `ts` in ms since the epoch. */
export const BlockEventSchema = z.object({
  block_id: z.string().min(1),
  instance_id: z.string(),
  event_name: z.string().min(1).max(EVENT_NAME_MAX_LENGTH),
  event_data: z.record(z.string(), z.unknown()).refine((d) => jsonByteLength(d) <= EVENT_DATA_MAX_BYTES, {
    message: `must be at most ${EVENT_DATA_MAX_BYTES} bytes as JSON`,
  }),
  ts: z.number(),
});

export type BlockEvent = z.infer<typeof BlockEventSchema>;
