/**
 * The block's mapper (block-spec-and-allocation.md, "Mapper service"): keeps the live instance list
 * and pushes every change to its subscribers (the executor, the auto-scaler, the health checker), so a
 * new instance takes traffic and a removed one stops taking it without a restart.
 *
 * The list changes two ways: pushed (`set`, `upsert`, `remove`; the controller calls the mapper's
 * HTTP API when it starts or stops an instance) and polled (a `source` read every `intervalMs`, the
 * specification's periodic monitoring). Subscribers hear only real changes, in order.
 */
import { z } from "zod";
import { authHeaders } from "../auth/credential.ts";
import { parseWith } from "../http/errors.ts";

export interface InstanceRef {
  id: string;
  /** Base URL of the instance's task protocol, e.g. `http://10.0.0.5:8000`. */
  url: string;
}

export interface InstanceChange {
  instances: readonly InstanceRef[];
  added: readonly string[];
  removed: readonly string[];
  /** Ids whose URL changed (a restarted instance on a new port). */
  moved: readonly string[];
  version: number;
}

export type InstanceSubscriber = (change: InstanceChange) => void;

/** Where the mapper reads the instance list from on each poll. */
export interface InstanceSource {
  readonly description: string;
  list(signal: AbortSignal): Promise<InstanceRef[]>;
}

/** `{id, url}`; `instance_id` is accepted for `id` (the controller's documents use it). */
export const InstanceRefSchema = z.preprocess(
  (v) =>
    v !== null && typeof v === "object" && !("id" in v) && "instance_id" in v
      ? { ...v, id: (v as { instance_id: unknown }).instance_id }
      : v,
  z.object({
    id: z.string().min(1).max(253),
    url: z.url({ protocol: /^https?$/ }),
  }),
);

export const InstanceListSchema = z.array(InstanceRefSchema);

/** Reads a list of instances (an array, or `{instances}`, or `{data: {instances}}`); 400 naming the field. */
export const readInstanceList = (body: unknown, at = "instances"): InstanceRef[] => {
  let list: unknown = body;
  if (list !== null && typeof list === "object" && !Array.isArray(list)) {
    const o = list as Record<string, unknown>;
    list = "instances" in o ? o.instances : (o.data as Record<string, unknown> | undefined)?.instances;
  }
  return parseWith(InstanceListSchema, list, [at]).map((i) => ({ id: i.id, url: i.url }));
};

/** Polls a URL answering an instance list (e.g. the controller's view of the block). */
export const httpInstanceSource = (url: string, timeoutMs = 5000): InstanceSource => ({
  description: url,
  async list(signal) {
    const res = await fetch(url, {
      headers: authHeaders(),
      signal: AbortSignal.any([signal, AbortSignal.timeout(timeoutMs)]),
    });
    if (!res.ok) throw new Error(`GET ${url}: HTTP ${res.status}`);
    return readInstanceList(await res.json());
  },
});

export interface MapperOptions {
  blockId: string;
  instances?: readonly InstanceRef[];
  source?: InstanceSource | null;
  /** How often the source is read; default 5 s. */
  intervalMs?: number;
}

const dedupe = (list: readonly InstanceRef[]): InstanceRef[] => {
  const byId = new Map<string, InstanceRef>();
  for (const i of list) byId.set(i.id, { id: i.id, url: i.url });
  return [...byId.values()];
};

export class Mapper {
  readonly blockId: string;
  readonly source: InstanceSource | null;
  readonly intervalMs: number;
  #instances: readonly InstanceRef[] = [];
  #version = 0;
  readonly #subscribers = new Set<InstanceSubscriber>();
  #timer: ReturnType<typeof setTimeout> | null = null;
  #abort: AbortController | null = null;
  #lastPoll: { at: number; error: string | null } | null = null;

  constructor(options: MapperOptions) {
    this.blockId = options.blockId;
    this.source = options.source ?? null;
    this.intervalMs = options.intervalMs ?? 5000;
    this.#instances = dedupe(options.instances ?? []);
  }

  get instances(): readonly InstanceRef[] {
    return this.#instances;
  }

  get version(): number {
    return this.#version;
  }

  /** When the source was last read and what went wrong, if anything. */
  get lastPoll(): { at: number; error: string | null } | null {
    return this.#lastPoll;
  }

  /** Tells `subscriber` the current list at once, then every change; returns the unsubscribe. */
  subscribe(subscriber: InstanceSubscriber): () => void {
    this.#subscribers.add(subscriber);
    this.#tell(subscriber, {
      instances: this.#instances,
      added: this.#instances.map((i) => i.id),
      removed: [],
      moved: [],
      version: this.#version,
    });
    return () => this.#subscribers.delete(subscriber);
  }

  /** Replaces the list; subscribers hear of it only if something changed. Returns the change. */
  set(list: readonly InstanceRef[]): InstanceChange | null {
    const next = dedupe(list);
    const before = new Map(this.#instances.map((i) => [i.id, i.url]));
    const after = new Map(next.map((i) => [i.id, i.url]));
    const added = next.filter((i) => !before.has(i.id)).map((i) => i.id);
    const removed = this.#instances.filter((i) => !after.has(i.id)).map((i) => i.id);
    const moved = next.filter((i) => before.has(i.id) && before.get(i.id) !== i.url).map((i) => i.id);
    const reordered =
      added.length === 0 && removed.length === 0 && next.some((i, k) => this.#instances[k]?.id !== i.id);
    if (added.length === 0 && removed.length === 0 && moved.length === 0 && !reordered) return null;
    this.#instances = next;
    this.#version += 1;
    const change: InstanceChange = { instances: next, added, removed, moved, version: this.#version };
    for (const subscriber of this.#subscribers) this.#tell(subscriber, change);
    return change;
  }

  #tell(subscriber: InstanceSubscriber, change: InstanceChange): void {
    try {
      subscriber(change);
    } catch (err) {
      // One faulty subscriber must not keep the others on a stale list.
      console.error(`[mapper ${this.blockId}] a subscriber threw:`, err);
    }
  }

  /** Adds an instance, or updates its URL. */
  upsert(instance: InstanceRef): InstanceChange | null {
    const rest = this.#instances.filter((i) => i.id !== instance.id);
    const at = this.#instances.findIndex((i) => i.id === instance.id);
    if (at < 0) return this.set([...this.#instances, instance]);
    rest.splice(at, 0, instance);
    return this.set(rest);
  }

  remove(id: string): InstanceChange | null {
    return this.set(this.#instances.filter((i) => i.id !== id));
  }

  /** Reads the source once and applies what it says; false (and `lastPoll.error`) when it failed. */
  async poll(): Promise<boolean> {
    if (!this.source) return false;
    this.#abort ??= new AbortController();
    try {
      const list = await this.source.list(this.#abort.signal);
      this.#lastPoll = { at: Date.now(), error: null };
      this.set(list);
      return true;
    } catch (err) {
      // Keep serving the last known list: an unreachable source is not an empty block.
      this.#lastPoll = { at: Date.now(), error: err instanceof Error ? err.message : String(err) };
      return false;
    }
  }

  /** Starts polling the source (no-op without one): at once, then every `intervalMs`. */
  start(): void {
    if (!this.source || this.#timer) return;
    this.#abort = new AbortController();
    const loop = async () => {
      await this.poll();
      if (this.#abort && !this.#abort.signal.aborted) this.#timer = setTimeout(loop, this.intervalMs);
    };
    this.#timer = setTimeout(loop, 0);
  }

  stop(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    this.#abort?.abort();
    this.#abort = null;
  }
}
