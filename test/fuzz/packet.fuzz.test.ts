/**
 * AIOSPackets, fuzzed (proto/payload.proto inside InferenceMessage.rpc_data, block-runtime.md):
 * `decodePacket` on thousands of byte strings (random bytes, corrupted encodings, well-encoded packets
 * with odd values: empty and huge ids, sequence numbers past 2^53, data that is not JSON or nests
 * deep, NaN and infinite timestamps, files), then `Executor.infer` against a real instance (the
 * instance SDK, over its task channel and over HTTP): a packet the executor accepts is one the instance
 * accepts, and a bad one is a PacketError naming its field. Last, the gRPC service on a real port:
 * packets through grpc-js (the fast path) and a Connect client (the Connect adapter), and raw HTTP/2
 * calls whose gRPC framing is wrong. Statuses are OK or INVALID_ARGUMENT for a bad packet; never
 * INTERNAL or UNKNOWN for anything the caller sent.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { connect as h2connect } from "node:http2";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import type { ServiceError } from "@grpc/grpc-js";
import fc from "fast-check";
import {
  executorGrpcFastPath,
  executorRoutes,
  MAX_INFERENCE_MESSAGE_BYTES,
  toConnectError,
} from "../../src/block/app.ts";
import { Executor, ExecutorError } from "../../src/block/executor.ts";
import { decodePacket, PacketError } from "../../src/block/packet.ts";
import { InferenceMessageSchema, InferenceProxy } from "../../src/gen/inference_pb.ts";
import { AIOSPacketSchema, FileInfoSchema } from "../../src/gen/payload_pb.ts";
import { connectHandler } from "../../src/http/connect-adapter.ts";
import { type DualServer, listenDualProtocol } from "../../src/http/dual-protocol.ts";
import { framingError } from "../../src/http/grpc-unary.ts";
import type { ServedInstance } from "../../src/instance/serve.ts";
import { grpcJsInferenceClient } from "../support/grpc.ts";
import { BLOCK_ID, startInstance } from "./env.ts";
import {
  FUZZ_SEED,
  fuzz,
  HANG_MS,
  nastyString,
  printSummary,
  runs,
  syncFuzz,
  tally,
  within,
} from "./support.ts";

const SUITE = "AIOSPacket / gRPC";
setDefaultTimeout(600_000);

let instance: ServedInstance;
let executor: Executor;
let httpExecutor: Executor;
let server: DualServer;
let address: string;
const began = performance.now();

const seqNo = fc.oneof(
  { weight: 4, arbitrary: fc.bigInt({ min: 1n, max: 1000n }) },
  {
    weight: 2,
    arbitrary: fc.constantFrom(
      0n,
      1n,
      2n ** 31n,
      2n ** 32n,
      2n ** 53n - 1n,
      2n ** 53n,
      2n ** 53n + 1n,
      2n ** 63n,
      2n ** 64n - 1n,
    ),
  },
  { weight: 1, arbitrary: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }) },
);

const dataText = fc.oneof(
  { weight: 6, arbitrary: fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v)) },
  { weight: 1, arbitrary: fc.constant(JSON.stringify({ refuse: true })) },
  { weight: 2, arbitrary: nastyString },
  {
    weight: 2,
    arbitrary: fc.constantFrom(
      "",
      " ",
      "1",
      " 1 ",
      "\t[1]\n",
      "1e999",
      "-0",
      "null",
      '"\\ud800"',
      '{"\\u0000": "\\u0000"}',
      "\ufeff{}",
      "NaN",
      "{",
      '{"a":1}{"b":2}',
      "[1,]",
      `${"[".repeat(63)}${"]".repeat(63)}`,
      `${"[".repeat(64)}${"]".repeat(64)}`,
      `${"[".repeat(65)}${"]".repeat(65)}`,
      `${"[".repeat(3000)}${"]".repeat(3000)}`,
      JSON.stringify({ text: "x".repeat(200_000) }),
    ),
  },
);

const ts = fc.oneof(
  { weight: 4, arbitrary: fc.double({ min: 1, max: 2e9, noNaN: true }) },
  { weight: 2, arbitrary: fc.double() },
  {
    weight: 1,
    arbitrary: fc.constantFrom(
      0,
      -0,
      -1,
      Number.NaN,
      Number.POSITIVE_INFINITY,
      Number.NEGATIVE_INFINITY,
      5e-324,
      1e308,
    ),
  },
);

const bytes = fc.oneof(fc.uint8Array({ maxLength: 64 }), fc.constant(new Uint8Array(0)));

/** Well-encoded packets with odd values. */
const packetFields = fc.record({
  sessionId: fc.oneof(fc.stringMatching(/^[a-z0-9-]{1,12}$/), nastyString, fc.constant("")),
  seqNo,
  data: dataText,
  ts,
  outputPtr: fc.oneof(fc.constant(""), nastyString),
  framePtr: bytes,
  files: fc.array(fc.record({ metadata: fc.oneof(fc.constant("{}"), nastyString), fileData: bytes }), {
    maxLength: 3,
  }),
});

