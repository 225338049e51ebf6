/**
 * Names, labels and selectors of the objects the Kubernetes driver creates. Every object carries
 * `app.kubernetes.io/managed-by: aios` and `aios.dev/cluster-id`, so several aios clusters can share a
 * namespace, and `aios.dev/block-id` (plus `aios.dev/instance-id` on instance pods) so one label
 * selector finds everything of a block. Label values are limited to 63 characters of
 * `[A-Za-z0-9._-]`: an id that does not fit is shortened and suffixed with a hash (the same id always
 * gives the same value, so selectors keep working), and the exact id is kept in an annotation.
 */
import { createHash } from "node:crypto";

export const MANAGED_BY = "app.kubernetes.io/managed-by";
export const MANAGED_BY_VALUE = "aios";
export const LABELS = {
  name: "app.kubernetes.io/name",
  component: "app.kubernetes.io/component",
  cluster: "aios.dev/cluster-id",
  block: "aios.dev/block-id",
  instance: "aios.dev/instance-id",
  vdag: "aios.dev/vdag-controller-id",
  /** Set on nodes onboarded into an aios cluster (value: the cluster's label value). */
  node: "aios.dev/cluster-node",
} as const;
/** Exact ids (label values may be shortened). */
export const ANNOTATIONS = {
  block: "aios.dev/block-id",
  instance: "aios.dev/instance-id",
  vdag: "aios.dev/vdag-controller-id",
  cluster: "aios.dev/cluster-id",
  node: "aios.dev/node-id",
  gpus: "aios.dev/gpus",
  startedAt: "aios.dev/started-at",
} as const;

export type Component = "instance" | "block-services" | "block" | "vdag-controller" | "credential";

const hash = (s: string, n = 8): string => createHash("sha256").update(s).digest("hex").slice(0, n);

const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;

/** A valid label value for `id`: itself when it fits, else a readable prefix and a hash of the whole. */
export const labelValue = (id: string): string => {
  if (id.length <= 63 && LABEL_VALUE.test(id)) return id;
  const readable = id
    .replace(/[^A-Za-z0-9._-]+/g, "-")
    .replace(/^[^A-Za-z0-9]+/, "")
    .slice(0, 54)
    .replace(/[^A-Za-z0-9]+$/, "");
  return readable ? `${readable}-${hash(id)}` : hash(id, 16);
};

/**
 * A DNS-1035 label (`[a-z]([-a-z0-9]*[a-z0-9])?`, at most 63 characters) built from parts: Service
 * names must be one, and using the same rule for every object keeps a block's objects under one name.
 * Lower-cased and cleaned; a hash of the raw parts is appended whenever cleaning changed anything or
 * the result had to be cut, so two different ids never share a name.
 */
export const objectName = (...parts: string[]): string => {
  const raw = parts.join("-");
  const clean = raw
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, "-")
    .replace(/-+/g, "-")
    .replace(/^-+|-+$/g, "");
  const exact = clean === raw && /^[a-z]/.test(clean) && clean.length <= 63;
  if (exact) return clean;
  const suffix = hash(raw);
  const head = clean.slice(0, 63 - suffix.length - 1).replace(/-+$/, "");
  return /^[a-z]/.test(head) ? `${head}-${suffix}` : `x${head ? `-${head}` : ""}-${suffix}`.slice(0, 63);
};

export const names = {
  /** The per-block owner: a ConfigMap holding the block document, owner of the block's other objects. */
  block: (blockId: string) => objectName("aios-block", blockId),
  /** The block services' Deployment, Service and Ingress share this name. */
  services: (blockId: string) => objectName("aios-block", blockId, "services"),
  instance: (blockId: string, instanceId: string) =>
    // Instance ids are `<blockId>-<suffix>`: not repeating the block keeps the name readable.
    objectName("aios-i", instanceId.startsWith(`${blockId}-`) ? instanceId : `${blockId}-${instanceId}`),
  vdag: (id: string) => objectName("aios-vdag", id),
  /** The Secret holding the token the cluster's controller hands to its workloads. */
  credential: (clusterId: string) => objectName("aios-credential", clusterId),
};

export interface Scope {
  /** The cluster id (the controller's); every object and selector is limited to it. */
  clusterId: string;
}

/** The labels every object of this cluster carries. */
export const baseLabels = (scope: Scope, component: Component): Record<string, string> => ({
  [MANAGED_BY]: MANAGED_BY_VALUE,
  [LABELS.name]: "aios",
  [LABELS.component]: component,
  [LABELS.cluster]: labelValue(scope.clusterId),
});

/** A label selector string from equalities. */
export const selector = (labels: Record<string, string>): string =>
  Object.entries(labels)
    .map(([k, v]) => `${k}=${v}`)
    .join(",");

/** Everything this driver manages for the cluster (any component). */
export const clusterSelector = (scope: Scope): string =>
  selector({ [MANAGED_BY]: MANAGED_BY_VALUE, [LABELS.cluster]: labelValue(scope.clusterId) });
