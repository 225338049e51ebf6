/**
 * Pieces of the soak-and-fault test (soak.test.ts): a Redis server of the test's own (killed and
 * restarted on the same port), the processes of a block found through /proc, RSS sampling with the
 * flatness statistic, a paced inference load with bounded client-side retries, and a block events
 * pusher (the instance SDK's BlockEvents, as an instance pushes them).
 */
import { readdirSync, readFileSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { Redis } from "ioredis";
import { InferenceProxy } from "../../src/gen/inference_pb.ts";
import { BlockEvents } from "../../src/instance/events.ts";
import { sleep } from "../support/cluster-controller.ts";
import { type Child, Processes } from "../support/processes.ts";
import { HELD_OUT, textPacket } from "../support/sentiment.ts";

const MiB = 1024 * 1024;

/** A TCP port nobody listens on right now (bound on 0, then released). */
export const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });

/** Seconds since `t0`, one decimal, for the report. */
export const at = (t0: number, t = Date.now()): string => `+${((t - t0) / 1000).toFixed(1)}s`;

// ------------------------------------------------------------------------------------------- redis

/**
 * `redis-server` on a fixed port in a directory of the test's: no RDB snapshots, an append-only file
 * fsynced on every write (so a SIGKILL loses nothing Redis acknowledged), and its command line left
 * as given (`--set-proc-title no`), so `pgrep -f "redis-server --port"` finds it.
 */
export class RedisServer {
  readonly url: string;
  #child: Child | null = null;
  readonly #procs = new Processes();

  constructor(
    readonly dir: string,
    readonly port: number,
  ) {
    this.url = `redis://127.0.0.1:${port}`;
  }

  get pid(): number | null {
    return this.#child?.alive ? this.#child.pid : null;
  }

  async start(): Promise<void> {
    this.#child = this.#procs.spawn("redis", [
      "redis-server",
      "--port",
      String(this.port),
      "--bind",
      "127.0.0.1",
      "--dir",
      this.dir,
      "--save",
      "",
      "--appendonly",
      "yes",
      "--appendfsync",
      "always",
      "--set-proc-title",
      "no",
      "--logfile",
      join(this.dir, "redis.log"),
    ]);
    const deadline = Date.now() + 15_000;
    for (;;) {
      if (await this.ping()) return;
      if (!this.#child.alive || Date.now() > deadline) {
        throw new Error(`redis-server on ${this.port} did not answer PING: ${this.#child.stderr}`);
      }
      await sleep(50);
    }
  }

  /** SIGKILL: the harshest way down; waits until the process is gone. */
  async kill(): Promise<void> {
    const child = this.#child;
    if (!child) return;
    child.kill("SIGKILL");
    await child.exited;
  }

  async stop(): Promise<void> {
    await this.#procs.stopAll();
  }

  async ping(): Promise<boolean> {
    const r = this.client();
    try {
      return (await r.ping()) === "PONG";
    } catch {
      return false;
    } finally {
      r.disconnect();
    }
  }

  /** A short-lived client for checks (one attempt, no reconnection). */
  client(): Redis {
    const r = new Redis(this.url, {
      lazyConnect: false,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
      connectTimeout: 2000,
    });
    r.on("error", () => {});
    return r;
  }
}

// ----------------------------------------------------------------------------------------- /proc

const readProc = (pid: number, file: string): string | null => {
  try {
    return readFileSync(`/proc/${pid}/${file}`, "utf8");
  } catch {
    return null;
  }
};

/** Resident set size in bytes (VmRSS); null when the process is gone or a zombie. */
export const rssOf = (pid: number): number | null => {
  const status = readProc(pid, "status");
  if (status === null || /^State:\s+Z/m.test(status)) return null;
  const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
  return m ? Number(m[1]) * 1024 : null;
};

const alive = (pid: number): boolean => rssOf(pid) !== null;

/**
 * The processes of a block on this machine, found by what the process runtime gives them: instances
 * carry AIOS_BLOCK_ID and AIOS_INSTANCE_ID in their environment, the block services run
 * `block-runtime --block-id <id>`. Zombies are left out.
 */
