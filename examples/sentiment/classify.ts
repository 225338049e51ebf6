#!/usr/bin/env bun
/**
 * A grpcurl-like client of a block's inference API for the sentiment example: each TEXT goes as one
 * task (`{"text": TEXT}` in an AIOSPacket) to InferenceProxy.infer, and each answer is printed as one
 * JSON line `{"text", "message", "instance_id", "result", "error"}`.
 *
 *   bun examples/sentiment/classify.ts [--target URL] [--protocol grpc|connect|grpc-web] [--token T] TEXT...
 *
 * --target defaults to $AIOS_BLOCK_URL, else http://127.0.0.1:50051. --token (default $AIOS_TOKEN) is
 * sent as `authorization: Bearer <token>` (a token with infer:<block> or infer:*; none is needed when
 * the block allows anonymous calls). Exits 1 when an RPC fails (the gRPC code and message go to
 * stderr), 2 on a usage mistake.
 */
import { parseArgs } from "node:util";
import { create, toBinary } from "@bufbuild/protobuf";
import { ConnectError, createClient, type Transport } from "@connectrpc/connect";
import {
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
} from "@connectrpc/connect-node";
import { InferenceProxy } from "../../src/gen/inference_pb.ts";
import { AIOSPacketSchema } from "../../src/gen/payload_pb.ts";

const usage =
  "usage: bun examples/sentiment/classify.ts [--target URL] [--protocol grpc|connect|grpc-web] [--token T] TEXT...";

let parsed: ReturnType<typeof parseArgs<{ options: typeof options; allowPositionals: true }>>;
const options = {
  target: { type: "string" },
  protocol: { type: "string", default: "grpc" },
  token: { type: "string" },
  help: { type: "boolean", short: "h" },
} as const;
try {
  parsed = parseArgs({ options, allowPositionals: true });
} catch (err) {
  console.error(`${err instanceof Error ? err.message : String(err)}\n${usage}`);
  process.exit(2);
}
const { values, positionals: texts } = parsed;
if (values.help) {
  console.log(usage);
  process.exit(0);
}
if (texts.length === 0) {
  console.error(`no TEXT given\n${usage}`);
  process.exit(2);
}

const baseUrl = values.target ?? process.env.AIOS_BLOCK_URL ?? "http://127.0.0.1:50051";
// The block serves gRPC over cleartext HTTP/2, so every protocol goes over HTTP/2.
const transports: Record<string, () => Transport> = {
  grpc: () => createGrpcTransport({ baseUrl }),
  connect: () => createConnectTransport({ baseUrl, httpVersion: "2" }),
  "grpc-web": () => createGrpcWebTransport({ baseUrl, httpVersion: "2" }),
};
const transport = transports[values.protocol];
if (!transport) {
  console.error(`--protocol must be grpc, connect or grpc-web, got ${values.protocol}\n${usage}`);
  process.exit(2);
}
const client = createClient(InferenceProxy, transport());
const token = values.token ?? process.env.AIOS_TOKEN;
const headers = token ? { authorization: `Bearer ${token}` } : undefined;

// A fresh session per run: an instance answers a repeated (session_id, seq_no) with its first outcome.
const session = `classify-${crypto.randomUUID()}`;
let failed = false;
for (const [i, text] of texts.entries()) {
  const packet = create(AIOSPacketSchema, {
    sessionId: session,
    seqNo: BigInt(i + 1),
    data: JSON.stringify({ text }),
    ts: Date.now() / 1000,
  });
  try {
    const res = await client.infer({ rpcData: toBinary(AIOSPacketSchema, packet) }, { headers });
    console.log(
      JSON.stringify({
        text,
        message: res.message,
        instance_id: res.instanceId,
        result: res.result === "" ? null : JSON.parse(res.result),
        error: res.error,
      }),
    );
  } catch (err) {
    failed = true;
    const e = ConnectError.from(err);
    console.error(`${JSON.stringify(text)}: ${e.code} ${e.rawMessage}`);
  }
}
process.exit(failed ? 1 : 0);
