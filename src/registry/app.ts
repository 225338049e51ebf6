/**
 * The registry service's HTTP routes (thin: read the request, call a registry module, answer).
 *
 *   /clusters, /components     document registries: the body is the document or the array itself
 *     POST   /                  create (201), 409 if the id exists
 *     GET    /?limit&skip       list in id order
 *     POST   /query             {"query": <Mongo filter>, "options": {sort, limit, skip, projection}}
 *     GET    /{id}              404 if missing
 *     PUT    /{id}              replace or create
 *     PATCH  /{id}              MongoDB update document ($set, $unset, $inc, ...); the id cannot change
 *     DELETE /{id}              {"id", "deleted": true}
 *   /cluster                   global cluster metrics, in the {"success", "data", "error"} envelope
 *     GET    /query?...         query=<JSON filter> or key=value equality, with limit, skip, sort
 *     POST   /query             {"query", "options"}
 *     GET    /{id}  PUT /{id}  DELETE /{id}
 *   /policies                  WebAssembly policies (src/policy/store.ts)
 *     PUT    /{uri}             upload: body application/wasm with ?kind=&description=&fuel=&memory_bytes=
 *                               &output_bytes=, or a multipart form; 201, or 200 for the same bytes,
 *                               409 for other bytes under a stored URI, 422 when admission refuses it
 *     POST   /                  the same with `uri` in the query or form
 *     GET    /?kind&limit&skip  metadata of stored policies
 *     GET    /{uri}             metadata;  GET /{uri}/wasm?form=original|instrumented  the module
 *     DELETE /{uri}
 *   GET /auth/whoami           the caller as the guard sees it (how workloads check a token remotely)
 *   GET /health                {"status": "ok", "store": <kind>}
 *   GET /openapi.json          the OpenAPI 3.1 document of these routes (openapi.ts)
 *
 * Every route's level (a token's scope) is in src/auth/routes.ts; the guard middleware checks it first
 * (401 without a valid token, 403 without the scope) and records state-changing calls in the audit log.
 *
 * Errors follow src/http/errors.ts: `{"error": {"code", "message", "details"}}`, except under
 * /cluster, where they keep the metrics envelope.
 */
import { Hono } from "hono";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { Guard, guardRoutes, whoami } from "../auth/index.ts";
import { badRequest, notFound, onError, onNotFound, readJson, resolveError } from "../http/errors.ts";
import { PolicyStore } from "../policy/store.ts";
import type { Store } from "../store/index.ts";
import { clusterRegistry } from "./clusters.ts";
import { componentRegistry } from "./components.ts";
import { type DocumentRegistry, parseListParams } from "./documents.ts";
import { failure, type MetricsRegistry, metricsRegistry, ok } from "./metrics.ts";
import { metricsOpenApi, registryOpenApi } from "./openapi.ts";
import { readPolicyUpload } from "./policies.ts";

const listParams = (q: Record<string, string>) => ({ limit: q.limit, skip: q.skip });

/** The CRUD and query routes of one document registry, to mount under its collection path. */
export const documentRoutes = (registry: DocumentRegistry): Hono => {
  const app = new Hono();
  app.get("/", async (c) => c.json(await registry.list(parseListParams(listParams(c.req.query())))));
  app.post("/", async (c) => c.json(await registry.create(await readJson(c.req.raw)), 201));
  app.post("/query", async (c) => c.json(await registry.query(await readJson(c.req.raw))));
  app.get("/:id", async (c) => c.json(await registry.get(c.req.param("id"))));
  app.put("/:id", async (c) => c.json(await registry.replace(c.req.param("id"), await readJson(c.req.raw))));
  app.patch("/:id", async (c) => c.json(await registry.update(c.req.param("id"), await readJson(c.req.raw))));
  app.delete("/:id", async (c) => c.json(await registry.remove(c.req.param("id"))));
  return app;
};

