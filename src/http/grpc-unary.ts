/**
 * Plain unary gRPC over an HTTP/2 stream, without the Connect adapter: the inference hot path.
 * Under Bun, connect-node's adapter costs ~300-400 µs of CPU per call (async-iterable pipeline, linked
 * AbortControllers, request conversion), more than the rest of the executor together
 * (test/bench/executor.ts). This handles exactly one shape, the one every gRPC client sends for a
 * unary call: `POST <path>`, `content-type: application/grpc[+proto]`, no compression. Anything
 * else (Connect, gRPC-web, compressed messages, other methods) answers false and is left to Connect.
 */
import type { IncomingHttpHeaders, ServerHttp2Stream } from "node:http2";

export interface GrpcStatus {
  /** gRPC status code (Connect's `Code` uses the same numbers). */
  code: number;
  message: string;
}

export interface UnaryOptions {
  /** `/Service/method`. */
  path: string;
  /** Largest request message accepted; larger is RESOURCE_EXHAUSTED. */
  maxMessageBytes: number;
  /**
   * Checks the caller from the call's headers (the gRPC metadata: `authorization: Bearer <token>`)
   * before `handle` runs; a rejection is answered through `status` as soon as it comes, whatever the
   * message, and `handle` is not called. It starts as the headers arrive, so a check that must ask
   * another service overlaps reading the message.
   */
  authorize?(headers: IncomingHttpHeaders): Promise<unknown>;
  /** Serves one call: the request message bytes in, the response message bytes out. */
  handle(message: Uint8Array, signal: AbortSignal): Promise<Uint8Array>;
  /** The status to answer for an error the handler threw. */
  status(err: unknown): GrpcStatus;
}

const GRPC_CONTENT_TYPES = new Set(["application/grpc", "application/grpc+proto"]);

const CODE = {
  invalidArgument: 3,
  deadlineExceeded: 4,
  resourceExhausted: 8,
  unimplemented: 12,
  internal: 13,
};

const TIMEOUT_UNITS_MS: Record<string, number> = {
  H: 3_600_000,
  M: 60_000,
  S: 1000,
  m: 1,
  u: 0.001,
  n: 0.000001,
};

/** `grpc-timeout` (`<1-8 digits><H|M|S|m|u|n>`) in milliseconds; undefined when absent or malformed. */
export const parseGrpcTimeout = (value: string | undefined): number | undefined => {
  const m = value === undefined ? null : /^(\d{1,8})([HMSmun])$/.exec(value);
  if (!m) return undefined;
  return Number(m[1]) * (TIMEOUT_UNITS_MS[m[2] as string] ?? 1);
};

/** grpc-message is percent-encoded: everything outside printable ASCII, and '%'. */
export const encodeGrpcMessage = (message: string): string =>
  /^[\x20-\x24\x26-\x7e]*$/.test(message)
    ? message
    : Array.from(new TextEncoder().encode(message), (b) =>
        b >= 0x20 && b <= 0x7e && b !== 0x25
          ? String.fromCharCode(b)
          : `%${b.toString(16).toUpperCase().padStart(2, "0")}`,
      ).join("");

/** A complete envelope at `offset`: its flags and message length; null when the bytes are cut short. */
const envelopeAt = (body: Buffer, offset: number): { flags: number; length: number } | null => {
  if (body.length - offset < 5) return null;
  const length = body.readUInt32BE(offset + 1);
  return body.length - offset - 5 < length ? null : { flags: body[offset] as number, length };
};

/**
 * What is wrong with the framing of a unary call's body, answered as Connect's adapter (the other
 * path to the same method) and the gRPC status code guide answer it: no message, or more than one, is
 * UNIMPLEMENTED (a cardinality violation); an envelope cut short or with unknown flags is
 * INVALID_ARGUMENT; a compressed message without grpc-encoding is INTERNAL. Null for exactly one
 * uncompressed message.
 */
