/**
 * Infrastructure drivers behind one interface (types.ts), chosen once at start-up: local processes (the
 * embedded default, process.ts) or Kubernetes (kubernetes/).
 */
import { KubernetesDriver, type KubernetesDriverOptions } from "./kubernetes/index.ts";
import { ProcessDriver, type ProcessDriverOptions } from "./process.ts";
import type { RuntimeDriver } from "./types.ts";

export { DEFAULT_IMAGE, KubernetesDriver, type KubernetesDriverOptions } from "./kubernetes/index.ts";
export { parseNvidiaSmi } from "./local-node.ts";
export { ProcessDriver, type ProcessDriverOptions, WorkloadStartError } from "./process.ts";
export type * from "./types.ts";
export { workloadAuthEnv } from "./types.ts";

export type RuntimeKind = "process" | "kubernetes";

export interface RuntimeConfig extends ProcessDriverOptions {
  /** Default "process". */
  driver?: RuntimeKind;
  /**
   * The Kubernetes driver's settings (namespace, image, credentials, ...); its cluster id and
   * controller URL come from `scope` and `controllerUrl`, its workloads' credential from `workloadAuth`.
   */
  kubernetes?: Omit<KubernetesDriverOptions, "scope" | "controllerUrl" | "workloadAuth">;
}

export const openRuntime = async (config: RuntimeConfig): Promise<RuntimeDriver> => {
  const { driver = "process", kubernetes, ...options } = config;
  switch (driver) {
    case "process":
      return new ProcessDriver(options);
    case "kubernetes":
      return KubernetesDriver.open({
        ...kubernetes,
        ...(options.scope !== undefined ? { scope: options.scope } : {}),
        ...(options.controllerUrl !== undefined ? { controllerUrl: options.controllerUrl } : {}),
        ...(options.workloadAuth !== undefined ? { workloadAuth: options.workloadAuth } : {}),
      });
    default:
      throw new Error(`unknown runtime driver ${JSON.stringify(driver)} (expected process or kubernetes)`);
  }
};
