/**
 * The aios host functions (HOST_FUNCTIONS in src/policy/abi.ts), imported from `extism:host/user`,
 * with JSON in and out. A policy imports only the functions it calls: the compiler drops the rest.
 */
import { free } from "@extism/as-pdk/lib/env";
import * as JSON from "./json";
import { LogLevel, log, storeJson, storeString, takeBlockJson } from "./kernel";

// @ts-ignore: decorator
@external("extism:host/user", "aios_get_metrics")
declare function aios_get_metrics(): u64;
// @ts-ignore: decorator
@external("extism:host/user", "aios_cluster_read")
declare function aios_cluster_read(id: u64): u64;
// @ts-ignore: decorator
@external("extism:host/user", "aios_cluster_query")
declare function aios_cluster_query(query: u64): u64;
// @ts-ignore: decorator
@external("extism:host/user", "aios_metrics_get")
declare function aios_metrics_get(id: u64): u64;
// @ts-ignore: decorator
@external("extism:host/user", "aios_metrics_query")
declare function aios_metrics_query(params: u64): u64;
// @ts-ignore: decorator
@external("extism:host/user", "aios_context_get")
declare function aios_context_get(key: u64): u64;
// @ts-ignore: decorator
@external("extism:host/user", "aios_context_set")
declare function aios_context_set(key: u64, value: u64): void;

/** A host answer that was missing or not JSON, as the `{"ok": false}` envelope. */
function hostFailure(what: string): JSON.Value {
  return JSON.obj()
    .setBool("ok", false)
    .setString("error", what + ": the host returned no valid JSON");
}

/**
 * `{"block_metrics", "cluster_metrics"}` from the hosting service (the Python policies'
 * `get_metrics()`). An empty object when the host has none.
 */
export function getMetrics(): JSON.Value {
  const v = takeBlockJson(aios_get_metrics());
  return v != null && v.isObject ? v : JSON.obj();
}

/** The cluster client's `read_cluster`: `{"ok": true, "data": cluster}` | `{"ok": false, "error"}`. */
export function clusterRead(id: string): JSON.Value {
  const arg = storeString(id);
  const v = takeBlockJson(aios_cluster_read(arg));
  free(arg);
  return v != null ? v : hostFailure("aios_cluster_read");
}

/** The cluster client's `execute_query` with a MongoDB filter: `{"ok": true, "data": [cluster...]}`. */
export function clusterQuery(filter: JSON.Value): JSON.Value {
  const arg = storeJson(filter);
  const v = takeBlockJson(aios_cluster_query(arg));
  free(arg);
  return v != null ? v : hostFailure("aios_cluster_query");
}

/** The metrics client's `get_cluster`: `{"ok": true, "data": metrics}` | `{"ok": false, "error"}`. */
export function metricsGet(clusterId: string): JSON.Value {
  const arg = storeString(clusterId);
  const v = takeBlockJson(aios_metrics_get(arg));
  free(arg);
  return v != null ? v : hostFailure("aios_metrics_get");
}

/** The metrics client's `query_clusters`: `{"ok": true, "data": [metrics...]}`. */
export function metricsQuery(params: JSON.Value): JSON.Value {
  const arg = storeJson(params);
  const v = takeBlockJson(aios_metrics_query(arg));
  free(arg);
  return v != null ? v : hostFailure("aios_metrics_query");
}

/** The value stored under `key` in this rule's context store, or null when unset. */
export function contextGet(key: string): JSON.Value | null {
  const arg = storeString(key);
  const v = takeBlockJson(aios_context_get(arg));
  free(arg);
  return v;
}

/** Stores `value` under `key` in this rule's context store (kept across calls and hosts). */
export function contextSet(key: string, value: JSON.Value): void {
  const k = storeString(key);
  const v = storeJson(value);
  aios_context_set(k, v);
  free(k);
  free(v);
}

export function logDebug(message: string): void {
  log(LogLevel.Debug, message);
}

export function logInfo(message: string): void {
  log(LogLevel.Info, message);
}

export function logWarn(message: string): void {
  log(LogLevel.Warn, message);
}

export function logError(message: string): void {
  log(LogLevel.Error, message);
}
