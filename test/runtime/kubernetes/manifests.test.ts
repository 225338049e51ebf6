/**
 * The objects the Kubernetes driver builds (src/runtime/kubernetes/manifests.ts), validated against
 * the Kubernetes OpenAPI schemas (validate.ts), and what an operator relies on in them: labels, owner
 * references, placement, GPUs, probes and the `/block/{id}/...` ingress routes.
 */
import { describe, expect, test } from "bun:test";
import {
  blockConfigMap,
  INGRESS_ROUTES,
  instancePod,
  type ManifestSettings,
  servicesDeployment,
  servicesIngress,
  servicesService,
  vdagDeployment,
} from "../../../src/runtime/kubernetes/manifests.ts";
import { labelValue, names, objectName } from "../../../src/runtime/kubernetes/names.ts";
import type { InstanceSpec } from "../../../src/runtime/types.ts";
import { validateObject } from "./validate.ts";

const settings: ManifestSettings = {
  clusterId: "cluster-1",
  namespace: "aios",
  image: "registry.example/aios:1.0",
  imagePullPolicy: "IfNotPresent",
  imagePullSecrets: ["regcred"],
  workloadPort: 8080,
  gpuResource: "nvidia.com/gpu",
  terminationGracePeriodSeconds: 30,
  ingress: { className: "nginx", host: "cluster-1.example.com" },
};
const owner = { name: "aios-block-b1", uid: "6f1c3c9e-0000-4000-8000-000000000001" };

const instance = (over: Partial<InstanceSpec> = {}): InstanceSpec => ({
  blockId: "b1",
  instanceId: "b1-1a2b3c4d",
  nodeId: "gpu-node-7",
  gpus: ["1", "3"],
  template: { image: "registry.example/sentiment:2", env: { MODEL: "nb" } },
  initData: { alpha: 1 },
  initSettings: { max_chars: 2000 },
  parameters: { top_k: 3 },
  redisUrl: "redis://redis:6379",
  ...over,
});

const servicesInput = (blockId = "b1") => ({
  spec: {
    blockId,
    block: { id: blockId, minInstances: 1 },
    instances: [{ id: `${blockId}-1`, url: "http://10.0.0.5:8080" }],
    controllerUrl: "http://ignored:7000",
    registryUrl: "http://aios-registry.aios.svc:3000",
    clusterId: "cluster-1",
  },
  owner,
  controllerUrl: "http://aios-controller.aios.svc:7000",
});

const env = (c: { env?: { name: string; value?: string }[] }) =>
  Object.fromEntries((c.env ?? []).map((e) => [e.name, e.value]));

describe("names and labels", () => {
  test("valid ids are kept; others are cleaned, bounded and hashed, never colliding", () => {
    expect(labelValue("b1")).toBe("b1");
    expect(labelValue("Block_1.v2")).toBe("Block_1.v2");
    const long = "x".repeat(80);
    expect(labelValue(long).length).toBeLessThanOrEqual(63);
    expect(labelValue("a b")).not.toBe(labelValue("a_b"));
    expect(labelValue("a b")).toMatch(/^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/);
    for (const id of ["b1", "Block_1.v2", "-x-", "9lives", "a".repeat(100), "ÜBER.block"]) {
      const n = objectName("aios-block", id);
      expect(n).toMatch(/^[a-z]([-a-z0-9]*[a-z0-9])?$/);
      expect(n.length).toBeLessThanOrEqual(63);
    }
    expect(names.block("Block_1")).not.toBe(names.block("block-1"));
    expect(names.instance("b1", "b1-1a2b")).toBe("aios-i-b1-1a2b");
  });
});

