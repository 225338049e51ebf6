/**
 * Serves a fetch-style handler (a Hono app's `fetch`) from Node's HTTP/1.1 and HTTP/2 request API, for
 * services that must listen through `listenDualProtocol` (one port for both, with raw HTTP/2 streams
 * taken before this layer) instead of `Bun.serve`.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Http2ServerRequest, Http2ServerResponse } from "node:http2";
import type { DualHandler } from "./dual-protocol.ts";

/** Connection-level headers that must not be copied into an HTTP/2 answer. */
const HOP_HEADERS = new Set(["connection", "keep-alive", "transfer-encoding", "upgrade", "proxy-connection"]);

const readBody = (req: IncomingMessage | Http2ServerRequest): Promise<Buffer> =>
  new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => resolve(Buffer.concat(chunks)));
    req.on("error", reject);
  });

export const nodeHandler =
  (fetch: (req: Request) => Response | Promise<Response>): DualHandler =>
  (req, res) => {
    void (async () => {
      const out = res as ServerResponse & Http2ServerResponse;
      try {
        const host = req.headers.host ?? req.headers[":authority"] ?? "localhost";
        const headers = new Headers();
        for (const [k, v] of Object.entries(req.headers)) {
          if (k.startsWith(":") || v === undefined) continue;
          headers.set(k, Array.isArray(v) ? v.join(", ") : v);
        }
        const method = req.method ?? "GET";
        const body = method === "GET" || method === "HEAD" ? undefined : new Uint8Array(await readBody(req));
        const response = await fetch(new Request(`http://${host}${req.url}`, { method, headers, body }));
        const answer: Record<string, string> = {};
        response.headers.forEach((v, k) => {
          if (!HOP_HEADERS.has(k)) answer[k] = v;
        });
        out.writeHead(response.status, answer);
        if (response.body) for await (const chunk of response.body) out.write(chunk);
        out.end();
      } catch (err) {
        console.error("[aios] request failed:", err);
        if (!out.headersSent) out.writeHead(500, { "content-type": "application/json" });
        out.end(JSON.stringify({ error: { code: "internal", message: "internal error", details: null } }));
      }
    })();
  };
