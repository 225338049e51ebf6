/**
 * The gateway's HTTP API: `POST /api/createBlock` (block-spec-and-allocation.md, "Onboarding the
 * block"), `GET /api/blocks`, `GET /api/blocks/{id}` (the creation record with its steps),
 * `DELETE /api/blocks/{id}` (removal from its cluster).
 */
import { Hono } from "hono";
import { onError, onNotFound, readJson } from "../http/errors.ts";
import { createBlock, type GatewayDeps, getCreation, removeBlock } from "./creations.ts";

export const createGatewayApp = (deps: GatewayDeps): Hono => {
  const app = new Hono({ strict: false });
  app.onError(onError);
  app.notFound(onNotFound);
  app.get("/health", (c) => c.json({ status: "ok" }));
  app.post("/api/createBlock", async (c) => c.json(await createBlock(deps, await readJson(c.req.raw)), 201));
  app.get("/api/blocks", async (c) => {
    const status = c.req.query("status");
    return c.json(
      await deps.creations.find(status ? { status } : {}, { sort: { created_at: -1 }, limit: 1000 }),
    );
  });
  app.get("/api/blocks/:id", async (c) => c.json(await getCreation(deps, c.req.param("id"))));
  app.delete("/api/blocks/:id", async (c) => c.json(await removeBlock(deps, c.req.param("id"))));
  return app;
};