type PacketFields = {
  sessionId: string;
  seqNo: bigint;
  data: string;
  ts: number;
  outputPtr: string;
  framePtr: Uint8Array;
  files: { metadata: string; fileData: Uint8Array }[];
};

const encode = (p: PacketFields) =>
  toBinary(
    AIOSPacketSchema,
    create(AIOSPacketSchema, { ...p, files: p.files.map((f) => create(FileInfoSchema, f)) }),
  );

/** Raw protobuf: a field with invalid UTF-8 in a string, wrong wire types, bad lengths. */
const rawProto = fc.oneof(
  fc.constantFrom(
    Uint8Array.from([
      0x0a, 0x02, 0xff, 0xfe, 0x10, 0x01, 0x22, 0x01, 0x31, 0x29, 0, 0, 0, 0, 0, 0, 0xf0, 0x3f,
    ]),
    Uint8Array.from([0x0a, 0x7f, 0x61]),
    Uint8Array.from([0x10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]),
    Uint8Array.from([0x0d, 1, 2, 3, 4]),
    Uint8Array.from([0x3a, 0x03, 0x0a, 0x05, 0x61]),
    Uint8Array.from([0x00]),
    Uint8Array.from([0x08]),
    Uint8Array.from([0xf8, 0xff, 0xff, 0xff, 0x0f, 0x00]),
  ),
  fc.uint8Array({ minLength: 1, maxLength: 80 }),
);

/** Packets an ordinary client sends: what the odd ones are variations of. */
const plausibleFields = fc.record({
  sessionId: fc.stringMatching(/^[a-z0-9-]{1,12}$/),
  seqNo: fc.bigInt({ min: 1n, max: 100_000n }),
  data: fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v)),
  ts: fc.double({ min: 1, max: 2e9, noNaN: true }),
  outputPtr: fc.constant(""),
  framePtr: bytes,
  files: fc.array(fc.record({ metadata: fc.constant('{"type":"text"}'), fileData: bytes }), { maxLength: 2 }),
});

/** Byte strings for rpc_data: encoded packets, corrupted ones, raw garbage, nothing. */
const rpcData: fc.Arbitrary<Uint8Array> = fc.oneof(
  { weight: 5, arbitrary: plausibleFields.map(encode) },
  { weight: 8, arbitrary: packetFields.map(encode) },
  {
    weight: 3,
    arbitrary: fc
      .tuple(
        packetFields.map(encode),
        fc.nat(),
        fc.nat(255),
        fc.constantFrom("flip", "truncate", "append", "insert"),
      )
      .map(([enc, at, byte, how]) => {
        const i = enc.length === 0 ? 0 : at % enc.length;
        if (how === "truncate") return enc.subarray(0, i);
        if (how === "flip") {
          const out = Uint8Array.from(enc);
          if (out.length > 0) out[i] = byte;
          return out;
        }
        const extra = Uint8Array.from([byte, (byte * 7) & 255, 0x01]);
        const out = new Uint8Array(enc.length + extra.length);
        const where = how === "append" ? enc.length : i;
        out.set(enc.subarray(0, where));
        out.set(extra, where);
        out.set(enc.subarray(where), where + extra.length);
        return out;
      }),
  },
  { weight: 2, arbitrary: rawProto },
  { weight: 1, arbitrary: fc.constant(new Uint8Array(0)) },
);

