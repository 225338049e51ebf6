/**
 * `aios up`: the whole system on this machine in one process, on one store (on-disk PGlite under the
 * data directory unless DATABASE_URL says otherwise): the registry, the resource allocator, one cluster
 * controller for this machine (its workloads are child processes) and the gateway with the dashboard.
 * It stores the built-in policies and the example component, creates the demo block the first time,
 * and on Ctrl-C stops everything it started, workloads included. The next `aios up` starts the blocks
 * it finds again (the controller's resume), so nothing is created twice.
 *
 * Every call needs a token unless `--anonymous` (AIOS_ANONYMOUS=1). The first `aios up` on a store makes
 * an admin token, prints it once and saves it to <data dir>/admin-token (mode 0600), where the CLI on
 * this machine finds it; and an `internal` token (<data dir>/internal-token) the services present to
 * each other and the controller hands to its workloads.
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { hostname } from "node:os";
import { dirname, join, resolve } from "node:path";
import { startAllocator } from "../allocator/serve.ts";
import { anonymousFromEnv, type Guard, storeGuard, TokenStore, useServiceToken } from "../auth/index.ts";
import { startController } from "../controller/serve.ts";
import { GatewayClient } from "../gateway/client.ts";
import { startGateway } from "../gateway/serve.ts";
import type { BlockDetail } from "../gateway/views.ts";
import { ServiceClientError } from "../http/client.ts";
import type { Listener } from "../http/listen.ts";
import { installBuiltinPolicies } from "../policy/builtins.ts";
import { PolicyStore } from "../policy/store.ts";
import { RegistryClient } from "../registry/client.ts";
import { LocalNodeProbe } from "../runtime/local-node.ts";
import type { NodeStatus } from "../runtime/types.ts";
import { openStore, type Store, storeConfigFrom } from "../store/index.ts";
import { parseFlags, parsePort, stringFlag, type Verb } from "./args.ts";
import { ADMIN_TOKEN_FILE, adminTokenPath } from "./output.ts";
import { METRICS_PORT, REGISTRY_PORT } from "./registry.ts";
import { announce, startRegistry, watchSignals } from "./serve.ts";

const ROOT = resolve(import.meta.dir, "../..");
const EXAMPLE_COMPONENT = join(ROOT, "examples/sentiment/component.json");
const DEMO_SPEC = join(ROOT, "examples/sentiment/demo.json");
export const DEMO_BLOCK_ID = "demo";
const DEMO_TEXT = "I love this phone, the screen is gorgeous";

const flags = {
  "data-dir": { type: "string" },
  host: { type: "string" },
  "cluster-id": { type: "string" },
  "registry-port": { type: "string" },
  "metrics-port": { type: "string" },
  "allocator-port": { type: "string" },
  "controller-port": { type: "string" },
  "gateway-port": { type: "string" },
  "no-demo": { type: "boolean" },
  anonymous: { type: "boolean" },
} as const;

export interface UpOptions {
  dataDir: string;
  host: string;
  clusterId: string;
  ports: { registry: number; metrics: number; allocator: number; controller: number; gateway: number };
  demo: boolean;
  /** Calls without a token act as admin (local development); no tokens are made. */
  anonymous?: boolean;
}

/** The tokens of an `aios up`: the admin token (printed once, when made now) and the services' token. */
export interface UpTokens {
  admin: { token: string; file: string; created: boolean } | null;
  internal: string | null;
}

const INTERNAL_TOKEN_FILE = "internal-token";
/** The name of the admin token `aios up` makes (the audit log shows it). */
export const UP_ADMIN_TOKEN_NAME = "aios up admin";
const UP_INTERNAL_TOKEN_NAME = "aios up services";

/** Writes a secret readable by this user alone (0600, also when the file was there before). */
const writeSecret = (file: string, token: string) => {
  // With DATABASE_URL the data directory holds only logs and these files: it may not exist yet.
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, `${token}\n`, { mode: 0o600 });
  chmodSync(file, 0o600);
};

/**
 * The token saved in `file` when it is still valid in this store with `scope`; else a new one, saved
 * there. A lost or revoked file is replaced, so the machine that runs aios up can always get in.
 */
const ensureToken = async (
  tokens: TokenStore,
  file: string,
  name: string,
  scope: "admin" | "internal",
): Promise<{ token: string; created: boolean }> => {
  if (existsSync(file)) {
    const saved = readFileSync(file, "utf8").trim();
    const principal = saved ? await tokens.verify(saved) : null;
    if (principal?.scopes.includes(scope)) return { token: saved, created: false };
  }
  const { token } = await tokens.create({ name, scopes: [scope] }, "aios up");
  writeSecret(file, token);
  return { token, created: true };
};