describe("instance pod", () => {
  test("validates, pinned to the chosen node, with its GPUs, probes, labels and owner", async () => {
    const pod = instancePod(settings, {
      spec: instance(),
      owner,
      controllerUrl: "http://aios-controller.aios.svc:7000",
      startedAt: "2026-01-01T00:00:00.000Z",
    });
    await validateObject(pod);
    expect(pod.metadata?.labels).toMatchObject({
      "app.kubernetes.io/managed-by": "aios",
      "app.kubernetes.io/component": "instance",
      "aios.dev/cluster-id": "cluster-1",
      "aios.dev/block-id": "b1",
      "aios.dev/instance-id": "b1-1a2b3c4d",
    });
    expect(pod.metadata?.ownerReferences).toEqual([
      {
        apiVersion: "v1",
        kind: "ConfigMap",
        name: owner.name,
        uid: owner.uid,
        controller: false,
        blockOwnerDeletion: true,
      },
    ]);
    const terms =
      pod.spec?.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms;
    expect(terms).toEqual([
      { matchFields: [{ key: "metadata.name", operator: "In", values: ["gpu-node-7"] }] },
    ]);
    expect(pod.spec?.restartPolicy).toBe("Never");
    const c = pod.spec?.containers[0];
    expect(c?.image).toBe("registry.example/sentiment:2");
    expect(c?.command).toBeUndefined();
    expect(c?.resources?.limits).toEqual({ "nvidia.com/gpu": "2" });
    expect(pod.spec?.tolerations).toContainEqual({
      key: "nvidia.com/gpu",
      operator: "Exists",
      effect: "NoSchedule",
    });
    const e = env(c ?? {});
    expect(e).toMatchObject({
      MODEL: "nb",
      AIOS_BLOCK_ID: "b1",
      AIOS_INSTANCE_ID: "b1-1a2b3c4d",
      AIOS_INSTANCE_PORT: "8080",
      AIOS_INIT_DATA: '{"alpha":1}',
      AIOS_INIT_SETTINGS: '{"max_chars":2000}',
      AIOS_PARAMETERS: '{"top_k":3}',
      NVIDIA_VISIBLE_DEVICES: "1,3",
      CUDA_VISIBLE_DEVICES: "0,1",
      AIOS_CONTROLLER_URL: "http://aios-controller.aios.svc:7000",
      REDIS_URL: "redis://redis:6379",
      AIOS_CLUSTER_ID: "cluster-1",
    });
    for (const probe of [c?.startupProbe, c?.readinessProbe, c?.livenessProbe]) {
      expect(probe?.httpGet).toEqual({ path: "/health", port: "http" });
    }
    expect(pod.metadata?.annotations?.["aios.dev/gpus"]).toBe("1,3");
    expect(pod.spec?.imagePullSecrets).toEqual([{ name: "regcred" }]);
  });

  test("without GPUs: no GPU resource, no toleration, no device visible; a command runs in the aios image", async () => {
    const pod = instancePod(settings, {
      spec: instance({ gpus: [], template: { command: ["bun", "examples/sentiment/instance.ts"] } }),
      owner,
      controllerUrl: undefined,
      startedAt: "2026-01-01T00:00:00.000Z",
    });
    await validateObject(pod);
    const c = pod.spec?.containers[0];
    expect(c?.image).toBe(settings.image);
    expect(c?.command).toEqual(["bun", "examples/sentiment/instance.ts"]);
    expect(c?.resources).toBeUndefined();
    expect(pod.spec?.tolerations).toBeUndefined();
    expect(env(c ?? {}).NVIDIA_VISIBLE_DEVICES).toBe("none");
    expect(env(c ?? {}).AIOS_CONTROLLER_URL).toBeUndefined();
  });

  test("gpuResource '' asks no extended resource: the device ids go by env only", async () => {
    const pod = instancePod(
      { ...settings, gpuResource: "" },
      { spec: instance(), owner, controllerUrl: undefined, startedAt: "2026-01-01T00:00:00.000Z" },
    );
    await validateObject(pod);
    expect(pod.spec?.containers[0]?.resources).toBeUndefined();
    expect(env(pod.spec?.containers[0] ?? {}).NVIDIA_VISIBLE_DEVICES).toBe("1,3");
  });

  test("odd ids still give valid objects (names and label values are derived, exact ids annotated)", async () => {
    const blockId = `Block.With_Caps.${"y".repeat(60)}`;
    const pod = instancePod(settings, {
      spec: instance({ blockId, instanceId: `${blockId}-abcdef12` }),
      owner,
      controllerUrl: undefined,
      startedAt: "2026-01-01T00:00:00.000Z",
    });
    await validateObject(pod);
    expect(pod.metadata?.annotations?.["aios.dev/block-id"]).toBe(blockId);
    for (const v of Object.values(pod.metadata?.labels ?? {})) expect(v.length).toBeLessThanOrEqual(63);
  });
});

