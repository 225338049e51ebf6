/** Shared by the tests of the sentiment example (examples/sentiment): inputs and packets. */
import { create, toBinary } from "@bufbuild/protobuf";
import { AIOSPacketSchema } from "../../src/gen/payload_pb.ts";

/** Sentences absent from the training corpus, with their expected label (each above 0.85 confidence). */
export const HELD_OUT: readonly (readonly [string, "positive" | "negative"])[] = [
  ["A wonderful hotel with a stunning view", "positive"],
  ["Great phone, I love the gorgeous screen", "positive"],
  ["Fast delivery and excellent quality, very happy", "positive"],
  ["I enjoyed the lovely food and the friendly service", "positive"],
  ["It is a comfortable and reliable car", "positive"],
  ["Highly recommended, a delightful experience", "positive"],
  ["Terrible app, it keeps crashing and support is useless", "negative"],
  ["The delivery was late and the box was damaged", "negative"],
  ["Rude waiter, cold soup and a dirty table", "negative"],
  ["Boring plot and awful acting, a waste of time", "negative"],
  ["Not worth it, the speaker broke after a week", "negative"],
  ["The software is buggy and slow", "negative"],
];

/** A serialized AIOSPacket whose data is `{"text": text}`, as InferenceMessage.rpc_data. */
export const textPacket = (text: string, sessionId: string, seqNo = 1): Uint8Array =>
  toBinary(
    AIOSPacketSchema,
    create(AIOSPacketSchema, {
      sessionId,
      seqNo: BigInt(seqNo),
      data: JSON.stringify({ text }),
      ts: Date.now() / 1000,
    }),
  );