/** The global metrics routes, to mount under `/cluster`; errors keep the envelope. */
export const metricsRoutes = (metrics: MetricsRegistry): Hono => {
  const app = new Hono();
  app.onError((err, c) => {
    const apiError = resolveError(err, c);
    return c.json(failure(apiError), apiError.status as ContentfulStatusCode);
  });
  app.get("/query", async (c) => c.json(ok(await metrics.queryParams(c.req.queries()))));
  app.post("/query", async (c) => c.json(ok(await metrics.queryBody(await readJson(c.req.raw)))));
  app.get("/:id", async (c) => c.json(ok(await metrics.get(c.req.param("id")))));
  app.put("/:id", async (c) => c.json(ok(await metrics.put(c.req.param("id"), await readJson(c.req.raw)))));
  app.delete("/:id", async (c) => c.json(ok(await metrics.remove(c.req.param("id")))));
  app.all("*", (c) => {
    throw notFound(`no route for ${c.req.method} ${c.req.path}`);
  });
  return app;
};

/** The policy store routes, to mount under `/policies`. */
export const policyRoutes = (policies: PolicyStore): Hono => {
  const app = new Hono();
  const upload = async (req: Request, query: Record<string, string>, uri?: string) => {
    const { uri: target, bytes, meta } = await readPolicyUpload(req, query, uri);
    const { policy, created } = await policies.upload(target, bytes, meta);
    return { policy, status: created ? (201 as const) : (200 as const) };
  };
  app.get("/", async (c) => {
    const q = c.req.query();
    const { limit, skip } = parseListParams(listParams(q));
    return c.json(await policies.list({ kind: q.kind, limit, skip }));
  });
  app.post("/", async (c) => {
    const { policy, status } = await upload(c.req.raw, c.req.query());
    return c.json(policy, status);
  });
  app.put("/:uri", async (c) => {
    const { policy, status } = await upload(c.req.raw, c.req.query(), c.req.param("uri"));
    return c.json(policy, status);
  });
  app.get("/:uri", async (c) => c.json(await policies.get(c.req.param("uri"))));
  app.get("/:uri/wasm", async (c) => {
    const form = c.req.query("form") ?? "original";
    if (form !== "original" && form !== "instrumented") {
      throw badRequest("invalid_form", "form: must be 'original' or 'instrumented'", { path: "form" });
    }
    const bytes = await policies.download(c.req.param("uri"), form);
    return c.body(bytes as Uint8Array<ArrayBuffer>, 200, { "content-type": "application/wasm" });
  });
  app.delete("/:uri", async (c) => c.json(await policies.delete(c.req.param("uri"))));
  return app;
};

const health = (store: Store) => ({ status: "ok", store: store.kind });

/** Only the global metrics API (`/cluster/...`, `/health`): what the metrics port serves. */
export const createMetricsApp = (store: Store, guard: Guard = Guard.open()): Hono => {
  const app = new Hono({ strict: false });
  app.onError(onError);
  app.notFound((c) => c.json(failure(notFound(`no route for ${c.req.method} ${c.req.path}`)), 404));
  app.use(guardRoutes(guard, "metrics"));
  app.get("/health", (c) => c.json(health(store)));
  app.get("/openapi.json", (c) => c.json(metricsOpenApi()));
  app.route("/cluster", metricsRoutes(metricsRegistry(store)));
  return app;
};

/** The whole registry service: clusters, components and the global metrics API. */
export const createRegistryApp = (store: Store, guard: Guard = Guard.open()): Hono => {
  const app = new Hono({ strict: false });
  app.onError(onError);
  app.notFound(onNotFound);
  app.use(guardRoutes(guard, "registry"));
  app.get("/health", (c) => c.json(health(store)));
  app.get("/auth/whoami", whoami);
  app.get("/openapi.json", (c) => c.json(registryOpenApi()));
  app.route("/clusters", documentRoutes(clusterRegistry(store)));
  app.route("/components", documentRoutes(componentRegistry(store)));
  app.route("/policies", policyRoutes(new PolicyStore(store)));
  app.route("/cluster", metricsRoutes(metricsRegistry(store)));
  return app;
};
