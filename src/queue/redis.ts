/**
 * The production queue: Redis Streams (Redis 6.2 or later, for XAUTOCLAIM). A message is one stream entry
 * whose field `m` holds the JSON text; a group is a consumer group created at the stream's first entry;
 * acknowledgement is XACK, redelivery is XAUTOCLAIM by idle time. Each consumer reads on a connection of
 * its own, since a blocking XREADGROUP holds its connection; everything else shares one.
 */
import { Redis, type RedisOptions } from "ioredis";
import { type ConsumerSession, ConsumerSet, encodeMessage, type RawDelivery } from "./consumer.ts";
import {
  type ConsumeOptions,
  type Consumer,
  deadLetterStream,
  type EventQueue,
  type MessageHandler,
  QueueClosedError,
} from "./types.ts";

const CONNECTION: RedisOptions = {
  // RESP3 (ioredis' default) reshapes stream replies (XREADGROUP becomes a map); RESP2's are the documented ones.
  protocol: 2,
  lazyConnect: true,
  // Fail a command after one reconnection attempt instead of twenty: callers see an unreachable Redis quickly.
  maxRetriesPerRequest: 1,
  connectTimeout: 5000,
  retryStrategy: (times: number) => Math.min(50 * times, 500),
};

/** Resets the idle time of the given messages, only those still pending for this consumer (XCLAIM would steal). */
const TOUCH_SCRIPT = `
local n = 0
for i = 3, #ARGV do
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)
  if p[1] and p[1][2] == ARGV[2] then
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'JUSTID')
    n = n + 1
  end
end
return n`;

const isReplyError = (err: unknown, code: string): boolean =>
  err instanceof Error && err.message.startsWith(`${code} `);

/** The body of an entry: field `m`; an entry without it (written by someone else) keeps its raw fields. */
const bodyOf = (fields: unknown): string | null => {
  if (!Array.isArray(fields)) return null;
  for (let i = 0; i + 1 < fields.length; i += 2) if (fields[i] === "m") return String(fields[i + 1]);
  return JSON.stringify(fields);
};

/** `[[id, fields | null], ...]` -> deliveries. */
const entriesOf = (entries: unknown, deliveries: number): RawDelivery[] =>
  (Array.isArray(entries) ? entries : []).flatMap((e): RawDelivery[] =>
    Array.isArray(e) && typeof e[0] === "string" ? [{ id: e[0], body: bodyOf(e[1]), deliveries }] : [],
  );

/** Drops a connection now; a second disconnect of an ended one would hold the process open for 2 s. */
const drop = (r: Redis): void => {
  if (r.status !== "end") r.disconnect();
};

const closeConnection = async (r: Redis): Promise<void> => {
  if (r.status === "ready") await r.quit().catch(() => drop(r));
  else drop(r);
};

export class RedisQueue implements EventQueue {
  readonly #redis: Redis;
  readonly #url: string;
  readonly #consumers = new ConsumerSet();
  #closed = false;
  #lastError: Error | undefined;

  constructor(url: string) {
    this.#url = url;
    this.#redis = this.#connection();
  }

  /** A connection whose errors are kept (commands report them) rather than crashing the process. */
  #connection(): Redis {
    const r = new Redis(this.#url, CONNECTION);
    r.on("error", (err: Error) => {
      this.#lastError = err;
    });
    r.on("ready", () => {
      this.#lastError = undefined;
    });
    return r;
  }

  /** Runs a command; a connection failure rejects with the underlying cause named. */
  async #call(command: string, args: (string | number)[], redis: Redis = this.#redis): Promise<unknown> {
    if (this.#closed) throw new QueueClosedError();
    try {
      return await redis.call(command, args);
    } catch (err) {
      const cause = this.#lastError;
      if (cause !== undefined && err instanceof Error && err.name === "MaxRetriesPerRequestError") {
        throw new Error(`redis unreachable: ${cause.message}`, { cause: err });
      }
      throw err;
    }
  }

