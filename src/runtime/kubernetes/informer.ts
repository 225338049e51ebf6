/**
 * A cache of one kind of object kept current by a list and then a watch (client-node's ListWatch):
 * the driver reads pods and nodes from here instead of asking the API server on every call, and hears
 * about changes as they happen.
 *
 * ListWatch re-lists after a 410 Gone and resumes a watch the server closed, but stops for good on
 * any other error (the API server restarting, a network cut). Here every error restarts it after a
 * backoff (1 s doubling to 30 s), so the cache heals on its own.
 */
import {
  type KubeConfig,
  type KubernetesListObject,
  type KubernetesObject,
  ListWatch,
  Watch,
} from "@kubernetes/client-node";

export type InformerEvent = "add" | "update" | "delete";

export interface InformerOptions<T extends KubernetesObject> {
  kubeConfig: KubeConfig;
  /** The watch path, e.g. `/api/v1/namespaces/ns/pods`. */
  path: string;
  list: () => Promise<KubernetesListObject<T>>;
  labelSelector?: string;
  /** Longest wait after an error before the next attempt; default 30 s. */
  maxBackoffMs?: number;
  onError?: (err: unknown) => void;
}

export class Informer<T extends KubernetesObject> {
  readonly #options: InformerOptions<T>;
  readonly #listeners = new Set<(event: InformerEvent, obj: T) => void>();
  #lw: ListWatch<T> | null = null;
  #stopped = false;
  #backoffMs = 0;
  #timer: ReturnType<typeof setTimeout> | null = null;
  #synced = false;
  readonly #syncWaiters: (() => void)[] = [];
  /** Errors since the last successful list, for a clear message when it never syncs. */
  #lastError: unknown = null;

  constructor(options: InformerOptions<T>) {
    this.#options = options;
  }

  get synced(): boolean {
    return this.#synced;
  }

  get lastError(): unknown {
    return this.#lastError;
  }

  on(listener: (event: InformerEvent, obj: T) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  list(): T[] {
    return [...(this.#lw?.list() ?? [])];
  }

  get(name: string, namespace?: string): T | undefined {
    return this.#lw?.get(name, namespace);
  }

  /** Starts listing and watching; resolves once the first list arrived, rejects after `timeoutMs`. */
  async start(timeoutMs = 30_000): Promise<void> {
    this.#stopped = false;
    if (!this.#lw) this.#connect();
    if (this.#synced) return;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        const at = this.#syncWaiters.indexOf(done);
        if (at >= 0) this.#syncWaiters.splice(at, 1);
        const why = this.#lastError instanceof Error ? `: ${this.#lastError.message}` : "";
        reject(new Error(`could not list ${this.#options.path} within ${timeoutMs} ms${why}`));
      }, timeoutMs);
      const done = () => {
        clearTimeout(timer);
        resolve();
      };
      this.#syncWaiters.push(done);
    });
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    const lw = this.#lw;
    this.#lw = null;
    await lw?.stop();
  }

  #connect(): void {
    const o = this.#options;
    // Watch's inactivity timeout (30 s) reopens a quiet watch from the last resource version, which
    // also finds a connection that died silently.
    const watch = new Watch(o.kubeConfig);
    // Sync is reached once the list answered: the list function is wrapped to notice it.
    const list = async () => {
      const result = await o.list();
      this.#lastError = null;
      this.#backoffMs = 0;
      // After ListWatch has filled its cache from this list (its continuation runs first).
      setImmediate(() => this.#markSynced());
      return result;
    };
    const lw = new ListWatch<T>(o.path, watch, list, false, o.labelSelector);
    lw.on("add", (obj) => this.#emit("add", obj));
    lw.on("update", (obj) => this.#emit("update", obj));
    lw.on("delete", (obj) => this.#emit("delete", obj));
    lw.on("error", (err) => this.#retry(lw, err));
    this.#lw = lw;
    lw.start().catch((err: unknown) => this.#retry(lw, err));
  }

  #markSynced(): void {
    this.#synced = true;
    for (const w of this.#syncWaiters.splice(0)) w();
  }

  #retry(lw: ListWatch<T>, err: unknown): void {
    this.#lastError = err;
    this.#options.onError?.(err);
    if (this.#stopped || this.#lw !== lw) return;
    this.#backoffMs = Math.min(
      this.#backoffMs > 0 ? this.#backoffMs * 2 : 1000,
      this.#options.maxBackoffMs ?? 30_000,
    );
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = setTimeout(() => {
      this.#timer = null;
      // The same ListWatch resumes from its last resource version; its cache (and so deletions seen
      // by the next list) carries over.
      if (!this.#stopped && this.#lw === lw) lw.start().catch((e: unknown) => this.#retry(lw, e));
    }, this.#backoffMs);
    this.#timer.unref?.();
  }

  #emit(event: InformerEvent, obj: T): void {
    for (const l of this.#listeners) {
      try {
        l(event, obj);
      } catch (err) {
        console.error("[aios] kubernetes informer listener failed:", err);
      }
    }
  }
}
