/**
 * The cluster's public gateway to its blocks (block-runtime.md, "Block Services"):
 * `/block/{id}/rpc/...` -> the inference listener, `/block/{id}/metrics` -> executor metrics,
 * `/block/{id}/executor/...`, `/autoscaler/...`, `/health-checker/...` -> their `/mgmt`.
 *
 * Requests are forwarded with fetch, so `/rpc` carries the Connect and gRPC-web protocols (JSON or
 * binary, over HTTP/1.1 as browsers send them); plain gRPC, which needs HTTP/2 trailers end to end,
 * goes to the block's gRPC listener directly (its URL is in the block document's `services.urls`).
 */
import type { BlockServiceUrls } from "../block/client.ts";
import { notFound } from "../http/errors.ts";
import { getBlock } from "./blocks.ts";
import type { ControllerContext } from "./context.ts";

const ROUTES: Record<string, { listener: keyof BlockServiceUrls; prefix: string }> = {
  rpc: { listener: "grpc", prefix: "" },
  metrics: { listener: "metrics", prefix: "/metrics" },
  executor: { listener: "executor", prefix: "" },
  autoscaler: { listener: "autoscaler", prefix: "" },
  "health-checker": { listener: "health-checker", prefix: "" },
};

/** Headers that belong to one hop, not to the request forwarded. */
const HOP_HEADERS = ["host", "connection", "keep-alive", "transfer-encoding", "upgrade", "content-length"];

export const proxyToBlock = async (
  ctx: ControllerContext,
  blockId: string,
  req: Request,
): Promise<Response> => {
  const url = new URL(req.url);
  const rest = url.pathname.slice(`/block/${blockId}/`.length);
  const [service = "", ...tail] = rest.split("/");
  const route = ROUTES[service];
  if (!route) {
    throw notFound(`/block/${blockId}/${service}: not one of ${Object.keys(ROUTES).join(", ")}`);
  }
  const block = await getBlock(ctx, blockId);
  const base = block.services?.urls?.[route.listener];
  if (!base) throw notFound(`block ${blockId} has no ${route.listener} service running`);
  const path = tail.length > 0 ? `/${tail.join("/")}` : "";
  const target = `${base}${route.prefix}${path}${url.search}`;
  const headers = new Headers(req.headers);
  for (const h of HOP_HEADERS) headers.delete(h);
  const hasBody = req.method !== "GET" && req.method !== "HEAD";
  const res = await fetch(target, {
    method: req.method,
    headers,
    ...(hasBody ? { body: await req.arrayBuffer() } : {}),
    redirect: "manual",
  });
  const out = new Headers(res.headers);
  for (const h of HOP_HEADERS) out.delete(h);
  out.delete("content-encoding");
  return new Response(res.body, { status: res.status, headers: out });
};