  async publish(stream: string, message: Record<string, unknown>): Promise<string> {
    const id = await this.#call("XADD", [stream, "*", "m", encodeMessage(message)]);
    return String(id);
  }

  async pending(stream: string, group: string): Promise<number> {
    try {
      const reply = await this.#call("XPENDING", [stream, group]);
      return Array.isArray(reply) ? Number(reply[0] ?? 0) : 0;
    } catch (err) {
      if (isReplyError(err, "NOGROUP")) return 0;
      throw err;
    }
  }

  consume(
    stream: string,
    group: string,
    consumer: string,
    handler: MessageHandler,
    options?: ConsumeOptions,
  ): Consumer {
    if (this.#closed) throw new QueueClosedError();
    return this.#consumers.start(
      this.#session(stream, group, consumer),
      { stream, group, consumer },
      handler,
      options,
    );
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    await this.#consumers.stopAll();
    this.#closed = true;
    await closeConnection(this.#redis);
  }

  #session(stream: string, group: string, consumer: string): ConsumerSession {
    let reader: Redis | undefined;
    let cursor = "0-0";
    // XREADGROUP with BLOCK holds its connection, so this consumer reads on its own.
    const readerConnection = () => {
      reader ??= this.#connection();
      return reader;
    };

    return {
      ensureGroup: async () => {
        try {
          await this.#call("XGROUP", ["CREATE", stream, group, "0", "MKSTREAM"]);
        } catch (err) {
          if (!isReplyError(err, "BUSYGROUP")) throw err;
        }
      },

      claim: async (minIdleMs, count) => {
        const reply = await this.#call("XAUTOCLAIM", [
          stream,
          group,
          consumer,
          Math.floor(minIdleMs),
          cursor,
          "COUNT",
          count,
        ]);
        if (!Array.isArray(reply)) return [];
        cursor = typeof reply[0] === "string" ? reply[0] : "0-0";
        const claimed = entriesOf(reply[1], 0);
        // XAUTOCLAIM does not say how often a message was delivered; XPENDING does.
        return Promise.all(
          claimed.map(async (d) => {
            const p = await this.#call("XPENDING", [stream, group, d.id, d.id, 1]);
            const row = Array.isArray(p) ? p[0] : undefined;
            const deliveries = Array.isArray(row) ? Number(row[3]) : Number.NaN;
            return { ...d, deliveries: Number.isFinite(deliveries) ? deliveries : 1 };
          }),
        );
      },

      read: async (count, blockMs) => {
        const block = blockMs > 0 ? ["BLOCK", Math.floor(blockMs)] : [];
        const args = ["GROUP", group, consumer, "COUNT", count, ...block, "STREAMS", stream, ">"];
        const reply = await this.#call("XREADGROUP", args, readerConnection());
        if (!Array.isArray(reply)) return [];
        const forStream = reply.find((r) => Array.isArray(r) && r[0] === stream);
        return entriesOf(Array.isArray(forStream) ? forStream[1] : [], 1);
      },

      touch: async (ids) => {
        if (ids.length > 0) await this.#call("EVAL", [TOUCH_SCRIPT, 1, stream, group, consumer, ...ids]);
      },

      ack: async (id) => {
        await this.#call("XACK", [stream, group, id]);
      },

      deadLetter: async (letter) => {
        if (this.#closed) throw new QueueClosedError();
        const results = await this.#redis
          .multi()
          .call("XADD", [deadLetterStream(stream), "*", "m", encodeMessage({ ...letter })])
          .call("XACK", [stream, group, letter.id])
          .exec();
        if (results === null) throw new Error(`dead-lettering ${letter.id}: transaction aborted`);
        const failed = results.find(([err]) => err !== null)?.[0];
        if (failed) throw failed;
      },

      // Closing the reader ends a blocking read at once; whatever the server had already handed it stays
      // pending and is claimed by the group later, so nothing is lost.
      interrupt: () => {
        if (reader !== undefined) drop(reader);
      },
      close: async () => {
        if (reader !== undefined) drop(reader);
      },
    };
  }
}
