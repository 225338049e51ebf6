/**
 * A sidecar's heartbeat: runs `tick` every `intervalMs`, never two at once (a slow tick delays the
 * next instead of piling up), and keeps the last runs for `/mgmt`.
 */
export class Periodic<R> {
  #timer: ReturnType<typeof setTimeout> | null = null;
  #running: Promise<R> | null = null;
  #stopped = true;
  readonly #history: R[] = [];

  constructor(
    readonly intervalMs: number,
    readonly tick: () => Promise<R>,
    readonly keep = 20,
  ) {}

  get running(): boolean {
    return !this.#stopped;
  }

  /** The last runs, newest last. */
  get history(): readonly R[] {
    return this.#history;
  }

  /** Runs a tick now (or joins the one in progress) and records it. */
  runNow(): Promise<R> {
    if (this.#running) return this.#running;
    const run = this.tick().then((result) => {
      this.#history.push(result);
      if (this.#history.length > this.keep) this.#history.shift();
      return result;
    });
    this.#running = run;
    const clear = () => {
      if (this.#running === run) this.#running = null;
    };
    run.then(clear, clear);
    return run;
  }

  /** First tick after one interval, as the specification's sidecars do. */
  start(): void {
    if (!this.#stopped) return;
    this.#stopped = false;
    this.#schedule();
  }

  #schedule(): void {
    this.#timer = setTimeout(async () => {
      try {
        await this.runNow();
      } catch (err) {
        console.error("[periodic] a tick failed:", err);
      }
      if (!this.#stopped) this.#schedule();
    }, this.intervalMs);
  }

  /** Stops the schedule and waits for a tick in progress. */
  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    await this.#running?.catch(() => {});
  }
}
