/**
 * One connection's requests: the protocol has no request ids (a client sends a payload and reads the
 * next message as its answer), so answers leave in the order the requests came. Requests still run
 * concurrently, up to `limit` per connection, so a client that sends several at once waits for the
 * slowest of them, not for their sum; other connections have pipelines of their own.
 */
const INTERNAL = JSON.stringify({ error: { code: "internal", message: "internal error", details: null } });

const busy = (max: number) =>
  JSON.stringify({
    error: {
      code: "too_many_requests",
      message: `more than ${max} requests are waiting on this connection; wait for answers before sending more`,
      details: { limit: max },
    },
  });

export class OrderedPipeline<In> {
  readonly #queue: { input: In; answer: string | undefined; started: boolean }[] = [];
  #running = 0;
  #closed = false;

  constructor(
    readonly limit: number,
    readonly run: (input: In) => Promise<string>,
    readonly deliver: (answer: string) => void,
    /** Requests a connection may have waiting; past it a request is answered at once with an error. */
    readonly maxBacklog = 1000,
  ) {
    if (!Number.isInteger(limit) || limit < 1)
      throw new Error(`limit must be a positive integer, got ${limit}`);
  }

  /** Requests received and not yet answered. */
  get backlog(): number {
    return this.#queue.length;
  }

  push(input: In): void {
    if (this.#closed) return;
    if (this.#queue.length >= this.maxBacklog) {
      // Still answered in its turn, so the client's count of answers stays right.
      this.#queue.push({ input, answer: busy(this.maxBacklog), started: true });
      return;
    }
    this.#queue.push({ input, answer: undefined, started: false });
    this.#pump();
  }

  /** Drops what is queued; answers of requests still running are discarded. */
  close(): void {
    this.#closed = true;
    this.#queue.length = 0;
  }

  #pump(): void {
    for (const entry of this.#queue) {
      if (this.#running >= this.limit) return;
      if (entry.started) continue;
      entry.started = true;
      this.#running++;
      void this.run(entry.input)
        .catch(() => INTERNAL)
        .then((answer) => {
          this.#running--;
          entry.answer = answer;
          this.#flush();
          this.#pump();
        });
    }
  }

  #flush(): void {
    while (!this.#closed && this.#queue.length > 0 && this.#queue[0]!.answer !== undefined) {
      this.deliver(this.#queue.shift()!.answer!);
    }
  }
}