const upTokens = async (store: Store, dataDir: string, anonymous: boolean): Promise<UpTokens> => {
  if (anonymous) return { admin: null, internal: null };
  const tokens = new TokenStore(store);
  const file = adminTokenPath(dataDir);
  const admin = await ensureToken(tokens, file, UP_ADMIN_TOKEN_NAME, "admin");
  const internal = await ensureToken(
    tokens,
    join(dataDir, INTERNAL_TOKEN_FILE),
    UP_INTERNAL_TOKEN_NAME,
    "internal",
  );
  return { admin: { ...admin, file }, internal: internal.token };
};

/** What `aios up` started, in the order it stops them (last started, first stopped). */
interface Part {
  name: string;
  stop(): Promise<void>;
}

/** Stops what was started, last first; a part that fails to stop does not keep the others running. */
const stopParts = async (parts: Part[]) => {
  for (const part of parts.splice(0).reverse()) {
    await part.stop().catch((err) => console.error(`aios up: stopping ${part.name}:`, err));
  }
};

const plural = (n: number, noun: string) => `${n} ${noun}${n === 1 ? "" : "s"}`;
const log = (line: string) => console.log(`aios up: ${line}`);
const seconds = (since: number) => `${((performance.now() - since) / 1000).toFixed(1)} s`;

/** This machine as a cluster document's node (cluster-controller.md units: MB). */
const nodeDocument = (probe: NodeStatus, cpus: number) => ({
  id: probe.nodeId,
  vcpus: { count: cpus },
  ...(probe.memory ? { memory: probe.memory.total } : {}),
  ...(probe.disk ? { storage: { disks: 1, size: probe.disk.total } } : {}),
  gpus: {
    count: probe.gpus.length,
    memory: probe.gpus.reduce((sum, g) => sum + (g.memory_total ?? 0), 0),
    gpus: probe.gpus.map((g) => ({ ...(g.memory_total !== null ? { memory: g.memory_total } : {}) })),
  },
});

/** Registers this machine as the cluster (resources from the probe), keeping what was stored. */
const registerLocalCluster = async (registry: RegistryClient, clusterId: string, dataDir: string) => {
  const probe = await new LocalNodeProbe({ nodeId: hostname(), diskPath: dataDir }).probe();
  const node = nodeDocument(probe, navigator.hardwareConcurrency);
  const { id: _, ...resources } = node;
  const exists = await registry.getCluster(clusterId).then(
    () => true,
    (err: unknown) => {
      if (err instanceof ServiceClientError && err.status === 404) return false;
      throw err;
    },
  );
  if (exists) {
    await registry.updateCluster(clusterId, {
      $set: { status: "live", "nodes.count": 1, "nodes.nodeData": [node], ...resources },
    });
  } else {
    await registry.createCluster({
      id: clusterId,
      status: "live",
      nodes: { count: 1, nodeData: [node] },
      ...resources,
      tags: ["local"],
      clusterMetadata: { name: `${hostname()} (aios up)` },
      config: {},
    });
  }
  return probe;
};

/** The demo block as the gateway knows it, or null when it never was created. */
const demoBlock = (gateway: GatewayClient): Promise<BlockDetail | null> =>
  gateway.getBlock(DEMO_BLOCK_ID).catch((err: unknown) => {
    if (err instanceof ServiceClientError && err.status === 404) return null;
    throw err;
  });

/** Creates the demo block unless one was created before (running, resumed, or removed by the user). */
const ensureDemoBlock = async (gateway: GatewayClient): Promise<"created" | "exists" | "removed"> => {
  const view = await demoBlock(gateway);
  if (view?.status === "removed") return "removed";
  if (view && view.status !== "failed") return "exists";
  await gateway.createBlock(await Bun.file(DEMO_SPEC).json());
  return "created";
};

/** The data directory as the CLI finds it: the default `.data` needs nothing, another AIOS_DATA_DIR. */
const dataDirPrefix = (dataDir: string) =>
  dataDir === ".data" ? "" : `AIOS_DATA_DIR=${shellWord(resolve(dataDir))} `;

