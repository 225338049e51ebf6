/**
 * The cluster controller's HTTP API (cluster-controller.md), thin over the modules beside it:
 *
 * - `POST /executeAction` (actions.ts); `/vdag-controller` (vdag.ts)
 * - `/cluster-actions/add-node`, `remove-node/{id}`, `get-cluster`, `update-cluster` (cluster.ts)
 * - `GET /blocks`, `GET /blocks/{id}`, `GET /blocks/{id}/logs`, `POST /blocks/query`, `PUT /block/update/{id}`
 * - `GET /healthy_nodes`, `GET /nodes_status`, `PUT /nodes_status/{id}` (scanner.ts)
 * - `GET /check_stability`, `POST /mgmt` (stability.ts, mgmt.ts)
 * - `POST /events`, `GET /events` (events.ts)
 * - `/block/{id}/...`: the cluster's public gateway to a block's services (gateway.ts)
 * - `GET /openapi.json`: the OpenAPI 3.1 document of these routes (openapi.ts)
 * - `GET /auth/whoami`: the caller; workloads (block services, instances) check tokens here
 *
 * Every route is guarded (src/auth/routes.ts, service "controller"); the pre-checks see the caller.
 * `/block/{id}/...` needs any valid token here and forwards it: the block's services check its level.
 */
import { type Context, Hono } from "hono";
import { z } from "zod";
import { Guard } from "../auth/guard.ts";
import { guardRoutes, whoami } from "../auth/hono.ts";
import { onError, onNotFound, readJson, readJsonWith } from "../http/errors.ts";
import type { RegistryClient } from "../registry/client.ts";
import { executeAction } from "./actions.ts";
import { findBlocks, getBlock } from "./blocks.ts";
import { addNode, removeNode, updateCluster } from "./cluster.ts";
import type { ControllerContext } from "./context.ts";
import { acceptEvent, type EventsProcessor } from "./events.ts";
import { proxyToBlock } from "./gateway.ts";
import { blockLogs } from "./logs.ts";
import { executeMgmt } from "./mgmt.ts";
import { controllerOpenApi } from "./openapi.ts";
import { type Caller, callerOf } from "./prechecks.ts";
import type { InfraScanner } from "./scanner.ts";
import type { StabilityChecker } from "./stability.ts";
import { vdagAction } from "./vdag.ts";

export interface ControllerServices {
  ctx: ControllerContext;
  registry: RegistryClient;
  scanner: InfraScanner;
  stability: StabilityChecker;
  events: EventsProcessor;
  /** Who may call; default Guard.open() (everything, no tokens: embedding and tests). */
  guard?: Guard;
}

/** The caller of a request, as pre-check policies see it. */
const caller = (c: Context): Caller => callerOf(c.get("principal"));

export const QueryBody = z.object({
  query: z.record(z.string(), z.unknown()).default({}),
  options: z.unknown().optional(),
});
export const NodeHealth = z.object({ status: z.enum(["healthy", "unhealthy"]).nullable() });

export const createControllerApp = ({
  ctx,
  registry,
  scanner,
  stability,
  events,
  guard = Guard.open(),
}: ControllerServices): Hono => {
  const app = new Hono({ strict: false });
  app.onError(onError);
  app.notFound(onNotFound);
  app.use(guardRoutes(guard, "controller"));
  const blocks = ctx.store.collection("blocks");

  app.get("/health", (c) => c.json({ status: "ok", cluster_id: ctx.clusterId }));
  app.get("/openapi.json", (c) => c.json(controllerOpenApi()));
  app.get("/auth/whoami", whoami);

  app.post("/executeAction", async (c) =>
    c.json((await executeAction(ctx, await readJson(c.req.raw), caller(c))) ?? {}),
  );
  app.post("/vdag-controller", async (c) =>
    c.json(await vdagAction(ctx, await readJson(c.req.raw), caller(c))),
  );

  app.post("/cluster-actions/add-node", async (c) =>
    c.json(await addNode(ctx, registry, await readJson(c.req.raw), caller(c))),
  );
  app.delete("/cluster-actions/remove-node/:id", async (c) =>
    c.json(await removeNode(ctx, registry, c.req.param("id"), caller(c))),
  );
  app.get("/cluster-actions/get-cluster", async (c) => c.json(await ctx.cluster()));
  app.patch("/cluster-actions/update-cluster", async (c) =>
    c.json(await updateCluster(ctx, registry, await readJson(c.req.raw), caller(c))),
  );

  app.get("/blocks", async (c) => c.json(await findBlocks(ctx)));
  app.get("/blocks/:id", async (c) => c.json(await getBlock(ctx, c.req.param("id"))));
  app.get("/blocks/:id/logs", async (c) => c.json(await blockLogs(ctx, c.req.param("id"), c.req.query())));
  app.post("/blocks/query", async (c) => {
    const { query, options } = await readJsonWith(c.req.raw, QueryBody);
    return c.json(await findBlocks(ctx, query, options));
  });
  app.put("/block/update/:id", async (c) => {
    const id = c.req.param("id");
    await getBlock(ctx, id);
    return c.json(await blocks.update(id, await readJson(c.req.raw)));
  });

  app.get("/healthy_nodes", async (c) => c.json({ healthy_nodes: await scanner.healthyNodes() }));
  app.get("/nodes_status", async (c) => c.json({ nodes: await scanner.nodesStatus() }));
  app.put("/nodes_status/:id", async (c) => {
    const { status } = await readJsonWith(c.req.raw, NodeHealth);
    const nodes = await scanner.setNodeHealth(
      c.req.param("id"),
      status === null ? null : status === "healthy",
    );
    return c.json({ nodes });
  });

  app.get("/check_stability", async (c) => c.json(await stability.check()));
  app.post("/mgmt", async (c) =>
    c.json((await executeMgmt(ctx, await readJson(c.req.raw), stability, caller(c))) ?? {}),
  );

  app.post("/events", async (c) => c.json(await acceptEvent(ctx, await readJson(c.req.raw)), 202));
  app.get("/events", async (c) =>
    c.json({
      recent: events.recent(),
      // Controllers of other clusters may share the database: this cluster's stream only.
      failures: await ctx.store
        .collection("event_failures")
        .find({ stream: events.stream }, { sort: { at: -1 }, limit: 100 }),
      healing: await scanner.healingRecords(),
    }),
  );

  app.all("/block/:id/*", (c) => proxyToBlock(ctx, c.req.param("id"), c.req.raw));
  return app;
};
