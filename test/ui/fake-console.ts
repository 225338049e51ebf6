/**
 * A stand-in for the gateway's console API (src/gateway/views.ts shapes) with the dashboard mounted:
 * two clusters (one unreachable), a running block whose instance count follows a simulated load, a
 * failed creation, policies with a working upload (admission: the wasm magic, else 422). For working on
 * the dashboard without the whole system: `bun test/ui/fake-console.ts [--port 8090]`.
 */
import { Hono } from "hono";
import { mountUi } from "../../src/gateway/ui.ts";
import type {
  BlockDetail,
  BlockEventView,
  BlockMetricsView,
  BlockView,
  ClusterView,
  CreationView,
} from "../../src/gateway/views.ts";

const iso = (msAgo: number) => new Date(Date.now() - msAgo).toISOString();
const err = (status: 400 | 404 | 409 | 422, code: string, message: string) =>
  Response.json({ error: { code, message, details: null } }, { status });

export interface FakeConsole {
  app: Hono;
  /** Sets the simulated load on `demo` (requests in flight); the instance count follows. */
  setLoad(inFlight: number): void;
  /** Makes `GET /api/clusters` answer 503 (or work again). */
  failClusters(fail: boolean): void;
  /**
   * Requires `Authorization: Bearer <token>` on every `/api/` call (401 otherwise), as a gateway with
   * tokens does; null (the default) lets any call in, with a bearer or without.
   */
  requireToken(token: string | null): void;
}