export const blockProcesses = (blockId: string): { instances: Map<string, number>; services: number[] } => {
  const instances = new Map<string, number>();
  const services: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    if (pid === process.pid) continue;
    const cmdline = readProc(pid, "cmdline");
    if (cmdline === null) continue;
    const args = cmdline.split("\0");
    const at = args.indexOf("--block-id");
    if (args.includes("block-runtime") && at >= 0 && args[at + 1] === blockId) {
      if (alive(pid)) services.push(pid);
      continue;
    }
    const environ = readProc(pid, "environ");
    if (environ === null || !environ.includes(`\0AIOS_BLOCK_ID=${blockId}\0`)) continue;
    const id = /(?:^|\0)AIOS_INSTANCE_ID=([^\0]*)/.exec(environ)?.[1];
    if (id !== undefined && alive(pid)) instances.set(id, pid);
  }
  return { instances, services };
};

// ------------------------------------------------------------------------------------------- RSS

export interface RssSample {
  t: number;
  bytes: number;
}

export interface RssVerdict {
  name: string;
  pid: number;
  samples: number;
  /** Seconds of samples judged (after warm-up). */
  span: number;
  firstMedian: number;
  lastMedian: number;
  max: number;
  /** Whether the span was long enough to judge. */
  judged: boolean;
  flat: boolean;
  allowed: number;
}

const median = (values: readonly number[]): number => {
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
};

export interface FlatnessRule {
  /** Samples taken before this long after a process was first seen are warm-up. */
  warmupMs: number;
  /** A process is judged when its samples after warm-up span at least this long. */
  minSpanMs: number;
  /** Allowed growth of the last third's median over the first third's: a fraction ... */
  fraction: number;
  /** ... or this many bytes, whichever is larger. */
  bytes: number;
}

/** RSS of named processes over time, sampled by `sample()`. */
export class RssTracker {
  readonly #series = new Map<string, { name: string; pid: number; samples: RssSample[] }>();

  sample(processes: readonly { name: string; pid: number }[], t = Date.now()): void {
    for (const p of processes) {
      const bytes = rssOf(p.pid);
      if (bytes === null) continue;
      const key = `${p.name}#${p.pid}`;
      let s = this.#series.get(key);
      if (!s) {
        s = { name: p.name, pid: p.pid, samples: [] };
        this.#series.set(key, s);
      }
      s.samples.push({ t, bytes });
    }
  }

  /** Every series, for a closer look (AIOS_SOAK_RSS_FILE). */
  series(): { name: string; pid: number; samples: RssSample[] }[] {
    return [...this.#series.values()];
  }

  /**
   * Per process: the median RSS of the first and the last third of its samples after warm-up, and
   * whether the last is within the rule's bound of the first.
   */
  verdicts(rule: FlatnessRule): RssVerdict[] {
    return [...this.#series.values()].map(({ name, pid, samples }) => {
      const start = (samples[0]?.t ?? 0) + rule.warmupMs;
      const judged = samples.filter((s) => s.t >= start);
      const span = judged.length > 1 ? judged.at(-1)!.t - judged[0]!.t : 0;
      const third = Math.floor(judged.length / 3);
      const ok = span >= rule.minSpanMs && third >= 3;
      const firstMedian = ok ? median(judged.slice(0, third).map((s) => s.bytes)) : 0;
      const lastMedian = ok ? median(judged.slice(-third).map((s) => s.bytes)) : 0;
      const allowed = Math.max(firstMedian * rule.fraction, rule.bytes);
      return {
        name,
        pid,
        samples: samples.length,
        span: span / 1000,
        firstMedian,
        lastMedian,
        max: Math.max(...samples.map((s) => s.bytes)),
        judged: ok,
        flat: !ok || lastMedian - firstMedian <= allowed,
        allowed,
      };
    });
  }
}

export const mib = (bytes: number): string => (bytes / MiB).toFixed(1);

// ------------------------------------------------------------------------------------------ load

