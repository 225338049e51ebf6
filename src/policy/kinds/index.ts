/** Every policy kind, registered in one place. A stored policy names one of these. */
import { allocatorServer } from "./allocator-server.ts";
import { autoscaler } from "./autoscaler.ts";
import { clusterAllocator } from "./cluster-allocator.ts";
import { clusterStabilityChecker } from "./cluster-stability-checker.ts";
import type { PolicyKind } from "./contract.ts";
import { eventHandler } from "./event-handler.ts";
import { loadBalancer } from "./load-balancer.ts";
import { preCheck } from "./pre-check.ts";
import { resourceAllocator } from "./resource-allocator.ts";
import { stabilityChecker } from "./stability-checker.ts";

export type { PolicyKind } from "./contract.ts";
export { PRE_CHECK_HOOKS, type PreCheckHook } from "./pre-check.ts";
export { RESOURCE_ALLOCATOR_ACTIONS } from "./resource-allocator.ts";

export const POLICY_KINDS = {
  loadBalancer,
  autoscaler,
  stabilityChecker,
  clusterAllocator,
  resourceAllocator,
  clusterStabilityChecker,
  preCheck,
  eventHandler,
  allocatorServer,
} as const;

export type PolicyKindName = keyof typeof POLICY_KINDS;
export const POLICY_KIND_NAMES = Object.keys(POLICY_KINDS) as PolicyKindName[];

export const isPolicyKindName = (name: string): name is PolicyKindName => Object.hasOwn(POLICY_KINDS, name);

export const policyKind = (name: PolicyKindName): PolicyKind<Record<string, unknown>> =>
  POLICY_KINDS[name] as unknown as PolicyKind<Record<string, unknown>>;
