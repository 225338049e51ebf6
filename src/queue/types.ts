/**
 * The event queue's contract, shared by the Redis Streams driver and the in-process one.
 *
 * Delivery is at least once: a message handed to a consumer stays pending in its group until the handler
 * resolved, so a handler that throws, or a consumer that stops or dies mid-way, leaves it to be delivered
 * again (to any consumer of the group) once it has been pending `claimIdleMs`. Handlers must therefore
 * tolerate seeing a message twice. Each group sees every message of the stream, from its first.
 */

/** One delivery of a message to a consumer. */
export interface QueueMessage {
  /** The id `publish` returned, increasing within a stream (`<ms>-<seq>`). */
  id: string;
  message: Record<string, unknown>;
  /** How many times this message has been delivered in this group, this delivery included (1 the first time). */
  deliveries: number;
}

export type MessageHandler = (msg: QueueMessage) => Promise<void>;

export interface ConsumeOptions {
  /**
   * How long one read waits for new messages, in ms (default 2000; 0: do not wait). It also bounds how
   * long a message that became claimable waits while the stream is quiet.
   */
  blockMs?: number;
  /** Messages fetched per read (default 10); the handler still gets them one at a time, in order. */
  batch?: number;
  /**
   * A message left unacknowledged this long, in ms, is redelivered to a consumer of the group (default
   * 30000). While a handler runs its message is kept fresh, so a slow handler is not mistaken for a dead one.
   */
  claimIdleMs?: number;
  /**
   * After this many failed deliveries (default 5) the message goes to the dead-letter stream
   * `<stream>:dead` with the last error, and is acknowledged, so a poison message cannot block the group.
   */
  maxDeliveries?: number;
  /** Errors of the queue itself (connection lost, ...); the consumer retries with backoff. Default: console.error. */
  onError?: (error: unknown) => void;
}

export interface Consumer {
  /** Stops reading, waits for the handler in progress; messages fetched but not handled stay pending. */
  stop(): Promise<void>;
}

/** What the dead-letter stream `<stream>:dead` receives (published as any message). */
export interface DeadLetter {
  stream: string;
  group: string;
  /** The message's id in `stream`. */
  id: string;
  /** The message, or its raw text when it could not be decoded. */
  message: unknown;
  deliveries: number;
  error: string;
  /** When it was dead-lettered, ms since the epoch. */
  ts: number;
}

export interface EventQueue {
  /** Appends a JSON object to `stream` (created when missing); resolves to the message id. */
  publish(stream: string, message: Record<string, unknown>): Promise<string>;
  /**
   * Starts a consumer named `consumer` in `group` (created when missing, reading from the stream's first
   * message). The handler runs for one message at a time; the message is acknowledged when it resolves.
   */
  consume(
    stream: string,
    group: string,
    consumer: string,
    handler: MessageHandler,
    options?: ConsumeOptions,
  ): Consumer;
  /** Messages delivered to `group` and not yet acknowledged (0 when the stream or group does not exist). */
  pending(stream: string, group: string): Promise<number>;
  /** Stops every consumer (waiting for their handlers) and releases connections; later calls reject. */
  close(): Promise<void>;
}

export const deadLetterStream = (stream: string): string => `${stream}:dead`;

/** The queue was closed, or was used after `close()`. */
export class QueueClosedError extends Error {
  override readonly name = "QueueClosedError";
  constructor() {
    super("the event queue is closed");
  }
}