export interface LoadStats {
  /** Requests started (each one is retried until it succeeds or runs out of attempts). */
  sent: number;
  succeeded: number;
  /** Requests that ran out of attempts, or got a wrong answer. */
  failed: number;
  /** Attempts after the first, over all requests. */
  retries: number;
  /** Requests that needed at least one retry. */
  retriedRequests: number;
  /** Failed attempts whose fate at the executor is unknown (deadline, transport): at most this many extra answers. */
  abandonedAttempts: number;
  failures: string[];
  /** Completed requests per second of the run, by second. */
  perSecond: number[];
  latencyP50: number;
  latencyP99: number;
  maxLatency: number;
}

export interface LoadOptions {
  /** The inference listener (`http://host:port`), or a gateway's prefix of it (`.../block/{id}/rpc`). */
  grpcUrl: string;
  /** Requests per second to hold. */
  rps: number;
  /** The API token each call presents as gRPC metadata (`authorization: Bearer`). */
  token: string;
  /** Requests in flight at most. */
  concurrency: number;
  /** How long one request is retried (with backoff) before it counts as failed; default 30 s. */
  retryForMs?: number;
  attemptTimeoutMs?: number;
}

/**
 * A paced load of sentiment classifications over gRPC (Connect's gRPC transport, HTTP/2, as the
 * harness' client): request n is due at start + n/rps; each is retried with backoff (100 ms doubling
 * to 1 s) for up to `retryForMs`, every retry counted, and must come back with the right label.
 */
export class InferenceLoad {
  readonly #options: Required<LoadOptions>;
  readonly #manager: Http2SessionManager;
  readonly #client;
  #stopping = false;
  #running: Promise<void> | null = null;
  #t0 = 0;
  readonly #latencies: number[] = [];
  readonly stats: LoadStats = {
    sent: 0,
    succeeded: 0,
    failed: 0,
    retries: 0,
    retriedRequests: 0,
    abandonedAttempts: 0,
    failures: [],
    perSecond: [],
    latencyP50: 0,
    latencyP99: 0,
    maxLatency: 0,
  };

  readonly #headers: Record<string, string>;

