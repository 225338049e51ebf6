/**
 * The cluster's global metrics document (the registry's `/cluster/{id}`), as the controller measures it
 * after each scan, so clusterAllocator filters such as `cluster.vcpu.load_15m < 8` and
 * `cluster.gpu.totalFreeMem` see this cluster as it is. Pure: the scanner publishes what this builds.
 */
import type { NodeState } from "./scanner.ts";

const sum = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0);
const round = (x: number) => Math.round(x * 100) / 100;

export interface HostLoad {
  /** Load averages of the machine the workloads run on (process runtime), if known. */
  loadavg: readonly [number, number, number] | null;
  vcpus: number;
}

export const clusterMetricsDocument = (nodes: readonly NodeState[], host: HostLoad) => {
  const healthy = nodes.filter((n) => n.status === "healthy");
  const cpu = nodes.map((n) => n.cpu_utilization_percent).filter((x): x is number => x !== null);
  const memory = nodes.map((n) => n.memory).filter((m) => m !== null);
  const gpus = nodes.flatMap((n) => n.gpus);
  const gpuTotal = sum(gpus.map((g) => g.memory_total ?? 0));
  const gpuUsed = sum(gpus.map((g) => g.memory_used ?? 0));
  return {
    cluster: {
      vcpu: {
        count: host.vcpus,
        ...(host.loadavg
          ? {
              load_1m: round(host.loadavg[0]),
              load_5m: round(host.loadavg[1]),
              load_15m: round(host.loadavg[2]),
            }
          : {}),
        utilization_percent: cpu.length > 0 ? round(sum(cpu) / cpu.length) : null,
      },
      memory: {
        total: sum(memory.map((m) => m.total)),
        allocatable: sum(memory.map((m) => m.allocatable)),
      },
      gpu: { count: gpus.length, totalMem: gpuTotal, totalFreeMem: Math.max(0, gpuTotal - gpuUsed) },
      nodes: { count: nodes.length, healthy: healthy.length },
    },
    nodes: Object.fromEntries(
      nodes.map((n) => [
        n.node_id,
        {
          status: n.status,
          cpu_utilization_percent: n.cpu_utilization_percent,
          memory: n.memory,
          gpus: n.gpus,
        },
      ]),
    ),
    updated_at: new Date().toISOString(),
  };
};
