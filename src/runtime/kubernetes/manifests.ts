/**
 * The objects the Kubernetes driver creates, as pure functions of the driver's settings and a spec
 * (no I/O), so tests validate each one against the Kubernetes OpenAPI schemas.
 *
 * - A block has one owner object, a ConfigMap holding its document (`block.json`, mounted by the block
 *   services). Its instance pods and its services' Deployment, Service and Ingress name it in
 *   `ownerReferences`, so deleting it garbage-collects everything of the block.
 * - An instance is a bare pod pinned to the node the resource allocator chose. `restartPolicy: Never`:
 *   an instance that exits is replaced by the controller with a fresh placement (cluster-controller.md,
 *   Dynamic Infrastructure Scanner), not restarted in place by the kubelet on a node that may be failing.
 * - Block services (`aios block-runtime`) are a one-replica Deployment (Recreate: two executors of one
 *   block would both auto-scale it), a Service with the specification's ports, and an Ingress with the
 *   `/block/{id}/...` routes of block-runtime.md.
 * - A vDAG controller is a Deployment whose replica count `scale_controller` sets.
 * - The controller's credential for its workloads is one Secret per cluster (`credentialSecret`): every
 *   workload reads AIOS_TOKEN from it (`secretKeyRef`), so the token is in no pod spec.
 */
import type {
  V1ConfigMap,
  V1Container,
  V1Deployment,
  V1EnvVar,
  V1Ingress,
  V1OwnerReference,
  V1Pod,
  V1ResourceRequirements,
  V1Secret,
  V1Service,
  V1Toleration,
} from "@kubernetes/client-node";
import type { BlockServiceName, BlockServicesSpec, InstanceSpec, VdagControllerSpec } from "../types.ts";
import { ANNOTATIONS, baseLabels, LABELS, labelValue, names, type Scope } from "./names.ts";

/** The listeners of `aios block-runtime` on Kubernetes: the specification's ports (src/block/serve.ts). */
export const SERVICE_PORTS: Record<BlockServiceName, { port: number; flag: string }> = {
  grpc: { port: 50051, flag: "--port" },
  metrics: { port: 18000, flag: "--metrics-port" },
  executor: { port: 18001, flag: "--mgmt-port" },
  mapper: { port: 5000, flag: "--mapper-port" },
  autoscaler: { port: 10000, flag: "--autoscaler-port" },
  "health-checker": { port: 19001, flag: "--health-port" },
};
export const SERVICE_NAMES = Object.keys(SERVICE_PORTS) as BlockServiceName[];

/** Ingress URL suffixes of block-runtime.md ("Block Services") and the listener behind each. */
export const INGRESS_ROUTES: { suffix: string; listener: BlockServiceName }[] = [
  { suffix: "rpc", listener: "grpc" },
  { suffix: "metrics", listener: "metrics" },
  { suffix: "executor", listener: "executor" },
  { suffix: "autoscaler", listener: "autoscaler" },
  { suffix: "health-checker", listener: "health-checker" },
];

/** Where the block document is mounted in the block services' container. */
export const BLOCK_FILE_DIR = "/etc/aios/block";
export const BLOCK_FILE = "block.json";

export interface IngressSettings {
  /** Default true. */
  enabled?: boolean;
  /** `spec.ingressClassName`; default: the cluster's default class. */
  className?: string;
  /** Only requests for this host; default any host. */
  host?: string;
  /**
   * Replaces the default annotations, which are ingress-nginx's: regex paths rewritten so that
   * `/block/{id}/executor/mgmt` reaches the executor as `/mgmt`. Other controllers need their own.
   */
  annotations?: Record<string, string>;
}

export interface ManifestSettings extends Scope {
  namespace: string;
  /** The aios image: block services, and instances and vDAG controllers whose template names none. */
  image: string;
  imagePullPolicy?: "Always" | "IfNotPresent" | "Never";
  imagePullSecrets?: string[];
  /** The port instances and vDAG controller replicas listen on (AIOS_INSTANCE_PORT / AIOS_PORT). */
  workloadPort: number;
  /** Extended resource requested per GPU; "" requests none (device ids then go by env only). */
  gpuResource: string;
  /** Service account of the block services' pods (they need no Kubernetes API access). */
  servicesServiceAccount?: string;
  servicesResources?: V1ResourceRequirements;
  terminationGracePeriodSeconds: number;
  ingress: IngressSettings;
  /** The Secret holding the workloads' credential (key CREDENTIAL_KEY), read as AIOS_TOKEN; none: no token. */
  credentialSecret?: string;
  /** Workloads let calls without a token in (AIOS_ANONYMOUS=1), as the controller does. */
  anonymous?: boolean;
}

