/**
 * The policy kinds the upload form offers: the names of src/policy/kinds (the browser cannot import
 * the TypeScript; test/gateway/ui.test.ts holds the two lists equal).
 */
export const POLICY_KINDS = [
  "loadBalancer",
  "autoscaler",
  "stabilityChecker",
  "clusterAllocator",
  "resourceAllocator",
  "clusterStabilityChecker",
  "preCheck",
  "eventHandler",
  "allocatorServer",
];
