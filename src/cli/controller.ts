/**
 * `aios controller --cluster-id ID`: one cluster's controller, on the process runtime (local processes,
 * the default) or on Kubernetes (`--runtime kubernetes`: pods, Deployments, Services and Ingresses).
 */
import { join } from "node:path";
import { bootstrapTokens } from "../auth/index.ts";
import { CONTROLLER_PORT, controllerGuard, startController } from "../controller/serve.ts";
import { ServiceClientError } from "../http/client.ts";
import type { RuntimeConfig } from "../runtime/index.ts";
import { DEFAULT_IMAGE } from "../runtime/kubernetes/index.ts";
import { openStore, storeConfigFrom } from "../store/index.ts";
import {
  AUTH_FLAGS,
  AUTH_FLAGS_USAGE,
  authSettingsFrom,
  type FlagValue,
  parseFlags,
  parsePort,
  stringFlag,
  UsageError,
  type Verb,
} from "./args.ts";
import { bootstrapFrom, serveService } from "./serve.ts";

const flags = {
  "cluster-id": { type: "string" },
  registry: { type: "string" },
  port: { type: "string" },
  host: { type: "string" },
  "data-dir": { type: "string" },
  "run-dir": { type: "string" },
  runtime: { type: "string" },
  namespace: { type: "string" },
  image: { type: "string" },
  "image-pull-policy": { type: "string" },
  kubeconfig: { type: "string" },
  context: { type: "string" },
  "in-cluster": { type: "boolean" },
  "advertise-url": { type: "string" },
  "workload-port": { type: "string" },
  "gpu-resource": { type: "string" },
  "node-selector": { type: "string" },
  "ingress-class": { type: "string" },
  "ingress-host": { type: "string" },
  "no-ingress": { type: "boolean" },
  ...AUTH_FLAGS,
} as const;

const PULL_POLICIES = ["Always", "IfNotPresent", "Never"] as const;

/** `--flag`, else the environment variable (how the deploy/ manifests configure the controller). */
const setting = (raw: FlagValue, env: string): string | undefined =>
  stringFlag(raw) ?? (process.env[env] || undefined);

/** `--advertise-url` (or AIOS_ADVERTISE_URL): this controller as others reach it. */
const advertiseUrlFrom = (values: Record<string, FlagValue>): string | undefined => {
  const advertise = setting(values["advertise-url"], "AIOS_ADVERTISE_URL");
  if (advertise !== undefined && !/^https?:\/\/[^/]+/.test(advertise)) {
    throw new UsageError(`--advertise-url must be an http(s) URL, got ${JSON.stringify(advertise)}`);
  }
  return advertise;
};

