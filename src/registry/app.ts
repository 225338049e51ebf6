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
 *   GET /health                {"status": "ok", "store": <kind>}
 *
 * Errors follow src/http/errors.ts: `{"error": {"code", "message", "details"}}`, except under
 * /cluster, where they keep the metrics envelope.
 */
import { Hono } from "hono";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { notFound, onError, onNotFound, readJson, resolveError } from "../http/errors.ts";
import type { Store } from "../store/index.ts";
import { clusterRegistry } from "./clusters.ts";
import { componentRegistry } from "./components.ts";
import { type DocumentRegistry, parseListParams } from "./documents.ts";
import { failure, type MetricsRegistry, metricsRegistry, ok } from "./metrics.ts";

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

const health = (store: Store) => ({ status: "ok", store: store.kind });

/** Only the global metrics API (`/cluster/...`, `/health`): what the metrics port serves. */
export const createMetricsApp = (store: Store): Hono => {
  const app = new Hono({ strict: false });
  app.onError(onError);
  app.notFound((c) => c.json(failure(notFound(`no route for ${c.req.method} ${c.req.path}`)), 404));
  app.get("/health", (c) => c.json(health(store)));
  app.route("/cluster", metricsRoutes(metricsRegistry(store)));
  return app;
};

/** The whole registry service: clusters, components and the global metrics API. */
export const createRegistryApp = (store: Store): Hono => {
  const app = new Hono({ strict: false });
  app.onError(onError);
  app.notFound(onNotFound);
  app.get("/health", (c) => c.json(health(store)));
  app.route("/clusters", documentRoutes(clusterRegistry(store)));
  app.route("/components", documentRoutes(componentRegistry(store)));
  app.route("/cluster", metricsRoutes(metricsRegistry(store)));
  return app;
};