/** The key of the workloads' token in the credential Secret. */
export const CREDENTIAL_KEY = "token";

/** The cluster's credential Secret: the token the controller hands to its workloads. */
export const credentialSecret = (s: ManifestSettings, name: string, token: string): V1Secret => ({
  apiVersion: "v1",
  kind: "Secret",
  metadata: {
    name,
    namespace: s.namespace,
    labels: baseLabels(s, "credential"),
    annotations: { [ANNOTATIONS.cluster]: s.clusterId },
  },
  type: "Opaque",
  data: { [CREDENTIAL_KEY]: Buffer.from(token, "utf8").toString("base64") },
});

/** AIOS_TOKEN (from the credential Secret) and AIOS_ANONYMOUS, as the settings say. */
export const authEnv = (s: ManifestSettings): V1EnvVar[] => [
  ...(s.credentialSecret
    ? [
        {
          name: "AIOS_TOKEN",
          valueFrom: { secretKeyRef: { name: s.credentialSecret, key: CREDENTIAL_KEY } },
        },
      ]
    : []),
  ...(s.anonymous ? [{ name: "AIOS_ANONYMOUS", value: "1" }] : []),
];

/** `env` with the credential's variables last (a template's own AIOS_TOKEN does not override them). */
const withAuthEnv = (s: ManifestSettings, env: V1EnvVar[]): V1EnvVar[] => {
  const auth = authEnv(s);
  const set = new Set(auth.map((e) => e.name));
  return [...env.filter((e) => !set.has(e.name)), ...auth];
};

/** The labels of one block's objects. */
export const blockLabels = (
  s: Scope,
  blockId: string,
  component: "block" | "block-services" | "instance",
) => ({
  ...baseLabels(s, component),
  [LABELS.block]: labelValue(blockId),
});

/** What the block services' Deployment selects (and the Service routes to). */
export const servicesSelector = (s: Scope, blockId: string): Record<string, string> =>
  blockLabels(s, blockId, "block-services");

export const vdagLabels = (s: Scope, id: string): Record<string, string> => ({
  ...baseLabels(s, "vdag-controller"),
  [LABELS.vdag]: labelValue(id),
});

/** An owner reference to the block's ConfigMap; deleting it removes what names it. */
export const ownerReference = (owner: { name: string; uid: string }): V1OwnerReference => ({
  apiVersion: "v1",
  kind: "ConfigMap",
  name: owner.name,
  uid: owner.uid,
  // The owner is a plain record, not a controller of the pods.
  controller: false,
  // A foreground deletion of the owner waits for its dependents to go.
  blockOwnerDeletion: true,
});

export const blockConfigMap = (s: ManifestSettings, blockId: string, block: unknown): V1ConfigMap => ({
  apiVersion: "v1",
  kind: "ConfigMap",
  metadata: {
    name: names.block(blockId),
    namespace: s.namespace,
    labels: blockLabels(s, blockId, "block"),
    annotations: { [ANNOTATIONS.block]: blockId, [ANNOTATIONS.cluster]: s.clusterId },
  },
  data: { [BLOCK_FILE]: JSON.stringify(block ?? { id: blockId }) },
});

const envList = (env: Record<string, string>): V1EnvVar[] =>
  Object.entries(env).map(([name, value]) => ({ name, value }));

const json = (name: string, value: unknown): Record<string, string> =>
  value === undefined ? {} : { [name]: JSON.stringify(value) };

const pullSecrets = (s: ManifestSettings) =>
  s.imagePullSecrets && s.imagePullSecrets.length > 0
    ? { imagePullSecrets: s.imagePullSecrets.map((name) => ({ name })) }
    : {};

/** GPU nodes are commonly tainted so that only GPU workloads land there. */
const GPU_TOLERATION: V1Toleration = { key: "nvidia.com/gpu", operator: "Exists", effect: "NoSchedule" };

