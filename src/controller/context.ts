/**
 * What every module of the cluster controller works with: its cluster, its store (blocks, runtime
 * records, event failures), the runtime driver, the event queue, the registry (the cluster document,
 * policies) and its policy instances. Built once by `startController`; tests build their own.
 */

import type { PolicySet } from "../policy/set.ts";
import type { EventQueue } from "../queue/index.ts";
import type { RuntimeDriver } from "../runtime/types.ts";
import type { Store } from "../store/index.ts";

export interface ControllerContext {
  clusterId: string;
  store: Store;
  runtime: RuntimeDriver;
  queue: EventQueue;
  policies: PolicySet;
  /** The cluster document (from the registry), fresh enough for a decision. */
  cluster(): Promise<Record<string, unknown>>;
  /** The cluster's global metrics (the registry's metrics API), null when there are none. */
  clusterMetrics(): Promise<unknown>;
  /** This controller's own URL (instances post events to it; block services call its actions). */
  url: string;
  registryUrl: string;
  /** Nodes the scanner found unhealthy or an operator cordoned (placement avoids them). */
  unhealthyNodes(): ReadonlySet<string>;
  /** How many instances start at once when a block is created or scaled up. */
  startConcurrency: number;
  /** Takes a node out of placement (true) or puts it back (false). */
  cordon(nodeId: string, cordoned: boolean): void;
}
