/**
 * The in-process queue, the embedded default: streams, groups and pending lists kept in memory with Redis
 * Streams' semantics (ids `<ms>-<seq>`, groups reading from the first message, a message pending until
 * acknowledged, claims by idle time, delivery counts). Nothing survives the process; messages are JSON
 * round-tripped as Redis would store them, so handlers cannot tell the drivers apart.
 */
import { type ConsumerSession, ConsumerSet, encodeMessage, type RawDelivery } from "./consumer.ts";
import {
  type ConsumeOptions,
  type Consumer,
  type DeadLetter,
  deadLetterStream,
  type EventQueue,
  type MessageHandler,
  QueueClosedError,
} from "./types.ts";

interface Entry {
  id: string;
  body: string;
}

interface Pending {
  consumer: string;
  deliveredAt: number;
  deliveries: number;
}

interface Group {
  /** Index in `entries` of the first message not yet delivered to the group. */
  next: number;
  pending: Map<string, Pending>;
}

interface Stream {
  entries: Entry[];
  /** Index in `entries` by id (entries are never removed). */
  index: Map<string, number>;
  groups: Map<string, Group>;
  /** Reads waiting for a new message. */
  waiters: Set<() => void>;
}

export class MemoryQueue implements EventQueue {
  readonly #streams = new Map<string, Stream>();
  readonly #consumers = new ConsumerSet();
  #lastMs = 0;
  #seq = 0;
  #closed = false;

  #stream(name: string): Stream {
    let s = this.#streams.get(name);
    if (s === undefined) {
      s = { entries: [], index: new Map(), groups: new Map(), waiters: new Set() };
      this.#streams.set(name, s);
    }
    return s;
  }

  #nextId(): string {
    const now = Date.now();
    if (now > this.#lastMs) {
      this.#lastMs = now;
      this.#seq = 0;
    } else this.#seq++;
    return `${this.#lastMs}-${this.#seq}`;
  }

  #append(stream: string, body: string): string {
    const s = this.#stream(stream);
    const id = this.#nextId();
    s.index.set(id, s.entries.length);
    s.entries.push({ id, body });
    for (const wake of [...s.waiters]) wake();
    return id;
  }

  async publish(stream: string, message: Record<string, unknown>): Promise<string> {
    if (this.#closed) throw new QueueClosedError();
    return this.#append(stream, encodeMessage(message));
  }

  async pending(stream: string, group: string): Promise<number> {
    if (this.#closed) throw new QueueClosedError();
    return this.#streams.get(stream)?.groups.get(group)?.pending.size ?? 0;
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
    this.#closed = true;
    await this.#consumers.stopAll();
  }

  #session(stream: string, groupName: string, consumer: string): ConsumerSession {
    const group = (): Group => {
      const g = this.#streams.get(stream)?.groups.get(groupName);
      if (g === undefined) throw new Error(`NOGROUP: no stream ${stream} or group ${groupName}`);
      return g;
    };
    const body = (id: string): string | null => {
      const s = this.#streams.get(stream);
      const i = s?.index.get(id);
      return i === undefined ? null : (s?.entries[i]?.body ?? null);
    };
    let interrupt: (() => void) | undefined;

    return {
      ensureGroup: async () => {
        const s = this.#stream(stream);
        if (!s.groups.has(groupName)) s.groups.set(groupName, { next: 0, pending: new Map() });
      },

      claim: async (minIdleMs, count) => {
        const g = group();
        const now = Date.now();
        const s = this.#stream(stream);
        // In id order, as XAUTOCLAIM scans.
        const due = [...g.pending.entries()]
          .filter(([, p]) => now - p.deliveredAt >= minIdleMs)
          .sort(([a], [b]) => (s.index.get(a) ?? 0) - (s.index.get(b) ?? 0))
          .slice(0, count);
        return due.map(([id, p]): RawDelivery => {
          p.consumer = consumer;
          p.deliveredAt = now;
          p.deliveries++;
          return { id, body: body(id), deliveries: p.deliveries };
        });
      },

      read: async (count, blockMs) => {
        const s = this.#stream(stream);
        const take = (): RawDelivery[] => {
          const g = group();
          const now = Date.now();
          const out: RawDelivery[] = [];
          while (out.length < count && g.next < s.entries.length) {
            const e = s.entries[g.next++];
            if (e === undefined) break;
            g.pending.set(e.id, { consumer, deliveredAt: now, deliveries: 1 });
            out.push({ id: e.id, body: e.body, deliveries: 1 });
          }
          return out;
        };
        const now = take();
        if (now.length > 0 || blockMs === 0) return now;
        const woken = await new Promise<"message" | "timeout" | "interrupted">((resolve) => {
          const done = (why: "message" | "timeout" | "interrupted") => {
            clearTimeout(timer);
            s.waiters.delete(onMessage);
            interrupt = undefined;
            resolve(why);
          };
          const onMessage = () => done("message");
          const timer = setTimeout(() => done("timeout"), blockMs);
          s.waiters.add(onMessage);
          interrupt = () => done("interrupted");
        });
        // An interrupted read takes nothing, so a stopping consumer is not left holding new messages.
        return woken === "interrupted" ? [] : take();
      },

      touch: async (ids) => {
        const g = group();
        const now = Date.now();
        for (const id of ids) {
          const p = g.pending.get(id);
          // Only while it is still ours: a message another consumer claimed is not taken back.
          if (p !== undefined && p.consumer === consumer) p.deliveredAt = now;
        }
      },

      ack: async (id) => {
        group().pending.delete(id);
      },

      deadLetter: async (letter: DeadLetter) => {
        this.#append(deadLetterStream(stream), encodeMessage({ ...letter }));
        group().pending.delete(letter.id);
      },

      interrupt: () => interrupt?.(),
      close: async () => {},
    };
  }
}
