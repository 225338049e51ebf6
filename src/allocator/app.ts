/**
 * The allocator's WebSocket endpoint (resource-allocator.md, "Using the websocket server"): each text
 * (or UTF-8 binary) message is one allocation request, answered by one text message on the same
 * socket, in order. A bad request is answered with an error and the socket stays open. Any path
 * upgrades (the specification's client connects to `ws://host:8765`); plain HTTP gets `GET /health`
 * and, elsewhere, 426 with a JSON error.
 */
import type { Server, ServerWebSocket, WebSocketHandler } from "bun";
import { ApiError } from "../http/errors.ts";
import type { Allocator } from "./allocator.ts";
import { OrderedPipeline } from "./pipeline.ts";

export interface SocketData {
  /** Requests as text; null stands for a binary message that is not UTF-8. */
  pipeline?: OrderedPipeline<string | null>;
}

export interface SocketOptions {
  /** Requests of one connection running at once; default 16. */
  perConnection?: number;
  /** Requests one connection may have waiting before they are refused; default 1000. */
  maxBacklog?: number;
}

const decoder = new TextDecoder("utf-8", { fatal: true });

const NOT_TEXT = JSON.stringify(
  new ApiError(
    400,
    "invalid_json",
    "the message is binary and not UTF-8 text: send the request as JSON text",
  ).toBody(),
);

const json = (status: number, body: unknown) =>
  new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json" } });

export const allocatorWebSocket = (
  allocator: Allocator,
  options: SocketOptions = {},
): WebSocketHandler<SocketData> => {
  const perConnection = options.perConnection ?? 16;
  const maxBacklog = options.maxBacklog ?? 1000;
  return {
    open(ws) {
      ws.data.pipeline = new OrderedPipeline(
        perConnection,
        (text) => (text === null ? Promise.resolve(NOT_TEXT) : allocator.handle(text)),
        (answer) => {
          if (ws.readyState === WebSocket.OPEN) ws.send(answer);
        },
        maxBacklog,
      );
    },
    message(ws: ServerWebSocket<SocketData>, message: string | Buffer) {
      const pipeline = ws.data.pipeline;
      if (!pipeline) return;
      let text: string | null;
      try {
        text = typeof message === "string" ? message : decoder.decode(message);
      } catch {
        text = null; // still a request: answered with an error in its turn
      }
      pipeline.push(text);
      // A client that keeps sending without reading its answers is cut off.
      if (pipeline.backlog > 2 * maxBacklog) ws.close(1008, "too many requests waiting");
    },
    close(ws) {
      ws.data.pipeline?.close();
    },
  };
};

/** The HTTP side of the server: upgrades, and a health check. */
export const allocatorFetch = (req: Request, server: Server<SocketData>): Response | undefined => {
  const url = new URL(req.url);
  if (req.headers.get("upgrade")?.toLowerCase() === "websocket") {
    if (server.upgrade(req, { data: {} })) return undefined;
    return json(400, new ApiError(400, "bad_upgrade", "the WebSocket upgrade failed").toBody());
  }
  if (url.pathname === "/health" && req.method === "GET") return json(200, { status: "ok" });
  return json(
    426,
    new ApiError(
      400,
      "upgrade_required",
      "the resource allocator speaks WebSocket: connect with a WebSocket client and send allocation requests as JSON messages",
    ).toBody(),
  );
};