export const framingError = (body: Buffer): GrpcStatus | null => {
  if (body.length === 0) {
    return { code: CODE.unimplemented, message: "protocol error: missing input message for unary method" };
  }
  const first = envelopeAt(body, 0);
  if (!first) return { code: CODE.invalidArgument, message: "protocol error: incomplete envelope" };
  const end = 5 + first.length;
  if (end < body.length) {
    return envelopeAt(body, end)
      ? { code: CODE.unimplemented, message: "protocol error: received extra input message for unary method" }
      : { code: CODE.invalidArgument, message: "protocol error: incomplete envelope" };
  }
  if (first.flags === 1) return { code: CODE.internal, message: "compressed message without grpc-encoding" };
  if (first.flags !== 0) {
    return { code: CODE.invalidArgument, message: `protocol error: invalid envelope flags ${first.flags}` };
  }
  return null;
};

/** Whether a stream is a plain unary gRPC call to `path` (the only shape this module serves). */
export const isPlainGrpcCall = (headers: IncomingHttpHeaders, path: string): boolean => {
  if (headers[":path"] !== path || headers[":method"] !== "POST") return false;
  const type = headers["content-type"];
  if (type === undefined || !GRPC_CONTENT_TYPES.has(type)) return false;
  const encoding = headers["grpc-encoding"];
  return encoding === undefined || encoding === "identity";
};

const trailersOnly = (stream: ServerHttp2Stream, contentType: string, status: GrpcStatus): void => {
  if (stream.destroyed || stream.headersSent) return;
  stream.respond(
    {
      ":status": 200,
      "content-type": contentType,
      "grpc-status": String(status.code),
      "grpc-message": encodeGrpcMessage(status.message),
    },
    { endStream: true },
  );
};

/**
 * A `stream` listener for an HTTP/2 server: serves plain unary calls to `options.path` and answers
 * true; answers false (touching nothing) for every other stream.
 */
export const grpcUnaryHandler =
  (options: UnaryOptions) =>
  (stream: ServerHttp2Stream, headers: IncomingHttpHeaders): boolean => {
    if (!isPlainGrpcCall(headers, options.path)) return false;
    const contentType = headers["content-type"] as string;
    const abort = new AbortController();
    const timeoutMs = parseGrpcTimeout(headers["grpc-timeout"] as string | undefined);
    const timer =
      timeoutMs === undefined ? undefined : setTimeout(() => abort.abort("deadline"), Math.max(0, timeoutMs));
    stream.once("close", () => {
      clearTimeout(timer);
      if (!abort.signal.aborted) abort.abort("closed");
    });
    stream.on("error", () => {});
    const chunks: Buffer[] = [];
    let size = 0;
    let refused = false;
    // A caller refused is answered at once, before its message is read (or its framing judged): a
    // stranger learns nothing of the method and costs no buffering.
    const authorized = options.authorize?.(headers).then(
      () => true,
      (err: unknown) => {
        if (refused) return false;
        refused = true;
        clearTimeout(timer);
        trailersOnly(stream, contentType, options.status(err));
        stream.close();
        return false;
      },
    );
    stream.on("data", (chunk: Buffer) => {
      if (refused) return;
      size += chunk.length;
      if (size > options.maxMessageBytes + 5) {
        refused = true;
        trailersOnly(stream, contentType, {
          code: CODE.resourceExhausted,
          message: `request message larger than ${options.maxMessageBytes} bytes`,
        });
        stream.close();
        return;
      }
      chunks.push(chunk);
    });
    stream.once("end", async () => {
      if (refused) return;
      if (authorized !== undefined && !(await authorized)) return;
      const body = chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, size);
      const framing = framingError(body);
      if (framing) {
        trailersOnly(stream, contentType, framing);
        clearTimeout(timer);
        return;
      }
      let reply: Uint8Array;
      try {
        reply = await options.handle(body.subarray(5), abort.signal);
      } catch (err) {
        clearTimeout(timer);
        const status =
          abort.signal.reason === "deadline"
            ? { code: CODE.deadlineExceeded, message: "the call's deadline passed" }
            : options.status(err);
        trailersOnly(stream, contentType, status);
        return;
      }
      clearTimeout(timer);
      if (stream.destroyed) return;
      const frame = Buffer.allocUnsafe(5 + reply.byteLength);
      frame[0] = 0;
      frame.writeUInt32BE(reply.byteLength, 1);
      frame.set(reply, 5);
      stream.respond({ ":status": 200, "content-type": contentType }, { waitForTrailers: true });
      stream.once("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0", "grpc-message": "" }));
      stream.end(frame);
    });
    return true;
  };

export { CODE as GRPC_CODE };
