/**
 * The built-in policies: the one place they are registered. The build compiles each entry's
 * `wasm-policies/policies/<name>/index.ts` to `file`; hosts read this list to seed the policy store.
 * Plain TypeScript with no imports, so any part of the project can read it.
 */

export type PolicyKind =
  | "loadBalancer"
  | "autoscaler"
  | "stabilityChecker"
  | "clusterAllocator"
  | "resourceAllocator"
  | "clusterStabilityChecker"
  | "preCheck"
  | "eventHandler"
  | "allocatorServer";

export interface BuiltinPolicy {
  /** Folder under wasm-policies/policies/ and file name under wasm-policies/dist/. */
  name: string;
  /** The URI the policy is stored under (`name:version`). */
  uri: string;
  kind: PolicyKind;
  /** The built .wasm, relative to the repository root. */
  file: string;
  description: string;
}

const entry = (name: string, uri: string, kind: PolicyKind, description: string): BuiltinPolicy => ({
  name,
  uri,
  kind,
  file: `wasm-policies/dist/${name}.wasm`,
  description,
});

export const BUILTIN_POLICIES: BuiltinPolicy[] = [
  entry(
    "roundrobin",
    "policy.loadBalancer.roundrobin:v0.0.1",
    "loadBalancer",
    "Round-robin over the instances; a session keeps its instance (bounded session cache, cleared when the instance list changes).",
  ),
  entry(
    "least-outstanding",
    "policy.loadBalancer.least-outstanding:v0.0.1",
    "loadBalancer",
    "The instance with the fewest requests in flight (from the block's metrics); ties rotate.",
  ),
  entry(
    "p2c",
    "policy.loadBalancer.p2c:v0.0.1",
    "loadBalancer",
    "Power of two choices on requests in flight, with a seedable deterministic generator.",
  ),
  entry(
    "target-tracking",
    "policy.autoscaler.target-tracking:v0.0.1",
    "autoscaler",
    "Target tracking on in-flight requests per instance or CPU utilization, clamped to min/max instances, with scale-up and scale-down cooldowns.",
  ),
  entry(
    "unhealthy-retry",
    "policy.stabilityChecker.unhealthy-retry:v0.0.1",
    "stabilityChecker",
    "Asks to replace an instance after a number of consecutive failed health checks.",
  ),
  entry(
    "highest-score",
    "policy.clusterAllocator.highest-score:v0.0.1",
    "clusterAllocator",
    "Keeps the first max_candidates filtered clusters, then picks the highest dry-run score.",
  ),
  entry(
    "gpu-free-memory",
    "policy.resourceAllocator.gpu-free-memory:v0.0.1",
    "resourceAllocator",
    "Places instances on healthy nodes' GPUs by free memory and utilization (greedy or spread); dry runs score maxInstances placements.",
  ),
  entry(
    "unhealthy-ratio",
    "policy.clusterStability.unhealthy-ratio:v0.0.1",
    "clusterStabilityChecker",
    "A cluster is stable while the share of unhealthy nodes stays at or under a threshold.",
  ),
  entry("allow-all", "policy.preCheck.allow-all:v0.0.1", "preCheck", "Allows every action unchanged."),
  entry(
    "instance-quota",
    "policy.preCheck.instance-quota:v0.0.1",
    "preCheck",
    "Refuses actions asking for more instances than max_instances.",
  ),
  entry(
    "clamp-instances",
    "policy.preCheck.clamp-instances:v0.0.1",
    "preCheck",
    "Allows actions but lowers requested instance counts to max_instances.",
  ),
  entry(
    "failure-counter",
    "policy.eventHandler.failure-counter:v0.0.1",
    "eventHandler",
    "Counts a block's events in the context store; repeated failures of an instance ask for its replacement.",
  ),
  entry(
    "most-free-gpu",
    "policy.allocator.most-free-gpu:v0.0.1",
    "allocatorServer",
    "Picks the cluster and node with the most free GPU memory that fits the request.",
  ),
];

/** Test fixtures built alongside the policies (not registered as policies). */
export const POLICY_FIXTURES: { name: string; file: string }[] = [
  { name: "json-echo", file: "wasm-policies/dist/fixtures/json-echo.wasm" },
];
