/** `aios controller --runtime kubernetes`: the flags (and their environment variables) as runtime settings. */
import { afterEach, expect, test } from "bun:test";
import { UsageError } from "../../../src/cli/args.ts";
import { runtimeFromFlags } from "../../../src/cli/controller.ts";

const saved = { ...process.env };
afterEach(() => {
  for (const k of Object.keys(process.env)) if (k.startsWith("AIOS_")) delete process.env[k];
  Object.assign(process.env, saved);
});

test("the process runtime is the default and refuses Kubernetes flags", () => {
  delete process.env.AIOS_RUNTIME;
  expect(runtimeFromFlags({})).toEqual({ driver: "process" });
  expect(() => runtimeFromFlags({ namespace: "x" })).toThrow(/--namespace is for --runtime kubernetes/);
  expect(() => runtimeFromFlags({ runtime: "docker" })).toThrow(UsageError);
});

test("--runtime kubernetes with its flags", () => {
  expect(
    runtimeFromFlags({
      runtime: "kubernetes",
      namespace: "aios",
      image: "registry.example/aios:1",
      kubeconfig: "/tmp/kc",
      context: "prod",
      "advertise-url": "http://aios-controller.aios.svc:7000/",
      "workload-port": "9000",
      "gpu-resource": "none",
      "node-selector": "aios.dev/cluster-node=c1",
      "ingress-class": "nginx",
      "ingress-host": "aios.example.com",
      "image-pull-policy": "Always",
    }),
  ).toEqual({
    driver: "kubernetes",
    kubernetes: {
      image: "registry.example/aios:1",
      imagePullPolicy: "Always",
      kubeconfig: "/tmp/kc",
      context: "prod",
      namespace: "aios",
      podControllerUrl: "http://aios-controller.aios.svc:7000",
      workloadPort: 9000,
      gpuResource: "",
      nodeSelector: "aios.dev/cluster-node=c1",
      ingress: { enabled: true, className: "nginx", host: "aios.example.com" },
    },
  });
});

test("the environment configures it where flags are absent (deploy/ sets it from a ConfigMap)", () => {
  process.env.AIOS_RUNTIME = "kubernetes";
  process.env.AIOS_IMAGE = "img:2";
  process.env.AIOS_NAMESPACE = "ns1";
  process.env.AIOS_INGRESS = "false";
  process.env.AIOS_INGRESS_HOST = "";
  const rt = runtimeFromFlags({ "in-cluster": true });
  expect(rt.driver).toBe("kubernetes");
  expect(rt.kubernetes).toMatchObject({
    image: "img:2",
    namespace: "ns1",
    inCluster: true,
    ingress: { enabled: false },
  });
  expect(rt.kubernetes?.ingress).not.toHaveProperty("host");
});

test("bad values name their flag", () => {
  const k = { runtime: "kubernetes" };
  expect(() => runtimeFromFlags({ ...k, "image-pull-policy": "Sometimes" })).toThrow(
    /--image-pull-policy must be one of/,
  );
  expect(() => runtimeFromFlags({ ...k, "advertise-url": "aios-controller:7000" })).toThrow(
    /--advertise-url must be/,
  );
  expect(() => runtimeFromFlags({ ...k, "workload-port": "0" })).toThrow(
    /--workload-port must be a fixed port/,
  );
  expect(() => runtimeFromFlags({ ...k, "workload-port": "http" })).toThrow(/--workload-port must be a port/);
});

test("no kubeconfig anywhere and not in a pod: a clear error at once, not a wait on localhost:8080", async () => {
  const { loadKubeConfig } = await import("../../../src/runtime/kubernetes/kubeconfig.ts");
  const home = process.env.HOME;
  process.env.KUBECONFIG = "/nonexistent/kubeconfig";
  process.env.HOME = "/nonexistent-home";
  try {
    expect(() => loadKubeConfig()).toThrow(/no Kubernetes cluster configured/);
    expect(() => loadKubeConfig({ kubeconfig: "/nonexistent/kc" })).toThrow(
      /kubeconfig \/nonexistent\/kc does not exist/,
    );
    expect(() => loadKubeConfig({ inCluster: true })).toThrow(/not a pod with a service account/);
  } finally {
    delete process.env.KUBECONFIG;
    process.env.HOME = home;
  }
});
