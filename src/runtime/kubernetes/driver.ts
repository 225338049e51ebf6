/**
 * The Kubernetes runtime: the infrastructure driver of types.ts on a Kubernetes cluster, through
 * `@kubernetes/client-node`. Kubernetes itself is the record of what runs (no store records): every
 * object is labelled with the cluster id, so a restarted controller finds its workloads by label.
 *
 * - Instances are pods pinned to the node the resource allocator chose, with its GPUs (manifests.ts).
 *   `startInstance` resolves once the pod passed its `/health` startup probe, and fails fast (pod
 *   deleted) on what will not heal: a refused image, a bad config, a pod that failed.
 * - Block services are a Deployment, a Service and an Ingress owned by the block's ConfigMap; the
 *   ConfigMap goes once the block has neither services nor instances left.
 * - vDAG controllers are Deployments; `applyVdagController` scales them through the scale subresource.
 * - Pods and nodes are watched (informer.ts): an instance pod that ends or disappears without the
 *   driver stopping it is an `instance_exited`, a node whose health flips a `node_changed`.
 */
import type { KubeConfig, V1ConfigMap, V1Deployment, V1Node, V1Pod } from "@kubernetes/client-node";
import { WorkloadStartError } from "../process.ts";
import type {
  AdoptReport,
  BlockServiceName,
  BlockServicesSpec,
  BlockServicesStatus,
  InstanceSpec,
  InstanceStatus,
  NodeStatus,
  RuntimeDriver,
  RuntimeEvent,
  VdagControllerSpec,
  VdagControllerStatus,
  WorkloadAuth,
  WorkloadState,
} from "../types.ts";
import { call, callOrNull, isConflict, isNotFound, KubeApi, mergePatch, statusCode } from "./api.ts";
import { Informer } from "./informer.ts";
import { defaultNamespace, type KubeConfigOptions, loadKubeConfig } from "./kubeconfig.ts";
import {
  BLOCK_FILE,
  blockConfigMap,
  credentialSecret,
  type IngressSettings,
  instancePod,
  type ManifestSettings,
  SERVICE_NAMES,
  SERVICE_PORTS,
  servicesDeployment,
  servicesIngress,
  servicesSelector,
  servicesService,
  vdagDeployment,
  vdagLabels,
} from "./manifests.ts";
import { ANNOTATIONS, clusterSelector, LABELS, labelValue, names, selector } from "./names.ts";
import {
  type DrainOptions,
  type DrainReport,
  NodeOps,
  nodeHealth,
  nodeStatus,
  readNodeUsage,
} from "./nodes.ts";
import {
  pendingReason,
  podEnded,
  podExitCode,
  podReady,
  podStartedAt,
  podState,
  podUrl,
  startFailure,
} from "./pods.ts";

export interface KubernetesDriverOptions extends KubeConfigOptions {
  /** An already loaded configuration (tests); otherwise loaded from `kubeconfig` / in-cluster. */
  kubeConfig?: KubeConfig;
  /** Where every workload goes; default the pod's own namespace, else the context's, else "default". */
  namespace?: string;
  /** The aios image (block services; instances and vDAG controllers without an image of their own). */
  image?: string;
  imagePullPolicy?: "Always" | "IfNotPresent" | "Never";
  imagePullSecrets?: string[];
  /** The cluster id: labels every object and limits every selector. */
  scope?: string;
  /** The controller's URL (given by the controller); pods use `podControllerUrl` when set. */
  controllerUrl?: string;
  /** The controller as pods reach it, e.g. `http://aios-controller.aios.svc:7000`. */
  podControllerUrl?: string;
  /**
   * The credential every workload gets: the token goes into the cluster's credential Secret (created or
   * updated at start) and reaches pods as AIOS_TOKEN through `secretKeyRef`; `anonymous` as AIOS_ANONYMOUS.
   */
  workloadAuth?: WorkloadAuth;
  /** The port instances and vDAG replicas listen on; default 8080. */
  workloadPort?: number;
  /** Extended resource requested per GPU; default "nvidia.com/gpu"; "" requests none. */
  gpuResource?: string;
  ingress?: IngressSettings;
  servicesServiceAccount?: string;
  servicesResources?: ManifestSettings["servicesResources"];
  /** Longest wait for a workload to be ready (image pulls, model loading); default 5 min. */
  startTimeoutMs?: number;
  /** Longest wait for a stopped pod to be gone; default 60 s. */
  stopTimeoutMs?: number;
  terminationGracePeriodSeconds?: number;
  /** A label selector limiting the nodes reported (e.g. `aios.dev/cluster-node=c1`); default every node. */
  nodeSelector?: string;
  /** Read node usage from metrics.k8s.io; default true (skipped when the API is absent). */
  nodeMetrics?: boolean;
  drain?: DrainOptions;
  /** Longest wait for the first list of pods and nodes; default 30 s. */
  syncTimeoutMs?: number;
}

export const DEFAULT_IMAGE = "ghcr.io/aios/aios:latest";
const DEFAULT_WORKLOAD_PORT = 8080;

type Check<T> = { done: T } | { fail: string } | null;

