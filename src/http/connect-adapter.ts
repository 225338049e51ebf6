/**
 * connect-node's adapter with one correction: connect-es answers a Connect unary request whose body
 * is not the method's message with `internal` (HTTP 500, "parse binary: ..."), as grpc-go does. It is
 * the caller's mistake, so here it is `invalid_argument` (HTTP 400), like the gRPC fast path says it.
 * Responses pass through `(next) => next` functions over connect's universal handlers; the rest is
 * what `connectNodeAdapter` does.
 */

import type { ServerResponse } from "node:http";
import {
  Code,
  ConnectError,
  type ConnectRouter,
  type ConnectRouterOptions,
  createConnectRouter,
} from "@connectrpc/connect";
import {
  createAsyncIterable,
  readAllBytes,
  type UniversalHandlerFn,
  uResponseNotFound,
} from "@connectrpc/connect/protocol";
import {
  compressionBrotli,
  compressionGzip,
  universalRequestFromNodeRequest,
  universalResponseToNodeResponse,
} from "@connectrpc/connect-node";
import type { DualHandler } from "./dual-protocol.ts";

export type UniversalInterceptor = (next: UniversalHandlerFn) => UniversalHandlerFn;

const CONNECT_UNARY_ERROR_TYPE = "application/json";
const PARSE_FAILURE = "parse binary:";

/** A Connect unary 500 saying the request message did not parse becomes 400 `invalid_argument`. */
export const unparsableRequestIsInvalidArgument: UniversalInterceptor = (next) => async (req) => {
  const res = await next(req);
  // Only the Connect protocol maps codes to HTTP statuses; gRPC and gRPC-web answer 200 with a status.
  if (
    res.status !== 500 ||
    !res.body ||
    res.header?.get("content-type") !== CONNECT_UNARY_ERROR_TYPE ||
    res.header.has("content-encoding")
  )
    return res;
  // An error body is a few hundred bytes, already in memory: no cap of our own.
  const bytes = await readAllBytes(res.body, Number.MAX_SAFE_INTEGER);
  let error: { code?: unknown; message?: unknown } | null = null;
  try {
    error = JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    // not JSON: left as it is
  }
  if (
    error?.code !== "internal" ||
    typeof error.message !== "string" ||
    !error.message.startsWith(PARSE_FAILURE)
  )
    return { ...res, body: createAsyncIterable([bytes]) };
  const body = new TextEncoder().encode(JSON.stringify({ ...error, code: "invalid_argument" }));
  const header = new Headers(res.header);
  header.set("content-length", String(body.byteLength));
  return { ...res, status: 400, header, body: createAsyncIterable([body]) };
};

export interface ConnectHandlerOptions extends ConnectRouterOptions {
  routes: (router: ConnectRouter) => void;
  /** Around every method's whole handler (Connect's own `interceptors` run after the body parses). */
  handlerInterceptors?: UniversalInterceptor[];
}

/** A Node request handler serving `routes` over Connect, gRPC and gRPC-web (HTTP/1.1 and HTTP/2). */
export const connectHandler = ({
  routes,
  handlerInterceptors = [unparsableRequestIsInvalidArgument],
  ...options
}: ConnectHandlerOptions): DualHandler => {
  const router = createConnectRouter({ acceptCompression: [compressionGzip, compressionBrotli], ...options });
  routes(router);
  const paths = new Map<string, { name: string; handle: UniversalHandlerFn }>();
  for (const handler of router.handlers) {
    const handle = handlerInterceptors.reduceRight<UniversalHandlerFn>((next, wrap) => wrap(next), handler);
    paths.set(handler.requestPath, { name: `${handler.service.typeName}.${handler.method.name}`, handle });
  }
  return (req, res) => {
    const found = paths.get(req.url?.split("?", 2)[0] ?? "");
    if (!found) {
      (res as ServerResponse).writeHead(uResponseNotFound.status).end();
      return;
    }
    found
      .handle(universalRequestFromNodeRequest(req, res as never, undefined, undefined))
      .then((uRes) => universalResponseToNodeResponse(uRes, res as never))
      .catch((reason: unknown) => {
        // The caller went away; there is no one to answer.
        if (ConnectError.from(reason).code === Code.Aborted) return;
        console.error(`handler for rpc ${found.name} failed`, reason);
      });
  };
};
