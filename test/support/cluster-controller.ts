/**
 * One cluster for end-to-end tests of the cluster controller on real processes: a registry in this
 * process (with the built-in policies stored), a cluster document with declared nodes, and
 * `startController` over an on-disk store (PGlite in a temporary directory, or PostgreSQL when
 * DATABASE_URL is set) with the process runtime. Ids carry a per-run suffix, so a shared PostgreSQL
 * or Redis never mixes runs; `close()` stops every workload and removes what the run stored.
 *
 * ```ts
 * const cluster = new ClusterHarness({ nodes: ["node-a", "node-b"] });
 * beforeAll(() => cluster.start());
 * afterAll(() => cluster.close());
 * const { status, body } = await cluster.action("create_block", {...});
 * ```
 *
 * `auth: true` runs it as `aios controller` does with tokens: the registry guards with its store
 * (where `tokens` are made: an admin one, which `call` presents, and the services' internal one, the
 * process credential and the controller's `token` for its workloads), and the controller with
 * controllerGuard over its own store (so it checks these tokens at the registry).
 */

import { randomUUID } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { serviceToken, useServiceToken } from "../../src/auth/credential.ts";
import { storeGuard } from "../../src/auth/index.ts";
import { TokenStore } from "../../src/auth/tokens.ts";
import type { RunningServers } from "../../src/cli/serve.ts";
import { startRegistry } from "../../src/cli/serve.ts";
import { controllerGuard, type RunningController, startController } from "../../src/controller/serve.ts";
import { InferenceProxy } from "../../src/gen/inference_pb.ts";
import { installBuiltinPolicies } from "../../src/policy/builtins.ts";
import { PolicyStore } from "../../src/policy/store.ts";
import { openStore, type Store, storeConfigFrom } from "../../src/store/index.ts";
import { textPacket } from "./sentiment.ts";

/** The sentiment example's instance command (examples/sentiment). */
export const SENTIMENT_COMMAND = ["bun", "examples/sentiment/instance.ts"];

export const POLICY = {
  roundrobin: "policy.loadBalancer.roundrobin:v0.0.1",
  gpuFreeMemory: "policy.resourceAllocator.gpu-free-memory:v0.0.1",
  failureCounter: "policy.eventHandler.failure-counter:v0.0.1",
  instanceQuota: "policy.preCheck.instance-quota:v0.0.1",
  unhealthyRatio: "policy.clusterStability.unhealthy-ratio:v0.0.1",
} as const;

export interface ApiAnswer {
  status: number;
  // biome-ignore lint/suspicious/noExplicitAny: answers are checked field by field by the tests
  body: any;
  text: string;
  headers: Headers;
}

export interface BlockInstanceDoc {
  instance_id: string;
  node_id: string;
  gpus: string[];
  url: string;
}

/** A sentiment answer: the InferenceResponse and the instance's parsed result. */
export interface Classification {
  message: boolean;
  instanceId: string;
  error: string;
  result: { label: string; best_label: string; confidence: number; instance_id: string } | null;
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Polls `check` until it returns something truthy; its value. */
export const waitFor = async <T>(
  what: string,
  check: () => T | Promise<T>,
  timeoutMs = 20_000,
  everyMs = 100,
): Promise<NonNullable<T>> => {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v) return v as NonNullable<T>;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) {
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${String(last)}` : ""}`,
      );
    }
    await sleep(everyMs);
  }
};

/** Whether process `pid` exists (a zombie counts as gone). */
export const pidAlive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
  } catch {
    return false;
  }
};

/** Pids of processes whose command line contains `pattern` (pgrep -f). */
export const pgrep = (pattern: string): number[] => {
  const out = Bun.spawnSync(["pgrep", "-f", pattern]);
  return new TextDecoder()
    .decode(out.stdout)
    .split("\n")
    .filter((l) => l.trim() !== "")
    .map(Number)
    .filter((pid) => pid !== process.pid && pidAlive(pid));
};

/** A process's environment variable, null when unreadable (or unset). */
export const envOf = (pid: number, name: string): string | null => {
  try {
    const env = readFileSync(`/proc/${pid}/environ`, "utf8").split("\0");
    const entry = env.find((e) => e.startsWith(`${name}=`));
    return entry === undefined ? null : entry.slice(name.length + 1);
  } catch {
    return null;
  }
};

export class ClusterHarness {
  /** Unique per run: in every id this run creates (cluster, blocks, vDAG controllers). */
  readonly run = randomUUID().slice(0, 8);
  readonly clusterId: string;
  readonly nodes: readonly string[];
  readonly tmp: string;
  readonly scanIntervalMs: number;
  registry!: RunningServers;
  registryUrl = "";
  controller!: RunningController;
  /** Every controller started here (restarts included). */
  readonly #closers: (() => void)[] = [];
  /** Token mode (see the header). */
  readonly auth: boolean;
  /** Token mode: the admin token and the services' (internal) token, made in the registry's store. */
  tokens: { admin: string; services: string } | null = null;
  /** What `call` and the gRPC client present; null: no token. Token mode sets the admin token. */
  callToken: string | null = null;
  /** Token mode: the controller's own store (opened here, so its guard can use it). */
  #controllerStore: Store | null = null;
  #previousCredential: string | undefined;

