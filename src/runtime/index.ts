/**
 * Infrastructure drivers behind one interface (types.ts), chosen once at start-up: local processes (the
 * embedded default, process.ts) or Kubernetes (a later issue).
 */
import { ProcessDriver, type ProcessDriverOptions } from "./process.ts";
import type { RuntimeDriver } from "./types.ts";

export { parseNvidiaSmi } from "./local-node.ts";
export { ProcessDriver, type ProcessDriverOptions, WorkloadStartError } from "./process.ts";
export type * from "./types.ts";

export type RuntimeKind = "process" | "kubernetes";

export interface RuntimeConfig extends ProcessDriverOptions {
  /** Default "process". */
  driver?: RuntimeKind;
}

export const openRuntime = async (config: RuntimeConfig): Promise<RuntimeDriver> => {
  const { driver = "process", ...options } = config;
  switch (driver) {
    case "process":
      return new ProcessDriver(options);
    case "kubernetes":
      throw new Error("the kubernetes runtime is not available yet: a later issue");
    default:
      throw new Error(`unknown runtime driver ${JSON.stringify(driver)} (expected process or kubernetes)`);
  }
};