/**
 * The container of an instance or vDAG replica: the template's image (else the aios image) and its
 * command (else the image's entrypoint).
 */
const workloadContainer = (
  s: ManifestSettings,
  name: string,
  template: InstanceSpec["template"],
  env: V1EnvVar[],
): V1Container => ({
  name,
  image: template.image ?? s.image,
  ...(s.imagePullPolicy ? { imagePullPolicy: s.imagePullPolicy } : {}),
  ...(template.command && template.command.length > 0 ? { command: [...template.command] } : {}),
  env,
  ports: [{ name: "http", containerPort: s.workloadPort, protocol: "TCP" }],
});

export interface InstancePodInput {
  spec: InstanceSpec;
  owner: { name: string; uid: string };
  controllerUrl: string | undefined;
  startedAt: string;
}

export const instancePod = (s: ManifestSettings, input: InstancePodInput): V1Pod => {
  const { spec, owner } = input;
  const gpus = spec.gpus;
  const env = envList({
    ...spec.template.env,
    AIOS_BLOCK_ID: spec.blockId,
    AIOS_INSTANCE_ID: spec.instanceId,
    AIOS_INSTANCE_PORT: String(s.workloadPort),
    AIOS_CLUSTER_ID: s.clusterId,
    AIOS_NODE_ID: spec.nodeId,
    ...json("AIOS_INIT_DATA", spec.initData),
    ...json("AIOS_INIT_SETTINGS", spec.initSettings),
    ...json("AIOS_PARAMETERS", spec.parameters),
    // The node's device ids, for the NVIDIA container runtime; "none" keeps an image that defaults to
    // every GPU (CUDA base images do) off devices the allocator did not give it.
    NVIDIA_VISIBLE_DEVICES: gpus.length > 0 ? gpus.join(",") : "none",
    // Inside the container the exposed devices are numbered from 0: these are what CUDA (and the
    // instance SDK's ctx.gpus) must use.
    CUDA_VISIBLE_DEVICES: gpus.map((_, i) => String(i)).join(","),
    ...(input.controllerUrl ? { AIOS_CONTROLLER_URL: input.controllerUrl } : {}),
    ...(spec.redisUrl ? { REDIS_URL: spec.redisUrl } : {}),
  });
  const container = workloadContainer(s, "instance", spec.template, withAuthEnv(s, env));
  const probe = { httpGet: { path: "/health", port: "http" }, timeoutSeconds: 2 };
  container.startupProbe = { ...probe, periodSeconds: 2, failureThreshold: 300 };
  container.readinessProbe = { ...probe, periodSeconds: 5, failureThreshold: 2 };
  container.livenessProbe = { ...probe, periodSeconds: 10, failureThreshold: 3 };
  if (gpus.length > 0 && s.gpuResource !== "") {
    container.resources = { limits: { [s.gpuResource]: String(gpus.length) } };
  }
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: {
      name: names.instance(spec.blockId, spec.instanceId),
      namespace: s.namespace,
      labels: { ...blockLabels(s, spec.blockId, "instance"), [LABELS.instance]: labelValue(spec.instanceId) },
      annotations: {
        [ANNOTATIONS.block]: spec.blockId,
        [ANNOTATIONS.instance]: spec.instanceId,
        [ANNOTATIONS.cluster]: s.clusterId,
        [ANNOTATIONS.node]: spec.nodeId,
        [ANNOTATIONS.gpus]: gpus.join(","),
        [ANNOTATIONS.startedAt]: input.startedAt,
      },
      ownerReferences: [ownerReference(owner)],
    },
    spec: {
      restartPolicy: "Never",
      // Through the scheduler (taints, capacity, the GPU resource are checked), but only onto the node
      // the allocator chose: `metadata.name` is the node's exact name, whatever its hostname label.
      affinity: {
        nodeAffinity: {
          requiredDuringSchedulingIgnoredDuringExecution: {
            nodeSelectorTerms: [
              { matchFields: [{ key: "metadata.name", operator: "In", values: [spec.nodeId] }] },
            ],
          },
        },
      },
      ...(gpus.length > 0 ? { tolerations: [GPU_TOLERATION] } : {}),
      // Instances do not call the Kubernetes API.
      automountServiceAccountToken: false,
      enableServiceLinks: false,
      terminationGracePeriodSeconds: s.terminationGracePeriodSeconds,
      ...pullSecrets(s),
      containers: [container],
    },
  };
};