/** The runtime the flags select; UsageErrors name the flag at fault. */
export const runtimeFromFlags = (
  values: Record<string, FlagValue>,
): Omit<RuntimeConfig, "store" | "runDir" | "controllerUrl"> => {
  const kind = setting(values.runtime, "AIOS_RUNTIME") ?? "process";
  if (kind !== "process" && kind !== "kubernetes") {
    throw new UsageError(`--runtime must be process or kubernetes, got ${JSON.stringify(kind)}`);
  }
  const k8sFlags = [
    "namespace",
    "image",
    "image-pull-policy",
    "kubeconfig",
    "context",
    "in-cluster",
    "advertise-url",
    "workload-port",
    "gpu-resource",
    "node-selector",
    "ingress-class",
    "ingress-host",
    "no-ingress",
  ].filter((f) => values[f] !== undefined);
  if (kind === "process") {
    if (k8sFlags.length > 0) {
      throw new UsageError(`--${k8sFlags[0]} is for --runtime kubernetes (the runtime is process)`);
    }
    return { driver: "process" };
  }
  const pullPolicy = setting(values["image-pull-policy"], "AIOS_IMAGE_PULL_POLICY");
  if (pullPolicy !== undefined && !(PULL_POLICIES as readonly string[]).includes(pullPolicy)) {
    throw new UsageError(
      `--image-pull-policy must be one of ${PULL_POLICIES.join(", ")}, got ${JSON.stringify(pullPolicy)}`,
    );
  }
  const advertise = advertiseUrlFrom(values);
  const workloadPort = values["workload-port"];
  const port = workloadPort === undefined ? undefined : parsePort(workloadPort, "--workload-port", 8080);
  if (port === 0) throw new UsageError("--workload-port must be a fixed port (1 to 65535), not 0");
  const kubeconfig = stringFlag(values.kubeconfig);
  const context = stringFlag(values.context);
  const namespace = setting(values.namespace, "AIOS_NAMESPACE");
  const gpuResource = setting(values["gpu-resource"], "AIOS_GPU_RESOURCE");
  const nodeSelector = setting(values["node-selector"], "AIOS_NODE_SELECTOR");
  const ingressClass = setting(values["ingress-class"], "AIOS_INGRESS_CLASS");
  const ingressHost = setting(values["ingress-host"], "AIOS_INGRESS_HOST");
  return {
    driver: "kubernetes",
    kubernetes: {
      image: setting(values.image, "AIOS_IMAGE") ?? DEFAULT_IMAGE,
      ...(pullPolicy ? { imagePullPolicy: pullPolicy as (typeof PULL_POLICIES)[number] } : {}),
      ...(kubeconfig ? { kubeconfig } : {}),
      ...(context ? { context } : {}),
      ...(values["in-cluster"] === true ? { inCluster: true } : {}),
      ...(namespace ? { namespace } : {}),
      ...(advertise ? { podControllerUrl: advertise.replace(/\/+$/, "") } : {}),
      ...(port !== undefined ? { workloadPort: port } : {}),
      ...(gpuResource !== undefined ? { gpuResource: gpuResource === "none" ? "" : gpuResource } : {}),
      ...(nodeSelector ? { nodeSelector } : {}),
      ingress: {
        enabled: values["no-ingress"] !== true && process.env.AIOS_INGRESS !== "false",
        ...(ingressClass ? { className: ingressClass } : {}),
        ...(ingressHost ? { host: ingressHost } : {}),
      },
    },
  };
};

