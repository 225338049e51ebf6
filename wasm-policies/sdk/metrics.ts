/**
 * Reading a block's metrics as `aios_get_metrics` returns them:
 *   {"block_metrics": {"instances": {"<id>": {"in_flight", "requests_total", "errors_total",
 *                                              "latency_ms": {"p50", "p99"}, "cpu_percent"?}}},
 *    "cluster_metrics": {...}}
 * `instances` may also be an array of entries with `instance_id`. A missing instance or field counts
 * as idle (0), so a new instance that has not reported yet attracts work instead of being avoided.
 */
import * as JSON from "./json";

/** The metrics entry of instance `id` (JSON null when absent). */
export function instanceMetrics(metrics: JSON.Value, id: string): JSON.Value {
  const instances = metrics.get("block_metrics").get("instances");
  if (instances.isObject) return instances.get(id);
  if (instances.isArray) {
    for (let i = 0; i < instances.length; i++) {
      const entry = instances.at(i);
      if (entry.getString("instance_id") == id) return entry;
    }
  }
  return JSON.nul();
}

/** Requests instance `id` is serving now. */
export function inFlight(metrics: JSON.Value, id: string): f64 {
  return Math.max(0, instanceMetrics(metrics, id).getNumber("in_flight", 0));
}

/** Instance `id`'s CPU utilization as a fraction (from `cpu_percent`, 0..100). */
export function cpuUtilization(metrics: JSON.Value, id: string): f64 {
  const m = instanceMetrics(metrics, id);
  if (m.has("cpu_percent")) return Math.max(0, m.getNumber("cpu_percent", 0)) / 100;
  // Some exporters give a fraction already.
  return Math.max(0, m.getNumber("cpu_utilization", 0));
}
