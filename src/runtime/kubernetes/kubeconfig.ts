/**
 * Credentials and namespace for the Kubernetes driver: a kubeconfig file (`--kubeconfig`, else
 * $KUBECONFIG, else ~/.kube/config) or the pod's service account when running in a cluster.
 */
import { existsSync, readFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { KubeConfig } from "@kubernetes/client-node";

const SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount";
const NO_CLUSTER =
  "no Kubernetes cluster configured: pass --kubeconfig, set KUBECONFIG, or run in a pod with a service account";

export interface KubeConfigOptions {
  /** A kubeconfig file; default $KUBECONFIG or ~/.kube/config, or in-cluster credentials in a pod. */
  kubeconfig?: string;
  /** Use the pod's service account, whatever files exist. */
  inCluster?: boolean;
  /** A kubeconfig context other than the current one. */
  context?: string;
}

/** Running in a pod: the API server's address is in the environment and a token is mounted. */
export const inClusterAvailable = (): boolean =>
  Boolean(process.env.KUBERNETES_SERVICE_HOST) && existsSync(`${SERVICE_ACCOUNT_DIR}/token`);

export const loadKubeConfig = (options: KubeConfigOptions = {}): KubeConfig => {
  const kc = new KubeConfig();
  if (options.inCluster) {
    if (!inClusterAvailable()) {
      throw new Error(
        `in-cluster credentials requested but this is not a pod with a service account (KUBERNETES_SERVICE_HOST unset or ${SERVICE_ACCOUNT_DIR}/token missing)`,
      );
    }
    kc.loadFromCluster();
  } else if (options.kubeconfig) {
    if (!existsSync(options.kubeconfig)) throw new Error(`kubeconfig ${options.kubeconfig} does not exist`);
    kc.loadFromFile(options.kubeconfig);
  } else {
    // $KUBECONFIG, ~/.kube/config, then the service account. With none of them client-node would
    // quietly aim at http://localhost:8080: refused here, so a missing configuration is said at once.
    const files = (process.env.KUBECONFIG ?? "").split(":").filter(Boolean);
    if (!files.some(existsSync) && !existsSync(join(homedir(), ".kube", "config")) && !inClusterAvailable()) {
      throw new Error(NO_CLUSTER);
    }
    kc.loadFromDefault();
  }
  if (options.context) {
    if (!kc.getContextObject(options.context)) {
      throw new Error(
        `kubeconfig has no context ${JSON.stringify(options.context)} (has: ${kc.contexts.map((c) => c.name).join(", ") || "none"})`,
      );
    }
    kc.setCurrentContext(options.context);
  }
  if (!kc.getCurrentCluster()) throw new Error(NO_CLUSTER);
  return kc;
};

/** The namespace to work in when none is given: the pod's own, else the kubeconfig context's, else "default". */
export const defaultNamespace = (kc: KubeConfig): string => {
  const file = `${SERVICE_ACCOUNT_DIR}/namespace`;
  const context = kc.getContextObject(kc.getCurrentContext());
  if (context?.namespace) return context.namespace;
  if (existsSync(file)) return readFileSync(file, "utf8").trim() || "default";
  return "default";
};
