/**
 * Operating-system helpers of the process runtime (POSIX): free ports, whether a recorded pid is still
 * the process we started, process-group signals, and the end of a log file.
 */
import { closeSync, existsSync, fstatSync, openSync, readFileSync, readSync } from "node:fs";
import { createServer } from "node:net";

/** A port nothing listens on right now (bound on `host` with port 0, read, closed). */
export const freePort = (host = "127.0.0.1"): Promise<number> =>
  new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, host, () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      server.close(() => (port > 0 ? resolve(port) : reject(new Error("could not read a free port"))));
    });
  });

/**
 * Hands out free ports, never the same one twice within `reuseAfterMs`: a port is only reserved once the
 * child binds it, so two starts in quick succession could otherwise be given the same one.
 */
export class PortPicker {
  readonly #handed = new Map<number, number>();

  constructor(
    private readonly host = "127.0.0.1",
    private readonly reuseAfterMs = 60_000,
  ) {}

  async pick(): Promise<number> {
    const now = Date.now();
    for (const [port, at] of this.#handed) if (now - at > this.reuseAfterMs) this.#handed.delete(port);
    for (let attempt = 0; ; attempt++) {
      const port = await freePort(this.host);
      if (!this.#handed.has(port) || attempt >= 20) {
        this.#handed.set(port, now);
        return port;
      }
    }
  }

  async pickMany<K extends string>(names: readonly K[]): Promise<Record<K, number>> {
    const out = {} as Record<K, number>;
    for (const name of names) out[name] = await this.pick();
    return out;
  }
}

const HAS_PROC = existsSync("/proc/self/stat");

export interface ProcInfo {
  /** R, S, D, Z (zombie), T, X (dead), ... */
  state: string;
  pgid: number;
  /** Clock ticks after boot at which the process started: with the pid, it names one process. */
  startTicks: number;
}

/**
 * `/proc/<pid>/stat` of a process; null when there is no such process, undefined where /proc does not
 * exist (not Linux).
 */
export const procInfo = (pid: number): ProcInfo | null | undefined => {
  if (!HAS_PROC) return undefined;
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return null;
  }
  // The command name (field 2) may hold spaces and parentheses: the fields resume after the last ")".
  const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
  const startTicks = Number(fields[19]);
  const pgid = Number(fields[2]);
  if (!fields[0] || !Number.isFinite(startTicks) || !Number.isFinite(pgid)) return null;
  return { state: fields[0], pgid, startTicks };
};

/** The start time (clock ticks after boot) of a live process; null when unknown. */
export const procStartTicks = (pid: number): number | null => procInfo(pid)?.startTicks ?? null;

/**
 * Whether `pid` is a live process of ours and, when `startTicks` is known, the very one that was
 * recorded (after a reboot or a long time, the pid may name another process). A zombie counts as dead.
 */
export const isAlive = (pid: number, startTicks?: number | null): boolean => {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
  } catch {
    // ESRCH: gone; EPERM: someone else's process, so not the one we started.
    return false;
  }
  const info = procInfo(pid);
  if (info === undefined) return true;
  if (info === null || info.state === "Z" || info.state === "X") return false;
  return startTicks === null || startTicks === undefined || info.startTicks === startTicks;
};

/** Sends `signal` to every process of the group; false when the group no longer exists. */
export const signalGroup = (pgid: number, signal: NodeJS.Signals): boolean => {
  if (!Number.isInteger(pgid) || pgid <= 1) return false;
  try {
    process.kill(-pgid, signal);
    return true;
  } catch {
    return false;
  }
};

/** The file's size in bytes; 0 when it does not exist. */
export const fileSize = (path: string): number => {
  try {
    const fd = openSync(path, "r");
    try {
      return fstatSync(fd).size;
    } finally {
      closeSync(fd);
    }
  } catch {
    return 0;
  }
};

/** The last `maxLines` lines written to `path` after byte `from` (at most the last `maxBytes` of them). */
export const tailLines = (path: string, from = 0, maxLines = 20, maxBytes = 16_384): string[] => {
  let fd: number;
  try {
    fd = openSync(path, "r");
  } catch {
    return [];
  }
  try {
    const size = fstatSync(fd).size;
    const start = Math.max(from, size - maxBytes);
    if (size <= start) return [];
    const buf = Buffer.alloc(size - start);
    readSync(fd, buf, 0, buf.length, start);
    const lines = buf.toString("utf8").split("\n");
    if (lines.at(-1) === "") lines.pop();
    // A partial first line (cut by maxBytes) is dropped unless it is all there is.
    if (start > from && lines.length > 1) lines.shift();
    return lines.slice(-maxLines);
  } finally {
    closeSync(fd);
  }
};
