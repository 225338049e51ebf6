/**
 * The task inside `InferenceMessage.rpc_data`: decoding and the checks block-runtime.md makes
 * required (`session_id`, `seq_no`, `data` as JSON, `ts`), each failure naming its field, and the JSON
 * form the load balancer policy receives as `packet`.
 */
import { fromBinary } from "@bufbuild/protobuf";
import { type AIOSPacket, AIOSPacketSchema } from "../gen/payload_pb.ts";
import { checkDepth, DEFAULT_MAX_DEPTH } from "../http/errors.ts";

/** The largest seq_no: tasks travel to instances as JSON, where a larger number loses its last digits. */
export const MAX_SEQ_NO = BigInt(Number.MAX_SAFE_INTEGER);

/**
 * The deepest `data` accepted: the task body the executor sends an instance holds it one level down,
 * and instances refuse bodies nesting deeper than DEFAULT_MAX_DEPTH.
 */
export const MAX_DATA_DEPTH = DEFAULT_MAX_DEPTH - 1;

/**
 * A task the block cannot accept; `field` names what is wrong (an InvalidArgument on the wire). The
 * message has no ':' because connect-node percent-encodes it in grpc-message and grpc-js shows it raw.
 */
export class PacketError extends Error {
  override readonly name = "PacketError";
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(`${field} ${message}`);
  }
}

export const decodePacket = (rpcData: Uint8Array): AIOSPacket => {
  if (rpcData.byteLength === 0)
    throw new PacketError("rpc_data", "is empty; it must hold a serialized AIOSPacket");
  let packet: AIOSPacket;
  try {
    packet = fromBinary(AIOSPacketSchema, rpcData);
  } catch (err) {
    throw new PacketError(
      "rpc_data",
      `is not a serialized AIOSPacket (${err instanceof Error ? err.message : err})`,
    );
  }
  if (packet.sessionId === "") throw new PacketError("session_id", "is required");
  // proto3 cannot tell 0 from unset: a task's first sequence number is 1, as in the specification.
  if (packet.seqNo === 0n)
    throw new PacketError("seq_no", "is required (a task's sequence number starts at 1)");
  if (packet.seqNo > MAX_SEQ_NO) {
    throw new PacketError("seq_no", `must be at most ${MAX_SEQ_NO} (2^53 - 1, exact as a JSON number)`);
  }
  if (packet.data === "") throw new PacketError("data", "is required (the task's input as JSON)");
  let data: unknown;
  try {
    data = JSON.parse(packet.data);
  } catch {
    throw new PacketError("data", "is not valid JSON");
  }
  try {
    checkDepth(data, MAX_DATA_DEPTH);
  } catch {
    throw new PacketError("data", `nests more than ${MAX_DATA_DEPTH} levels of arrays and objects`);
  }
  if (!(packet.ts > 0) || !Number.isFinite(packet.ts)) {
    throw new PacketError("ts", "is required (the task's creation time, UNIX epoch seconds)");
  }
  return packet;
};

/** What the load balancer policy sees of a packet: every field but the bulk bytes. */
export const packetForPolicy = (packet: AIOSPacket) => ({
  session_id: packet.sessionId,
  seq_no: Number(packet.seqNo),
  data: packet.data,
  ts: packet.ts,
  output_ptr: packet.outputPtr,
  frame_ptr_bytes: packet.framePtr.byteLength,
  files: packet.files.map((f) => ({ metadata: f.metadata, size: f.fileData.byteLength })),
});
