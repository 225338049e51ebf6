/**
 * The gateway's HTTP API:
 *
 * - `POST /api/createBlock` (block-spec-and-allocation.md, "Onboarding the block"),
 *   `DELETE /api/blocks/{id}` (removal from its cluster) — creations.ts;
 * - the console API for the `aios` client verbs and the dashboard — console.ts: `GET /api/clusters`,
 *   `GET /api/blocks`, `GET /api/blocks/{id}` (with the allocation steps), `POST /api/blocks/{id}/scale`,
 *   `GET /api/blocks/{id}/metrics|logs|events`, `GET /api/creations`, `GET|POST /api/policies`;
 * - tokens and the audit log, for admins: `GET /api/whoami`, `GET|POST /api/tokens`,
 *   `DELETE /api/tokens/{id}`, `GET /api/audit`;
 * - `GET /openapi.json` (openapi.ts) and the dashboard at `/` (ui.ts, files in src/ui).
 *
 * The guard (src/auth) checks every call against src/auth/routes.ts first. What the gateway asks of a
 * controller or the registry for a user (a creation, a scale, a removal, a policy upload) names that
 * user (`x-aios-on-behalf-of`), so the controller's pre-checks and audit log see who asked.
 */
import type { Context } from "hono";
import { Hono } from "hono";
import {
  type AuditLog,
  Guard,
  guardRoutes,
  onBehalfOfHeader,
  type TokenStore,
  whoami,
} from "../auth/index.ts";
import { ApiError, onError, onNotFound, readJson } from "../http/errors.ts";
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

export interface GatewayAuthDeps {
  /** Who may call; default Guard.open() (no tokens). The `aios` verbs pass storeGuard. */
  guard?: Guard;
  /** The tokens `/api/tokens` manages; without them those routes answer 503. */
  tokens?: TokenStore;
  /** The log `/api/audit` reads; without it that route answers 503. */
  audit?: AuditLog;
}

const unavailable = (what: string) =>
  new ApiError(503, "not_available", `this gateway keeps no ${what} (it was started without a store)`);

export const createGatewayApp = (deps: GatewayDeps & ConsoleDeps & GatewayAuthDeps): Hono => {
  const app = new Hono({ strict: false });
  app.onError(onError);
  app.notFound(onNotFound);
  app.use(guardRoutes(deps.guard ?? Guard.open(), "gateway"));
  /** The deps of one call: what is asked of a controller or the registry names the caller. */
  const asCaller = (c: Context) => ({ ...deps, actingFor: onBehalfOfHeader(c.get("principal")) });
  const tokens = (): TokenStore => {
    if (!deps.tokens) throw unavailable("tokens");
    return deps.tokens;
  };
  app.get("/health", (c) => c.json({ status: "ok" }));
  app.get("/openapi.json", (c) => c.json(gatewayOpenApi()));
  app.get("/api/whoami", whoami);
  app.get("/api/tokens", async (c) => c.json(await tokens().list()));
  app.post("/api/tokens", async (c) => {
    const created = await tokens().create(await readJson(c.req.raw), c.get("principal").id);
    return c.json({ token: created.token, ...created.info }, 201);
  });
  app.delete("/api/tokens/:id", async (c) => c.json(await tokens().revoke(c.req.param("id"))));
  app.get("/api/audit", async (c) => {
    if (!deps.audit) throw unavailable("audit log");
    return c.json(await deps.audit.query(c.req.query()));
  });
  app.post("/api/createBlock", async (c) =>
    c.json(await createBlock(asCaller(c), await readJson(c.req.raw)), 201),
  );

  app.get("/api/clusters", async (c) => c.json(await listClusters(deps)));
  app.get("/api/blocks", async (c) => c.json(await listBlocks(deps, c.req.query("status"))));
  app.get("/api/blocks/:id", async (c) => c.json(await getBlockDetail(deps, c.req.param("id"))));
  app.delete("/api/blocks/:id", async (c) => c.json(await removeBlock(asCaller(c), c.req.param("id"))));
  app.post("/api/blocks/:id/scale", async (c) =>
    c.json(await scaleBlock(asCaller(c), c.req.param("id"), await readJson(c.req.raw))),
  );
  app.get("/api/blocks/:id/metrics", async (c) => c.json(await blockMetrics(deps, c.req.param("id"))));
  app.get("/api/blocks/:id/logs", async (c) =>
    c.json(await blockLogs(deps, c.req.param("id"), c.req.query())),
  );
  app.get("/api/blocks/:id/events", async (c) => c.json(await blockEvents(deps, c.req.param("id"))));
  app.get("/api/creations", async (c) => c.json(await recentCreations(deps, c.req.query("limit"))));
  app.get("/api/policies", (c) => forwardToRegistry(deps.registry, c.req.raw, "/policies"));
  app.post("/api/policies", (c) =>
    forwardToRegistry(deps.registry, c.req.raw, "/policies", onBehalfOfHeader(c.get("principal"))),
  );
  // The dashboard: GET / and /ui/* (src/ui, no build step).
  mountUi(app);
  return app;
};