  constructor(options: LoadOptions) {
    this.#options = { retryForMs: 30_000, attemptTimeoutMs: 10_000, ...options };
    this.#headers = { authorization: `Bearer ${options.token}` };
    this.#manager = new Http2SessionManager(options.grpcUrl);
    this.#client = createClient(
      InferenceProxy,
      createGrpcTransport({ baseUrl: options.grpcUrl, sessionManager: this.#manager }),
    );
  }

  start(): void {
    this.#t0 = Date.now();
    const { concurrency } = this.#options;
    this.#running = Promise.all(Array.from({ length: concurrency }, () => this.#worker())).then(() => {});
  }

  /** Stops issuing requests; resolves once those in flight are done. */
  async stop(): Promise<LoadStats> {
    this.#stopping = true;
    await this.#running;
    const sorted = [...this.#latencies].sort((a, b) => a - b);
    const q = (p: number) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? 0;
    this.stats.latencyP50 = q(0.5);
    this.stats.latencyP99 = q(0.99);
    this.stats.maxLatency = sorted.at(-1) ?? 0;
    return this.stats;
  }

  close(): void {
    this.#manager.abort();
  }

  /** The lowest completion rate over any `windowS`-second window of the run (whole windows only). */
  minRate(windowS: number): number {
    const per = this.stats.perSecond;
    let min = Number.POSITIVE_INFINITY;
    for (let i = 0; i + windowS <= per.length - 1; i++) {
      let sum = 0;
      for (let j = i; j < i + windowS; j++) sum += per[j] ?? 0;
      min = Math.min(min, sum / windowS);
    }
    return Number.isFinite(min) ? min : 0;
  }

  async #worker(): Promise<void> {
    const interval = 1000 / this.#options.rps;
    while (!this.#stopping) {
      const n = this.stats.sent++;
      const due = this.#t0 + n * interval;
      const wait = due - Date.now();
      if (wait > 0) await sleep(wait);
      if (this.#stopping) {
        this.stats.sent--;
        break;
      }
      await this.#request(n);
    }
  }

  async #request(n: number): Promise<void> {
    const [text, label] = HELD_OUT[n % HELD_OUT.length]!;
    const began = performance.now();
    const giveUp = Date.now() + this.#options.retryForMs;
    let last = "";
    for (let attempt = 1; attempt === 1 || Date.now() < giveUp; attempt++) {
      if (attempt > 1) {
        this.stats.retries++;
        if (attempt === 2) this.stats.retriedRequests++;
        await sleep(Math.min(1000, 100 * 2 ** (attempt - 2)));
      }
      try {
        const res = await this.#client.infer(
          { rpcData: textPacket(text, `soak-${n}`, 1) },
          { timeoutMs: this.#options.attemptTimeoutMs, headers: this.#headers },
        );
        if (!res.message) {
          // The executor served it and the instance refused it: not something a retry fixes.
          last = `refused by ${res.instanceId}: ${res.error}`;
          break;
        }
        const result = JSON.parse(res.result) as { label?: string };
        if (result.label !== label) {
          last = `wrong label from ${res.instanceId}: ${result.label} (expected ${label})`;
          break;
        }
        this.stats.succeeded++;
        const ms = performance.now() - began;
        this.#latencies.push(ms);
        const second = Math.floor((Date.now() - this.#t0) / 1000);
        this.stats.perSecond[second] = (this.stats.perSecond[second] ?? 0) + 1;
        return;
      } catch (err) {
        // Unknown at the executor: it may have answered after we gave up.
        this.stats.abandonedAttempts++;
        last = err instanceof Error ? err.message : String(err);
      }
    }
    this.stats.failed++;
    if (this.stats.failures.length < 20) this.stats.failures.push(`request ${n}: ${last}`);
  }
}

// ---------------------------------------------------------------------------------------- events

export interface PushedEvent {
  seq: number;
  name: string;
  /** Stream entry ids the controller answered with (more than one if an answer was lost and retried). */
  ids: string[];
  at: number;
}

/**
 * Pushes block events as an instance does (the SDK's BlockEvents, posting to the controller's
 * `/events`), retrying each until the controller has queued it (bounded), counting the retries.
 */
export class EventPusher {
  readonly pushed: PushedEvent[] = [];
  retries = 0;
  lost: string[] = [];
  readonly #events: BlockEvents;
  #seq = 0;

  /** `token`: the credential an instance has (its controller's `internal` token). */
  constructor(blockId: string, controllerUrl: string, token: string) {
    this.#events = new BlockEvents({
      env: {
        AIOS_BLOCK_ID: blockId,
        AIOS_INSTANCE_ID: "soak-driver",
        AIOS_CONTROLLER_URL: controllerUrl,
        AIOS_TOKEN: token,
      },
      timeoutMs: 5000,
    });
  }

  /** Pushes one event; resolves once queued (or recorded as lost after `deadlineMs`). */
  async push(name: string, data: Record<string, unknown> = {}, deadlineMs = 60_000): Promise<PushedEvent> {
    const event: PushedEvent = { seq: ++this.#seq, name, ids: [], at: Date.now() };
    this.pushed.push(event);
    const until = Date.now() + deadlineMs;
    for (let attempt = 0; ; attempt++) {
      if (attempt > 0) this.retries++;
      try {
        event.ids.push(await this.#events.pushEvent(name, { ...data, seq: event.seq }));
        return event;
      } catch (err) {
        if (Date.now() > until) {
          this.lost.push(`${name} #${event.seq}: ${err instanceof Error ? err.message : String(err)}`);
          return event;
        }
        await sleep(250);
      }
    }
  }

  close(): Promise<void> {
    return this.#events.close();
  }
}

/** Redis stream ids compare as `<ms>-<seq>`. */
export const compareStreamIds = (a: string, b: string): number => {
  const [am, as] = a.split("-").map(BigInt) as [bigint, bigint];
  const [bm, bs] = b.split("-").map(BigInt) as [bigint, bigint];
  return am === bm ? Number(as - bs) : am < bm ? -1 : 1;
};