/**
 * The echo instance's own refusal of a task (`{"refuse": true}`), also when it is an earlier task's
 * outcome answered again for the same (session_id, seq_no): the only refusal an accepted packet may get.
 */
const isEchoRefusal = (error: string): boolean => error.startsWith("refused: ");

beforeAll(async () => {
  instance = await startInstance();
  const instances = [{ id: "fuzz-instance-1", url: instance.url }];
  executor = new Executor({ blockId: BLOCK_ID, instances, attemptTimeoutMs: 10_000 });
  httpExecutor = new Executor({ blockId: BLOCK_ID, instances, transport: "http", attemptTimeoutMs: 10_000 });
  server = await listenDualProtocol(
    connectHandler({ routes: executorRoutes(executor), readMaxBytes: MAX_INFERENCE_MESSAGE_BYTES }),
    0,
    "127.0.0.1",
    executorGrpcFastPath(executor),
  );
  address = `127.0.0.1:${server.port}`;
});

afterAll(async () => {
  printSummary(SUITE, began);
  await server?.close();
  executor?.close();
  httpExecutor?.close();
  await instance?.stop();
});

describe(`AIOSPacket (seed ${FUZZ_SEED})`, () => {
  test(`decodePacket: ${runs(5000)} byte strings, a valid packet or a PacketError naming the field`, () => {
    const entry = "decodePacket";
    const fields = ["rpc_data", "session_id", "seq_no", "data", "ts"];
    syncFuzz(
      entry,
      rpcData,
      (b) => {
        const t = performance.now();
        try {
          const p = decodePacket(b);
          expect(p.sessionId).not.toBe("");
          expect(p.seqNo > 0n && p.seqNo <= BigInt(Number.MAX_SAFE_INTEGER)).toBe(true);
          expect(() => JSON.parse(p.data)).not.toThrow();
          expect(Number.isFinite(p.ts) && p.ts > 0).toBe(true);
          tally(SUITE, entry, "ok", performance.now() - t);
        } catch (err) {
          if (!(err instanceof PacketError)) throw err;
          expect(fields).toContain(err.field);
          expect(err.message.startsWith(err.field)).toBe(true);
          // The message travels in grpc-message: no ':' (see PacketError).
          expect(err.message.slice(0, err.field.length + 1)).not.toContain(":");
          tally(SUITE, entry, "refused", performance.now() - t);
        }
      },
      runs(5000),
    );
  });

  const inferEntry = (name: string, exec: () => Executor, n: number) =>
    test(`${name}: ${n} packets; accepted ones reach the instance and are answered by it`, async () => {
      await fuzz(
        name,
        rpcData,
        async (b) => {
          const t = performance.now();
          let accepted: ReturnType<typeof decodePacket> | null = null;
          try {
            accepted = decodePacket(b);
          } catch {}
          try {
            const res = await within(
              exec().infer(b),
              HANG_MS,
              `infer(${Buffer.from(b.subarray(0, 80)).toString("hex")})`,
            );
            expect(accepted).not.toBeNull();
            // The instance took what the executor took: a refusal only when the task asked for one.
            if (!res.message && !isEchoRefusal(res.error)) {
              throw new Error(`the instance refused a packet the executor accepted: ${res.error}`);
            }
            expect(res.sessionId).toBe(accepted!.sessionId);
            expect(res.seqNo).toBe(accepted!.seqNo);
            tally(SUITE, name, res.message ? "ok" : "refused", performance.now() - t);
          } catch (err) {
            if (err instanceof ExecutorError) throw new Error(`the instance failed (${err.message})`);
            if (!(err instanceof PacketError)) throw err;
            expect(accepted).toBeNull();
            tally(SUITE, name, "refused", performance.now() - t);
          }
        },
        n,
      );
    });
  inferEntry("Executor.infer (task channel)", () => executor, runs(1000));
  inferEntry("Executor.infer (HTTP)", () => httpExecutor, runs(300));

  test(`gRPC through the wire, grpc-js (fast path): ${runs(300)} packets, OK or INVALID_ARGUMENT`, async () => {
    const entry = "gRPC InferenceProxy/infer (grpc-js)";
    const client = grpcJsInferenceClient(address);
    try {
      await fuzz(
        entry,
        rpcData,
        async (b) => {
          const t = performance.now();
          try {
            await within(client.infer(b), HANG_MS, "grpc-js infer");
            tally(SUITE, entry, "ok", performance.now() - t);
          } catch (err) {
            const code = (err as ServiceError).code;
            if (code !== 3) throw new Error(`status ${code}: ${(err as Error).message}`);
            tally(SUITE, entry, "refused", performance.now() - t);
          }
        },
        runs(300),
      );
    } finally {
      client.close();
    }
  });

  test(`gRPC through the wire, Connect protocol over HTTP/1.1 (adapter): ${runs(200)} packets`, async () => {
    const entry = "Connect InferenceProxy/infer (HTTP/1.1)";
    const client = createClient(
      InferenceProxy,
      createConnectTransport({ baseUrl: `http://${address}`, httpVersion: "1.1", useBinaryFormat: true }),
    );
    await fuzz(
      entry,
      rpcData,
      async (b) => {
        const t = performance.now();
        try {
          await within(client.infer({ rpcData: b }), HANG_MS, "connect infer");
          tally(SUITE, entry, "ok", performance.now() - t);
        } catch (err) {
          const code = ConnectError.from(err).code;
          if (code !== Code.InvalidArgument) throw new Error(`code ${Code[code]}: ${(err as Error).message}`);
          tally(SUITE, entry, "refused", performance.now() - t);
        }
      },
      runs(200),
    );
  });

  test(`raw HTTP/2 gRPC calls with wrong framing: ${runs(300)} bodies, a status for each, never INTERNAL/UNKNOWN`, async () => {
    const entry = "raw HTTP/2 gRPC framing";
    const session = h2connect(`http://${address}`);
    session.on("error", () => {});
    const frame = (flag: number, declared: number, payload: Uint8Array) => {
      const out = Buffer.alloc(5 + payload.length);
      out[0] = flag;
      out.writeUInt32BE(declared >>> 0, 1);
      out.set(payload, 5);
      return out;
    };
    const message = rpcData.map((b) =>
      toBinary(InferenceMessageSchema, create(InferenceMessageSchema, { rpcData: b })),
    );
    const body = fc.oneof(
      { weight: 4, arbitrary: message.map((m) => frame(0, m.length, m)) },
      { weight: 1, arbitrary: fc.constant(Buffer.alloc(0)) },
      { weight: 1, arbitrary: fc.uint8Array({ maxLength: 4 }).map((b) => Buffer.from(b)) },
      { weight: 1, arbitrary: message.map((m) => frame(1, m.length, m)) },
      {
        weight: 1,
        arbitrary: fc
          .tuple(message, fc.integer({ min: -3, max: 3 }))
          .map(([m, d]) => frame(0, m.length + d, m)),
      },
      {
        weight: 1,
        arbitrary: fc
          .tuple(message, message)
          .map(([a, b]) => Buffer.concat([frame(0, a.length, a), frame(0, b.length, b)])),
      },
      { weight: 1, arbitrary: fc.uint8Array({ minLength: 5, maxLength: 50 }).map((b) => Buffer.from(b)) },
      { weight: 1, arbitrary: fc.uint8Array({ maxLength: 20 }).map((b) => frame(0, 0xffffffff, b)) },
    );
    const call = (payload: Buffer, contentType: string) =>
      new Promise<{ status: number; grpcStatus: string | undefined; message: string | undefined }>(
        (resolve, reject) => {
          const req = session.request({
            ":method": "POST",
            ":path": "/InferenceProxy/infer",
            "content-type": contentType,
            te: "trailers",
          });
          let status = 0;
          let grpcStatus: string | undefined;
          let message: string | undefined;
          req.on("response", (h) => {
            status = Number(h[":status"]);
            grpcStatus ??= h["grpc-status"] as string | undefined;
            message ??= h["grpc-message"] as string | undefined;
          });
          req.on("trailers", (h) => {
            grpcStatus ??= h["grpc-status"] as string | undefined;
            message ??= h["grpc-message"] as string | undefined;
          });
          req.on("data", () => {});
          req.on("end", () => resolve({ status, grpcStatus, message }));
          req.on("error", reject);
          req.end(payload);
        },
      );
    try {
      await fuzz(
        entry,
        fc.tuple(body, fc.constantFrom("application/grpc", "application/grpc+proto")),
        async ([payload, type]) => {
          const t = performance.now();
          const res = await within(
            call(payload, type),
            HANG_MS,
            `raw gRPC ${payload.subarray(0, 40).toString("hex")}`,
          );
          expect(res.status).toBe(200);
          expect(res.grpcStatus).toBeDefined();
          const code = Number(res.grpcStatus);
          // OK, INVALID_ARGUMENT, UNIMPLEMENTED for a call without exactly one message (the gRPC status
          // code guide's cardinality violation), INTERNAL only for a compressed message without
          // grpc-encoding (the guide's, and Connect's, answer); never UNKNOWN.
          const compressed = payload.length >= 5 && payload[0] === 1;
          const allowed = [Code.InvalidArgument, Code.Unimplemented, ...(compressed ? [Code.Internal] : [])];
          if (code !== 0 && !allowed.includes(code)) {
            throw new Error(
              `grpc-status ${code} (${res.message}) for ${payload.subarray(0, 60).toString("hex")}`,
            );
          }
          tally(SUITE, entry, code === 0 ? "ok" : `grpc ${Code[code]}`, performance.now() - t);
        },
        runs(300),
      );
    } finally {
      session.close();
    }
  });

  test(`Connect protocol over HTTP/1.1, raw bodies: ${runs(200)} requests, no 5xx but connect-es's own`, async () => {
    const entry = "Connect raw bodies (HTTP/1.1)";
    const message = rpcData.map((b) =>
      toBinary(InferenceMessageSchema, create(InferenceMessageSchema, { rpcData: b })),
    );
    const request = fc.oneof(
      {
        weight: 3,
        arbitrary: message.map((m) => ({ type: "application/proto", body: m as Uint8Array | string })),
      },
      {
        weight: 1,
        arbitrary: fc
          .uint8Array({ maxLength: 40 })
          .map((b) => ({ type: "application/proto", body: b as Uint8Array | string })),
      },
      {
        weight: 2,
        arbitrary: fc
          .oneof(
            rpcData.map((b) => JSON.stringify({ rpcData: Buffer.from(b).toString("base64") })),
            fc.jsonValue().map((v) => JSON.stringify(v)),
            fc.string(),
          )
          .map((body) => ({ type: "application/json", body: body as Uint8Array | string })),
      },
      {
        weight: 1,
        arbitrary: fc
          .constantFrom("text/plain", "application/xml", "")
          .map((type) => ({ type, body: "x" as Uint8Array | string })),
      },
    );
    await fuzz(
      entry,
      request,
      async ({ type, body }) => {
        const t = performance.now();
        const res = await within(
          fetch(`http://${address}/InferenceProxy/infer`, {
            method: "POST",
            headers: { "content-type": type },
            body: body as BodyInit,
          }),
          HANG_MS,
          "connect raw",
        );
        const text = await res.text();
        let parsesAsMessage = true;
        if (type === "application/proto") {
          try {
            fromBinary(InferenceMessageSchema, body as Uint8Array);
          } catch {
            parsesAsMessage = false;
          }
        }
        if (res.status >= 500) throw new Error(`${res.status} ${text.slice(0, 300)}`);
        // connect-es itself says 500 "internal" for these; connectHandler makes them the caller's mistake.
        if (!parsesAsMessage && res.status !== 400) throw new Error(`unparsable body answered ${res.status}`);
        tally(SUITE, entry, res.status, performance.now() - t);
      },
      runs(200),
    );
  });

  test("regressions: packets the fuzzer found the instance refusing, now INVALID_ARGUMENT naming the field", async () => {
    const packet = (fields: Partial<Omit<PacketFields, "files">>) =>
      toBinary(
        AIOSPacketSchema,
        create(AIOSPacketSchema, { sessionId: "s", seqNo: 1n, data: "{}", ts: 1, ...fields }),
      );
    // seq_no past 2^53 - 1 became another number on its way to the instance (which refused it).
    expect(() => decodePacket(packet({ seqNo: 2n ** 53n }))).toThrow(
      "seq_no must be at most 9007199254740991 (2^53 - 1, exact as a JSON number)",
    );
    expect(decodePacket(packet({ seqNo: 2n ** 53n - 1n })).seqNo).toBe(2n ** 53n - 1n);
    // data nesting 64 levels made a task body of 65, which the instance refused as too deep.
    const nested = (n: number) => `${"[".repeat(n)}${"]".repeat(n)}`;
    expect(() => decodePacket(packet({ data: nested(64) }))).toThrow(
      "data nests more than 63 levels of arrays and objects",
    );
    const res = await executor.infer(packet({ data: nested(63) }));
    expect(res.message).toBe(true);
    // Over gRPC: INVALID_ARGUMENT with the field's message.
    const client = grpcJsInferenceClient(address);
    try {
      const err = (await client
        .infer(packet({ seqNo: 2n ** 64n - 1n }))
        .catch((e: unknown) => e)) as ServiceError;
      expect(err.code).toBe(3);
      expect(err.details).toStartWith("seq_no must be at most");
    } finally {
      client.close();
    }
    // A call without a message, or with two, is a cardinality violation; a cut-short one INVALID_ARGUMENT.
    const m = toBinary(InferenceMessageSchema, create(InferenceMessageSchema, { rpcData: packet({}) }));
    const env = (length: number, payload: Uint8Array) => {
      const out = Buffer.alloc(5 + payload.length);
      out.writeUInt32BE(length, 1);
      out.set(payload, 5);
      return out;
    };
    expect(framingError(Buffer.alloc(0))?.code).toBe(Code.Unimplemented);
    expect(framingError(Buffer.concat([env(m.length, m), env(m.length, m)]))?.code).toBe(Code.Unimplemented);
    expect(framingError(env(m.length + 1, m))?.code).toBe(Code.InvalidArgument);
    expect(framingError(Buffer.from([0, 0]))?.code).toBe(Code.InvalidArgument);
    expect(framingError(env(m.length, m))).toBeNull();
  });

  test("toConnectError maps a PacketError to INVALID_ARGUMENT", () => {
    const mapped = toConnectError(new PacketError("seq_no", "is required")) as ConnectError;
    expect(mapped.code).toBe(Code.InvalidArgument);
  });
});
