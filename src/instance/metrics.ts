/**
 * An instance's metrics: tasks served and failed, tasks in flight and queued, a latency histogram,
 * process CPU and memory, and the developer's own counters and gauges (`metrics.counter("hits").inc()`,
 * `metrics.gauge("cache_size").set(42)`), reported under `custom`. `json()` is `GET /metrics`,
 * `prometheus()` is `GET /metrics?format=prometheus`.
 */
import { LATENCY_BUCKETS_MS, LatencyHistogram } from "../block/metrics.ts";

export interface Counter {
  inc(n?: number): void;
  readonly value: number;
}

export interface Gauge {
  set(v: number): void;
  inc(n?: number): void;
  dec(n?: number): void;
  readonly value: number;
}

export interface InstanceMetricsJson {
  instance_id: string;
  block_id: string;
  tasks_total: number;
  tasks_failed: number;
  in_flight: number;
  latency_ms: { p50: number | null; p99: number | null };
  /** Process CPU time over wall time since the previous read (or since start), in percent of one core. */
  cpu_percent: number;
  /** Resident set size. */
  memory_bytes: number;
  /** Tasks waiting for a free slot when the instance limits its concurrency. */
  queue: number;
  custom: Record<string, number>;
}

const escapeLabel = (v: string): string =>
  v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");

/** A custom metric name as a Prometheus metric name: anything outside `[a-zA-Z0-9_]` becomes `_`. */
const promName = (name: string): string => `aios_instance_custom_${name.replace(/[^a-zA-Z0-9_]/g, "_")}`;

const finite = (v: number, what: string): number => {
  if (!Number.isFinite(v)) throw new TypeError(`${what} must be a finite number, got ${v}`);
  return v;
};

export class InstanceMetrics {
  tasksTotal = 0;
  tasksFailed = 0;
  inFlight = 0;
  queue = 0;
  readonly latency = new LatencyHistogram();
  readonly #counters = new Map<string, Counter>();
  readonly #gauges = new Map<string, Gauge>();
  #lastCpu = process.cpuUsage();
  #lastAt = performance.now();

  constructor(
    readonly instanceId: string,
    readonly blockId = "",
  ) {}

  /** A monotonically increasing custom metric; the same object for the same name. */
  counter(name: string): Counter {
    this.#checkName(name, this.#gauges);
    let c = this.#counters.get(name);
    if (!c) {
      let value = 0;
      c = {
        inc: (n = 1) => {
          if (finite(n, `counter ${name} increment`) < 0) {
            throw new RangeError(`counter ${name} can only go up, got ${n}`);
          }
          value += n;
        },
        get value() {
          return value;
        },
      };
      this.#counters.set(name, c);
    }
    return c;
  }

  /** A custom metric that goes up and down; the same object for the same name. */
  gauge(name: string): Gauge {
    this.#checkName(name, this.#counters);
    let g = this.#gauges.get(name);
    if (!g) {
      let value = 0;
      g = {
        set: (v) => {
          value = finite(v, `gauge ${name}`);
        },
        inc: (n = 1) => {
          value += finite(n, `gauge ${name} increment`);
        },
        dec: (n = 1) => {
          value -= finite(n, `gauge ${name} decrement`);
        },
        get value() {
          return value;
        },
      };
      this.#gauges.set(name, g);
    }
    return g;
  }

  #checkName(name: string, other: Map<string, unknown>): void {
    if (name === "") throw new TypeError("a custom metric needs a name");
    if (other.has(name)) throw new TypeError(`custom metric ${name} already exists with another type`);
  }

  /** A task starts running; call the returned function once with whether it succeeded. */
  start(): (ok: boolean) => void {
    this.inFlight += 1;
    const began = performance.now();
    let done = false;
    return (ok) => {
      if (done) return;
      done = true;
      this.inFlight -= 1;
      this.tasksTotal += 1;
      if (!ok) this.tasksFailed += 1;
      this.latency.observe(performance.now() - began);
    };
  }

  #cpuPercent(): number {
    const now = performance.now();
    const usage = process.cpuUsage(this.#lastCpu);
    const wallMs = now - this.#lastAt;
    this.#lastCpu = process.cpuUsage();
    this.#lastAt = now;
    if (wallMs <= 0) return 0;
    return Math.round(((usage.user + usage.system) / 1000 / wallMs) * 100 * 100) / 100;
  }

  custom(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [name, c] of this.#counters) out[name] = c.value;
    for (const [name, g] of this.#gauges) out[name] = g.value;
    return out;
  }

  json(): InstanceMetricsJson {
    return {
      instance_id: this.instanceId,
      block_id: this.blockId,
      tasks_total: this.tasksTotal,
      tasks_failed: this.tasksFailed,
      in_flight: this.inFlight,
      latency_ms: { p50: this.latency.quantile(0.5), p99: this.latency.quantile(0.99) },
      cpu_percent: this.#cpuPercent(),
      memory_bytes: process.memoryUsage().rss,
      queue: this.queue,
      custom: this.custom(),
    };
  }

  /** Prometheus text exposition format 0.0.4. */
  prometheus(): string {
    const j = this.json();
    const labels = `block="${escapeLabel(this.blockId)}",instance="${escapeLabel(this.instanceId)}"`;
    const lines: string[] = [];
    const metric = (name: string, type: string, help: string, v: number) => {
      lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`, `${name}{${labels}} ${v}`);
    };
    metric("aios_instance_tasks_total", "counter", "Tasks the instance ran.", j.tasks_total);
    metric("aios_instance_tasks_failed_total", "counter", "Tasks whose handler threw.", j.tasks_failed);
    metric("aios_instance_in_flight", "gauge", "Tasks running now.", j.in_flight);
    metric("aios_instance_queue", "gauge", "Tasks waiting for a free slot.", j.queue);
    metric("aios_instance_cpu_percent", "gauge", "Process CPU use, percent of one core.", j.cpu_percent);
    metric("aios_instance_memory_bytes", "gauge", "Process resident set size in bytes.", j.memory_bytes);
    const h = "aios_instance_task_duration_ms";
    lines.push(`# HELP ${h} Task latency in milliseconds.`, `# TYPE ${h} histogram`);
    let cumulative = 0;
    LATENCY_BUCKETS_MS.forEach((le, i) => {
      cumulative += this.latency.counts[i] ?? 0;
      lines.push(`${h}_bucket{${labels},le="${le}"} ${cumulative}`);
    });
    lines.push(`${h}_bucket{${labels},le="+Inf"} ${this.latency.count}`);
    lines.push(`${h}_sum{${labels}} ${this.latency.sum}`, `${h}_count{${labels}} ${this.latency.count}`);
    for (const [name, c] of this.#counters) {
      metric(promName(name), "counter", `Custom counter ${name}.`, c.value);
    }
    for (const [name, g] of this.#gauges) metric(promName(name), "gauge", `Custom gauge ${name}.`, g.value);
    return `${lines.join("\n")}\n`;
  }
}