  constructor(options: {
    name: string;
    nodes?: readonly string[];
    scanIntervalMs?: number;
    auth?: boolean;
  }) {
    this.clusterId = `${options.name}-${this.run}`;
    this.nodes = options.nodes ?? ["node-a", "node-b"];
    this.scanIntervalMs = options.scanIntervalMs ?? 500;
    this.auth = options.auth === true;
    this.tmp = mkdtempSync(join(tmpdir(), `aios-${options.name}-`));
  }

  /** `authorization` for `token` (default callToken); none without one. */
  authHeader(token: string | null = this.callToken): Record<string, string> {
    return token ? { authorization: `Bearer ${token}` } : {};
  }

  /** A block or vDAG controller id unique to this run. */
  id(name: string): string {
    return `${name}-${this.run}`;
  }

  get url(): string {
    return this.controller.url;
  }

  get runDir(): string {
    return join(this.tmp, "run");
  }

  async start(): Promise<void> {
    if (this.auth) {
      const store = await openStore({});
      const made = new TokenStore(store);
      this.tokens = {
        admin: (await made.create({ name: "harness admin", scopes: ["admin"] }, "test")).token,
        services: (await made.create({ name: "harness services", scopes: ["internal"] }, "test")).token,
      };
      this.callToken = this.tokens.admin;
      this.#previousCredential = serviceToken();
      useServiceToken(this.tokens.services);
      this.registry = await startRegistry({
        host: "127.0.0.1",
        port: 0,
        metricsPort: 0,
        store,
        guard: storeGuard(store),
      });
    } else {
      this.registry = await startRegistry({ host: "127.0.0.1", port: 0, metricsPort: 0 });
    }
    this.registryUrl = this.registry.listeners.find((l) => l.name === "registry")!.url;
    await installBuiltinPolicies(new PolicyStore(this.registry.store));
    const res = await fetch(`${this.registryUrl}/clusters`, {
      method: "POST",
      headers: { "content-type": "application/json", ...this.authHeader() },
      body: JSON.stringify({
        id: this.clusterId,
        status: "live",
        regionId: "test-1",
        nodes: {
          count: this.nodes.length,
          nodeData: this.nodes.map((id) => ({ id, vcpus: { count: 2 }, memory: 4096 })),
        },
        config: { policyExecutionMode: "local" },
        tags: ["e2e"],
        reputation: 95,
      }),
    });
    if (res.status >= 300) throw new Error(`POST /clusters: ${res.status} ${await res.text()}`);
    this.controller = await this.#startController(0);
  }