export const createFakeConsole = (): FakeConsole => {
  const started = Date.now();
  let load = 2;
  let clustersFail = false;
  let required: string | null = null;
  let requests = 0;
  let errors = 0;
  let lastTick = Date.now();
  const demo = {
    instances: 1,
    min: 1,
    max: 4,
  };
  const tick = () => {
    const now = Date.now();
    const dt = (now - lastTick) / 1000;
    lastTick = now;
    const rps = load * 40 + Math.random() * 10;
    requests += Math.round(rps * dt);
    if (Math.random() < 0.2) errors += 1;
    const want = Math.min(demo.max, Math.max(demo.min, Math.ceil(load / 8)));
    if (want !== demo.instances && Math.random() < 0.3) demo.instances += want > demo.instances ? 1 : -1;
  };
  const nodes = (cluster: string, n: number, gpus: number) =>
    Array.from({ length: n }, (_, i) => ({
      id: `${cluster}-node-${i + 1}`,
      healthy: !(cluster === "edge" && i === 1),
      reason: cluster === "edge" && i === 1 ? "probe failed 3 times: connection refused" : null,
      cpu_utilization_percent: 10 + ((i * 37) % 80),
      memory: { total: 64 * 2 ** 30, allocatable: 48 * 2 ** 30, usage_percent: 20 + ((i * 23) % 75) },
      gpus: Array.from({ length: gpus }, (_, g) => ({
        id: `gpu${g}`,
        memory_total: 24576,
        memory_used: 1024 * (g + i),
        utilization: ((g + 1) * 17 + i * 11) % 100,
      })),
    }));
  const clusters = (): ClusterView[] => [
    {
      id: "local",
      status: "ready",
      controller_url: "http://127.0.0.1:7000",
      reachable: true,
      error: null,
      nodes: nodes("local", 3, 2),
      block_count: 1,
    },
    {
      id: "edge",
      status: "degraded",
      controller_url: "http://10.0.0.7:7000",
      reachable: false,
      error: "GET http://10.0.0.7:7000/nodes_status: connect ECONNREFUSED",
      nodes: nodes("edge", 2, 0),
      block_count: 0,
    },
  ];
  const demoView = (): BlockView => ({
    id: "demo",
    cluster_id: "local",
    status: "running",
    component: "model.sentiment-naive-bayes:1.0.0",
    created_at: new Date(started - 60_000).toISOString(),
    updated_at: new Date(started - 55_000).toISOString(),
    error: null,
    instances: Array.from({ length: demo.instances }, (_, i) => ({
      id: `demo-${i}`,
      node_id: `local-node-${(i % 3) + 1}`,
      gpus: i % 2 ? ["gpu1"] : [],
      url: `http://127.0.0.1:${41000 + i}`,
      started_at: iso(50_000 - i * 5000),
    })),
    min_instances: demo.min,
    max_instances: demo.max,
    grpc_url: "http://127.0.0.1:50051",
    live: true,
  });
  const failedView = (): BlockView => ({
    id: "detector-eu",
    cluster_id: null,
    status: "failed",
    component: "model.object-detector:2.0.0-stable",
    created_at: iso(30_000),
    updated_at: iso(29_000),
    error: { code: "no_candidate", message: "every dry run failed: edge: service_unreachable" },
    instances: [],
    min_instances: 1,
    max_instances: 2,
    grpc_url: null,
    live: false,
  });
  const demoSteps = (): BlockDetail["steps"] => {
    const t = started - 60_000;
    return [
      { step: "filter", ok: true, detail: { clusters: ["local", "edge"] }, at: new Date(t).toISOString() },
      {
        step: "selection",
        ok: true,
        detail: { clusters: ["local", "edge"] },
        at: new Date(t + 4).toISOString(),
      },
      {
        step: "dry_run",
        ok: true,
        detail: {
          local: { score: 0.82, node_info: { node: "local-node-1" } },
          edge: { error: "timeout after 2000 ms" },
        },
        at: new Date(t + 2010).toISOString(),
      },
      {
        step: "post_dry_run",
        ok: true,
        detail: { cluster_id: "local", score: 0.82 },
        at: new Date(t + 2013).toISOString(),
      },
      { step: "allocation", ok: true, detail: { cluster_id: "local" }, at: new Date(t + 2950).toISOString() },
    ];
  };
  const creations = (): CreationView[] => [
    {
      id: "detector-eu",
      status: "failed",
      cluster_id: null,
      component: "model.object-detector:2.0.0-stable",
      created_at: iso(30_000),
      error: failedView().error,
      steps: [
        { step: "filter", ok: true, detail: { clusters: ["edge"] }, at: iso(30_000) },
        { step: "selection", ok: true, detail: { clusters: ["edge"] }, at: iso(29_998) },
        { step: "dry_run", ok: false, detail: { edge: { error: "service_unreachable" } }, at: iso(29_000) },
      ],
    },
    {
      id: "demo",
      status: "running",
      cluster_id: "local",
      component: "model.sentiment-naive-bayes:1.0.0",
      created_at: new Date(started - 60_000).toISOString(),
      error: null,
      steps: demoSteps(),
    },
  ];
  const policies: Record<string, unknown>[] = [
    {
      uri: "policy.loadBalancer.roundrobin:v0.0.1",
      kind: "loadBalancer",
      description: "Round-robin over the instances; a session keeps its instance.",
      sha256: "9f2c1e0b7d3a4c5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6",
      size: 18234,
      exports: ["eval", "init"],
      limits: { fuel: 10_000_000, memory_bytes: 64 * 2 ** 20, output_bytes: 2 ** 20 },
      created_at: iso(120_000),
    },
    {
      uri: "policy.autoscaler.target-tracking:v0.0.1",
      kind: "autoscaler",
      description: "Target tracking on in-flight requests per instance.",
      sha256: "0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9",
      size: 21877,
      exports: ["eval"],
      limits: { fuel: 10_000_000, memory_bytes: 64 * 2 ** 20, output_bytes: 2 ** 20 },
      created_at: iso(120_000),
    },
  ];
  const events = (): BlockEventView[] => [
    {
      id: "e2",
      event_name: "task_done",
      outcome: "handled",
      at: iso(4000),
      policy: "policy.eventHandler.log:v1",
      actions: [],
    },
    {
      id: "e1",
      event_name: "instance_failed",
      outcome: "failed",
      at: iso(20_000),
      policy: "policy.eventHandler.replace:v1",
      actions: [{ action: "replace_instance" }],
      error: "remove_instance: 409 below minInstances",
    },
  ];

  const app = new Hono({ strict: false });
  app.use("/api/*", async (c, next) => {
    if (required === null) return next();
    const given = /^Bearer (\S+)$/i.exec(c.req.header("authorization") ?? "")?.[1];
    if (given === required) return next();
    return c.json(
      {
        error: {
          code: "unauthenticated",
          message: given
            ? "the token is not valid (unknown, revoked or expired)"
            : "this endpoint needs a token: send 'Authorization: Bearer <token>'",
          details: null,
        },
      },
      401,
    );
  });
  app.get("/api/whoami", (c) =>
    c.json({
      principal:
        required === null
          ? { id: "anonymous", name: "anonymous", scopes: ["admin"], anonymous: true }
          : { id: "tok_fakefakefake", name: "fake admin", scopes: ["admin"] },
    }),
  );
  mountUi(app);
  app.get("/api/clusters", (c) =>
    clustersFail
      ? c.json(
          { error: { code: "service_unreachable", message: "the registry did not answer", details: null } },
          503,
        )
      : c.json(clusters()),
  );
  app.get("/api/blocks", (c) => {
    tick();
    const status = c.req.query("status");
    const all = [demoView(), failedView()];
    return c.json(status ? all.filter((b) => b.status === status) : all);
  });
  app.get("/api/blocks/:id", (c) => {
    const id = c.req.param("id");
    if (id === "demo") return c.json({ ...demoView(), steps: demoSteps() });
    if (id === "detector-eu") return c.json({ ...failedView(), steps: creations()[0]!.steps });
    return err(404, "not_found", `no block '${id}' was created through this gateway`);
  });
  app.get("/api/blocks/:id/metrics", (c) => {
    const id = c.req.param("id");
    if (id !== "demo") return err(409, "not_running", `block '${id}' is failed, not running`);
    tick();
    const m: BlockMetricsView = {
      block_id: "demo",
      at: Date.now(),
      requests_total: requests,
      errors_total: errors,
      in_flight: load,
      latency_ms: { p50: 3 + load * 0.4 + Math.random(), p99: 12 + load * 2 + Math.random() * 5 },
      instances: demo.instances,
    };
    return c.json(m);
  });
  app.get("/api/blocks/:id/events", (c) => c.json(c.req.param("id") === "demo" ? events() : []));
  app.get("/api/blocks/:id/logs", (c) => {
    const instance = c.req.query("instance") ?? null;
    const tail = Number(c.req.query("tail") ?? 200);
    const lines = Array.from(
      { length: 40 },
      (_, i) =>
        `${iso((40 - i) * 1000)} ${instance ?? "executor"} served task seq=${i + 1} in ${(Math.random() * 5).toFixed(2)} ms`,
    ).slice(-tail);
    return c.json({ block_id: c.req.param("id"), instance_id: instance, lines });
  });
  app.post("/api/blocks/:id/scale", async (c) => {
    const body = (await c.req.json()) as { instances?: number; delta?: number };
    const want = body.instances ?? demo.instances + (body.delta ?? 0);
    if (want < demo.min || want > demo.max) {
      return err(409, "out_of_bounds", `instances must be within ${demo.min} and ${demo.max}, got ${want}`);
    }
    demo.instances = want;
    return c.json(demoView());
  });
  app.get("/api/creations", (c) => c.json(creations().slice(0, Number(c.req.query("limit") ?? 10))));
  app.get("/api/policies", (c) => {
    const kind = c.req.query("kind");
    return c.json(kind ? policies.filter((p) => p.kind === kind) : policies);
  });
  app.post("/api/policies", async (c) => {
    const form = await c.req.formData();
    const file = form.get("module");
    const uri = form.get("uri");
    const kind = form.get("kind");
    if (typeof uri !== "string" || !uri.includes(":"))
      return err(400, "invalid_input", "uri: expected name:version");
    if (!file || typeof file === "string")
      return err(400, "missing_module", "the form needs the module as a file field");
    const bytes = new Uint8Array(await file.arrayBuffer());
    if (bytes[0] !== 0 || bytes[1] !== 0x61 || bytes[2] !== 0x73 || bytes[3] !== 0x6d) {
      return err(422, "invalid_module", "not a WebAssembly module: bad magic number");
    }
    if (policies.some((p) => p.uri === uri))
      return err(409, "conflict", `policy ${uri} exists with other bytes`);
    const doc = {
      uri,
      kind,
      description: form.get("description") ?? "",
      sha256: "ab".repeat(32),
      size: bytes.length,
      exports: ["eval"],
      limits: { fuel: 10_000_000, memory_bytes: 64 * 2 ** 20, output_bytes: 2 ** 20 },
      created_at: new Date().toISOString(),
    };
    policies.push(doc);
    return c.json(doc, 201);
  });
  return {
    app,
    setLoad(n) {
      load = n;
    },
    failClusters(fail) {
      clustersFail = fail;
    },
    requireToken(token) {
      required = token;
    },
  };
};

if (import.meta.main) {
  const portArg = process.argv.indexOf("--port");
  const port = portArg > 0 ? Number(process.argv[portArg + 1]) : 8090;
  const fake = createFakeConsole();
  let phase = 0;
  setInterval(() => {
    phase += 1;
    fake.setLoad(Math.round(12 + 10 * Math.sin(phase / 8)));
  }, 1000);
  const server = Bun.serve({ port, hostname: "127.0.0.1", fetch: fake.app.fetch });
  console.log(`listening fake-console http://127.0.0.1:${server.port}`);
}