export interface ServicesInput {
  spec: BlockServicesSpec;
  owner: { name: string; uid: string };
  /** The controller as the pods reach it. */
  controllerUrl: string;
}

const ownedMetadata = (
  s: ManifestSettings,
  name: string,
  blockId: string,
  owner: ServicesInput["owner"],
) => ({
  name,
  namespace: s.namespace,
  labels: blockLabels(s, blockId, "block-services"),
  annotations: { [ANNOTATIONS.block]: blockId, [ANNOTATIONS.cluster]: s.clusterId },
  ownerReferences: [ownerReference(owner)],
});

/** `aios block-runtime` arguments (after the image's entrypoint, which is `aios`). */
export const servicesArgs = (s: ManifestSettings, input: ServicesInput): string[] => {
  const { spec } = input;
  return [
    "block-runtime",
    "--block-id",
    spec.blockId,
    "--block",
    `${BLOCK_FILE_DIR}/${BLOCK_FILE}`,
    ...spec.instances.flatMap((i) => ["--instance", `${i.id}=${i.url}`]),
    // A restarted pod would otherwise know only the instances of its first start.
    "--instances-url",
    `${input.controllerUrl}/blocks/${encodeURIComponent(spec.blockId)}`,
    "--controller",
    input.controllerUrl,
    "--registry",
    spec.registryUrl,
    "--cluster-id",
    s.clusterId,
    "--host",
    "0.0.0.0",
    ...SERVICE_NAMES.flatMap((n) => [SERVICE_PORTS[n].flag, String(SERVICE_PORTS[n].port)]),
  ];
};

export const servicesDeployment = (s: ManifestSettings, input: ServicesInput): V1Deployment => {
  const blockId = input.spec.blockId;
  const name = names.services(blockId);
  const labels = servicesSelector(s, blockId);
  return {
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: ownedMetadata(s, name, blockId, input.owner),
    spec: {
      replicas: 1,
      strategy: { type: "Recreate" },
      selector: { matchLabels: labels },
      template: {
        metadata: { labels, annotations: { [ANNOTATIONS.block]: blockId } },
        spec: {
          ...(s.servicesServiceAccount ? { serviceAccountName: s.servicesServiceAccount } : {}),
          automountServiceAccountToken: false,
          enableServiceLinks: false,
          terminationGracePeriodSeconds: s.terminationGracePeriodSeconds,
          securityContext: { runAsNonRoot: true, seccompProfile: { type: "RuntimeDefault" } },
          ...pullSecrets(s),
          containers: [
            {
              name: "block-runtime",
              image: s.image,
              ...(s.imagePullPolicy ? { imagePullPolicy: s.imagePullPolicy } : {}),
              args: servicesArgs(s, input),
              ...(authEnv(s).length > 0 ? { env: authEnv(s) } : {}),
              ports: SERVICE_NAMES.map((n) => ({
                name: n,
                containerPort: SERVICE_PORTS[n].port,
                protocol: "TCP",
              })),
              // The executor's metrics answer once the block runtime is up; the process runtime's
              // readiness check (POST /mgmt) cannot be a probe.
              readinessProbe: {
                httpGet: { path: "/metrics", port: "metrics" },
                periodSeconds: 5,
                timeoutSeconds: 2,
              },
              livenessProbe: {
                tcpSocket: { port: "grpc" },
                initialDelaySeconds: 10,
                periodSeconds: 10,
                failureThreshold: 3,
              },
              resources: s.servicesResources ?? {
                requests: { cpu: "100m", memory: "128Mi" },
                limits: { memory: "512Mi" },
              },
              securityContext: { allowPrivilegeEscalation: false, capabilities: { drop: ["ALL"] } },
              volumeMounts: [{ name: "block", mountPath: BLOCK_FILE_DIR, readOnly: true }],
            },
          ],
          volumes: [
            {
              name: "block",
              configMap: { name: input.owner.name, items: [{ key: BLOCK_FILE, path: BLOCK_FILE }] },
            },
          ],
        },
      },
    },
  };
};

