/**
 * Readings of the machine the process runtime runs on, as a NodeStatus: CPU utilization (deltas of the
 * kernel's CPU times between probes), memory (MemAvailable, which counts reclaimable cache as free),
 * disk (the file system holding the runtime directory) and GPUs (`nvidia-smi`, none when it is absent
 * or fails). Sizes are in MB. The node is unhealthy when memory or disk usage is over its threshold or
 * a reading fails.
 */
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { statfs } from "node:fs/promises";
import { cpus, freemem, loadavg, totalmem } from "node:os";
import type { NodeStatus } from "./types.ts";

export interface LocalNodeProbeOptions {
  nodeId: string;
  /** A path on the disk to report (the runtime directory). */
  diskPath: string;
  /** Usage above which the node is unhealthy; default 95. */
  memoryThresholdPercent?: number;
  diskThresholdPercent?: number;
  /** The nvidia-smi executable; default `nvidia-smi` from PATH. */
  nvidiaSmi?: string;
  /** Longest wait for nvidia-smi; default 3 s. */
  gpuTimeoutMs?: number;
}

const MB = 1024 * 1024;
/** Two CPU samples closer than this are too noisy to compare: the probe waits for a second one. */
const MIN_CPU_WINDOW_MS = 100;

const round = (n: number, digits = 1): number => Math.round(n * 10 ** digits) / 10 ** digits;

interface CpuSample {
  at: number;
  busy: number;
  total: number;
}

const sampleCpu = (): CpuSample | null => {
  const list = cpus();
  if (list.length === 0) return null;
  let busy = 0;
  let total = 0;
  for (const { times } of list) {
    const all = times.user + times.nice + times.sys + times.idle + times.irq;
    total += all;
    busy += all - times.idle;
  }
  return { at: Date.now(), busy, total };
};

/** MemAvailable from /proc/meminfo in bytes; os.freemem() where there is no /proc. */
const availableMemory = (): number => {
  try {
    const m = /^MemAvailable:\s+(\d+) kB$/m.exec(readFileSync("/proc/meminfo", "utf8"));
    if (m) return Number(m[1]) * 1024;
  } catch {
    // Not Linux.
  }
  return freemem();
};

const numberOrNull = (text: string | undefined): number | null => {
  const n = Number(text?.trim());
  return text === undefined || text.trim() === "" || !Number.isFinite(n) ? null : n;
};

/**
 * `nvidia-smi --query-gpu=index,memory.total,memory.used,utilization.gpu --format=csv,noheader,nounits`
 * output -> GPUs; `[N/A]` readings are null.
 */
export const parseNvidiaSmi = (text: string): NodeStatus["gpus"] =>
  text
    .split("\n")
    .map((line) => line.split(",").map((f) => f.trim()))
    .filter((f) => f.length >= 4 && f[0] !== "")
    .map(([id, total, used, util]) => ({
      id: id!,
      memory_total: numberOrNull(total),
      memory_used: numberOrNull(used),
      utilization: numberOrNull(util),
    }));

const queryGpus = (command: string, timeoutMs: number): Promise<NodeStatus["gpus"]> =>
  new Promise((resolve) => {
    execFile(
      command,
      ["--query-gpu=index,memory.total,memory.used,utilization.gpu", "--format=csv,noheader,nounits"],
      { timeout: timeoutMs, killSignal: "SIGKILL", maxBuffer: 1024 * 1024 },
      (err, stdout) => resolve(err ? [] : parseNvidiaSmi(String(stdout))),
    );
  });

export class LocalNodeProbe {
  #lastCpu: CpuSample | null = null;

  constructor(private readonly options: LocalNodeProbeOptions) {}

  /** Busy share of all CPUs since the previous probe (or over the last 100 ms on the first). */
  async #cpuPercent(): Promise<number | null> {
    let prev = this.#lastCpu;
    if (!prev || Date.now() - prev.at < MIN_CPU_WINDOW_MS) {
      prev = sampleCpu();
      await new Promise((r) => setTimeout(r, MIN_CPU_WINDOW_MS));
    }
    const now = sampleCpu();
    this.#lastCpu = now;
    if (!prev || !now) {
      // No per-CPU times (some sandboxes): the load average per CPU is the closest reading.
      const n = Math.max(1, cpus().length);
      return round(Math.min(100, ((loadavg()[0] ?? 0) / n) * 100));
    }
    const total = now.total - prev.total;
    return total > 0 ? round(Math.min(100, Math.max(0, ((now.busy - prev.busy) / total) * 100))) : 0;
  }

  async probe(): Promise<NodeStatus> {
    const { nodeId, diskPath } = this.options;
    const checkedAt = () => new Date().toISOString();
    try {
      const [cpu, fs, gpus] = await Promise.all([
        this.#cpuPercent(),
        statfs(diskPath),
        queryGpus(this.options.nvidiaSmi ?? "nvidia-smi", this.options.gpuTimeoutMs ?? 3000),
      ]);
      const memTotal = totalmem();
      const memAvail = Math.min(memTotal, availableMemory());
      const memory = {
        total: Math.round(memTotal / MB),
        allocatable: Math.round(memAvail / MB),
        usage_percent: memTotal > 0 ? round(((memTotal - memAvail) / memTotal) * 100) : 0,
      };
      // As df: used / (used + available to unprivileged users); blocks reserved for root are not free.
      const used = (fs.blocks - fs.bfree) * fs.bsize;
      const avail = fs.bavail * fs.bsize;
      const disk = {
        total: Math.round((fs.blocks * fs.bsize) / MB),
        allocatable: Math.round(avail / MB),
        usage_percent: used + avail > 0 ? round((used / (used + avail)) * 100) : 0,
      };
      const reasons: string[] = [];
      const memLimit = this.options.memoryThresholdPercent ?? 95;
      const diskLimit = this.options.diskThresholdPercent ?? 95;
      if (memory.usage_percent > memLimit)
        reasons.push(`memory usage ${memory.usage_percent}% is over ${memLimit}%`);
      if (disk.usage_percent > diskLimit)
        reasons.push(`disk usage ${disk.usage_percent}% is over ${diskLimit}%`);
      return {
        nodeId,
        healthy: reasons.length === 0,
        ...(reasons.length > 0 ? { reason: reasons.join("; ") } : {}),
        cpu_utilization_percent: cpu,
        memory,
        disk,
        gpus,
        checkedAt: checkedAt(),
      };
    } catch (err) {
      return {
        nodeId,
        healthy: false,
        reason: `probe failed: ${err instanceof Error ? err.message : String(err)}`,
        cpu_utilization_percent: null,
        memory: null,
        disk: null,
        gpus: [],
        checkedAt: checkedAt(),
      };
    }
  }
}
