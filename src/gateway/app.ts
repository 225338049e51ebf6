/**
 * The gateway's HTTP API:
 *
 * - `POST /api/createBlock` (block-spec-and-allocation.md, "Onboarding the block"),
 *   `DELETE /api/blocks/{id}` (removal from its cluster) — creations.ts;
 * - the console API for the `aios` client verbs and the dashboard — console.ts: `GET /api/clusters`,
 *   `GET /api/blocks`, `GET /api/blocks/{id}` (with the allocation steps), `POST /api/blocks/{id}/scale`,
 *   `GET /api/blocks/{id}/metrics|logs|events`, `GET /api/creations`, `GET|POST /api/policies`;
 * - `GET /openapi.json` (openapi.ts) and the dashboard at `/` (ui.ts, files in src/ui).
 */
import { Hono } from "hono";
import { onError, onNotFound, readJson } from "../http/errors.ts";
import {
  blockEvents,
  blockLogs,
  blockMetrics,
  type ConsoleDeps,
  forwardToRegistry,
  getBlockDetail,
  listBlocks,
  listClusters,
  recentCreations,
  scaleBlock,
} from "./console.ts";
import { createBlock, type GatewayDeps, removeBlock } from "./creations.ts";
import { gatewayOpenApi } from "./openapi.ts";
import { mountUi } from "./ui.ts";

export const createGatewayApp = (deps: GatewayDeps & ConsoleDeps): Hono => {
  const app = new Hono({ strict: false });
  app.onError(onError);
  app.notFound(onNotFound);
  app.get("/health", (c) => c.json({ status: "ok" }));
  app.get("/openapi.json", (c) => c.json(gatewayOpenApi()));
  app.post("/api/createBlock", async (c) => c.json(await createBlock(deps, await readJson(c.req.raw)), 201));

  app.get("/api/clusters", async (c) => c.json(await listClusters(deps)));
  app.get("/api/blocks", async (c) => c.json(await listBlocks(deps, c.req.query("status"))));
  app.get("/api/blocks/:id", async (c) => c.json(await getBlockDetail(deps, c.req.param("id"))));
  app.delete("/api/blocks/:id", async (c) => c.json(await removeBlock(deps, c.req.param("id"))));
  app.post("/api/blocks/:id/scale", async (c) =>
    c.json(await scaleBlock(deps, c.req.param("id"), await readJson(c.req.raw))),
  );
  app.get("/api/blocks/:id/metrics", async (c) => c.json(await blockMetrics(deps, c.req.param("id"))));
  app.get("/api/blocks/:id/logs", async (c) =>
    c.json(await blockLogs(deps, c.req.param("id"), c.req.query())),
  );
  app.get("/api/blocks/:id/events", async (c) => c.json(await blockEvents(deps, c.req.param("id"))));
  app.get("/api/creations", async (c) => c.json(await recentCreations(deps, c.req.query("limit"))));
  app.get("/api/policies", (c) => forwardToRegistry(deps.registry, c.req.raw, "/policies"));
  app.post("/api/policies", (c) => forwardToRegistry(deps.registry, c.req.raw, "/policies"));
  // The dashboard: GET / and /ui/* (src/ui, no build step).
  mountUi(app);
  return app;
};