/** A word a POSIX shell reads back as it is. */
const shellWord = (s: string) => (/^[A-Za-z0-9_./:@%+=-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`);

/**
 * The printed command, to paste as it is: the gateway flag only when it is not the default one, the
 * data directory (where the CLI finds the admin token) only when it is not the default one.
 */
const inferCommand = (gatewayUrl: string, defaultGateway: boolean, dataDir: string | null) =>
  `${dataDir === null ? "" : dataDirPrefix(dataDir)}npm run aios -- infer ${DEMO_BLOCK_ID}${defaultGateway ? "" : ` --gateway ${gatewayUrl}`} --data '${JSON.stringify({ text: DEMO_TEXT })}'`;

/** Starts everything; resolves once the demo block serves, with what to stop. */
export const startUp = async (
  options: UpOptions,
): Promise<{ parts: Part[]; listeners: Listener[]; tokens: UpTokens }> => {
  const parts: Part[] = [];
  const listeners: Listener[] = [];
  try {
    const began = performance.now();
    const config = storeConfigFrom({ dataDir: options.dataDir });
    const store: Store = await openStore(config);
    parts.push({ name: "store", stop: () => store.close() });
    log(
      config.databaseUrl
        ? `state in PostgreSQL (DATABASE_URL), logs in ${options.dataDir}`
        : `state in ${options.dataDir} (PGlite), opened in ${seconds(began)}`,
    );

    const anonymous = options.anonymous === true;
    const tokens = await upTokens(store, options.dataDir, anonymous);
    // The services' calls to each other (and this process's, the demo's creation) present it.
    if (tokens.internal) useServiceToken(tokens.internal);
    if (anonymous) log("anonymous access is on: calls without a token act as admin (local development only)");
    // One guard for every service here: tokens looked up in the one store, calls audited there.
    const guard: Guard = storeGuard(store, { anonymous });

    const registry = await startRegistry({
      host: options.host,
      port: options.ports.registry,
      metricsPort: options.ports.metrics,
      store,
      guard,
    });
    parts.push({ name: "registry", stop: registry.stop });
    listeners.push(...registry.listeners);
    const registryUrl = registry.listeners[0]!.url;

    const policies = await installBuiltinPolicies(new PolicyStore(store));
    log(
      `built-in policies: ${policies.installed.length} installed, ${policies.unchanged.length} already stored`,
    );
    for (const k of policies.kept) console.error(`aios up: kept the stored ${k.uri}: ${k.reason}`);
    const registryClient = new RegistryClient(registryUrl);
    const component = await Bun.file(EXAMPLE_COMPONENT).json();
    // The example runs from the repository wherever `aios up` is started from.
    component.runtime.cwd = ROOT;
    await registryClient.putComponent(component.componentURI, component);

    const allocator = await startAllocator({
      host: options.host,
      port: options.ports.allocator,
      store,
      guard,
    });
    parts.push({ name: "allocator", stop: allocator.stop });
    listeners.push(...allocator.listeners);

    const probe = await registerLocalCluster(registryClient, options.clusterId, options.dataDir);
    const controller = await startController({
      clusterId: options.clusterId,
      host: options.host,
      port: options.ports.controller,
      registryUrl,
      store,
      runDir: join(options.dataDir, "runtime"),
      publishClusterMetrics: true,
      ...(process.env.REDIS_URL ? { redisUrl: process.env.REDIS_URL } : {}),
      guard,
      // Its workloads present the services' token, and let no one in without one unless anonymous.
      ...(tokens.internal ? { token: tokens.internal } : {}),
      anonymous,
    });
    // Ctrl-C stops the workloads too: `aios up` leaves nothing behind, and resumes them next time.
    parts.push({ name: "controller", stop: controller.stopAll });
    listeners.push(...controller.listeners);
    log(
      `cluster ${options.clusterId}: node ${probe.nodeId}, ${navigator.hardwareConcurrency} CPUs, ` +
        `${probe.memory ? `${Math.round(probe.memory.total / 1024)} GB memory, ` : ""}${probe.gpus.length} GPUs`,
    );
    for (const r of controller.resumed) {
      log(
        `block ${r.block_id} resumed: ${plural(r.restarted.length, "instance")} started again` +
          (r.dropped.length > 0 ? `, ${r.dropped.length} would not start (${r.dropped.join(", ")})` : ""),
      );
    }

    const gateway = await startGateway({
      host: options.host,
      port: options.ports.gateway,
      registryUrl,
      store,
      guard,
    });
    parts.push({ name: "gateway", stop: gateway.stop });
    listeners.push(...gateway.listeners);

    if (options.demo) {
      const demoBegan = performance.now();
      const demo = await ensureDemoBlock(new GatewayClient(gateway.url));
      if (demo === "created") log(`block ${DEMO_BLOCK_ID} created in ${seconds(demoBegan)}`);
      if (demo === "removed") log(`block ${DEMO_BLOCK_ID} was deleted; not created again`);
    }
    log(`ready in ${seconds(began)}`);
    return { parts, listeners, tokens };
  } catch (err) {
    await stopParts(parts);
    throw err;
  }
};

/**
 * What a user needs next: where the dashboard is (with the admin token in the URL's fragment the first
 * time, so the browser signs in), the admin token (once) and where it is saved, the demo's gRPC address,
 * a command to paste.
 */
const printWelcome = async (
  gatewayUrl: string,
  defaultGateway: boolean,
  demoShown: boolean,
  dataDir: string,
  tokens: UpTokens,
) => {
  const demo = demoShown ? await demoBlock(new GatewayClient(gatewayUrl)).catch(() => null) : null;
  const admin = tokens.admin;
  console.log("");
  console.log(`  dashboard   ${gatewayUrl}/${admin?.created ? `#token=${admin.token}` : ""}`);
  if (admin?.created) {
    console.log(
      `  admin token ${admin.token}  (shown once; saved to ${admin.file}, mode 0600, for the CLI on this machine)`,
    );
  } else if (admin) {
    console.log(`  admin token saved in ${admin.file} (the CLI on this machine reads it; not shown again)`);
  } else {
    console.log("  access      anonymous: no token needed (--anonymous; local development only)");
  }
  if (demo?.grpc_url) {
    console.log(
      `  gRPC        ${demo.grpc_url.replace(/^https?:\/\//, "")}   (block ${DEMO_BLOCK_ID}, InferenceProxy/infer, ${plural(demo.instances.length, "instance")})`,
    );
    console.log(`  try         ${inferCommand(gatewayUrl, defaultGateway, admin ? dataDir : null)}`);
  }
  console.log("  stop        Ctrl-C (stops every process aios up started)");
  console.log("");
};

export const upVerb: Verb = {
  name: "up",
  summary: "run the whole system on this machine: registry, allocator, controller, gateway, dashboard",
  usage: `usage: aios up [--data-dir DIR] [--host H] [--cluster-id ID] [--<service>-port P] [--no-demo] [--anonymous]

Runs the registry, the resource allocator, one cluster controller for this machine (its CPUs, memory
and GPUs; blocks run as child processes) and the gateway with the dashboard, all on one store. Stores
the built-in policies and the example component (examples/sentiment) and creates the demo block
(examples/sentiment/demo.json) the first time. Prints the dashboard URL, the demo block's gRPC address
and a command to try it. Ctrl-C stops everything it started, blocks' processes included; the next
aios up starts the same blocks again.

  --data-dir DIR        where the state lives (on-disk PGlite) and workloads log; default ./.data
  --host H              address to bind (default 127.0.0.1)
  --cluster-id ID       this machine's cluster id (default local)
  --registry-port P     default ${REGISTRY_PORT}        --metrics-port P     default ${METRICS_PORT}
  --allocator-port P    default 8765        --controller-port P  default 7000
  --gateway-port P      default 8080 (dashboard and API); 0 picks a free port for any of them
  --no-demo             do not create the demo block
  --anonymous           no tokens: calls without one act as admin (also AIOS_ANONYMOUS=1); for local
                        development only
  -h, --help            show this help

The first aios up on a store makes an admin token, prints it once and saves it to
<data dir>/${ADMIN_TOKEN_FILE} (mode 0600): the aios CLI on this machine reads it from there
(AIOS_DATA_DIR=<data dir> when it is not ./.data). Make more with aios token create.

DATABASE_URL selects PostgreSQL for the state; REDIS_URL selects Redis Streams for block events.`,
  async run(argv) {
    const { values } = parseFlags(argv, flags);
    if (values.help === true) {
      console.log(this.usage);
      return 0;
    }
    const options: UpOptions = {
      dataDir: stringFlag(values["data-dir"]) ?? ".data",
      host: stringFlag(values.host) ?? "127.0.0.1",
      clusterId: stringFlag(values["cluster-id"]) ?? "local",
      ports: {
        registry: parsePort(values["registry-port"], "--registry-port", REGISTRY_PORT),
        metrics: parsePort(values["metrics-port"], "--metrics-port", METRICS_PORT),
        allocator: parsePort(values["allocator-port"], "--allocator-port", 8765),
        controller: parsePort(values["controller-port"], "--controller-port", 7000),
        gateway: parsePort(values["gateway-port"], "--gateway-port", 8080),
      },
      demo: values["no-demo"] !== true,
      anonymous: values.anonymous === true || anonymousFromEnv(),
    };
    const signals = watchSignals();
    const { parts, listeners, tokens } = await startUp(options);
    if (signals.received === undefined) {
      announce(listeners);
      const gateway = listeners.find((l) => l.name === "gateway")!.url;
      await printWelcome(gateway, options.ports.gateway === 8080, options.demo, options.dataDir, tokens);
    }
    const signal = await signals.next;
    console.error(`aios up: ${signal} received, stopping every service and workload`);
    await stopParts(parts);
    console.error("aios up: stopped");
    return 0;
  },
};