export const controllerVerb: Verb = {
  name: "controller",
  summary: "serve one cluster's controller (blocks, nodes, pre-checks, scanner, events)",
  usage: `usage: aios controller --cluster-id ID (--token T | --anonymous) [--registry URL] [--port P]
                       [--host H] [--data-dir DIR] [--runtime process|kubernetes] [kubernetes flags]

Serves the cluster controller API of cluster-controller.md (/executeAction, /blocks, /cluster-actions,
/vdag-controller, /healthy_nodes, /nodes_status, /check_stability, /mgmt, /events, and the public
gateway /block/{id}/...). On the process runtime, instances and block services run as local processes,
tracked in the store; on Kubernetes they are pods, Deployments, Services and Ingresses labelled with the
cluster id. Either way a restarted controller adopts what still runs. Registers the cluster document
(with its urlMap) in the registry. Prints "listening controller <url>" once ready; stops on SIGINT or
SIGTERM (workloads keep running).

Every call needs a token (checked in the controller's store, else at the registry), unless
--anonymous. The controller's own token (--token) is what it presents to the registry and the
blocks' services, and what its workloads get as AIOS_TOKEN: one of the two is required.

  --cluster-id ID     the cluster (required)
  --registry URL      the registry (default $AIOS_REGISTRY_URL, else http://127.0.0.1:3000)
  --port P            default ${CONTROLLER_PORT}; 0 picks a free port
  --host H            address to bind (default 127.0.0.1)
  --data-dir DIR      on-disk PGlite for the blocks and runtime records (DATABASE_URL: PostgreSQL)
  --run-dir DIR       where workload logs go (default <data-dir>/runtime, else .data/runtime)
  --runtime R         process (default) or kubernetes ($AIOS_RUNTIME)
${AUTH_FLAGS_USAGE}
  -h, --help          show this help

Kubernetes (--runtime kubernetes); the variable in brackets is read when the flag is absent:
  --kubeconfig FILE   credentials (default $KUBECONFIG, ~/.kube/config, else the pod's service account)
  --context NAME      a kubeconfig context other than the current one
  --in-cluster        use the pod's service account whatever files exist
  --namespace NS      where workloads go ($AIOS_NAMESPACE; default the pod's or the context's namespace)
  --image IMAGE       the aios image for block services and for workloads naming no image
                      ($AIOS_IMAGE; default ${DEFAULT_IMAGE})
  --image-pull-policy Always|IfNotPresent|Never ($AIOS_IMAGE_PULL_POLICY)
  --advertise-url URL this controller as pods reach it, e.g. http://aios-controller.aios.svc:7000
                      ($AIOS_ADVERTISE_URL; default the listening URL)
  --workload-port P   the port instances and vDAG controllers listen on (default 8080)
  --gpu-resource R    resource requested per GPU (default nvidia.com/gpu; "none": device ids by env only)
                      ($AIOS_GPU_RESOURCE)
  --node-selector S   a label selector limiting the nodes this cluster uses ($AIOS_NODE_SELECTOR)
  --ingress-class C   ingressClassName of the blocks' Ingresses ($AIOS_INGRESS_CLASS)
  --ingress-host H    host of the blocks' Ingresses ($AIOS_INGRESS_HOST; default any)
  --no-ingress        no Ingress per block (AIOS_INGRESS=false); /block/{id}/... still answers here

REDIS_URL selects Redis Streams for block events; without it the queue is in-process.`,
  async run(argv) {
    const { values } = parseFlags(argv, flags);
    if (values.help === true) {
      console.log(this.usage);
      return 0;
    }
    const clusterId = stringFlag(values["cluster-id"]);
    if (!clusterId) throw new UsageError("--cluster-id is required");
    const dataDir = stringFlag(values["data-dir"]);
    const runDir = stringFlag(values["run-dir"]);
    const runtime = runtimeFromFlags(values);
    const advertiseUrl = advertiseUrlFrom(values);
    const auth = authSettingsFrom(values);
    if (auth.token === undefined && !auth.anonymous) {
      throw new UsageError(
        "aios controller needs a credential: --token T (or AIOS_TOKEN; an internal-scoped token made with " +
          "aios token create), which it presents to the registry and hands to its workloads; or " +
          "--anonymous (AIOS_ANONYMOUS=1) for local development without tokens",
      );
    }
    const registryUrl =
      stringFlag(values.registry) ?? process.env.AIOS_REGISTRY_URL ?? "http://127.0.0.1:3000";
    return serveService(
      "controller",
      async () => {
        // Opened here so the guard can look tokens up in it; closed after the controller stops.
        const store = await openStore(storeConfigFrom(dataDir ? { dataDir } : {}));
        let running: Awaited<ReturnType<typeof startController>>;
        try {
          await bootstrapTokens(store, bootstrapFrom(auth));
          running = await startController({
            clusterId,
            host: stringFlag(values.host) ?? "127.0.0.1",
            port: parsePort(values.port, "--port", CONTROLLER_PORT),
            registryUrl,
            store,
            // The runtime's logs under the data directory, as when the controller opens the store.
            runDir: runDir ?? (dataDir ? join(dataDir, "runtime") : join(".data", "runtime")),
            ...(advertiseUrl ? { advertiseUrl } : {}),
            runtime,
            guard: controllerGuard(store, registryUrl, { anonymous: auth.anonymous }),
            ...(auth.token !== undefined ? { token: auth.token } : {}),
            anonymous: auth.anonymous === true,
          });
        } catch (err) {
          await store.close().catch(() => {});
          // The registry's own words (unreachable, refused) without the client's class name.
          if (err instanceof ServiceClientError) throw new Error(err.message);
          throw err;
        }
        const { adopted, cleaned } = running.adopted;
        if (adopted.length + cleaned.length > 0) {
          console.error(
            `aios controller: adopted ${adopted.length} running workloads, cleaned ${cleaned.length}`,
          );
        }
        return {
          ...running,
          async stop() {
            await running.stop();
            await store.close();
          },
        };
      },
      "stopping (workloads keep running)",
    );
  },
};
