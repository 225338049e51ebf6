/**
 * The allocator's WebSocket endpoint (resource-allocator.md, "Using the websocket server"): each text
 * (or UTF-8 binary) message is one allocation request, answered by one text message on the same
 * socket, in order. A bad request is answered with an error and the socket stays open. Any path
 * upgrades (the specification's client connects to `ws://host:8765`); plain HTTP gets `GET /health`
 * and, elsewhere, 426 with a JSON error.
 *
 * Who may connect is checked at the upgrade (src/auth/routes.ts, service "allocator", `WS /` whatever
 * the path: every path is the one endpoint): 401 or 403 with a JSON error, and no socket. Each
 * connection may send `messagesPerSecond` messages a second with bursts of `messageBurst` (a token
 * bucket; the allocator's ProtocolLimits): a message over it is answered, in its turn, with a `rate_limited` error naming the limit,
 * and a client that keeps sending past it (more refused messages in a second than the limit allows)
 * is disconnected with 1008. A message over MAX_MESSAGE_BYTES closes the socket with 1009.
 */
import type { Server, ServerWebSocket, WebSocketHandler } from "bun";
import { callEntry } from "../auth/audit.ts";
import { ON_BEHALF_OF } from "../auth/credential.ts";
import { Guard } from "../auth/guard.ts";
import type { Principal } from "../auth/scopes.ts";
import { ApiError, toApiError } from "../http/errors.ts";
import type { Allocator } from "./allocator.ts";
import { OrderedPipeline } from "./pipeline.ts";
import { DEFAULT_LIMITS, type ProtocolLimits } from "./protocol.ts";

/** A message refused before it is run (over the rate limit): its answer, delivered in its turn. */
class Refused {
  constructor(readonly answer: string) {}
}

/** One message as the pipeline holds it: text; null for a binary message that is not UTF-8; refused. */
type Message = string | null | Refused;

export interface SocketData {
  pipeline?: OrderedPipeline<Message>;
  /** Who connected (the guard's answer at the upgrade). */
  principal?: Principal;
  /** The token bucket: messages that may still be sent now, and when it was last filled. */
  tokens?: number;
  filledAt?: number;
  /** Refused messages in the current one-second window, and when that window began. */
  refused?: number;
  refusedSince?: number;
}

export interface SocketOptions {
  /** Requests of one connection running at once; default 16. */
  perConnection?: number;
  /** Requests one connection may have waiting before they are refused; default 1000. */
  maxBacklog?: number;
  /** Who may connect (checked at the upgrade); default Guard.open(): anyone, no token. */
  guard?: Guard;
}

const rateLimited = (perSecond: number, burst: number) =>
  JSON.stringify(
    new ApiError(
      429,
      "rate_limited",
      `too many messages on this connection: the limit is ${perSecond} a second (bursts of ${burst}); this one was not run, slow down`,
      { messages_per_second: perSecond, burst },
    ).toBody(),
  );

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

/** The allocator's message rate limits (ProtocolLimits), checked: numbers of at least 1. */
const rateOf = (limits: Partial<ProtocolLimits>): { perSecond: number; burst: number } => {
  const perSecond = limits.messagesPerSecond ?? DEFAULT_LIMITS.messagesPerSecond;
  const burst = limits.messageBurst ?? DEFAULT_LIMITS.messageBurst;
  for (const [name, v] of [
    ["messagesPerSecond", perSecond],
    ["messageBurst", burst],
  ] as const) {
    if (!Number.isFinite(v) || v < 1) throw new Error(`${name} must be a number >= 1, got ${v}`);
  }
  return { perSecond, burst };
};

export const allocatorWebSocket = (
  allocator: Allocator,
  options: SocketOptions = {},
): WebSocketHandler<SocketData> => {
  const perConnection = options.perConnection ?? 16;
  const maxBacklog = options.maxBacklog ?? 1000;
  const { perSecond, burst } = rateOf(allocator.limits);
  const overLimit = rateLimited(perSecond, burst);
  /** Takes one message from the connection's bucket; false when it is empty. */
  const admit = (data: SocketData, now: number): boolean => {
    const elapsed = (now - (data.filledAt ?? now)) / 1000;
    data.tokens = Math.min(burst, (data.tokens ?? burst) + elapsed * perSecond);
    data.filledAt = now;
    if (data.tokens < 1) return false;
    data.tokens -= 1;
    return true;
  };
  return {
    open(ws) {
      ws.data.tokens = burst;
      ws.data.filledAt = performance.now();
      ws.data.pipeline = new OrderedPipeline<Message>(
        perConnection,
        (m) =>
          m instanceof Refused
            ? Promise.resolve(m.answer)
            : m === null
              ? Promise.resolve(NOT_TEXT)
              : allocator.handle(m),
        (answer) => {
          if (ws.readyState === WebSocket.OPEN) ws.send(answer);
        },
        maxBacklog,
      );
    },
    message(ws: ServerWebSocket<SocketData>, message: string | Buffer) {
      const pipeline = ws.data.pipeline;
      if (!pipeline) return;
      const now = performance.now();
      if (!admit(ws.data, now)) {
        if (now - (ws.data.refusedSince ?? 0) >= 1000) {
          ws.data.refusedSince = now;
          ws.data.refused = 0;
        }
        ws.data.refused = (ws.data.refused ?? 0) + 1;
        // Answered in its turn, so the client's count of answers stays right.
        pipeline.push(new Refused(overLimit));
        if (ws.data.refused > Math.max(perSecond, burst)) {
          ws.close(1008, `rate limit exceeded: over ${perSecond} messages a second`);
        }
        return;
      }
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

/**
 * Records a connection (allowed or refused) in the guard's audit log, as routes.ts asks of `WS /`.
 * Not awaited: AuditLog.record never rejects, and a connection does not wait for its record.
 */
const audit = async (guard: Guard, path: string, principal: Principal | undefined, status: number) => {
  await guard.audit?.record(
    callEntry(principal, { service: "allocator", method: "WS", path, target: null, status }),
  );
};

/**
 * The HTTP side of the server: upgrades (after the guard), and a health check. `options.guard`
 * defaults to Guard.open().
 */
export const allocatorFetch = async (
  req: Request,
  server: Server<SocketData>,
  options: Pick<SocketOptions, "guard"> = {},
): Promise<Response | undefined> => {
  const url = new URL(req.url);
  if (req.headers.get("upgrade")?.toLowerCase() === "websocket") {
    const guard = options.guard ?? Guard.open();
    let principal: Principal;
    try {
      // Every path is the one endpoint (`WS /`): checked as such, so no path has a laxer rule.
      ({ principal } = await guard.check("allocator", "WS", "/", {
        authorization: req.headers.get("authorization"),
        onBehalfOf: req.headers.get(ON_BEHALF_OF),
      }));
    } catch (err) {
      const apiError = toApiError(err);
      void audit(guard, url.pathname, undefined, apiError.status);
      return json(apiError.status, apiError.toBody());
    }
    if (server.upgrade(req, { data: { principal } })) {
      void audit(guard, url.pathname, principal, 101);
      return undefined;
    }
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