export const servicesService = (s: ManifestSettings, input: ServicesInput): V1Service => {
  const blockId = input.spec.blockId;
  return {
    apiVersion: "v1",
    kind: "Service",
    metadata: ownedMetadata(s, names.services(blockId), blockId, input.owner),
    spec: {
      type: "ClusterIP",
      selector: servicesSelector(s, blockId),
      ports: SERVICE_NAMES.map((n) => ({
        name: n,
        port: SERVICE_PORTS[n].port,
        targetPort: n,
        protocol: "TCP",
        // Plain gRPC is HTTP/2 without TLS: tells meshes and gateways how to speak to it.
        ...(n === "grpc" ? { appProtocol: "kubernetes.io/h2c" } : {}),
      })),
    },
  };
};

const escapeRegex = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

/**
 * ingress-nginx paths: each captures the rest of the URL as `$2`, and `rewrite-target: /$2` sends it
 * to the listener without the `/block/{id}/<suffix>` prefix (`/metrics` keeps its own name, the
 * executor serves it there).
 */
const ingressPath = (blockId: string, suffix: string): string =>
  suffix === "metrics"
    ? `/block/${escapeRegex(blockId)}/()(metrics.*)`
    : `/block/${escapeRegex(blockId)}/${suffix}(/|$)(.*)`;

export const DEFAULT_INGRESS_ANNOTATIONS: Record<string, string> = {
  "nginx.ingress.kubernetes.io/use-regex": "true",
  "nginx.ingress.kubernetes.io/rewrite-target": "/$2",
};

export const servicesIngress = (s: ManifestSettings, input: ServicesInput): V1Ingress => {
  const blockId = input.spec.blockId;
  const name = names.services(blockId);
  const meta = ownedMetadata(s, name, blockId, input.owner);
  return {
    apiVersion: "networking.k8s.io/v1",
    kind: "Ingress",
    metadata: {
      ...meta,
      annotations: { ...meta.annotations, ...(s.ingress.annotations ?? DEFAULT_INGRESS_ANNOTATIONS) },
    },
    spec: {
      ...(s.ingress.className ? { ingressClassName: s.ingress.className } : {}),
      rules: [
        {
          ...(s.ingress.host ? { host: s.ingress.host } : {}),
          http: {
            paths: INGRESS_ROUTES.map((r) => ({
              path: ingressPath(blockId, r.suffix),
              pathType: "ImplementationSpecific",
              backend: { service: { name, port: { name: r.listener } } },
            })),
          },
        },
      ],
    },
  };
};

export interface VdagInput {
  spec: VdagControllerSpec;
  controllerUrl: string | undefined;
}

export const vdagDeployment = (s: ManifestSettings, input: VdagInput): V1Deployment => {
  const { spec } = input;
  const labels = vdagLabels(s, spec.id);
  const env: V1EnvVar[] = [
    ...envList({
      ...spec.template.env,
      AIOS_PORT: String(s.workloadPort),
      AIOS_VDAG_ID: spec.id,
      AIOS_VDAG_CONFIG: JSON.stringify(spec.config ?? {}),
      AIOS_CLUSTER_ID: s.clusterId,
      ...(input.controllerUrl ? { AIOS_CONTROLLER_URL: input.controllerUrl } : {}),
    }),
    // A Deployment's replicas have no ordinal: the pod's name tells them apart.
    { name: "AIOS_VDAG_REPLICA", valueFrom: { fieldRef: { fieldPath: "metadata.name" } } },
  ];
  return {
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: {
      name: names.vdag(spec.id),
      namespace: s.namespace,
      labels,
      annotations: { [ANNOTATIONS.vdag]: spec.id, [ANNOTATIONS.cluster]: s.clusterId },
    },
    spec: {
      replicas: spec.replicas,
      selector: { matchLabels: labels },
      template: {
        metadata: { labels, annotations: { [ANNOTATIONS.vdag]: spec.id } },
        spec: {
          enableServiceLinks: false,
          terminationGracePeriodSeconds: s.terminationGracePeriodSeconds,
          ...pullSecrets(s),
          containers: [workloadContainer(s, "vdag-controller", spec.template, withAuthEnv(s, env))],
        },
      },
    },
  };
};
