/**
 * Child processes for end-to-end tests: spawn with `Bun.spawn`, wait for the `listening <name> <url>`
 * lines a server prints once ready, and stop them all afterwards, even when a test failed.
 *
 * ```ts
 * const procs = new Processes();
 * afterAll(() => procs.stopAll());
 * const block = procs.spawn("block", [process.execPath, "run", "src/cli/main.ts", "block-runtime", ...]);
 * const urls = await block.listening(["grpc", "metrics"]);
 * ```
 */
import { join } from "node:path";
import type { Subprocess } from "bun";

export const ROOT = join(import.meta.dir, "../..");

const LISTENING = /^listening (\S+) (\S+)$/;
/** Keeps the end of stderr for error messages; a chatty child must not grow without bound. */
const STDERR_KEEP = 16_384;

/** Every child spawned here and not yet exited; killed if the test process exits first. */
const live = new Set<Subprocess>();
process.once("exit", () => {
  for (const p of live) p.kill("SIGKILL");
});

/**
 * The parent's environment without what would point a child at outside services (AIOS_*, databases,
 * Redis, CUDA devices), plus `extra`.
 */
export const childEnv = (extra: Record<string, string> = {}): Record<string, string> => {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (v === undefined || k.startsWith("AIOS_")) continue;
    if (k === "DATABASE_URL" || k === "REDIS_URL" || k === "CUDA_VISIBLE_DEVICES") continue;
    env[k] = v;
  }
  return { ...env, ...extra };
};

interface Waiter {
  names: readonly string[];
  resolve(urls: Record<string, string>): void;
  reject(err: Error): void;
}

export class Child {
  readonly stdoutLines: string[] = [];
  readonly #urls = new Map<string, string>();
  readonly #waiters = new Set<Waiter>();
  #stderr = "";
  #exit: number | null = null;
  /** Resolves with the exit code once the process has exited and its output has been read. */
  readonly exited: Promise<number>;

