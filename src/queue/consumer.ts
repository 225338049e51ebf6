/**
 * The consumer loop both drivers share, so their semantics cannot drift apart: claim what has been idle
 * too long, read new messages, hand them to the handler one at a time, acknowledge on success, dead-letter
 * after `maxDeliveries`. A driver supplies only the primitives, as a `ConsumerSession`.
 */
import type { ConsumeOptions, Consumer, DeadLetter, MessageHandler } from "./types.ts";

/** A delivery as a driver sees it: `body` is the stored JSON text, null when the entry was deleted. */
export interface RawDelivery {
  id: string;
  body: string | null;
  deliveries: number;
}

/** One consumer's view of a stream and group. */
export interface ConsumerSession {
  /** Creates the group (and stream) when missing, reading from the first message; idempotent. */
  ensureGroup(): Promise<void>;
  /** Takes over messages of the group pending at least `minIdleMs` (this consumer's own included). */
  claim(minIdleMs: number, count: number): Promise<RawDelivery[]>;
  /** New messages, waiting up to `blockMs` for one (0: no wait). */
  read(count: number, blockMs: number): Promise<RawDelivery[]>;
  /** Resets the idle time of messages this consumer holds, without counting a delivery. */
  touch(ids: readonly string[]): Promise<void>;
  ack(id: string): Promise<void>;
  /** Appends `letter` to the dead-letter stream and acknowledges the message, atomically. */
  deadLetter(letter: DeadLetter): Promise<void>;
  /** Makes a waiting `read` return (or reject) now. */
  interrupt(): void;
  close(): Promise<void>;
}

export const DEFAULTS = { blockMs: 2000, batch: 10, claimIdleMs: 30_000, maxDeliveries: 5 } as const;

export interface ConsumerNames {
  stream: string;
  group: string;
  consumer: string;
}

/** A stored body back to the message; throws when it is not a JSON object. */
export const decodeMessage = (body: string): Record<string, unknown> => {
  const value: unknown = JSON.parse(body);
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new TypeError("the stored message is not a JSON object");
  }
  return value as Record<string, unknown>;
};

/** The message to store, as JSON; what a handler gets back is what JSON keeps of it (as with Redis). */
export const encodeMessage = (message: Record<string, unknown>): string => {
  if (message === null || typeof message !== "object" || Array.isArray(message)) {
    throw new TypeError("message: must be a JSON object");
  }
  return JSON.stringify(message);
};

const describeError = (err: unknown): string => {
  if (err instanceof Error) return `${err.name}: ${err.message}`;
  if (typeof err === "string") return err;
  try {
    return JSON.stringify(err) ?? String(err);
  } catch {
    return String(err);
  }
};

const atLeast = (name: string, v: number | undefined, fallback: number, min: number): number => {
  if (v === undefined) return fallback;
  if (!Number.isFinite(v) || v < min) throw new RangeError(`${name}: must be a number >= ${min}, got ${v}`);
  return v;
};

