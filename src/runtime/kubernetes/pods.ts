/** What a pod's status means for the driver: its workload state, exit code, URL and why it cannot start. */
import type { V1ContainerStatus, V1Pod } from "@kubernetes/client-node";
import type { WorkloadState } from "../types.ts";

/** Waiting reasons that will not fix themselves: the start is reported failed at once. */
const FATAL_WAITING = new Set([
  "ErrImagePull",
  "ImagePullBackOff",
  "InvalidImageName",
  "ErrImageNeverPull",
  "CreateContainerConfigError",
  "CreateContainerError",
  "RunContainerError",
  "CrashLoopBackOff",
]);

const mainStatus = (pod: V1Pod): V1ContainerStatus | undefined => pod.status?.containerStatuses?.[0];

const condition = (pod: V1Pod, type: string) => pod.status?.conditions?.find((c) => c.type === type);

export const podReady = (pod: V1Pod): boolean => condition(pod, "Ready")?.status === "True";

/**
 * "starting" until the container passed its startup probe (`started`: `GET /health` answered 200 once)
 * or is ready, then "running" even while a readiness probe fails: whether a serving instance is healthy
 * is the block's health checker's call.
 */
export const podState = (pod: V1Pod): WorkloadState => {
  switch (pod.status?.phase) {
    case "Succeeded":
      return "exited";
    case "Failed":
      return mainStatus(pod)?.state?.terminated ? "exited" : "failed";
    case "Running": {
      const c = mainStatus(pod);
      if (c?.state?.terminated) return "exited";
      return podReady(pod) || c?.started === true ? "running" : "starting";
    }
    default:
      return "starting";
  }
};

/** The container's exit code once it ended; null while it runs or when it never ran. */
export const podExitCode = (pod: V1Pod): number | null => {
  const c = mainStatus(pod);
  return c?.state?.terminated?.exitCode ?? c?.lastState?.terminated?.exitCode ?? null;
};

/** The pod ended (or its container did): what the instance_exited event reports. */
export const podEnded = (pod: V1Pod): boolean => {
  const phase = pod.status?.phase;
  return phase === "Succeeded" || phase === "Failed" || mainStatus(pod)?.state?.terminated !== undefined;
};

/** Why the pod will not start, when that is certain; null while it may still come up. */
export const startFailure = (pod: V1Pod): string | null => {
  if (pod.status?.phase === "Failed" || pod.status?.phase === "Succeeded") {
    const term = mainStatus(pod)?.state?.terminated;
    const parts = [
      `pod ${pod.status.phase.toLowerCase()}`,
      pod.status.reason,
      pod.status.message,
      term
        ? `container exited with code ${term.exitCode}${term.reason ? ` (${term.reason})` : ""}`
        : undefined,
    ].filter(Boolean);
    return parts.join(": ");
  }
  const waiting = mainStatus(pod)?.state?.waiting;
  if (waiting?.reason && FATAL_WAITING.has(waiting.reason)) {
    return `${waiting.reason}${waiting.message ? `: ${waiting.message}` : ""}`;
  }
  return null;
};

/** What the pod waits for, for a timeout's message (unschedulable, pulling, probes failing). */
export const pendingReason = (pod: V1Pod): string => {
  const scheduled = condition(pod, "PodScheduled");
  if (scheduled?.status === "False")
    return `not scheduled: ${scheduled.reason ?? ""} ${scheduled.message ?? ""}`.trim();
  const waiting = mainStatus(pod)?.state?.waiting;
  if (waiting) return `container waiting: ${waiting.reason ?? ""} ${waiting.message ?? ""}`.trim();
  if (pod.status?.phase === "Running" && !podReady(pod))
    return "running but not ready (GET /health does not answer 200)";
  return `phase ${pod.status?.phase ?? "unknown"}`;
};

/** `http://<pod IP>:<port>`, null until the pod has an address. */
export const podUrl = (pod: V1Pod, port: number): string | null => {
  const ip = pod.status?.podIP;
  if (!ip) return null;
  return `http://${ip.includes(":") ? `[${ip}]` : ip}:${port}`;
};

export const podStartedAt = (pod: V1Pod, annotation: string): string =>
  pod.metadata?.annotations?.[annotation] ??
  toIso(pod.status?.startTime) ??
  toIso(pod.metadata?.creationTimestamp) ??
  new Date(0).toISOString();

const toIso = (d: Date | string | undefined): string | undefined =>
  d === undefined ? undefined : d instanceof Date ? d.toISOString() : String(d);