export class KubernetesDriver implements RuntimeDriver {
  readonly name = "kubernetes" as const;
  readonly namespace: string;
  readonly api: KubeApi;
  readonly nodes: NodeOps;
  readonly settings: ManifestSettings;
  readonly #options: KubernetesDriverOptions;
  readonly #pods: Informer<V1Pod>;
  readonly #nodes: Informer<V1Node>;
  readonly #listeners = new Set<(event: RuntimeEvent) => void>();
  /** Pod names being started or stopped here: their ends are the caller's news, not events. */
  readonly #starting = new Set<string>();
  readonly #stopping = new Set<string>();
  /** Pod uids whose end was reported, so an end and the deletion that follows count once. */
  readonly #reported = new Set<string>();
  readonly #nodeHealth = new Map<string, boolean>();
  /** Starts in progress per block: the block's owner ConfigMap is not removed under them. */
  readonly #blockStarts = new Map<string, number>();
  readonly #vdagLocks = new Map<string, Promise<unknown>>();
  #closed = false;

  constructor(options: KubernetesDriverOptions) {
    this.#options = options;
    const kc = options.kubeConfig ?? loadKubeConfig(options);
    this.api = new KubeApi(kc);
    this.namespace = options.namespace ?? defaultNamespace(kc);
    const clusterId = options.scope ?? "default";
    const port = options.workloadPort ?? DEFAULT_WORKLOAD_PORT;
    if (!Number.isInteger(port) || port < 1 || port > 65535) {
      throw new Error(`workloadPort must be a port from 1 to 65535, got ${port}`);
    }
    this.settings = {
      clusterId,
      namespace: this.namespace,
      image: options.image ?? DEFAULT_IMAGE,
      ...(options.imagePullPolicy ? { imagePullPolicy: options.imagePullPolicy } : {}),
      ...(options.imagePullSecrets ? { imagePullSecrets: options.imagePullSecrets } : {}),
      workloadPort: port,
      gpuResource: options.gpuResource ?? "nvidia.com/gpu",
      ...(options.servicesServiceAccount ? { servicesServiceAccount: options.servicesServiceAccount } : {}),
      ...(options.servicesResources ? { servicesResources: options.servicesResources } : {}),
      terminationGracePeriodSeconds: options.terminationGracePeriodSeconds ?? 30,
      ingress: options.ingress ?? {},
      ...(options.workloadAuth?.token ? { credentialSecret: names.credential(clusterId) } : {}),
      ...(options.workloadAuth?.anonymous ? { anonymous: true } : {}),
    };
    this.nodes = new NodeOps(this.api, { key: LABELS.node, value: labelValue(clusterId) });
    const ns = this.namespace;
    const podSelector = clusterSelector(this.settings);
    this.#pods = new Informer<V1Pod>({
      kubeConfig: kc,
      path: `/api/v1/namespaces/${ns}/pods`,
      labelSelector: podSelector,
      list: () => this.api.core.listNamespacedPod({ namespace: ns, labelSelector: podSelector }),
    });
    const nodeSelector = options.nodeSelector;
    this.#nodes = new Informer<V1Node>({
      kubeConfig: kc,
      path: "/api/v1/nodes",
      ...(nodeSelector ? { labelSelector: nodeSelector } : {}),
      list: () => this.api.core.listNode(nodeSelector ? { labelSelector: nodeSelector } : {}),
    });
    this.#pods.on((event, pod) => this.#onPod(event, pod));
    this.#nodes.on((event, node) => this.#onNode(event, node));
  }

  /** A driver whose caches are filled: fails with the API server's answer when it cannot list. */
  static async open(options: KubernetesDriverOptions): Promise<KubernetesDriver> {
    const driver = new KubernetesDriver(options);
    try {
      await driver.start();
    } catch (err) {
      await driver.close();
      throw err;
    }
    return driver;
  }

  async start(): Promise<void> {
    const timeout = this.#options.syncTimeoutMs ?? 30_000;
    await this.#writeCredential();
    await Promise.all([this.#pods.start(timeout), this.#nodes.start(timeout)]);
    for (const node of this.#nodes.list()) {
      if (node.metadata?.name) this.#nodeHealth.set(node.metadata.name, nodeHealth(node).healthy);
    }
  }

  /** The credential Secret, holding the token this controller was given (a restart may bring a new one). */
  async #writeCredential(): Promise<void> {
    const token = this.#options.workloadAuth?.token;
    const name = this.settings.credentialSecret;
    if (!token || !name) return;
    const namespace = this.namespace;
    const body = credentialSecret(this.settings, name, token);
    await this.#createOrPatch(
      "Secret",
      name,
      () => this.api.core.createNamespacedSecret({ namespace, body }),
      () =>
        this.api.core.patchNamespacedSecret(
          { name, namespace, body: { metadata: { labels: body.metadata?.labels }, data: body.data } },
          mergePatch,
        ),
    );
  }

  /** The controller URL given to pods. */
  get #podControllerUrl(): string | undefined {
    return this.#options.podControllerUrl ?? this.#options.controllerUrl;
  }

  // ---------------------------------------------------------------- instances

  async startInstance(spec: InstanceSpec): Promise<InstanceStatus> {
    requireId(spec.blockId, "blockId");
    requireId(spec.instanceId, "instanceId");
    requireId(spec.nodeId, "nodeId");
    if (!Array.isArray(spec.gpus) || spec.gpus.some((g) => typeof g !== "string" || g === "")) {
      throw new Error(
        `instance ${spec.instanceId}: gpus must be a list of GPU ids, got ${JSON.stringify(spec.gpus)}`,
      );
    }
    if (!spec.template.image && !spec.template.command?.length) {
      throw new Error(
        `instance ${spec.instanceId}: the kubernetes runtime needs template.image (or a command to run in ${this.settings.image})`,
      );
    }
    if (!this.#nodes.get(spec.nodeId)) {
      // Caught here: the pod would otherwise wait, unschedulable, until the start timeout.
      const among = this.#options.nodeSelector
        ? ` among the nodes selected by ${this.#options.nodeSelector}`
        : "";
      throw new Error(
        `instance ${spec.instanceId}: there is no Kubernetes node named ${JSON.stringify(spec.nodeId)}${among}`,
      );
    }
    const name = names.instance(spec.blockId, spec.instanceId);
    const label = `instance ${spec.blockId}/${spec.instanceId}`;
    if (this.#starting.has(name)) throw new Error(`${label} is already starting`);
    this.#starting.add(name);
    this.#blockStarts.set(spec.blockId, (this.#blockStarts.get(spec.blockId) ?? 0) + 1);
    try {
      const owner = await this.#ensureOwner(spec.blockId);
      const pod = instancePod(this.settings, {
        spec,
        owner,
        controllerUrl: this.#options.podControllerUrl ?? spec.controllerUrl ?? this.#options.controllerUrl,
        startedAt: new Date().toISOString(),
      });
      await this.#createPod(pod, label);
      const ready = await this.#awaitPod(name, label, (p) => podState(p) === "running");
      return this.#instanceStatus(ready);
    } finally {
      this.#starting.delete(name);
      const n = (this.#blockStarts.get(spec.blockId) ?? 1) - 1;
      if (n <= 0) this.#blockStarts.delete(spec.blockId);
      else this.#blockStarts.set(spec.blockId, n);
    }
  }

  /** Creates the pod; one left from an earlier run that ended is replaced, a live one refused. */
  async #createPod(pod: V1Pod, label: string): Promise<void> {
    const name = pod.metadata?.name ?? "";
    try {
      await this.api.core.createNamespacedPod({ namespace: this.namespace, body: pod });
    } catch (err) {
      if (!isConflict(err)) return call(`creating pod ${name} for ${label}`, () => Promise.reject(err));
      const existing = await callOrNull(`reading pod ${name}`, () =>
        this.api.core.readNamespacedPod({ name, namespace: this.namespace }),
      );
      if (existing && !podEnded(existing)) {
        throw new Error(`${label} already runs (pod ${name}, ${podState(existing)}); stop it first`);
      }
      await this.#deletePod(name, 0);
      await call(`creating pod ${name} for ${label}`, () =>
        this.api.core.createNamespacedPod({ namespace: this.namespace, body: pod }),
      );
    }
  }

  /**
   * Waits until the pod named `name` satisfies `ready`; on a certain failure or at the timeout the pod
   * is deleted and a WorkloadStartError carries the reason and its last log lines.
   */
  async #awaitPod(name: string, label: string, ready: (p: V1Pod) => boolean): Promise<V1Pod> {
    const timeoutMs = this.#options.startTimeoutMs ?? 300_000;
    let last: V1Pod | undefined;
    try {
      return await this.#await<V1Pod>(timeoutMs, () => {
        const pod = this.#pods.get(name, this.namespace);
        if (!pod) return last ? { fail: "its pod was deleted before it was ready" } : null;
        last = pod;
        if (ready(pod)) return { done: pod };
        const failure = startFailure(pod);
        return failure ? { fail: failure } : null;
      });
    } catch (err) {
      const reason =
        err instanceof TimeoutError
          ? `not ready within ${timeoutMs} ms (${last ? pendingReason(last) : "pod not seen"})`
          : err instanceof Error
            ? err.message
            : String(err);
      const tail = (await this.#podLog(name, 20).catch(() => null)) ?? [];
      this.#stopping.add(name);
      try {
        await this.#deletePod(name, 0).catch(() => {});
      } finally {
        this.#stopping.delete(name);
      }
      throw new WorkloadStartError(
        label,
        reason,
        `pod ${this.namespace}/${name}`,
        tail,
        last ? podExitCode(last) : null,
      );
    }
  }

  /** Resolves once `check` (run now and on every pod event) says done; rejects on fail or timeout. */
  #await<T>(timeoutMs: number, check: () => Check<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      let settled = false;
      const finish = (fn: () => void) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        off();
        fn();
      };
      const evaluate = () => {
        let r: Check<T>;
        try {
          r = check();
        } catch (err) {
          finish(() => reject(err));
          return;
        }
        if (r && "done" in r) finish(() => resolve(r.done));
        else if (r && "fail" in r) finish(() => reject(new Error(r.fail)));
      };
      const timer = setTimeout(() => finish(() => reject(new TimeoutError())), timeoutMs);
      const off = this.#pods.on(() => evaluate());
      evaluate();
    });
  }

  async stopInstance(blockId: string, instanceId: string): Promise<void> {
    const name = names.instance(blockId, instanceId);
    this.#stopping.add(name);
    try {
      await this.#deletePod(name, this.settings.terminationGracePeriodSeconds);
    } finally {
      this.#stopping.delete(name);
    }
    await this.#releaseOwner(blockId);
  }

  /** Deletes a pod and waits until the watch saw it go (bounded); a pod already gone is fine. */
  async #deletePod(name: string, graceSeconds: number): Promise<void> {
    const gone = await callOrNull(`deleting pod ${name}`, () =>
      this.api.core.deleteNamespacedPod({
        name,
        namespace: this.namespace,
        gracePeriodSeconds: graceSeconds,
      }),
    );
    if (gone === null) return;
    await this.#await(this.#options.stopTimeoutMs ?? (graceSeconds + 30) * 1000, () =>
      this.#pods.get(name, this.namespace) ? null : { done: true },
    ).catch((err: unknown) => {
      if (!(err instanceof TimeoutError)) throw err;
      // Still terminating (a node that does not answer): the API server owns it now.
    });
  }

  async listInstances(blockId?: string): Promise<InstanceStatus[]> {
    return this.#instancePods(blockId)
      .map((p) => this.#instanceStatus(p))
      .sort((a, b) => a.blockId.localeCompare(b.blockId) || a.instanceId.localeCompare(b.instanceId));
  }

  #instancePods(blockId?: string): V1Pod[] {
    return this.#pods.list().filter((p) => {
      const labels = p.metadata?.labels ?? {};
      if (labels[LABELS.component] !== "instance") return false;
      return blockId === undefined || p.metadata?.annotations?.[ANNOTATIONS.block] === blockId;
    });
  }

  #instanceStatus(pod: V1Pod): InstanceStatus {
    const a = pod.metadata?.annotations ?? {};
    const state = podState(pod);
    const gpus = a[ANNOTATIONS.gpus] ?? "";
    const ended = state === "exited" || state === "failed";
    return {
      blockId: a[ANNOTATIONS.block] ?? "",
      instanceId: a[ANNOTATIONS.instance] ?? "",
      nodeId: pod.spec?.nodeName ?? a[ANNOTATIONS.node] ?? "",
      gpus: gpus ? gpus.split(",") : [],
      url: state === "running" ? podUrl(pod, this.settings.workloadPort) : null,
      state,
      handle: pod.metadata?.name ?? "",
      startedAt: podStartedAt(pod, ANNOTATIONS.startedAt),
      ...(ended ? { exitCode: podExitCode(pod) } : {}),
      log: `pod ${this.namespace}/${pod.metadata?.name ?? ""}`,
    };
  }

  // ---------------------------------------------------------------- block owner

  /** The block's ConfigMap (created on first use): owner of its pods and services. */
  async #ensureOwner(blockId: string, block?: unknown): Promise<{ name: string; uid: string }> {
    const name = names.block(blockId);
    const body = blockConfigMap(this.settings, blockId, block);
    const namespace = this.namespace;
    let cm: V1ConfigMap;
    try {
      cm = await this.api.core.createNamespacedConfigMap({ namespace, body });
    } catch (err) {
      if (!isConflict(err)) return call(`creating ConfigMap ${name}`, () => Promise.reject(err));
      cm =
        block === undefined
          ? await call(`reading ConfigMap ${name}`, () =>
              this.api.core.readNamespacedConfigMap({ name, namespace }),
            )
          : await call(`updating ConfigMap ${name}`, () =>
              this.api.core.patchNamespacedConfigMap(
                { name, namespace, body: { data: body.data } },
                mergePatch,
              ),
            );
    }
    const uid = cm.metadata?.uid;
    if (!uid) throw new Error(`ConfigMap ${name} has no uid: the API server's answer is not an object`);
    return { name, uid };
  }

  /** Removes the block's ConfigMap once neither services nor instances are left. */
  async #releaseOwner(blockId: string): Promise<void> {
    if (this.#blockStarts.has(blockId)) return;
    if (this.#instancePods(blockId).some((p) => !this.#stopping.has(p.metadata?.name ?? ""))) return;
    const services = await callOrNull(`reading Deployment ${names.services(blockId)}`, () =>
      this.api.apps.readNamespacedDeployment({ name: names.services(blockId), namespace: this.namespace }),
    );
    if (services) return;
    await callOrNull(`deleting ConfigMap ${names.block(blockId)}`, () =>
      this.api.core.deleteNamespacedConfigMap({
        name: names.block(blockId),
        namespace: this.namespace,
        // Anything still owned by it goes too.
        propagationPolicy: "Background",
      }),
    );
  }

  // ---------------------------------------------------------------- block services

  async startBlockServices(spec: BlockServicesSpec): Promise<BlockServicesStatus> {
    requireId(spec.blockId, "blockId");
    const controllerUrl = this.#options.podControllerUrl ?? spec.controllerUrl;
    if (!controllerUrl)
      throw new Error(`block services ${spec.blockId}: no controller URL for the block's pods`);
    const label = `block services ${spec.blockId}`;
    const namespace = this.namespace;
    this.#blockStarts.set(spec.blockId, (this.#blockStarts.get(spec.blockId) ?? 0) + 1);
    try {
      const owner = await this.#ensureOwner(spec.blockId, spec.block);
      const input = { spec, owner, controllerUrl };
      const deployment = servicesDeployment(this.settings, input);
      const name = names.services(spec.blockId);
      try {
        await this.api.apps.createNamespacedDeployment({ namespace, body: deployment });
      } catch (err) {
        if (isConflict(err)) throw new Error(`${label} already exist (Deployment ${name}); stop them first`);
        return call(`creating Deployment ${name}`, () => Promise.reject(err));
      }
      try {
        await this.#createOrPatch(
          "Service",
          name,
          () =>
            this.api.core.createNamespacedService({ namespace, body: servicesService(this.settings, input) }),
          () =>
            this.api.core.patchNamespacedService(
              { name, namespace, body: servicesService(this.settings, input) },
              mergePatch,
            ),
        );
        if (this.settings.ingress.enabled !== false) {
          const ingress = servicesIngress(this.settings, input);
          await this.#createOrPatch(
            "Ingress",
            name,
            () => this.api.networking.createNamespacedIngress({ namespace, body: ingress }),
            () => this.api.networking.patchNamespacedIngress({ name, namespace, body: ingress }, mergePatch),
          );
        }
        const selectorLabels = servicesSelector(this.settings, spec.blockId);
        const pod = await this.#awaitServices(selectorLabels, label);
        return this.#servicesStatus(spec.blockId, "running", pod);
      } catch (err) {
        await this.#deleteServices(spec.blockId).catch(() => {});
        throw err;
      }
    } finally {
      const n = (this.#blockStarts.get(spec.blockId) ?? 1) - 1;
      if (n <= 0) this.#blockStarts.delete(spec.blockId);
      else this.#blockStarts.set(spec.blockId, n);
    }
  }

  async #createOrPatch(
    kind: string,
    name: string,
    create: () => Promise<unknown>,
    patch: () => Promise<unknown>,
  ) {
    try {
      await create();
    } catch (err) {
      if (!isConflict(err)) return call(`creating ${kind} ${name}`, () => Promise.reject(err));
      await call(`updating ${kind} ${name}`, patch);
    }
  }

  #servicesPods(labels: Record<string, string>): V1Pod[] {
    return this.#pods
      .list()
      .filter((p) => Object.entries(labels).every(([k, v]) => p.metadata?.labels?.[k] === v))
      .filter((p) => !p.metadata?.deletionTimestamp);
  }

  async #awaitServices(labels: Record<string, string>, label: string): Promise<V1Pod> {
    const timeoutMs = this.#options.startTimeoutMs ?? 300_000;
    let last: V1Pod | undefined;
    try {
      return await this.#await<V1Pod>(timeoutMs, () => {
        const pods = this.#servicesPods(labels);
        const ready = pods.find(podReady);
        if (ready) return { done: ready };
        last = pods[0] ?? last;
        const failure = pods.map(startFailure).find((f) => f !== null);
        return failure ? { fail: failure } : null;
      });
    } catch (err) {
      const reason =
        err instanceof TimeoutError
          ? `not ready within ${timeoutMs} ms (${last ? pendingReason(last) : "no pod was created: see the Deployment's events"})`
          : err instanceof Error
            ? err.message
            : String(err);
      const tail = last?.metadata?.name
        ? ((await this.#podLog(last.metadata.name, 20).catch(() => null)) ?? [])
        : [];
      throw new WorkloadStartError(
        label,
        reason,
        last ? `pod ${this.namespace}/${last.metadata?.name}` : null,
        tail,
      );
    }
  }

  #servicesStatus(
    blockId: string,
    state: WorkloadState,
    pod: V1Pod | undefined,
    deployment?: V1Deployment,
  ): BlockServicesStatus {
    const svc = names.services(blockId);
    const host = `${svc}.${this.namespace}.svc`;
    const urls: Partial<Record<BlockServiceName, string>> =
      state === "running"
        ? Object.fromEntries(SERVICE_NAMES.map((n) => [n, `http://${host}:${SERVICE_PORTS[n].port}`]))
        : {};
    const created = deployment?.metadata?.creationTimestamp ?? pod?.metadata?.creationTimestamp;
    return {
      blockId,
      state,
      handle: `deployment/${svc}`,
      urls,
      startedAt: created ? new Date(created).toISOString() : new Date().toISOString(),
      log: pod?.metadata?.name
        ? `pod ${this.namespace}/${pod.metadata.name}`
        : `deployment ${this.namespace}/${svc}`,
    };
  }

  async stopBlockServices(blockId: string): Promise<void> {
    await this.#deleteServices(blockId);
    await this.#releaseOwner(blockId);
  }

  async #deleteServices(blockId: string): Promise<void> {
    const name = names.services(blockId);
    const namespace = this.namespace;
    await callOrNull(`deleting Ingress ${name}`, () =>
      this.api.networking.deleteNamespacedIngress({ name, namespace }),
    );
    await callOrNull(`deleting Service ${name}`, () =>
      this.api.core.deleteNamespacedService({ name, namespace }),
    );
    // Its ReplicaSet and pod are garbage-collected after it.
    await callOrNull(`deleting Deployment ${name}`, () =>
      this.api.apps.deleteNamespacedDeployment({ name, namespace, propagationPolicy: "Background" }),
    );
  }

  async getBlockServices(blockId: string): Promise<BlockServicesStatus | null> {
    const name = names.services(blockId);
    const deployment = await callOrNull(`reading Deployment ${name}`, () =>
      this.api.apps.readNamespacedDeployment({ name, namespace: this.namespace }),
    );
    if (!deployment) return null;
    const pods = this.#servicesPods(servicesSelector(this.settings, blockId));
    const ready = pods.find(podReady);
    const failed = pods.some((p) => startFailure(p) !== null);
    const state: WorkloadState = ready ? "running" : failed ? "failed" : "starting";
    return this.#servicesStatus(blockId, state, ready ?? pods[0], deployment);
  }

  // ---------------------------------------------------------------- logs

  async readLogs(blockId: string, instanceId: string | null, tailLines: number): Promise<string[] | null> {
    let pod: V1Pod | undefined;
    if (instanceId === null) {
      const pods = this.#servicesPods(servicesSelector(this.settings, blockId));
      pod = pods.find(podReady) ?? pods[0];
    } else {
      pod = this.#pods.get(names.instance(blockId, instanceId), this.namespace);
    }
    const name = pod?.metadata?.name;
    if (!name) return null;
    return this.#podLog(name, tailLines);
  }

  /** The pod's last lines (pod log API); [] while its container has not started, null when it is gone. */
  async #podLog(name: string, tailLines: number): Promise<string[] | null> {
    try {
      const text = await this.api.core.readNamespacedPodLog({
        name,
        namespace: this.namespace,
        tailLines: Math.max(1, Math.floor(tailLines)),
      });
      const lines = String(text ?? "").split("\n");
      if (lines.at(-1) === "") lines.pop();
      return lines;
    } catch (err) {
      if (isNotFound(err)) return null;
      if (statusCode(err) === 400) return []; // ContainerCreating: no log yet
      return call(`reading the log of pod ${name}`, () => Promise.reject(err));
    }
  }

  // ---------------------------------------------------------------- vDAG controllers

  applyVdagController(spec: VdagControllerSpec): Promise<VdagControllerStatus> {
    return this.#serialized(spec.id, () => this.#applyVdag(spec));
  }

  async #applyVdag(spec: VdagControllerSpec): Promise<VdagControllerStatus> {
    requireId(spec.id, "vdag controller id");
    if (!Number.isInteger(spec.replicas) || spec.replicas < 0) {
      throw new Error(
        `vdag controller ${spec.id}: replicas must be a whole number >= 0, got ${spec.replicas}`,
      );
    }
    if (!spec.template.image && !spec.template.command?.length) {
      throw new Error(
        `vdag controller ${spec.id}: the kubernetes runtime needs template.image (or a command)`,
      );
    }
    const namespace = this.namespace;
    const name = names.vdag(spec.id);
    const body = vdagDeployment(this.settings, { spec, controllerUrl: this.#podControllerUrl });
    const existing = await callOrNull(`reading Deployment ${name}`, () =>
      this.api.apps.readNamespacedDeployment({ name, namespace }),
    );
    if (!existing) {
      await call(`creating Deployment ${name}`, () =>
        this.api.apps.createNamespacedDeployment({ namespace, body }),
      );
    } else if (
      JSON.stringify(existing.spec?.template?.spec?.containers?.[0]?.env) ===
        JSON.stringify(body.spec?.template.spec?.containers[0]?.env) &&
      existing.spec?.template?.spec?.containers?.[0]?.image === body.spec?.template.spec?.containers[0]?.image
    ) {
      // Only the count changes: the scale subresource, as `kubectl scale` does.
      await call(`scaling Deployment ${name}`, () =>
        this.api.apps.patchNamespacedDeploymentScale(
          { name, namespace, body: { spec: { replicas: spec.replicas } } },
          mergePatch,
        ),
      );
    } else {
      await call(`updating Deployment ${name}`, () =>
        this.api.apps.patchNamespacedDeployment({ name, namespace, body: { spec: body.spec } }, mergePatch),
      );
    }
    const labels = vdagLabels(this.settings, spec.id);
    const timeoutMs = this.#options.startTimeoutMs ?? 300_000;
    try {
      await this.#await(timeoutMs, () => {
        const pods = this.#servicesPods(labels);
        if (pods.filter(podReady).length >= spec.replicas) return { done: true };
        const failure = pods.map(startFailure).find((f) => f !== null);
        return failure ? { fail: failure } : null;
      });
    } catch (err) {
      const reason =
        err instanceof TimeoutError
          ? `fewer than ${spec.replicas} replicas ready within ${timeoutMs} ms`
          : String((err as Error).message);
      throw new WorkloadStartError(
        `vdag controller ${spec.id}`,
        reason,
        `deployment ${namespace}/${name}`,
        [],
      );
    }
    return this.#vdagStatus(spec.id, spec.replicas);
  }

  #vdagStatus(id: string, replicas: number): VdagControllerStatus {
    const ready = this.#servicesPods(vdagLabels(this.settings, id))
      .filter(podReady)
      .sort((a, b) => (a.metadata?.name ?? "").localeCompare(b.metadata?.name ?? ""));
    return {
      id,
      replicas,
      handles: ready.map((p) => p.metadata?.name ?? ""),
      urls: ready.flatMap((p) => {
        const url = podUrl(p, this.settings.workloadPort);
        return url ? [url] : [];
      }),
    };
  }

  removeVdagController(id: string): Promise<void> {
    return this.#serialized(id, async () => {
      const name = names.vdag(id);
      await callOrNull(`deleting Deployment ${name}`, () =>
        this.api.apps.deleteNamespacedDeployment({
          name,
          namespace: this.namespace,
          propagationPolicy: "Background",
        }),
      );
    });
  }

  async listVdagControllers(): Promise<VdagControllerStatus[]> {
    const list = await call("listing vDAG controller Deployments", () =>
      this.api.apps.listNamespacedDeployment({
        namespace: this.namespace,
        labelSelector: selector({ ...vdagLabelsBase(this.settings) }),
      }),
    );
    return list.items
      .flatMap((d) => {
        const id = d.metadata?.annotations?.[ANNOTATIONS.vdag];
        return id ? [this.#vdagStatus(id, d.spec?.replicas ?? 0)] : [];
      })
      .sort((a, b) => a.id.localeCompare(b.id));
  }

  /** One change at a time per vDAG controller (a create racing a scale would patch a half-made object). */
  #serialized<T>(id: string, fn: () => Promise<T>): Promise<T> {
    const run = (this.#vdagLocks.get(id) ?? Promise.resolve()).then(fn, fn);
    const settled = run.catch(() => {});
    this.#vdagLocks.set(id, settled);
    void settled.then(() => {
      if (this.#vdagLocks.get(id) === settled) this.#vdagLocks.delete(id);
    });
    return run;
  }

  // ---------------------------------------------------------------- nodes

  async probeNodes(): Promise<NodeStatus[]> {
    const usage =
      this.#options.nodeMetrics === false ? null : await readNodeUsage(this.api).catch(() => null);
    const now = new Date().toISOString();
    return this.#nodes
      .list()
      .map((n) => {
        const status = nodeStatus(n, usage?.get(n.metadata?.name ?? ""), this.settings.gpuResource, now);
        this.#noteNodeHealth(status.nodeId, status.healthy);
        return status;
      })
      .sort((a, b) => a.nodeId.localeCompare(b.nodeId));
  }

  /** Joins a node to this cluster (label, uncordon). */
  onboardNode(nodeId: string, labels: Record<string, string> = {}): Promise<V1Node> {
    return this.nodes.onboard(nodeId, labels);
  }

  cordonNode(nodeId: string, cordoned: boolean): Promise<V1Node> {
    return this.nodes.cordon(nodeId, cordoned);
  }

  drainNode(nodeId: string, options: DrainOptions = this.#options.drain ?? {}): Promise<DrainReport> {
    return this.nodes.drain(nodeId, options);
  }

  /** Cordons and drains the node, then removes this cluster's label. */
  removeNode(nodeId: string, options: DrainOptions = this.#options.drain ?? {}): Promise<DrainReport> {
    return this.nodes.remove(nodeId, options);
  }

  // ---------------------------------------------------------------- events

  watch(listener: (event: RuntimeEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  #emit(event: RuntimeEvent): void {
    if (this.#closed) return;
    for (const listener of this.#listeners) {
      try {
        listener(event);
      } catch (err) {
        console.error("[aios] runtime watch listener failed:", err);
      }
    }
  }

  #onPod(event: "add" | "update" | "delete", pod: V1Pod): void {
    const meta = pod.metadata;
    if (meta?.labels?.[LABELS.component] !== "instance") return;
    const name = meta.name ?? "";
    const uid = meta.uid ?? name;
    if (event === "delete") {
      const first = !this.#reported.delete(uid);
      if (first) this.#reportExit(pod, podEnded(pod) ? podExitCode(pod) : null);
      return;
    }
    if (podEnded(pod) && !this.#reported.has(uid)) {
      this.#reported.add(uid);
      this.#reportExit(pod, podExitCode(pod));
    }
  }

  #reportExit(pod: V1Pod, exitCode: number | null): void {
    const name = pod.metadata?.name ?? "";
    // A start in progress reports its own failure; a stop was asked for.
    if (this.#starting.has(name) || this.#stopping.has(name)) return;
    const a = pod.metadata?.annotations ?? {};
    const blockId = a[ANNOTATIONS.block];
    const instanceId = a[ANNOTATIONS.instance];
    if (!blockId || !instanceId) return;
    this.#emit({ type: "instance_exited", blockId, instanceId, exitCode });
  }

  #onNode(event: "add" | "update" | "delete", node: V1Node): void {
    const name = node.metadata?.name;
    if (!name) return;
    if (event === "delete") {
      this.#noteNodeHealth(name, false);
      this.#nodeHealth.delete(name);
      return;
    }
    this.#noteNodeHealth(name, nodeHealth(node).healthy);
  }

  #noteNodeHealth(nodeId: string, healthy: boolean): void {
    const before = this.#nodeHealth.get(nodeId);
    this.#nodeHealth.set(nodeId, healthy);
    if (before !== undefined && before !== healthy) this.#emit({ type: "node_changed", nodeId, healthy });
  }

  // ---------------------------------------------------------------- adoption

  /**
   * Kubernetes keeps what runs, so there is nothing to reattach: live instance pods, block services
   * and vDAG controllers of this cluster are adopted as they are; instance pods that ended while no
   * controller watched are deleted (cleaned), like the process runtime's records of dead processes,
   * and so are block ConfigMaps that own nothing any more.
   */
  async adopt(): Promise<AdoptReport> {
    const report: AdoptReport = { adopted: [], cleaned: [] };
    for (const pod of this.#instancePods()) {
      const a = pod.metadata?.annotations ?? {};
      const id = `instance:${a[ANNOTATIONS.block] ?? ""}:${a[ANNOTATIONS.instance] ?? ""}`;
      const name = pod.metadata?.name ?? "";
      if (this.#starting.has(name)) continue;
      if (podEnded(pod) || pod.metadata?.deletionTimestamp) {
        this.#stopping.add(name);
        try {
          await this.#deletePod(name, 0);
        } finally {
          this.#stopping.delete(name);
        }
        report.cleaned.push(id);
      } else {
        report.adopted.push(id);
      }
    }
    const namespace = this.namespace;
    const deployments = await call("listing aios Deployments", () =>
      this.api.apps.listNamespacedDeployment({ namespace, labelSelector: clusterSelector(this.settings) }),
    );
    for (const d of deployments.items) {
      const a = d.metadata?.annotations ?? {};
      const component = d.metadata?.labels?.[LABELS.component];
      if (component === "block-services" && a[ANNOTATIONS.block])
        report.adopted.push(`services:${a[ANNOTATIONS.block]}`);
      if (component === "vdag-controller" && a[ANNOTATIONS.vdag])
        report.adopted.push(`vdag:${a[ANNOTATIONS.vdag]}`);
    }
    const owners = await call("listing aios ConfigMaps", () =>
      this.api.core.listNamespacedConfigMap({
        namespace,
        labelSelector: selector({ ...baseSelector(this.settings), [LABELS.component]: "block" }),
      }),
    );
    for (const cm of owners.items) {
      const blockId = cm.metadata?.annotations?.[ANNOTATIONS.block];
      if (!blockId || this.#blockStarts.has(blockId)) continue;
      const hasServices = deployments.items.some(
        (d) =>
          d.metadata?.labels?.[LABELS.component] === "block-services" &&
          d.metadata.annotations?.[ANNOTATIONS.block] === blockId,
      );
      if (hasServices || this.#instancePods(blockId).length > 0) continue;
      await callOrNull(`deleting ConfigMap ${cm.metadata?.name}`, () =>
        this.api.core.deleteNamespacedConfigMap({
          name: cm.metadata?.name ?? "",
          namespace,
          propagationPolicy: "Background",
        }),
      );
      report.cleaned.push(`block:${blockId}`);
    }
    report.adopted.sort();
    report.cleaned.sort();
    return report;
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#listeners.clear();
    await Promise.all([this.#pods.stop(), this.#nodes.stop()]);
  }

  /** The block document the services read (tests, diagnostics). */
  async blockDocument(blockId: string): Promise<unknown> {
    const cm = await callOrNull(`reading ConfigMap ${names.block(blockId)}`, () =>
      this.api.core.readNamespacedConfigMap({ name: names.block(blockId), namespace: this.namespace }),
    );
    const text = cm?.data?.[BLOCK_FILE];
    return text === undefined ? null : JSON.parse(text);
  }
}

class TimeoutError extends Error {
  override readonly name = "TimeoutError";
}

const requireId = (value: unknown, what: string): void => {
  if (typeof value !== "string" || value.trim() === "") {
    throw new Error(`${what} must be a non-empty string, got ${JSON.stringify(value)}`);
  }
};

const baseSelector = (s: ManifestSettings) => ({
  [LABELS.cluster]: labelValue(s.clusterId),
  "app.kubernetes.io/managed-by": "aios",
});

const vdagLabelsBase = (s: ManifestSettings) => ({
  ...baseSelector(s),
  [LABELS.component]: "vdag-controller",
});
