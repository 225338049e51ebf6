/**
 * The unary gRPC hot path (src/http/grpc-unary.ts) beside Connect on one dual-protocol port: plain gRPC
 * calls take it, everything else reaches Connect; deadlines, statuses and size limits as gRPC defines.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { connect as h2connect } from "node:http2";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, type ConnectRouter, createClient } from "@connectrpc/connect";
import {
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
} from "@connectrpc/connect-node";
import {
  InferenceMessageSchema,
  InferenceProxy,
  InferenceResponseSchema,
} from "../../src/gen/inference_pb.ts";
import { connectHandler } from "../../src/http/connect-adapter.ts";
import { type DualServer, listenDualProtocol } from "../../src/http/dual-protocol.ts";
import {
  encodeGrpcMessage,
  grpcUnaryHandler,
  isPlainGrpcCall,
  parseGrpcTimeout,
} from "../../src/http/grpc-unary.ts";
import { grpcJsInferenceClient } from "../support/grpc.ts";

const PATH = "/InferenceProxy/infer";

test("grpc-timeout, grpc-message encoding and the shape taken", () => {
  expect(parseGrpcTimeout("250m")).toBe(250);
  expect(parseGrpcTimeout("2S")).toBe(2000);
  expect(parseGrpcTimeout("1H")).toBe(3_600_000);
  expect(parseGrpcTimeout("5000u")).toBe(5);
  expect(parseGrpcTimeout("123456789m")).toBeUndefined(); // 9 digits: malformed
  expect(parseGrpcTimeout("10x")).toBeUndefined();
  expect(encodeGrpcMessage("plain text")).toBe("plain text");
  expect(encodeGrpcMessage("100% café")).toBe("100%25 caf%C3%A9");
  const h = { ":path": PATH, ":method": "POST", "content-type": "application/grpc" };
  expect(isPlainGrpcCall(h, PATH)).toBe(true);
  expect(isPlainGrpcCall({ ...h, "content-type": "application/grpc+proto" }, PATH)).toBe(true);
  expect(isPlainGrpcCall({ ...h, "content-type": "application/grpc-web+proto" }, PATH)).toBe(false);
  expect(isPlainGrpcCall({ ...h, "grpc-encoding": "gzip" }, PATH)).toBe(false);
  expect(isPlainGrpcCall({ ...h, ":path": "/Other/call" }, PATH)).toBe(false);
});

describe("grpcUnaryHandler beside Connect", () => {
  let server: DualServer;
  let url: string;
  const seen: string[] = [];

  /** Echoes rpc_data as the result; "slow" waits for the abort; "fail" throws a status. */
  const answer = async (rpcData: Uint8Array, signal: AbortSignal, via: string) => {
    const text = new TextDecoder().decode(rpcData);
    seen.push(via);
    if (text === "slow") {
      await new Promise((_, reject) => signal.addEventListener("abort", () => reject(new Error("aborted"))));
    }
    if (text === "fail") throw new ConnectError("données refusées: 100%", Code.InvalidArgument);
    return create(InferenceResponseSchema, { message: true, result: `${via}:${text}` });
  };

  beforeAll(async () => {
    const routes = (router: ConnectRouter) =>
      router.service(InferenceProxy, {
        infer: (req, ctx) => answer(req.rpcData, ctx.signal, "connect"),
      });
    server = await listenDualProtocol(
      connectHandler({ routes }),
      0,
      "127.0.0.1",
      grpcUnaryHandler({
        path: PATH,
        maxMessageBytes: 1024,
        handle: async (message, signal) =>
          toBinary(
            InferenceResponseSchema,
            await answer(fromBinary(InferenceMessageSchema, message).rpcData, signal, "fast"),
          ),
        status: (err) =>
          err instanceof ConnectError
            ? { code: err.code, message: err.rawMessage }
            : { code: 13, message: "x" },
      }),
    );
    url = `http://127.0.0.1:${server.port}`;
  });
  afterAll(() => server?.close());

  const bytes = (s: string) => new TextEncoder().encode(s);

  test("gRPC clients take the hot path; Connect and gRPC-web reach Connect", async () => {
    const grpc = createClient(InferenceProxy, createGrpcTransport({ baseUrl: url }));
    expect((await grpc.infer({ rpcData: bytes("a") })).result).toBe("fast:a");
    const js = grpcJsInferenceClient(url.replace("http://", ""));
    try {
      expect((await js.infer(bytes("b"))).result).toBe("fast:b");
    } finally {
      js.close();
    }
    const connect = createClient(InferenceProxy, createConnectTransport({ baseUrl: url, httpVersion: "2" }));
    expect((await connect.infer({ rpcData: bytes("c") })).result).toBe("connect:c");
    const web = createClient(InferenceProxy, createGrpcWebTransport({ baseUrl: url, httpVersion: "2" }));
    expect((await web.infer({ rpcData: bytes("d") })).result).toBe("connect:d");
  });

  test("statuses: the handler's code and message (percent-encoded on the wire), deadlines, size", async () => {
    const grpc = createClient(InferenceProxy, createGrpcTransport({ baseUrl: url }));
    const fails = (call: Promise<unknown>) =>
      call.then(() => new ConnectError("no error")).catch((e: ConnectError) => e);
    const failed = await fails(grpc.infer({ rpcData: bytes("fail") }));
    expect([failed.code, failed.rawMessage]).toEqual([Code.InvalidArgument, "données refusées: 100%"]);
    const began = performance.now();
    const late = await fails(grpc.infer({ rpcData: bytes("slow") }, { timeoutMs: 100 }));
    expect(late.code).toBe(Code.DeadlineExceeded);
    expect(performance.now() - began).toBeLessThan(2000);
    const big = await fails(grpc.infer({ rpcData: new Uint8Array(4096) }));
    expect(big.code).toBe(Code.ResourceExhausted);
    // The port still serves after each of them.
    expect((await grpc.infer({ rpcData: bytes("ok") })).result).toBe("fast:ok");
  });

  test("Connect: a body that is not the message is 400 invalid_argument, not connect-es's 500 internal", async () => {
    const post = (type: string, body: BodyInit) =>
      fetch(`${url}${PATH}`, { method: "POST", headers: { "content-type": type }, body });
    // 0x0a announces field 1 (rpc_data) with a length of 0x7f bytes that never come.
    const truncated = await post("application/proto", new Uint8Array([0x0a, 0x7f, 0x01]));
    expect(truncated.status).toBe(400);
    const error = (await truncated.json()) as { code: string; message: string };
    expect(error.code).toBe("invalid_argument");
    expect(error.message).toStartWith("parse binary:");
    const json = await post("application/json", "{not json");
    expect([json.status, ((await json.json()) as { code: string }).code]).toEqual([400, "invalid_argument"]);
    // The handler's own statuses are not touched: a refusal stays what the handler said.
    const refused = await post("application/json", JSON.stringify({ rpcData: btoa("fail") }));
    expect(refused.status).toBe(400);
    expect(await refused.json()).toEqual({ code: "invalid_argument", message: "données refusées: 100%" });
    const served = await post(
      "application/proto",
      toBinary(InferenceMessageSchema, create(InferenceMessageSchema, { rpcData: bytes("e") })),
    );
    expect(served.status).toBe(200);
    expect(fromBinary(InferenceResponseSchema, new Uint8Array(await served.arrayBuffer())).result).toBe(
      "connect:e",
    );
    // The Connect client sees the code too.
    const connect = createClient(
      InferenceProxy,
      createConnectTransport({ baseUrl: url, httpVersion: "1.1" }),
    );
    expect((await connect.infer({ rpcData: bytes("f") })).result).toBe("connect:f");
    expect((await fetch(`${url}/Other/call`, { method: "POST" })).status).toBe(404);
  });
});