/** Starts the loop; `onStopped` runs once it has ended and the session is closed. */
export const startConsumer = (
  session: ConsumerSession,
  names: ConsumerNames,
  handler: MessageHandler,
  options: ConsumeOptions = {},
  onStopped: () => void = () => {},
): Consumer => {
  const blockMs = atLeast("blockMs", options.blockMs, DEFAULTS.blockMs, 0);
  const batch = Math.floor(atLeast("batch", options.batch, DEFAULTS.batch, 1));
  const claimIdleMs = atLeast("claimIdleMs", options.claimIdleMs, DEFAULTS.claimIdleMs, 1);
  const maxDeliveries = Math.floor(
    atLeast("maxDeliveries", options.maxDeliveries, DEFAULTS.maxDeliveries, 1),
  );
  const onError =
    options.onError ??
    ((err: unknown) =>
      console.error(`queue consumer ${names.stream} ${names.group}/${names.consumer}:`, describeError(err)));
  const report = (err: unknown) => {
    try {
      onError(err);
    } catch {
      // a failing error reporter must not end the loop
    }
  };

  let stopping = false;
  let wake: (() => void) | undefined;
  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        wake = undefined;
        resolve();
      };
      const timer = setTimeout(done, ms);
      wake = done;
    });

  const letter = (id: string, message: unknown, deliveries: number, error: string): DeadLetter => ({
    stream: names.stream,
    group: names.group,
    id,
    message,
    deliveries,
    error,
    ts: Date.now(),
  });

  const handleOne = async (d: RawDelivery) => {
    if (d.body === null) {
      // Deleted from the stream while pending: nothing left to deliver.
      await session.ack(d.id);
      return;
    }
    let message: Record<string, unknown>;
    try {
      message = decodeMessage(d.body);
    } catch (err) {
      await session.deadLetter(letter(d.id, d.body, d.deliveries, `undecodable: ${describeError(err)}`));
      return;
    }
    if (d.deliveries > maxDeliveries) {
      // Its consumers keep dying on it (a crash, not a throw), so the handler never reported an error.
      const error = `not acknowledged after ${d.deliveries - 1} deliveries (its consumer stopped or died)`;
      await session.deadLetter(letter(d.id, message, d.deliveries - 1, error));
      return;
    }
    let failure: { error: unknown } | undefined;
    try {
      await handler({ id: d.id, message, deliveries: d.deliveries });
    } catch (error) {
      failure = { error };
    }
    if (failure === undefined) await session.ack(d.id);
    else if (d.deliveries >= maxDeliveries) {
      await session.deadLetter(letter(d.id, message, d.deliveries, describeError(failure.error)));
    }
    // Otherwise it stays pending and is claimed again after claimIdleMs.
  };

  const handleAll = async (deliveries: RawDelivery[]) => {
    if (deliveries.length === 0) return;
    const inHand = new Set(deliveries.map((d) => d.id));
    const beat = setInterval(
      () => {
        if (inHand.size > 0) session.touch([...inHand]).catch(report);
      },
      Math.max(5, claimIdleMs / 3),
    );
    try {
      for (const d of deliveries) {
        if (stopping) return; // the rest stays pending for the group
        await handleOne(d);
        inHand.delete(d.id);
      }
    } finally {
      clearInterval(beat);
    }
  };

  const loop = async () => {
    let groupReady = false;
    let failures = 0;
    while (!stopping) {
      try {
        if (!groupReady) {
          await session.ensureGroup();
          groupReady = true;
        }
        const claimed = await session.claim(claimIdleMs, batch);
        await handleAll(claimed);
        if (stopping) break;
        // Right after claims, do not wait: more may be claimable, and new ones are read either way.
        await handleAll(await session.read(batch, claimed.length > 0 ? 0 : blockMs));
        failures = 0;
      } catch (err) {
        if (stopping) break;
        // The group may be gone with its stream (deleted): create it again on the next round.
        groupReady = false;
        failures++;
        report(err);
        await sleep(Math.min(5000, 100 * 2 ** failures));
      }
    }
  };

  const running = loop();
  let stopped: Promise<void> | undefined;
  return {
    stop() {
      if (stopped === undefined) {
        stopping = true;
        session.interrupt();
        wake?.();
        stopped = running
          .then(() => session.close())
          .catch(report)
          .finally(onStopped);
      }
      return stopped;
    },
  };
};

/** The consumers a driver started, so `close()` can stop them all (both drivers keep one). */
export class ConsumerSet {
  readonly #consumers = new Set<Consumer>();

  start(
    session: ConsumerSession,
    names: ConsumerNames,
    handler: MessageHandler,
    options?: ConsumeOptions,
  ): Consumer {
    const c = startConsumer(session, names, handler, options, () => this.#consumers.delete(c));
    this.#consumers.add(c);
    return c;
  }

  /** Stops every consumer, waiting for the handlers in progress. */
  async stopAll(): Promise<void> {
    await Promise.all([...this.#consumers].map((c) => c.stop()));
  }
}
