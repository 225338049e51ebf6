/**
 * The wire contract of block inference: the generated InferenceProxy service served by connect-node
 * over HTTP/2 under Bun, called by grpc-js and by Connect's gRPC transport, with packets checked by
 * decodePacket (invalid ones are InvalidArgument naming the field).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createServer, type Http2Server } from "node:http2";
import type { AddressInfo } from "node:net";
import { create, type MessageInitShape, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, type ConnectRouter, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import { decodePacket, PacketError, packetForPolicy } from "../../src/block/packet.ts";
import {
  type InferenceMessage,
  InferenceProxy,
  InferenceResponseSchema,
} from "../../src/gen/inference_pb.ts";
import { AIOSPacketSchema, FileInfoSchema } from "../../src/gen/payload_pb.ts";
import { connectHandler } from "../../src/http/connect-adapter.ts";
import { grpcJsInferenceClient } from "../support/grpc.ts";

const packet = (fields: MessageInitShape<typeof AIOSPacketSchema> = {}) =>
  toBinary(
    AIOSPacketSchema,
    create(AIOSPacketSchema, {
      sessionId: "session-123",
      seqNo: 1n,
      data: '{"input": "Hello Block"}',
      ts: 1_700_000_000.5,
      files: [
        create(FileInfoSchema, { metadata: '{"type":"text"}', fileData: new TextEncoder().encode("abc") }),
      ],
      ...fields,
    }),
  );

describe("decodePacket", () => {
  test("accepts the specification's packet and shows the policy its fields", () => {
    const decoded = decodePacket(packet());
    expect(packetForPolicy(decoded)).toEqual({
      session_id: "session-123",
      seq_no: 1,
      data: '{"input": "Hello Block"}',
      ts: 1_700_000_000.5,
      output_ptr: "",
      frame_ptr_bytes: 0,
      files: [{ metadata: '{"type":"text"}', size: 3 }],
    });
  });

  test.each([
    ["rpc_data", new Uint8Array(0)],
    ["rpc_data", new Uint8Array([0xff, 0xff, 0xff])],
    ["session_id", packet({ sessionId: "" })],
    ["seq_no", packet({ seqNo: 0n })],
    ["data", packet({ data: "" })],
    ["data", packet({ data: "{not json" })],
    ["ts", packet({ ts: 0 })],
  ])("refuses a bad %s", (field, bytes) => {
    try {
      decodePacket(bytes);
      throw new Error("expected a PacketError");
    } catch (err) {
      expect(err).toBeInstanceOf(PacketError);
      expect((err as PacketError).field).toBe(field);
    }
  });
});

describe("InferenceProxy over HTTP/2", () => {
  let server: Http2Server;
  let address = "";
  beforeAll(async () => {
    const routes = (router: ConnectRouter) =>
      router.service(InferenceProxy, {
        infer(request: InferenceMessage) {
          try {
            const task = decodePacket(request.rpcData);
            return create(InferenceResponseSchema, {
              message: true,
              result: task.data,
              sessionId: task.sessionId,
              seqNo: task.seqNo,
            });
          } catch (err) {
            if (err instanceof PacketError) throw new ConnectError(err.message, Code.InvalidArgument);
            throw err;
          }
        },
      });
    server = createServer(connectHandler({ routes }));
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    address = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => {
    server?.close();
  });

  test("Connect's gRPC transport: answers a task, refuses a bad one naming the field", async () => {
    const client = createClient(InferenceProxy, createGrpcTransport({ baseUrl: `http://${address}` }));
    const ok = await client.infer({ rpcData: packet() });
    expect([ok.message, ok.result, ok.sessionId, ok.seqNo]).toEqual([
      true,
      '{"input": "Hello Block"}',
      "session-123",
      1n,
    ]);
    const bad = await client.infer({ rpcData: packet({ sessionId: "" }) }).catch((e) => e);
    expect(bad).toBeInstanceOf(ConnectError);
    expect((bad as ConnectError).code).toBe(Code.InvalidArgument);
    expect((bad as ConnectError).rawMessage).toBe("session_id is required");
  });

  test("grpc-js, with the method path of a package-less service (/InferenceProxy/infer)", async () => {
    const client = grpcJsInferenceClient(address);
    const call = client.infer;
    const ok = await call(packet({ seqNo: 7n }));
    expect([ok.message, ok.seqNo]).toEqual([true, 7n]);
    const bad = (await call(packet({ data: "{oops" })).catch((e) => e)) as grpc.ServiceError;
    expect(bad.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(bad.details).toBe("data is not valid JSON");
    client.close();
  });
});
