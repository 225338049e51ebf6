/**
 * Validation of Kubernetes objects against the Kubernetes OpenAPI schemas, for tests:
 *
 * - `kubernetes-models` (validators generated from the OpenAPI schemas): types, required fields,
 *   formats and enums.
 * - Unknown fields, which those validators let through: the object is read and written back through
 *   client-node's serializer (generated from the same OpenAPI document), which keeps only the fields
 *   the schema names; anything lost on the way is a field the API server would drop or refuse.
 */
import { ObjectSerializer } from "@kubernetes/client-node/dist/gen/models/ObjectSerializer.js";

type Model = new (data: unknown) => { validate(): void };

/** apiVersion/kind -> the kubernetes-models module path and the client-node model name. */
const KINDS: Record<string, { module: string; model: string }> = {
  "v1/Pod": { module: "kubernetes-models/v1/Pod", model: "V1Pod" },
  "v1/Service": { module: "kubernetes-models/v1/Service", model: "V1Service" },
  "v1/ConfigMap": { module: "kubernetes-models/v1/ConfigMap", model: "V1ConfigMap" },
  "v1/Secret": { module: "kubernetes-models/v1/Secret", model: "V1Secret" },
  "v1/Node": { module: "kubernetes-models/v1/Node", model: "V1Node" },
  "v1/Namespace": { module: "kubernetes-models/v1/Namespace", model: "V1Namespace" },
  "v1/ServiceAccount": { module: "kubernetes-models/v1/ServiceAccount", model: "V1ServiceAccount" },
  "v1/PersistentVolumeClaim": {
    module: "kubernetes-models/v1/PersistentVolumeClaim",
    model: "V1PersistentVolumeClaim",
  },
  "apps/v1/Deployment": { module: "kubernetes-models/apps/v1/Deployment", model: "V1Deployment" },
  "apps/v1/StatefulSet": { module: "kubernetes-models/apps/v1/StatefulSet", model: "V1StatefulSet" },
  "networking.k8s.io/v1/Ingress": {
    module: "kubernetes-models/networking.k8s.io/v1/Ingress",
    model: "V1Ingress",
  },
  "networking.k8s.io/v1/NetworkPolicy": {
    module: "kubernetes-models/networking.k8s.io/v1/NetworkPolicy",
    model: "V1NetworkPolicy",
  },
  "policy/v1/Eviction": { module: "kubernetes-models/policy/v1/Eviction", model: "V1Eviction" },
  "policy/v1/PodDisruptionBudget": {
    module: "kubernetes-models/policy/v1/PodDisruptionBudget",
    model: "V1PodDisruptionBudget",
  },
  "rbac.authorization.k8s.io/v1/Role": {
    module: "kubernetes-models/rbac.authorization.k8s.io/v1/Role",
    model: "V1Role",
  },
  "rbac.authorization.k8s.io/v1/RoleBinding": {
    module: "kubernetes-models/rbac.authorization.k8s.io/v1/RoleBinding",
    model: "V1RoleBinding",
  },
  "rbac.authorization.k8s.io/v1/ClusterRole": {
    module: "kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRole",
    model: "V1ClusterRole",
  },
  "rbac.authorization.k8s.io/v1/ClusterRoleBinding": {
    module: "kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRoleBinding",
    model: "V1ClusterRoleBinding",
  },
  "autoscaling/v1/Scale": { module: "kubernetes-models/autoscaling/v1/Scale", model: "V1Scale" },
};

const models = new Map<string, Model>();

const modelFor = async (key: string): Promise<Model> => {
  const known = models.get(key);
  if (known) return known;
  const entry = KINDS[key];
  if (!entry) throw new Error(`no schema known for ${key}`);
  const mod = (await import(entry.module)) as Record<string, Model>;
  const kind = key.split("/").at(-1) ?? "";
  const model = mod[kind];
  if (!model) throw new Error(`${entry.module} exports no ${kind}`);
  models.set(key, model);
  return model;
};

/** Paths present in `a` but not in `b` (fields dropped by the serializer). */
const lostPaths = (a: unknown, b: unknown, at = ""): string[] => {
  if (a === null || typeof a !== "object") return [];
  if (Array.isArray(a)) {
    return a.flatMap((v, i) => lostPaths(v, Array.isArray(b) ? b[i] : undefined, `${at}[${i}]`));
  }
  const out: string[] = [];
  const bo = (b ?? {}) as Record<string, unknown>;
  for (const [k, v] of Object.entries(a as Record<string, unknown>)) {
    if (v === undefined) continue;
    if (!(k in bo) || bo[k] === undefined) out.push(`${at}.${k}`);
    else out.push(...lostPaths(v, bo[k], `${at}.${k}`));
  }
  return out;
};

/**
 * kustomize wraps a long Secret value over several lines; the API server's base64 decoder skips line
 * breaks, the schema's "byte" format does not: joined here as the server reads them.
 */
const wrappedBase64 = (obj: unknown): unknown => {
  const o = obj as { kind?: string; data?: Record<string, unknown> };
  if (o?.kind !== "Secret" || !o.data) return obj;
  const data = Object.fromEntries(
    Object.entries(o.data).map(([k, v]) => [k, typeof v === "string" ? v.replace(/[\r\n]/g, "") : v]),
  );
  return { ...o, data };
};

/** Whether the schema of `apiVersion/kind` is known here. */
export const knownKind = (obj: { apiVersion?: string; kind?: string }): boolean =>
  `${obj.apiVersion}/${obj.kind}` in KINDS;

/** Throws, naming the object and the fields at fault, when `obj` does not validate. */
export const validateObject = async (input: unknown): Promise<void> => {
  const obj = wrappedBase64(input);
  const o = obj as { apiVersion?: string; kind?: string; metadata?: { name?: string } };
  const key = `${o.apiVersion}/${o.kind}`;
  const what = `${key} ${o.metadata?.name ?? "(no name)"}`;
  const Model = await modelFor(key);
  try {
    new Model(obj).validate();
  } catch (err) {
    throw new Error(`${what} does not validate: ${err instanceof Error ? err.message : String(err)}`);
  }
  const entry = KINDS[key];
  if (!entry) return;
  // Only plain JSON goes through the round trip (Dates would come back as strings).
  const json = JSON.parse(JSON.stringify(obj));
  const round = ObjectSerializer.serialize(
    ObjectSerializer.deserialize(json, entry.model, ""),
    entry.model,
    "",
  );
  const lost = lostPaths(json, round);
  if (lost.length > 0) throw new Error(`${what} has fields its schema does not know: ${lost.join(", ")}`);
};
