/** The Kubernetes runtime driver (driver.ts) and what it is built from. */
export { KubeApi, KubernetesApiError } from "./api.ts";
export { DEFAULT_IMAGE, KubernetesDriver, type KubernetesDriverOptions } from "./driver.ts";
export { Informer } from "./informer.ts";
export {
  defaultNamespace,
  inClusterAvailable,
  type KubeConfigOptions,
  loadKubeConfig,
} from "./kubeconfig.ts";
export * as manifests from "./manifests.ts";
export { ANNOTATIONS, LABELS, labelValue, names, objectName } from "./names.ts";
export {
  type DrainOptions,
  type DrainReport,
  NodeOps,
  nodeHealth,
  nodeStatus,
  parseQuantity,
} from "./nodes.ts";
