/**
 * The executor's metrics: per instance counters, requests in flight and a latency histogram, block
 * totals and policy fallbacks. `blockMetrics()` is the JSON the load balancer policies read through
 * `aios_get_metrics` (block_metrics.instances.<id>.in_flight); `prometheus()` is the text exposition
 * served on the metrics port.
 */

import { authHeaders } from "../auth/credential.ts";

/** Upper bounds in milliseconds; a last +Inf bucket is implied. */
export const LATENCY_BUCKETS_MS = [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000] as const;

export interface InstanceMetricsJson {
  in_flight: number;
  requests_total: number;
  errors_total: number;
  /** Estimated from the histogram; null before the first completed request. */
  latency_ms: { p50: number | null; p99: number | null };
}

export interface BlockMetricsJson {
  block_id: string;
  instances: Record<string, InstanceMetricsJson>;
  /** Since the executor started, counting instances since removed too, so rates never go negative. */
  requests_total: number;
  errors_total: number;
  in_flight: number;
  policy_fallbacks_total: number;
  /** Over the last 10 to 20 seconds (what a live chart shows), not since start. */
  recent_latency_ms: { p50: number | null; p99: number | null };
}

/** How long one recent-latency histogram collects before it becomes the previous one. */
const RECENT_WINDOW_MS = 10_000;

/** A fixed-bucket histogram (cumulative counts are computed when read). */
export class LatencyHistogram {
  /** counts[i] for LATENCY_BUCKETS_MS[i]; the last entry is +Inf. */
  readonly counts: number[] = new Array<number>(LATENCY_BUCKETS_MS.length + 1).fill(0);
  sum = 0;
  count = 0;
  max = 0;

  /** A histogram of both: what two consecutive windows saw together. */
  static merge(a: LatencyHistogram, b: LatencyHistogram): LatencyHistogram {
    const m = new LatencyHistogram();
    for (let i = 0; i < m.counts.length; i++) m.counts[i] = (a.counts[i] ?? 0) + (b.counts[i] ?? 0);
    m.sum = a.sum + b.sum;
    m.count = a.count + b.count;
    m.max = Math.max(a.max, b.max);
    return m;
  }

  observe(ms: number): void {
    let i = LATENCY_BUCKETS_MS.findIndex((le) => ms <= le);
    if (i < 0) i = LATENCY_BUCKETS_MS.length;
    this.counts[i] = (this.counts[i] ?? 0) + 1;
    this.sum += ms;
    this.count += 1;
    if (ms > this.max) this.max = ms;
  }

  /**
   * The q-quantile by linear interpolation inside the bucket that holds it (as Prometheus'
   * histogram_quantile does); the +Inf bucket is bounded by the largest value seen.
   */
  quantile(q: number): number | null {
    if (this.count === 0) return null;
    const rank = q * this.count;
    let seen = 0;
    for (let i = 0; i < this.counts.length; i++) {
      const n = this.counts[i] ?? 0;
      if (n > 0 && seen + n >= rank) {
        const lower = i === 0 ? 0 : (LATENCY_BUCKETS_MS[i - 1] ?? 0);
        const upper = Math.min(LATENCY_BUCKETS_MS[i] ?? this.max, this.max);
        const value = lower + (Math.max(upper, lower) - lower) * ((rank - seen) / n);
        return Math.round(value * 1000) / 1000;
      }
      seen += n;
    }
    return this.max;
  }
}

interface InstanceMetrics {
  requests: number;
  errors: number;
  inFlight: number;
  latency: LatencyHistogram;
}

const escapeLabel = (value: string): string =>
  value.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");

export class BlockMetrics {
  readonly #instances = new Map<string, InstanceMetrics>();
  readonly #fallbacks = new Map<string, number>();
  #requests = 0;
  #errors = 0;
  // Two rotating windows: the recent latency covers the current one and the one before it.
  #recent = new LatencyHistogram();
  #previous = new LatencyHistogram();
  #recentSince = Date.now();

  constructor(readonly blockId: string) {}

