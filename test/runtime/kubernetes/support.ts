/** Test helpers: a KubeConfig pointing at the fake API server, a driver on it, waiting for conditions. */
import { KubeConfig } from "@kubernetes/client-node";
import { KubernetesDriver, type KubernetesDriverOptions } from "../../../src/runtime/kubernetes/index.ts";
import type { RuntimeEvent } from "../../../src/runtime/types.ts";
import { FakeApiServer, type FakeApiServerOptions } from "./fake-api-server.ts";

export const NS = "aios-test";
export const CLUSTER = "c1";

/** A real kubeconfig (cluster, user with a bearer token, context) whose server is the fake. */
export const kubeConfigFor = (fake: FakeApiServer, token = fake.token): KubeConfig => {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: "fake", server: fake.url, skipTLSVerify: true }],
    users: [{ name: "tester", token }],
    contexts: [{ name: "fake", cluster: "fake", user: "tester", namespace: NS }],
    currentContext: "fake",
  });
  return kc;
};

export interface Harness {
  fake: FakeApiServer;
  driver: KubernetesDriver;
  events: RuntimeEvent[];
  close(): Promise<void>;
}

export const harness = async (
  options: Partial<KubernetesDriverOptions> = {},
  fakeOptions: FakeApiServerOptions = {},
  nodes: { name: string; gpus?: number }[] = [{ name: "node-a", gpus: 4 }, { name: "node-b" }],
): Promise<Harness> => {
  const fake = await new FakeApiServer(fakeOptions).start();
  for (const n of nodes) fake.addNode(n.name, n.gpus ? { gpus: n.gpus } : {});
  const driver = await KubernetesDriver.open({
    kubeConfig: kubeConfigFor(fake),
    scope: CLUSTER,
    image: "registry.example/aios:1.0",
    controllerUrl: "http://127.0.0.1:7000",
    podControllerUrl: "http://aios-controller.aios-test.svc:7000",
    startTimeoutMs: 5000,
    ...options,
  });
  const events: RuntimeEvent[] = [];
  driver.watch((e) => events.push(e));
  return {
    fake,
    driver,
    events,
    async close() {
      await driver.close();
      await fake.stop();
    },
  };
};

/** Polls `fn` until it returns a truthy value (or throws after `timeoutMs`). */
export const until = async <T>(
  fn: () => T | Promise<T>,
  timeoutMs = 5000,
  what = "condition",
): Promise<T> => {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(10);
  }
};