  async #startController(port: number): Promise<RunningController> {
    const config = storeConfigFrom({ dataDir: join(this.tmp, "ctl") });
    if (!this.auth) {
      return startController({
        clusterId: this.clusterId,
        port,
        registryUrl: this.registryUrl,
        store: config,
        runDir: this.runDir,
        scanIntervalMs: this.scanIntervalMs,
      });
    }
    // As `aios controller` does: the store opened first, for the guard.
    const store = await openStore(config);
    this.#controllerStore = store;
    return startController({
      clusterId: this.clusterId,
      port,
      registryUrl: this.registryUrl,
      store,
      runDir: this.runDir,
      scanIntervalMs: this.scanIntervalMs,
      guard: controllerGuard(store, this.registryUrl),
      token: this.tokens!.services,
      anonymous: false,
    });
  }

  /** Token mode: closes the store the controller was given (it keeps a store it did not open). */
  async #closeControllerStore(): Promise<void> {
    const store = this.#controllerStore;
    this.#controllerStore = null;
    await store?.close();
  }

  /** Stops the controller (its workloads keep running) and starts a new one on the same port. */
  async restart(): Promise<RunningController> {
    const port = Number(new URL(this.controller.url).port);
    await this.controller.stop();
    await this.#closeControllerStore();
    this.controller = await this.#startController(port);
    return this.controller;
  }

  /**
   * `method path` on the controller with a JSON body (or a raw string); status and parsed body. The
   * `token` presented defaults to callToken.
   */
  async call(
    method: string,
    path: string,
    body?: unknown,
    base = this.url,
    token: string | null = this.callToken,
  ): Promise<ApiAnswer> {
    const res = await fetch(`${base}${path}`, {
      method,
      headers: {
        ...(body === undefined ? {} : { "content-type": "application/json" }),
        ...this.authHeader(token),
      },
      ...(body === undefined ? {} : { body: typeof body === "string" ? body : JSON.stringify(body) }),
      signal: AbortSignal.timeout(60_000),
    });
    const text = await res.text();
    let parsed: unknown = null;
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = null;
    }
    return { status: res.status, body: parsed, text, headers: res.headers };
  }

  /** `POST /executeAction {"action","data"}`. */
  action(action: string, data: unknown): Promise<ApiAnswer> {
    return this.call("POST", "/executeAction", { action, data });
  }

  // biome-ignore lint/suspicious/noExplicitAny: the block document as the controller stores it
  async block(id: string): Promise<any> {
    const { status, body } = await this.call("GET", `/blocks/${id}`);
    if (status !== 200) throw new Error(`GET /blocks/${id}: ${status} ${JSON.stringify(body)}`);
    return body;
  }

  async instances(blockId: string): Promise<BlockInstanceDoc[]> {
    return (await this.block(blockId)).instances as BlockInstanceDoc[];
  }

  /** instance id -> pid, from the runtime's records. */
  async pids(blockId: string): Promise<Map<string, number>> {
    const list = await this.controller.ctx.runtime.listInstances(blockId);
    return new Map(list.map((i) => [i.instanceId, Number(i.handle)]));
  }

  async servicesPid(blockId: string): Promise<number | null> {
    const s = await this.controller.ctx.runtime.getBlockServices(blockId);
    return s ? Number(s.handle) : null;
  }

  /** `PATCH /cluster-actions/update-cluster` with a Mongo-style update of the cluster document. */
  updateCluster(update: Record<string, unknown>): Promise<ApiAnswer> {
    return this.call("PATCH", "/cluster-actions/update-cluster", update);
  }

  /** A gRPC client (Connect's gRPC transport over HTTP/2) of a block's inference listener. */
  grpcClient(grpcUrl: string): { classify(text: string, session: string): Promise<Classification> } {
    const manager = new Http2SessionManager(grpcUrl);
    this.#closers.push(() => manager.abort());
    const token = this.callToken;
    const client = createClient(
      InferenceProxy,
      createGrpcTransport({
        baseUrl: grpcUrl,
        sessionManager: manager,
        interceptors: token
          ? [
              (next) => (req) => {
                req.header.set("authorization", `Bearer ${token}`);
                return next(req);
              },
            ]
          : [],
      }),
    );
    return {
      classify: async (text, session) => {
        const res = await client.infer({ rpcData: textPacket(text, session) }, { timeoutMs: 30_000 });
        return {
          message: res.message,
          instanceId: res.instanceId,
          error: res.error,
          result: res.message ? JSON.parse(res.result) : null,
        };
      },
    };
  }

  /** Inference through the cluster's public gateway: Connect JSON over HTTP/1.1. */
  async gatewayClassify(blockId: string, text: string, session: string): Promise<Classification> {
    const {
      status,
      body,
      text: raw,
    } = await this.call("POST", `/block/${blockId}/rpc/InferenceProxy/infer`, {
      rpcData: Buffer.from(textPacket(text, session)).toString("base64"),
    });
    if (status !== 200) throw new Error(`gateway infer: ${status} ${raw}`);
    return {
      message: body.message === true,
      instanceId: body.instanceId ?? "",
      error: body.error ?? "",
      result: body.message ? JSON.parse(body.result) : null,
    };
  }

  /** Sentiment instances and block services of this run still running (by their environment / args). */
  strays(): number[] {
    const instances = pgrep("examples/sentiment").filter((pid) =>
      (envOf(pid, "AIOS_BLOCK_ID") ?? "").endsWith(this.run),
    );
    return [...instances, ...pgrep(this.tmp)];
  }

  /** Stops every workload, removes what this run stored (a shared database keeps no leftovers). */
  async close(): Promise<void> {
    for (const close of this.#closers.splice(0)) close();
    if (this.controller) {
      await this.controller.stopAll();
      await this.#closeControllerStore();
      // stopAll closed the store: reopen it to remove this run's documents.
      const again = await openStore(storeConfigFrom({ dataDir: join(this.tmp, "ctl") }));
      try {
        for (const name of ["blocks", "vdag_controllers", "event_failures"] as const) {
          const col = again.collection(name);
          for (const doc of await col.find({})) {
            if (JSON.stringify(doc).includes(this.run)) await col.delete(doc.id);
          }
        }
        const records = again.collection("runtime_processes");
        for (const doc of await records.find({})) {
          if (JSON.stringify(doc).includes(this.run)) await records.delete(doc.id);
        }
      } finally {
        await again.close();
      }
    }
    if (this.registry) {
      await fetch(`${this.registryUrl}/clusters/${this.clusterId}`, {
        method: "DELETE",
        headers: this.authHeader(this.tokens?.admin ?? null),
      }).catch(() => {});
      await this.registry.stop();
      // A store given to the registry stays open: token mode's is closed here.
      if (this.auth) await this.registry.store.close();
    }
    if (this.auth) useServiceToken(this.#previousCredential);
    rmSync(this.tmp, { recursive: true, force: true });
  }
}