describe("grpcUnaryHandler's authorize hook (the caller checked from the metadata)", () => {
  let server: DualServer;
  let url: string;
  let handled = 0;

  beforeAll(async () => {
    server = await listenDualProtocol(
      connectHandler({ routes: (router: ConnectRouter) => router }),
      0,
      "127.0.0.1",
      grpcUnaryHandler({
        path: PATH,
        maxMessageBytes: 1024,
        // "Bearer slow" is checked elsewhere (50 ms), "Bearer good" at once; anything else refused.
        authorize: async (headers) => {
          if (headers.authorization === "Bearer slow") await Bun.sleep(50);
          else if (headers.authorization !== "Bearer good") {
            throw new ConnectError(`refused: ${headers.authorization ?? "no token"}`, Code.Unauthenticated);
          }
        },
        handle: async (message) => {
          handled += 1;
          const text = new TextDecoder().decode(fromBinary(InferenceMessageSchema, message).rpcData);
          return toBinary(
            InferenceResponseSchema,
            create(InferenceResponseSchema, { message: true, result: text }),
          );
        },
        status: (err) =>
          err instanceof ConnectError
            ? { code: err.code, message: err.rawMessage }
            : { code: 13, message: "x" },
      }),
    );
    url = `http://127.0.0.1:${server.port}`;
  });
  afterAll(() => server?.close());

  const call = (token?: string) =>
    createClient(InferenceProxy, createGrpcTransport({ baseUrl: url }))
      .infer(
        { rpcData: new TextEncoder().encode("x") },
        token === undefined ? {} : { headers: { authorization: `Bearer ${token}` } },
      )
      .catch((e: unknown) => ConnectError.from(e));

  test("a refusal is its status and message; the handler never runs", async () => {
    const before = handled;
    const none = await call();
    expect(none).toBeInstanceOf(ConnectError);
    expect([(none as ConnectError).code, (none as ConnectError).rawMessage]).toEqual([
      Code.Unauthenticated,
      "refused: no token",
    ]);
    const bad = (await call("bad")) as ConnectError;
    expect([bad.code, bad.rawMessage]).toEqual([Code.Unauthenticated, "refused: Bearer bad"]);
    expect(handled).toBe(before);
  });

  test("a refusal comes before the message is read: while it is still being sent, and whatever its framing", async () => {
    const session = h2connect(url);
    session.on("error", () => {});
    const answer = (authorization: string | undefined, body: Buffer | null) =>
      new Promise<Record<string, unknown>>((resolve, reject) => {
        const req = session.request({
          ":method": "POST",
          ":path": PATH,
          "content-type": "application/grpc",
          ...(authorization ? { authorization } : {}),
        });
        req.on("response", (h) => resolve(h as Record<string, unknown>));
        req.on("error", reject);
        // null: the body never ends, as a caller still uploading.
        if (body === null) req.write(Buffer.alloc(64));
        else req.end(body);
      });
    try {
      const before = handled;
      const uploading = await answer("Bearer bad", null);
      expect(uploading["grpc-status"]).toBe(String(Code.Unauthenticated));
      // No message at all, or a cut envelope: refused for who calls, not for the framing.
      expect((await answer(undefined, Buffer.alloc(0)))["grpc-status"]).toBe(String(Code.Unauthenticated));
      expect((await answer("Bearer bad", Buffer.from([0, 0, 0, 0, 9, 1])))["grpc-status"]).toBe(
        String(Code.Unauthenticated),
      );
      // An accepted caller's framing is judged as before.
      expect((await answer("Bearer good", Buffer.alloc(0)))["grpc-status"]).toBe(String(Code.Unimplemented));
      expect(handled).toBe(before);
    } finally {
      session.close();
    }
  });

  test("an accepted caller is served, also when the check takes a while", async () => {
    expect(await call("good")).toMatchObject({ message: true, result: "x" });
    expect(await call("slow")).toMatchObject({ message: true, result: "x" });
  });
});
