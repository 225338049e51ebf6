/**
 * The cluster's public gateway to its blocks (block-runtime.md, "Block Services"):
 * `/block/{id}/rpc/...` -> the inference listener, `/block/{id}/metrics` -> executor metrics,
 * `/block/{id}/executor/...`, `/autoscaler/...`, `/health-checker/...` -> their `/mgmt`.
 *
 * Requests are forwarded with fetch, so `/rpc` carries the Connect and gRPC-web protocols (JSON or
 * binary, over HTTP/1.1 as browsers send them); plain gRPC, which needs HTTP/2 trailers end to end, is
 * relayed stream to stream by `grpcProxy`.
 *
 * The caller's own `Authorization` is forwarded, not the controller's credential: the block's services
 * check its level themselves (at this controller's `/auth/whoami`), so the gateway lends nobody the
 * controller's rights (an `infer:<block>` token stays one).
 */
import {
  type ClientHttp2Session,
  type ClientHttp2Stream,
  connect,
  type IncomingHttpHeaders,
  type ServerHttp2Stream,
} from "node:http2";
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
  // The raw path after `/block/<id>/` (the id may be percent-encoded there; blockId is decoded).
  const [service = "", ...tail] = url.pathname.split("/").slice(3);
  const route = Object.hasOwn(ROUTES, service) ? ROUTES[service] : undefined;
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

/** One HTTP/2 session per block gRPC listener, reused by every proxied call. */
const sessions = new Map<string, ClientHttp2Session>();

const sessionFor = (url: string): ClientHttp2Session => {
  const open = sessions.get(url);
  if (open && !open.closed && !open.destroyed) return open;
  const session = connect(url);
  session.on("error", () => {});
  session.on("close", () => {
    if (sessions.get(url) === session) sessions.delete(url);
  });
  session.unref();
  sessions.set(url, session);
  return session;
};

/** Closes the proxy's upstream sessions (the controller stopping). */
export const closeGrpcSessions = (): void => {
  for (const s of sessions.values()) s.close();
  sessions.clear();
};

const GRPC = { notFound: 5, unavailable: 14 };

const trailersOnly = (stream: ServerHttp2Stream, code: number, message: string): void => {
  if (stream.destroyed || stream.headersSent) return;
  stream.respond(
    {
      ":status": 200,
      "content-type": "application/grpc",
      "grpc-status": String(code),
      "grpc-message": encodeURIComponent(message),
    },
    { endStream: true },
  );
};

/**
 * Plain gRPC through the public gateway: an HTTP/2 stream to `/block/{id}/rpc/<Service>/<method>` is
 * relayed, headers, messages and trailers, to the block's gRPC listener (fetch cannot carry trailers,
 * so this works on the raw streams). Answers false for every other stream.
 */
export const grpcProxy =
  (ctx: ControllerContext) =>
  (stream: ServerHttp2Stream, headers: IncomingHttpHeaders): boolean => {
    const path = headers[":path"] ?? "";
    const m = /^\/block\/([^/]+)\/rpc(\/.+)$/.exec(path);
    if (!m || !String(headers["content-type"] ?? "").startsWith("application/grpc")) return false;
    const [, blockId = "", rest = "/"] = m;
    stream.on("error", () => {});
    void (async () => {
      let target: string | undefined;
      try {
        target = (await getBlock(ctx, decodeURIComponent(blockId))).services?.urls?.grpc;
      } catch {
        // Not found below.
      }
      if (!target) return trailersOnly(stream, GRPC.notFound, `block ${blockId} has no gRPC listener here`);
      const forwarded: Record<string, string | string[]> = {};
      for (const [k, v] of Object.entries(headers)) {
        if (k.startsWith(":") || v === undefined || HOP_HEADERS.includes(k)) continue;
        forwarded[k] = v;
      }
      let upstream: ClientHttp2Stream;
      try {
        upstream = sessionFor(target).request({ ":method": "POST", ":path": rest, ...forwarded });
      } catch (err) {
        return trailersOnly(stream, GRPC.unavailable, `block ${blockId}: ${String(err)}`);
      }
      let trailers: Record<string, string | string[]> = {};
      upstream.on("response", (h) => {
        const answer: Record<string, string | string[] | number> = {};
        for (const [k, v] of Object.entries(h))
          if (v !== undefined && (k === ":status" || !k.startsWith(":"))) answer[k] = v;
        if (stream.destroyed) return;
        stream.respond(answer, { waitForTrailers: true });
      });
      upstream.on("trailers", (t) => {
        trailers = Object.fromEntries(
          Object.entries(t).filter(([k, v]) => !k.startsWith(":") && v !== undefined),
        ) as Record<string, string | string[]>;
      });
      stream.on("wantTrailers", () => stream.sendTrailers(trailers));
      upstream.on("data", (chunk: Buffer) => {
        if (!stream.destroyed) stream.write(chunk);
      });
      upstream.on("end", () => {
        if (!stream.destroyed) stream.end();
      });
      upstream.on("error", (err) => {
        if (!stream.headersSent) trailersOnly(stream, GRPC.unavailable, `block ${blockId}: ${err.message}`);
        else stream.close();
      });
      stream.on("close", () => {
        if (!upstream.closed) upstream.close();
      });
      stream.pipe(upstream);
    })();
    return true;
  };
