/**
 * One cleartext port for HTTP/2 and HTTP/1.1 (what Envoy calls auto codec): gRPC clients speak
 * HTTP/2 with prior knowledge, while browsers and curl reach plaintext servers over HTTP/1.1 only,
 * and Connect and gRPC-web work over both. Node's `http2.createServer` cannot fall back to HTTP/1.1
 * without TLS, so each connection is routed by its first bytes: the HTTP/2 preface starts with "PRI".
 */
import { createServer as createHttp1Server, type IncomingMessage, type ServerResponse } from "node:http";
import {
  createServer as createHttp2Server,
  type Http2ServerRequest,
  type Http2ServerResponse,
  type IncomingHttpHeaders,
  type ServerHttp2Stream,
} from "node:http2";
import { type AddressInfo, createServer as createNetServer, type Socket } from "node:net";

export type DualHandler = (
  req: IncomingMessage | Http2ServerRequest,
  res: ServerResponse | Http2ServerResponse,
) => void;

export interface DualServer {
  port: number;
  close(): Promise<void>;
}

const PREFACE_START = "PRI";

/** Takes an HTTP/2 stream before the request/response layer sees it; true when it handled it. */
export type StreamHook = (stream: ServerHttp2Stream, headers: IncomingHttpHeaders) => boolean;

export const listenDualProtocol = async (
  handler: DualHandler,
  port: number,
  host: string,
  onHttp2Stream?: StreamHook,
): Promise<DualServer> => {
  const h2 = createHttp2Server(handler as (req: Http2ServerRequest, res: Http2ServerResponse) => void);
  if (onHttp2Stream) {
    // The server's own stream listener builds the request/response pair; streams the hook takes never
    // reach it (that layer is what the hot path avoids).
    const compat = h2.listeners("stream") as ((...args: unknown[]) => void)[];
    h2.removeAllListeners("stream");
    h2.on(
      "stream",
      function (this: unknown, stream: ServerHttp2Stream, headers: IncomingHttpHeaders, ...rest) {
        if (onHttp2Stream(stream, headers)) return;
        for (const listener of compat) listener.call(this, stream, headers, ...rest);
      },
    );
  }
  const h1 = createHttp1Server(handler as (req: IncomingMessage, res: ServerResponse) => void);
  h1.keepAliveTimeout = 60_000;
  const sockets = new Set<Socket>();
  const net = createNetServer((socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
    socket.once("data", (first: Buffer) => {
      socket.pause();
      socket.unshift(first);
      const http2 = first.subarray(0, PREFACE_START.length).toString("latin1") === PREFACE_START;
      (http2 ? h2 : h1).emit("connection", socket);
      socket.resume();
    });
    // A client that connects and goes away before sending anything.
    socket.on("error", () => socket.destroy());
  });
  await new Promise<void>((resolve, reject) => {
    net.once("error", reject);
    net.listen(port, host, () => {
      net.off("error", reject);
      resolve();
    });
  });
  return {
    port: (net.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        net.close(() => resolve());
        h2.close();
        h1.close();
        // Kept-alive connections would hold close() open.
        for (const socket of sockets) socket.destroy();
      }),
  };
};
