/**
 * The aios host functions (HOST_FUNCTIONS in abi.ts) and what a hosting service provides behind them.
 *
 * Policies run inline on the hosting service's thread, so every provider answers synchronously from
 * data the service already holds (its latest metrics, the clusters it fetched for this decision);
 * a policy never waits on the network. Providers a service does not offer answer
 * `{"ok": false, "error": "... not available ..."}`, never a trap.
 */
import type { CallContext } from "@extism/extism";

/** What the specification's Python clients return as `(ok, data)`. */
export type HostResult = { ok: true; data: unknown } | { ok: false; error: string };

/** A policy rule's context store: state kept across calls and across instances of the host. */
export interface ContextStore {
  get(ruleId: string, key: string): unknown;
  set(ruleId: string, key: string, value: unknown): void;
}

export type LogLevel = "debug" | "info" | "warn" | "error";

export interface PolicyHost {
  /** `aios_get_metrics`: `{"block_metrics", "cluster_metrics"}` as the hosting service sees them now. */
  getMetrics?(): unknown;
  /** The cluster client of resource-allocator.md: `read_cluster`, `execute_query`. */
  clusters?: { read(id: string): HostResult; query(filter: unknown): HostResult };
  /** The global cluster metrics client: `get_cluster`, `query_clusters`. */
  metrics?: { get(id: string): HostResult; query(params: unknown): HostResult };
  context?: ContextStore;
  log?(level: LogLevel, message: string): void;
}

/** Limits of the in-memory context store, so a policy cannot grow its host without bound. */
export const CONTEXT_LIMITS = { keysPerRule: 10_000, valueBytes: 64 * 1024 } as const;

/** Thrown inside a host function when the policy misuses it; the call fails as a trap naming why. */
export class HostCallError extends Error {
  override readonly name = "HostCallError";
}

/** The default context store: in this process's memory, per policy rule, bounded. */
export class MemoryContextStore implements ContextStore {
  readonly #rules = new Map<string, Map<string, string>>();

  get(ruleId: string, key: string): unknown {
    const text = this.#rules.get(ruleId)?.get(key);
    return text === undefined ? undefined : JSON.parse(text);
  }

  set(ruleId: string, key: string, value: unknown): void {
    const text = JSON.stringify(value);
    if (text.length > CONTEXT_LIMITS.valueBytes) {
      throw new HostCallError(
        `context value for '${key}' is ${text.length} bytes, over the ${CONTEXT_LIMITS.valueBytes} limit`,
      );
    }
    const rule = this.#rules.get(ruleId) ?? new Map<string, string>();
    this.#rules.set(ruleId, rule);
    if (!rule.has(key) && rule.size >= CONTEXT_LIMITS.keysPerRule) {
      throw new HostCallError(
        `context store of rule '${ruleId}' is full (${CONTEXT_LIMITS.keysPerRule} keys)`,
      );
    }
    rule.set(key, text);
  }
}

/** One store per process unless a service passes its own (e.g. one backed by Redis). */
export const processContextStore = new MemoryContextStore();

const unavailable = (what: string): HostResult => ({
  ok: false,
  error: `${what} is not available to policies of this service`,
});

const readText = (cx: CallContext, offset: bigint, what: string): string => {
  const block = cx.read(offset);
  if (block === null) throw new HostCallError(`${what}: invalid memory offset ${offset}`);
  return block.text();
};

const readJsonArg = (cx: CallContext, offset: bigint, what: string): unknown => {
  const text = readText(cx, offset, what);
  try {
    return JSON.parse(text);
  } catch {
    throw new HostCallError(`${what}: argument is not valid JSON`);
  }
};

const storeJson = (cx: CallContext, value: unknown): bigint => cx.store(JSON.stringify(value ?? null));

/**
 * The `extism:host/user` functions for one policy instance. `current` gives the host and rule of the
 * call in progress, so a service may change providers between calls without re-instantiating.
 */
export const hostFunctions = (current: () => { host: PolicyHost; ruleId: string }) => ({
  aios_get_metrics: (cx: CallContext) => {
    const { host } = current();
    return storeJson(
      cx,
      host.getMetrics ? host.getMetrics() : { block_metrics: null, cluster_metrics: null },
    );
  },
  aios_cluster_read: (cx: CallContext, id: bigint) => {
    const { host } = current();
    const clusterId = readText(cx, id, "aios_cluster_read");
    return storeJson(cx, host.clusters ? host.clusters.read(clusterId) : unavailable("the cluster client"));
  },
  aios_cluster_query: (cx: CallContext, query: bigint) => {
    const { host } = current();
    const filter = readJsonArg(cx, query, "aios_cluster_query");
    return storeJson(cx, host.clusters ? host.clusters.query(filter) : unavailable("the cluster client"));
  },
  aios_metrics_get: (cx: CallContext, id: bigint) => {
    const { host } = current();
    const clusterId = readText(cx, id, "aios_metrics_get");
    return storeJson(
      cx,
      host.metrics ? host.metrics.get(clusterId) : unavailable("the cluster metrics client"),
    );
  },
  aios_metrics_query: (cx: CallContext, params: bigint) => {
    const { host } = current();
    const query = readJsonArg(cx, params, "aios_metrics_query");
    return storeJson(
      cx,
      host.metrics ? host.metrics.query(query) : unavailable("the cluster metrics client"),
    );
  },
  aios_context_get: (cx: CallContext, key: bigint) => {
    const { host, ruleId } = current();
    const value = (host.context ?? processContextStore).get(ruleId, readText(cx, key, "aios_context_get"));
    return value === undefined ? 0n : storeJson(cx, value);
  },
  aios_context_set: (cx: CallContext, key: bigint, value: bigint) => {
    const { host, ruleId } = current();
    const name = readText(cx, key, "aios_context_set");
    (host.context ?? processContextStore).set(ruleId, name, readJsonArg(cx, value, "aios_context_set"));
  },
});