  constructor(
    readonly name: string,
    readonly proc: Subprocess<"ignore", "pipe", "pipe">,
  ) {
    live.add(proc);
    const out = this.#read(proc.stdout, (line) => this.#line(line));
    const err = this.#read(proc.stderr, (line) => {
      this.#stderr = `${this.#stderr}${line}\n`.slice(-STDERR_KEEP);
    });
    this.exited = proc.exited.then(async (code) => {
      live.delete(proc);
      await Promise.all([out, err]);
      this.#exit = code;
      for (const w of this.#waiters) w.reject(this.#error(`exited with code ${code} before listening`, w));
      this.#waiters.clear();
      return code;
    });
  }

  get pid(): number {
    return this.proc.pid;
  }

  get alive(): boolean {
    return this.#exit === null && this.proc.exitCode === null && this.proc.signalCode === null;
  }

  /** What the child wrote on stderr (its last 16 KiB). */
  get stderr(): string {
    return this.#stderr;
  }

  /** The URL of a `listening <name> <url>` line already printed; throws if there was none. */
  url(name: string): string {
    const url = this.#urls.get(name);
    if (url === undefined) throw new Error(`${this.name} printed no "listening ${name}" line`);
    return url;
  }

  /** Waits until the child has printed a `listening` line for each of `names`; name -> url. */
  listening(names: readonly string[], timeoutMs = 20_000): Promise<Record<string, string>> {
    return new Promise((resolve, reject) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const waiter: Waiter = {
        names,
        resolve: (urls) => {
          clearTimeout(timer);
          resolve(urls);
        },
        reject: (err) => {
          clearTimeout(timer);
          reject(err);
        },
      };
      if (this.#settle(waiter)) return;
      if (!this.alive) {
        waiter.reject(this.#error("is not running", waiter));
        return;
      }
      this.#waiters.add(waiter);
      timer = setTimeout(() => {
        this.#waiters.delete(waiter);
        waiter.reject(this.#error(`printed no listening line within ${timeoutMs} ms`, waiter));
      }, timeoutMs);
    });
  }

  kill(signal: NodeJS.Signals | number = "SIGTERM"): void {
    if (this.alive) this.proc.kill(signal);
  }

  /** SIGTERM, then SIGKILL if the child is still running after `graceMs`. */
  async stop(graceMs = 3000): Promise<void> {
    if (!this.alive) {
      await this.exited;
      return;
    }
    this.kill("SIGTERM");
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<"late">((r) => {
      timer = setTimeout(() => r("late"), graceMs);
    });
    const outcome = await Promise.race([this.exited, late]);
    clearTimeout(timer);
    if (outcome === "late") {
      this.kill("SIGKILL");
      await this.exited;
    }
  }

  #line(line: string): void {
    this.stdoutLines.push(line);
    const m = LISTENING.exec(line);
    if (!m) return;
    this.#urls.set(m[1]!, m[2]!);
    for (const w of this.#waiters) if (this.#settle(w)) this.#waiters.delete(w);
  }

  #settle(w: Waiter): boolean {
    if (w.names.some((n) => !this.#urls.has(n))) return false;
    w.resolve(Object.fromEntries(w.names.map((n) => [n, this.#urls.get(n)!])));
    return true;
  }

  #error(what: string, w: Waiter): Error {
    const missing = w.names.filter((n) => !this.#urls.has(n));
    return new Error(
      `${this.name} (pid ${this.pid}) ${what} (waiting for: ${missing.join(", ")})\n` +
        `stdout: ${JSON.stringify(this.stdoutLines.slice(-20))}\nstderr (end): ${this.#stderr.slice(-2000)}`,
    );
  }

  async #read(stream: ReadableStream<Uint8Array>, onLine: (line: string) => void): Promise<void> {
    const decoder = new TextDecoder();
    let buffered = "";
    try {
      for await (const chunk of stream) {
        buffered += decoder.decode(chunk, { stream: true });
        let nl = buffered.indexOf("\n");
        while (nl >= 0) {
          onLine(buffered.slice(0, nl));
          buffered = buffered.slice(nl + 1);
          nl = buffered.indexOf("\n");
        }
      }
    } catch {
      // The pipe broke with the process: what was read is what there is.
    }
    if (buffered !== "") onLine(buffered);
  }
}

export interface SpawnOptions {
  /** Added to childEnv(). */
  env?: Record<string, string>;
  /** Default: the repository root. */
  cwd?: string;
}

/** The children of one test file; `stopAll()` in afterAll. */
export class Processes {
  readonly children: Child[] = [];

  spawn(name: string, cmd: string[], options: SpawnOptions = {}): Child {
    const proc = Bun.spawn(cmd, {
      cwd: options.cwd ?? ROOT,
      env: childEnv(options.env),
      stdin: "ignore",
      stdout: "pipe",
      stderr: "pipe",
    });
    const child = new Child(name, proc);
    this.children.push(child);
    return child;
  }

  /** `bun <args>` with the Bun running the tests, e.g. `["examples/sentiment/instance.ts"]`. */
  bun(name: string, args: string[], options: SpawnOptions = {}): Child {
    return this.spawn(name, [process.execPath, ...args], options);
  }

  /** Stops every child (SIGTERM, SIGKILL after `graceMs`), all at once; resolves when all have exited. */
  async stopAll(graceMs = 3000): Promise<void> {
    await Promise.all(this.children.map((c) => c.stop(graceMs)));
  }

  /** Children still running (should be none after stopAll). */
  get running(): Child[] {
    return this.children.filter((c) => c.alive);
  }
}

/** A listener URL -> the `host:port` a gRPC client dials. */
/** Runs `aios ...args` as a real process; the exit status, stdout and stderr. */
export const aiosProcess = async (env: Record<string, string>, ...args: string[]) => {
  const proc = Bun.spawn([process.execPath, "run", "src/cli/main.ts", ...args], {
    cwd: ROOT,
    env: childEnv(env),
    stdout: "pipe",
    stderr: "pipe",
  });
  const [stdout, stderr, status] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ]);
  return { status, stdout, stderr };
};

export const hostPort = (url: string): string => new URL(url).host;

/** `block-runtime --block-id ID --instance id=url ...` with every listener on a free port. */
export const blockRuntimeArgs = (blockId: string, instances: readonly (readonly string[])[]): string[] => [
  "block-runtime",
  "--block-id",
  blockId,
  ...instances.flatMap(([id, url]) => ["--instance", `${id}=${url}`]),
  ...[
    "--port",
    "--metrics-port",
    "--mgmt-port",
    "--mapper-port",
    "--autoscaler-port",
    "--health-port",
  ].flatMap((flag) => [flag, "0"]),
];
