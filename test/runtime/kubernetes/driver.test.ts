/**
 * The Kubernetes driver against the FAKE API server (fake-api-server.ts), which stands in for a real
 * one (none can run here): real HTTP, the real API paths and status codes, every created or patched
 * object validated against the Kubernetes OpenAPI schemas. Each test opens its own fake and driver.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { openRuntime, WorkloadStartError } from "../../../src/runtime/index.ts";
import { KubernetesDriver } from "../../../src/runtime/kubernetes/index.ts";
import { CLUSTER, type Harness, harness, kubeConfigFor, NS, until } from "./support.ts";

let h: Harness | null = null;
afterEach(async () => {
  if (h) expect(h.fake.invalid).toEqual([]);
  await h?.close();
  h = null;
});

const sentiment = { image: "registry.example/sentiment:2" };

const startOne = (hh: Harness, instanceId = "b1-0001", nodeId = "node-a", gpus: string[] = ["0"]) =>
  hh.driver.startInstance({
    blockId: "b1",
    instanceId,
    nodeId,
    gpus,
    template: sentiment,
    initData: { a: 1 },
  });

const servicesSpec = (blockId = "b1") => ({
  blockId,
  block: { id: blockId, minInstances: 1, policies: {} },
  instances: [],
  controllerUrl: "http://127.0.0.1:7000",
  registryUrl: "http://aios-registry.aios-test.svc:3000",
  clusterId: CLUSTER,
});

describe("connection", () => {
  test("lists and watches pods (by the cluster's labels) and nodes with the kubeconfig's token", async () => {
    h = await harness();
    const lists = h.fake.requests.filter((r) => r.method === "GET" && r.query.watch === undefined);
    expect(lists.map((r) => r.path).sort()).toEqual([`/api/v1/namespaces/${NS}/pods`, "/api/v1/nodes"]);
    const podList = lists.find((r) => r.path.endsWith("/pods"));
    expect(podList?.query.labelSelector).toBe(
      `app.kubernetes.io/managed-by=aios,aios.dev/cluster-id=${CLUSTER}`,
    );
    await until(() => h?.fake.watcherCount === 2, 5000, "two watches");
    expect(h.driver.namespace).toBe(NS); // from the kubeconfig context
  });

  test("a refused token fails to open with the API server's answer", async () => {
    h = await harness();
    await expect(
      KubernetesDriver.open({
        kubeConfig: kubeConfigFor(h.fake, "wrong"),
        scope: CLUSTER,
        syncTimeoutMs: 300,
      }),
    ).rejects.toThrow(/could not list .* within 300 ms/);
  });

  test("openRuntime({driver: 'kubernetes'}) builds it, scoped to the controller's cluster", async () => {
    h = await harness();
    const rt = await openRuntime({
      driver: "kubernetes",
      store: undefined as never,
      runDir: "/nonexistent",
      scope: "other-cluster",
      kubernetes: { kubeConfig: kubeConfigFor(h.fake), image: "img:1" },
    });
    try {
      expect(rt.name).toBe("kubernetes");
      expect((await rt.probeNodes()).map((n) => n.nodeId)).toEqual(["node-a", "node-b"]);
      expect(await rt.listInstances()).toEqual([]);
    } finally {
      await rt.close();
    }
  });
});

describe("instances", () => {
  test("a pod pinned to the chosen node with its GPUs, owned by the block's ConfigMap; running once ready", async () => {
    h = await harness();
    const status = await startOne(h, "b1-0001", "node-a", ["1", "3"]);
    expect(status).toMatchObject({
      blockId: "b1",
      instanceId: "b1-0001",
      nodeId: "node-a",
      gpus: ["1", "3"],
      state: "running",
      handle: "aios-i-b1-0001",
    });
    expect(status.url).toMatch(/^http:\/\/10\.244\.0\.\d+:8080$/);
    const create = h.fake.calls("POST", `/api/v1/namespaces/${NS}/pods`)[0];
    const pod = create?.body as {
      metadata: { ownerReferences: { uid: string }[] };
      spec: Record<string, unknown>;
    };
    const cm = h.fake.get("configmaps", NS, "aios-block-b1");
    expect(pod.metadata.ownerReferences[0]?.uid).toBe(cm?.metadata.uid);
    expect(h.fake.get("pods", NS, "aios-i-b1-0001")?.spec.nodeName).toBe("node-a");
    expect(await h.driver.listInstances("b1")).toEqual([status]);
    expect(await h.driver.listInstances("other")).toEqual([]);
    expect(await h.driver.readLogs("b1", "b1-0001", 1)).toEqual(["listening on 8080"]);
    expect(h.fake.calls("GET", `/api/v1/namespaces/${NS}/pods/aios-i-b1-0001/log`)[0]?.query.tailLines).toBe(
      "1",
    );
    expect(await h.driver.readLogs("b1", "nope", 10)).toBeNull();
  });

  test("bad inputs are refused before any call: unknown node, no image, bad GPU list, empty ids", async () => {
    h = await harness();
    const base = { blockId: "b1", instanceId: "i1", nodeId: "node-a", gpus: [], template: sentiment };
    await expect(h.driver.startInstance({ ...base, nodeId: "node-z" })).rejects.toThrow(
      /no Kubernetes node named "node-z"/,
    );
    await expect(h.driver.startInstance({ ...base, template: {} })).rejects.toThrow(/needs template.image/);
    await expect(h.driver.startInstance({ ...base, gpus: [1] as unknown as string[] })).rejects.toThrow(
      /gpus must be/,
    );
    await expect(h.driver.startInstance({ ...base, blockId: "" })).rejects.toThrow(
      /blockId must be a non-empty/,
    );
    expect(h.fake.calls("POST", `/api/v1/namespaces/${NS}/pods`)).toEqual([]);
  });

  test("a pod that cannot pull its image fails the start at once; the pod is deleted", async () => {
    h = await harness({}, { kubelet: "manual" });
    const started = startOne(h).catch((e: unknown) => e);
    await until(() => h?.fake.get("pods", NS, "aios-i-b1-0001"), 5000, "the pod");
    h.fake.setWaiting(
      NS,
      "aios-i-b1-0001",
      "ImagePullBackOff",
      'Back-off pulling image "registry.example/sentiment:2"',
    );
    const err = await started;
    expect(err).toBeInstanceOf(WorkloadStartError);
    expect(String((err as Error).message)).toMatch(
      /instance b1\/b1-0001 failed to start: ImagePullBackOff: Back-off pulling/,
    );
    expect(h.fake.get("pods", NS, "aios-i-b1-0001")).toBeUndefined();
    expect(h.events).toEqual([]);
  });

  test("a pod never ready is deleted at the timeout, saying what it waited for", async () => {
    h = await harness({ startTimeoutMs: 300 }, { kubelet: "manual" });
    const err = await startOne(h).catch((e: unknown) => e);
    expect(String((err as Error).message)).toMatch(/not ready within 300 ms \(phase Pending\)/);
    expect(h.fake.get("pods", NS, "aios-i-b1-0001")).toBeUndefined();
  });

  test("a live pod under the same name is refused; an ended one is replaced", async () => {
    h = await harness();
    await startOne(h);
    await expect(startOne(h)).rejects.toThrow(/already runs \(pod aios-i-b1-0001, running\); stop it first/);
    h.fake.terminatePod(NS, "aios-i-b1-0001", 1);
    await until(() => h?.events.length === 1, 5000, "the exit");
    const again = await startOne(h);
    expect(again.state).toBe("running");
  });

  test("exits are events: a failed pod (exit code), a pod deleted by someone else (null); a stop is not", async () => {
    h = await harness();
    await startOne(h, "b1-0001");
    await startOne(h, "b1-0002");
    await startOne(h, "b1-0003");
    h.fake.terminatePod(NS, "aios-i-b1-0001", 137, "OOMKilled");
    await until(() => h?.events.length === 1, 5000, "the first exit");
    expect(h.events[0]).toEqual({
      type: "instance_exited",
      blockId: "b1",
      instanceId: "b1-0001",
      exitCode: 137,
    });
    const listed = await h.driver.listInstances("b1");
    expect(listed.find((i) => i.instanceId === "b1-0001")).toMatchObject({
      state: "exited",
      exitCode: 137,
      url: null,
    });
    h.fake.remove("pods", NS, "aios-i-b1-0002");
    await until(() => h?.events.length === 2, 5000, "the second exit");
    expect(h.events[1]).toEqual({
      type: "instance_exited",
      blockId: "b1",
      instanceId: "b1-0002",
      exitCode: null,
    });
    await h.driver.stopInstance("b1", "b1-0003");
    // The ended pod's deletion later is not a second event.
    await h.driver.stopInstance("b1", "b1-0001");
    await Bun.sleep(100);
    expect(h.events).toHaveLength(2);
    expect(await h.driver.listInstances()).toEqual([]);
    // Nothing of the block is left: its ConfigMap went with its last workload.
    expect(h.fake.get("configmaps", NS, "aios-block-b1")).toBeUndefined();
    await h.driver.stopInstance("b1", "never-started"); // a no-op
  });

  test("deleting the block's ConfigMap garbage-collects its pods and services (owner references)", async () => {
    h = await harness();
    await startOne(h);
    await h.driver.startBlockServices(servicesSpec());
    h.fake.remove("configmaps", NS, "aios-block-b1");
    expect(h.fake.list("pods", NS)).toEqual([]);
    expect(h.fake.list("deployments", NS)).toEqual([]);
    expect(h.fake.list("services", NS)).toEqual([]);
    expect(h.fake.list("ingresses", NS)).toEqual([]);
  });
});

describe("block services", () => {
  test("a Deployment, Service and Ingress; URLs are the Service's; stopping removes them and the ConfigMap", async () => {
    h = await harness();
    const inst = await startOne(h);
    const status = await h.driver.startBlockServices({
      ...servicesSpec(),
      instances: [{ id: inst.instanceId, url: inst.url ?? "" }],
    });
    const host = `aios-block-b1-services.${NS}.svc`;
    expect(status).toMatchObject({
      blockId: "b1",
      state: "running",
      handle: "deployment/aios-block-b1-services",
    });
    expect(status.urls).toEqual({
      grpc: `http://${host}:50051`,
      metrics: `http://${host}:18000`,
      executor: `http://${host}:18001`,
      mapper: `http://${host}:5000`,
      autoscaler: `http://${host}:10000`,
      "health-checker": `http://${host}:19001`,
    });
    const dep = h.fake.get("deployments", NS, "aios-block-b1-services");
    expect(dep?.spec.template.spec.containers[0].image).toBe("registry.example/aios:1.0");
    expect(dep?.spec.template.spec.containers[0].args).toContain("http://aios-controller.aios-test.svc:7000");
    expect(h.fake.get("services", NS, "aios-block-b1-services")).toBeDefined();
    expect(h.fake.get("ingresses", NS, "aios-block-b1-services")?.spec.rules[0].http.paths).toHaveLength(5);
    expect(await h.driver.blockDocument("b1")).toEqual(servicesSpec().block);
    expect(await h.driver.getBlockServices("b1")).toMatchObject({ state: "running", urls: status.urls });
    expect((await h.driver.readLogs("b1", null, 5))?.[0]).toMatch(/^started aios-block-b1-services-/);
    await expect(h.driver.startBlockServices(servicesSpec())).rejects.toThrow(/already exist/);

    await h.driver.stopBlockServices("b1");
    expect(await h.driver.getBlockServices("b1")).toBeNull();
    expect(h.fake.get("ingresses", NS, "aios-block-b1-services")).toBeUndefined();
    expect(h.fake.get("services", NS, "aios-block-b1-services")).toBeUndefined();
    // The instance still runs: the ConfigMap (its owner) stays until it goes.
    expect(h.fake.get("configmaps", NS, "aios-block-b1")).toBeDefined();
    await h.driver.stopInstance("b1", inst.instanceId);
    expect(h.fake.get("configmaps", NS, "aios-block-b1")).toBeUndefined();
  });

  test("no Ingress when disabled; a failing services pod fails the start and removes what was made", async () => {
    h = await harness({ ingress: { enabled: false } }, { kubelet: "manual" });
    const started = h.driver.startBlockServices(servicesSpec()).catch((e: unknown) => e);
    const pod = await until(() => h?.fake.list("pods", NS)[0], 5000, "the services pod");
    h.fake.setWaiting(NS, pod?.metadata.name, "CreateContainerConfigError", 'configmap "x" not found');
    const err = await started;
    expect(String((err as Error).message)).toMatch(
      /block services b1 failed to start: CreateContainerConfigError/,
    );
    expect(h.fake.calls("POST", `/apis/networking.k8s.io/v1/namespaces/${NS}/ingresses`)).toEqual([]);
    expect(h.fake.list("deployments", NS)).toEqual([]);
    expect(h.fake.list("services", NS)).toEqual([]);
  });
});

describe("vDAG controllers", () => {
  test("a Deployment scaled through the scale subresource, listed and removed", async () => {
    h = await harness();
    const tpl = { image: "registry.example/vdag:1" };
    const two = await h.driver.applyVdagController({
      id: "v1",
      replicas: 2,
      template: tpl,
      config: { x: 1 },
    });
    expect(two.replicas).toBe(2);
    expect(two.urls).toHaveLength(2);
    expect(h.fake.calls("POST", `/apis/apps/v1/namespaces/${NS}/deployments`)).toHaveLength(1);
    const three = await h.driver.applyVdagController({
      id: "v1",
      replicas: 3,
      template: tpl,
      config: { x: 1 },
    });
    expect(three.handles).toHaveLength(3);
    const scale = h.fake.calls("PATCH", `/apis/apps/v1/namespaces/${NS}/deployments/aios-vdag-v1/scale`);
    expect(scale).toHaveLength(1);
    expect(scale[0]?.contentType).toBe("application/merge-patch+json");
    expect(scale[0]?.body).toEqual({ spec: { replicas: 3 } });
    // Another image: the Deployment itself is patched (a rolling update).
    await h.driver.applyVdagController({
      id: "v1",
      replicas: 1,
      template: { image: "registry.example/vdag:2" },
    });
    const patched = h.fake.requests.filter(
      (r) => r.method === "PATCH" && r.path === `/apis/apps/v1/namespaces/${NS}/deployments/aios-vdag-v1`,
    );
    expect(patched).toHaveLength(1);
    expect(h.fake.get("deployments", NS, "aios-vdag-v1")?.spec.template.spec.containers[0].image).toBe(
      "registry.example/vdag:2",
    );
    expect((await h.driver.listVdagControllers()).map((v) => [v.id, v.replicas])).toEqual([["v1", 1]]);
    await expect(h.driver.applyVdagController({ id: "v1", replicas: -1, template: tpl })).rejects.toThrow(
      /replicas must be a whole number/,
    );
    await h.driver.removeVdagController("v1");
    await h.driver.removeVdagController("v1"); // gone already: a no-op
    expect(await h.driver.listVdagControllers()).toEqual([]);
    expect(h.fake.list("pods", NS)).toEqual([]);
  });
});

describe("nodes", () => {
  test("health from Ready and pressure conditions and cordons; GPUs counted; usage from metrics.k8s.io", async () => {
    h = await harness();
    h.fake.nodeMetrics = [{ metadata: { name: "node-a" }, usage: { cpu: "2", memory: "8Gi" } }];
    const [a, b] = await h.driver.probeNodes();
    expect(a).toMatchObject({ nodeId: "node-a", healthy: true, cpu_utilization_percent: 25 });
    expect(a?.memory).toEqual({ total: 32 * 2 ** 30, allocatable: 31 * 2 ** 30, usage_percent: 25 });
    expect(a?.gpus.map((g) => g.id)).toEqual(["0", "1", "2", "3"]);
    expect(b).toMatchObject({
      nodeId: "node-b",
      healthy: true,
      cpu_utilization_percent: null,
      memory: null,
      gpus: [],
    });
    h.fake.nodeMetrics = null; // metrics-server absent: no usage, no error
    expect((await h.driver.probeNodes())[0]?.cpu_utilization_percent).toBeNull();
  });

  test("a node turning NotReady (and back) is a node_changed event from the watch", async () => {
    h = await harness();
    h.fake.setNodeReady("node-b", false);
    await until(() => h?.events.length === 1, 5000, "node_changed");
    expect(h.events[0]).toEqual({ type: "node_changed", nodeId: "node-b", healthy: false });
    const b = (await h.driver.probeNodes()).find((n) => n.nodeId === "node-b");
    expect(b?.healthy).toBe(false);
    expect(b?.reason).toMatch(/not Ready/);
    h.fake.setNodeReady("node-b", true);
    await until(() => h?.events.length === 2, 5000, "node_changed back");
    expect(h.events[1]).toEqual({ type: "node_changed", nodeId: "node-b", healthy: true });
  });

  test("onboarding labels and uncordons; cordon patches spec.unschedulable; removal drains and unlabels", async () => {
    h = await harness();
    h.fake.update("nodes", null, "node-b", { spec: { unschedulable: true } });
    await h.driver.onboardNode("node-b", { "aios.dev/pool": "gpu" });
    let node = h.fake.get("nodes", null, "node-b");
    expect(node?.metadata.labels).toMatchObject({ "aios.dev/cluster-node": CLUSTER, "aios.dev/pool": "gpu" });
    expect(node?.spec.unschedulable).toBeUndefined();
    const patches = h.fake.calls("PATCH", "/api/v1/nodes/node-b");
    expect(patches.every((p) => p.contentType === "application/merge-patch+json")).toBe(true);
    await expect(h.driver.onboardNode("node-z")).rejects.toThrow(/no Kubernetes node named "node-z"/);

    await h.driver.cordonNode("node-b", true);
    expect(h.fake.get("nodes", null, "node-b")?.spec.unschedulable).toBe(true);
    await until(
      async () => (await h?.driver.probeNodes())?.find((n) => n.nodeId === "node-b")?.healthy === false,
    );

    // Pods on node-b: one of ours, one a PodDisruptionBudget holds back once, one of a DaemonSet.
    await startOne(h, "b1-0001", "node-b", []);
    h.fake.put("pods", {
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name: "web-1", namespace: "default" },
      spec: { nodeName: "node-b", containers: [{ name: "web", image: "nginx" }] },
      status: { phase: "Running" },
    });
    h.fake.put("pods", {
      apiVersion: "v1",
      kind: "Pod",
      metadata: {
        name: "fluentd-x",
        namespace: "kube-system",
        ownerReferences: [{ apiVersion: "apps/v1", kind: "DaemonSet", name: "fluentd", uid: "u-ds" }],
      },
      spec: { nodeName: "node-b", containers: [{ name: "f", image: "fluentd" }] },
      status: { phase: "Running" },
    });
    h.fake.refuseEvictions.set("default/web-1", 1);
    const report = await h.driver.removeNode("node-b", { retryMs: 20, timeoutMs: 5000 });
    expect(report.evicted.sort()).toEqual([`${NS}/aios-i-b1-0001`, "default/web-1"]);
    expect(report.skipped).toEqual(["kube-system/fluentd-x"]);
    const evictions = h.fake.calls("POST", "/api/v1/namespaces/default/pods/web-1/eviction");
    expect(evictions).toHaveLength(2); // refused once (429), then accepted
    expect(evictions[0]?.body).toMatchObject({ apiVersion: "policy/v1", kind: "Eviction" });
    node = h.fake.get("nodes", null, "node-b");
    expect(node?.spec.unschedulable).toBe(true);
    expect(node?.metadata.labels["aios.dev/cluster-node"]).toBeUndefined();
    // The evicted instance is an exit like any other: the controller replaces it elsewhere.
    await until(() => h?.events.some((e) => e.type === "instance_exited"), 5000, "the evicted instance");
  });

  test("a drain blocked by a disruption budget past its timeout says which pods", async () => {
    h = await harness();
    h.fake.put("pods", {
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name: "db-0", namespace: "default" },
      spec: { nodeName: "node-a", containers: [{ name: "db", image: "postgres" }] },
      status: { phase: "Running" },
    });
    h.fake.refuseEvictions.set("default/db-0", 1000);
    await expect(h.driver.drainNode("node-a", { retryMs: 10, timeoutMs: 100 })).rejects.toThrow(
      /evictions still refused by a PodDisruptionBudget after 100 ms: default\/db-0/,
    );
  });
});

describe("watches", () => {
  test("a watch the server ends is reopened from the last resource version; events keep flowing", async () => {
    h = await harness();
    await until(() => h?.fake.watcherCount === 2, 5000, "watches");
    const before = h.fake.calls("GET", `/api/v1/namespaces/${NS}/pods`).length;
    h.fake.closeWatches();
    await until(() => h?.fake.watcherCount === 2, 10_000, "watches reopened");
    const reopened = h.fake.calls("GET", `/api/v1/namespaces/${NS}/pods`).slice(before);
    expect(reopened.every((r) => r.query.watch === "true" && Number(r.query.resourceVersion) > 0)).toBe(true);
    await startOne(h);
    h.fake.terminatePod(NS, "aios-i-b1-0001", 2);
    await until(() => h?.events.length === 1, 5000, "the exit after reconnection");
  }, 20_000);

  test("after 410 Gone (history compacted) the pods are listed again; a change in the gap is seen", async () => {
    h = await harness();
    await startOne(h);
    await until(() => h?.fake.watcherCount === 2, 5000, "watches");
    h.fake.compactHistory();
    h.fake.closeWatches();
    // Missed while no watch was open.
    h.fake.terminatePod(NS, "aios-i-b1-0001", 9);
    await until(() => h?.events.length === 1, 10_000, "the exit seen by the relist");
    expect(h.events[0]).toMatchObject({ type: "instance_exited", exitCode: 9 });
  }, 20_000);
});

describe("adoption", () => {
  test("a new driver adopts live workloads of its cluster and cleans ended pods and empty ConfigMaps", async () => {
    h = await harness();
    await startOne(h, "b1-0001");
    await startOne(h, "b1-0002");
    await h.driver.startBlockServices(servicesSpec());
    await h.driver.applyVdagController({ id: "v1", replicas: 1, template: { image: "v:1" } });
    // Another block's ConfigMap left with nothing to own.
    h.fake.put("configmaps", {
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: {
        name: "aios-block-b9",
        namespace: NS,
        labels: {
          "app.kubernetes.io/managed-by": "aios",
          "aios.dev/cluster-id": CLUSTER,
          "app.kubernetes.io/component": "block",
        },
        annotations: { "aios.dev/block-id": "b9" },
      },
      data: {},
    });
    await h.driver.close();
    h.fake.terminatePod(NS, "aios-i-b1-0002", 1);
    const second = await KubernetesDriver.open({ kubeConfig: kubeConfigFor(h.fake), scope: CLUSTER });
    const other = await KubernetesDriver.open({
      kubeConfig: kubeConfigFor(h.fake),
      scope: "another-cluster",
    });
    try {
      expect(await other.adopt()).toEqual({ adopted: [], cleaned: [] });
      expect(await second.adopt()).toEqual({
        adopted: ["instance:b1:b1-0001", "services:b1", "vdag:v1"],
        cleaned: ["block:b9", "instance:b1:b1-0002"],
      });
      expect((await second.listInstances()).map((i) => i.instanceId)).toEqual(["b1-0001"]);
      expect(await second.getBlockServices("b1")).toMatchObject({ state: "running" });
      expect(h.fake.get("configmaps", NS, "aios-block-b9")).toBeUndefined();
    } finally {
      await second.close();
      await other.close();
    }
  });
});