describe("block services", () => {
  test("ConfigMap, Deployment, Service and Ingress validate and are owned by the block's ConfigMap", async () => {
    const input = servicesInput();
    const cm = blockConfigMap(settings, "b1", input.spec.block);
    const dep = servicesDeployment(settings, input);
    const svc = servicesService(settings, input);
    const ing = servicesIngress(settings, input);
    for (const o of [cm, dep, svc, ing]) await validateObject(o);
    for (const o of [dep, svc, ing]) {
      expect(o.metadata?.ownerReferences?.[0]).toMatchObject({
        kind: "ConfigMap",
        name: owner.name,
        uid: owner.uid,
      });
      expect(o.metadata?.labels?.["aios.dev/block-id"]).toBe("b1");
    }
    expect(JSON.parse(cm.data?.["block.json"] ?? "")).toEqual({ id: "b1", minInstances: 1 });
    expect(dep.spec?.strategy?.type).toBe("Recreate");
    expect(dep.spec?.selector.matchLabels).toEqual(dep.spec?.template.metadata?.labels);
    expect(svc.spec?.selector).toEqual(dep.spec?.selector.matchLabels);
    const c = dep.spec?.template.spec?.containers[0];
    expect(c?.args).toEqual(
      expect.arrayContaining([
        "block-runtime",
        "--block-id",
        "b1",
        "--instance",
        "b1-1=http://10.0.0.5:8080",
        "--instances-url",
        "http://aios-controller.aios.svc:7000/blocks/b1",
        "--controller",
        "http://aios-controller.aios.svc:7000",
        "--host",
        "0.0.0.0",
      ]),
    );
    expect(Object.fromEntries((c?.ports ?? []).map((p) => [p.name, p.containerPort]))).toEqual({
      grpc: 50051,
      metrics: 18000,
      executor: 18001,
      mapper: 5000,
      autoscaler: 10000,
      "health-checker": 19001,
    });
    expect(c?.readinessProbe?.httpGet?.path).toBe("/metrics");
    expect(svc.spec?.ports?.find((p) => p.name === "grpc")?.appProtocol).toBe("kubernetes.io/h2c");
    // block-runtime.md: /rpc, /metrics, /executor, /autoscaler, /health-checker under /block/{id}.
    const paths = ing.spec?.rules?.[0]?.http?.paths ?? [];
    expect(paths.map((p) => p.backend.service?.port?.name)).toEqual(INGRESS_ROUTES.map((r) => r.listener));
    expect(ing.spec?.ingressClassName).toBe("nginx");
    expect(ing.spec?.rules?.[0]?.host).toBe("cluster-1.example.com");
    const rewrite = (path: string, url: string) => {
      const m = new RegExp(`^${path}`).exec(url);
      return m ? `/${m[2] ?? ""}` : null;
    };
    const byListener = Object.fromEntries(paths.map((p) => [p.backend.service?.port?.name, p.path ?? ""]));
    expect(rewrite(byListener.executor ?? "", "/block/b1/executor/mgmt")).toBe("/mgmt");
    expect(rewrite(byListener.autoscaler ?? "", "/block/b1/autoscaler/mgmt")).toBe("/mgmt");
    expect(rewrite(byListener["health-checker"] ?? "", "/block/b1/health-checker/mgmt")).toBe("/mgmt");
    expect(rewrite(byListener.metrics ?? "", "/block/b1/metrics")).toBe("/metrics");
    expect(rewrite(byListener.grpc ?? "", "/block/b1/rpc/InferenceProxy/infer")).toBe(
      "/InferenceProxy/infer",
    );
    expect(rewrite(byListener.executor ?? "", "/block/b10/executor/mgmt")).toBeNull();
  });

  test("custom ingress annotations replace ingress-nginx's", async () => {
    const ing = servicesIngress(
      { ...settings, ingress: { annotations: { "x.example/strip": "true" } } },
      servicesInput(),
    );
    await validateObject(ing);
    expect(ing.metadata?.annotations?.["nginx.ingress.kubernetes.io/rewrite-target"]).toBeUndefined();
    expect(ing.metadata?.annotations?.["x.example/strip"]).toBe("true");
    expect(ing.spec?.ingressClassName).toBeUndefined();
  });
});

describe("vDAG controller", () => {
  test("a Deployment with the replica count and the replica's environment", async () => {
    const dep = vdagDeployment(settings, {
      spec: {
        id: "vdag-1",
        replicas: 3,
        template: { image: "vdag:1", env: { A: "1" } },
        config: { replicas: 3 },
      },
      controllerUrl: "http://aios-controller.aios.svc:7000",
    });
    await validateObject(dep);
    expect(dep.spec?.replicas).toBe(3);
    const c = dep.spec?.template.spec?.containers[0];
    expect(env(c ?? {})).toMatchObject({
      A: "1",
      AIOS_PORT: "8080",
      AIOS_VDAG_ID: "vdag-1",
      AIOS_VDAG_CONFIG: '{"replicas":3}',
    });
    expect(c?.env?.find((e) => e.name === "AIOS_VDAG_REPLICA")?.valueFrom?.fieldRef?.fieldPath).toBe(
      "metadata.name",
    );
    expect(dep.metadata?.labels?.["aios.dev/vdag-controller-id"]).toBe("vdag-1");
  });
});

test("the validator itself refuses what the API server would", async () => {
  const pod = instancePod(settings, { spec: instance(), owner, controllerUrl: undefined, startedAt: "x" });
  const bad = JSON.parse(JSON.stringify(pod));
  bad.spec.containers[0].ports[0].containerPort = "http";
  await expect(validateObject(bad)).rejects.toThrow(/containerPort/);
  const unknown = JSON.parse(JSON.stringify(pod));
  unknown.spec.containers[0].gpus = 2;
  await expect(validateObject(unknown)).rejects.toThrow(/\.spec\.containers\[0\]\.gpus/);
});