  #instance(id: string): InstanceMetrics {
    let m = this.#instances.get(id);
    if (!m) {
      m = { requests: 0, errors: 0, inFlight: 0, latency: new LatencyHistogram() };
      this.#instances.set(id, m);
    }
    return m;
  }

  /** Makes an instance visible (zeros) before it serves anything, so policies see every instance. */
  track(id: string): void {
    this.#instance(id);
  }

  /** Drops instances no longer in the block, so the JSON follows the instance list. */
  retain(ids: readonly string[]): void {
    const keep = new Set(ids);
    for (const id of this.#instances.keys()) if (!keep.has(id)) this.#instances.delete(id);
    for (const id of ids) this.track(id);
  }

  /** A request forwarded to `id` starts; call the returned function once it ends. */
  start(id: string): (outcome: { ok: boolean }) => void {
    const m = this.#instance(id);
    m.inFlight += 1;
    const began = performance.now();
    let done = false;
    return ({ ok }) => {
      if (done) return;
      done = true;
      // The instance may have been removed meanwhile: count on the record the request started with.
      m.inFlight -= 1;
      m.requests += 1;
      this.#requests += 1;
      if (!ok) {
        m.errors += 1;
        this.#errors += 1;
      }
      const ms = performance.now() - began;
      m.latency.observe(ms);
      this.#rotate();
      this.#recent.observe(ms);
    };
  }

  #rotate(): void {
    const now = Date.now();
    if (now - this.#recentSince < RECENT_WINDOW_MS) return;
    // A quiet spell longer than two windows leaves nothing recent.
    this.#previous = now - this.#recentSince < 2 * RECENT_WINDOW_MS ? this.#recent : new LatencyHistogram();
    this.#recent = new LatencyHistogram();
    this.#recentSince = now;
  }

  policyFallback(code: string): void {
    this.#fallbacks.set(code, (this.#fallbacks.get(code) ?? 0) + 1);
  }

  get policyFallbacks(): ReadonlyMap<string, number> {
    return this.#fallbacks;
  }

  instance(id: string): InstanceMetricsJson | undefined {
    const m = this.#instances.get(id);
    return m ? this.#json(m) : undefined;
  }

  #json(m: InstanceMetrics): InstanceMetricsJson {
    return {
      in_flight: m.inFlight,
      requests_total: m.requests,
      errors_total: m.errors,
      latency_ms: { p50: m.latency.quantile(0.5), p99: m.latency.quantile(0.99) },
    };
  }

  blockMetrics(): BlockMetricsJson {
    const instances: Record<string, InstanceMetricsJson> = {};
    let inFlight = 0;
    for (const [id, m] of this.#instances) {
      instances[id] = this.#json(m);
      inFlight += m.inFlight;
    }
    this.#rotate();
    const recent = LatencyHistogram.merge(this.#recent, this.#previous);
    let fallbacks = 0;
    for (const n of this.#fallbacks.values()) fallbacks += n;
    return {
      block_id: this.blockId,
      instances,
      requests_total: this.#requests,
      errors_total: this.#errors,
      in_flight: inFlight,
      policy_fallbacks_total: fallbacks,
      recent_latency_ms: { p50: recent.quantile(0.5), p99: recent.quantile(0.99) },
    };
  }

  /** Prometheus text exposition format 0.0.4. */
  prometheus(): string {
    const block = escapeLabel(this.blockId);
    const lines: string[] = [];
    const family = (name: string, type: string, help: string) => {
      lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    };
    const each = (name: string, value: (m: InstanceMetrics) => number) => {
      for (const [id, m] of this.#instances) {
        lines.push(`${name}{block="${block}",instance="${escapeLabel(id)}"} ${value(m)}`);
      }
    };
    family("aios_executor_requests_total", "counter", "Requests forwarded to an instance, by instance.");
    each("aios_executor_requests_total", (m) => m.requests);
    family("aios_executor_errors_total", "counter", "Requests an instance failed (5xx, network, timeout).");
    each("aios_executor_errors_total", (m) => m.errors);
    family("aios_executor_in_flight", "gauge", "Requests currently forwarded to an instance.");
    each("aios_executor_in_flight", (m) => m.inFlight);
    const h = "aios_executor_request_duration_ms";
    family(h, "histogram", "Latency of requests forwarded to an instance, in milliseconds.");
    for (const [id, m] of this.#instances) {
      const labels = `block="${block}",instance="${escapeLabel(id)}"`;
      let cumulative = 0;
      LATENCY_BUCKETS_MS.forEach((le, i) => {
        cumulative += m.latency.counts[i] ?? 0;
        lines.push(`${h}_bucket{${labels},le="${le}"} ${cumulative}`);
      });
      lines.push(`${h}_bucket{${labels},le="+Inf"} ${m.latency.count}`);
      lines.push(`${h}_sum{${labels}} ${m.latency.sum}`);
      lines.push(`${h}_count{${labels}} ${m.latency.count}`);
    }
    family(
      "aios_executor_policy_fallbacks_total",
      "counter",
      "Requests routed round-robin because the load balancer policy failed, by error code.",
    );
    for (const [code, n] of this.#fallbacks) {
      lines.push(`aios_executor_policy_fallbacks_total{block="${block}",code="${escapeLabel(code)}"} ${n}`);
    }
    return `${lines.join("\n")}\n`;
  }
}

/** An instance's own `GET /metrics` JSON (src/instance/metrics.ts), as far as the block reads it. */
export type InstanceReport = Record<string, unknown>;

/**
 * Reads every instance's `GET /metrics` at once, each bounded by `timeoutMs`; an instance that does
 * not answer is simply absent (the health checker judges it, not the metrics).
 */
export const fetchInstanceReports = async (
  instances: readonly { id: string; url: string }[],
  timeoutMs = 2000,
): Promise<Map<string, InstanceReport>> => {
  const reports = new Map<string, InstanceReport>();
  await Promise.all(
    instances.map(async (i) => {
      try {
        const res = await fetch(`${i.url.replace(/\/+$/, "")}/metrics`, {
          headers: authHeaders(),
          signal: AbortSignal.timeout(timeoutMs),
        });
        if (!res.ok) return;
        const body = (await res.json()) as unknown;
        if (body !== null && typeof body === "object" && !Array.isArray(body)) {
          reports.set(i.id, body as InstanceReport);
        }
      } catch {
        // Unreachable or not JSON: no report.
      }
    }),
  );
  return reports;
};

/**
 * The block metrics policies read: the executor's view of each instance (requests, in flight,
 * latency) over the instance's own report (CPU, memory, queue, tasks, custom metrics).
 */
export const withInstanceReports = (
  block: BlockMetricsJson,
  reports: ReadonlyMap<string, InstanceReport>,
): BlockMetricsJson => {
  const instances: Record<string, InstanceMetricsJson> = {};
  for (const [id, executorView] of Object.entries(block.instances)) {
    const { instance_id: _i, block_id: _b, ...own } = reports.get(id) ?? {};
    instances[id] = { ...own, ...executorView };
  }
  return { ...block, instances };
};
