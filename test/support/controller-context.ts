/**
 * A ControllerContext for tests of one controller module: what the module uses is given, the rest are
 * stand-ins that throw a clear error if touched (so a test cannot silently depend on them).
 */
import type { ControllerContext } from "../../src/controller/context.ts";
import type { PolicySet } from "../../src/policy/set.ts";

const unused = <T extends object>(name: string): T =>
  new Proxy({} as T, {
    get(_target, prop) {
      throw new Error(`this test's context has no ${name} (touched .${String(prop)})`);
    },
  });

export const testContext = (
  given: Pick<ControllerContext, "policies"> & Partial<ControllerContext> & { policies: PolicySet },
): ControllerContext => ({
  clusterId: "cluster-1",
  store: unused("store"),
  runtime: unused("runtime"),
  queue: unused("queue"),
  cluster: async () => ({ id: "cluster-1" }),
  clusterMetrics: async () => null,
  url: "http://127.0.0.1:1",
  registryUrl: "http://127.0.0.1:1",
  unhealthyNodes: () => new Set<string>(),
  cordon: () => {},
  startConcurrency: 1,
  ...given,
});
