/**
 * `aios up` cold start (issue 7): from spawning `bun src/cli/main.ts up` to the first successful
 * inference on the demo block over gRPC, with a fresh data directory (PGlite created and migrated,
 * built-in policies admitted, the demo block allocated and started) and with a reused one (the block
 * resumed). Rounds alternate fresh and reused so both see the same machine load.
 * Targets: under 10 s fresh, under 5 s reused.
 *
 * A fresh data directory starts from the PGlite template (src/store/driver/pglite-template.ts) that the
 * install's first database left in node_modules/.cache/aios; `first install` is a fresh directory with
 * the template off (AIOS_PGLITE_TEMPLATE=off): initdb, as the very first `npm start` pays it.
 *
 * Columns: `listening` is when `aios up` printed its listening lines (everything ready, the demo block
 * serving); `first inference` adds the lookup of the block and one InferenceProxy.infer.
 *
 * Environment: BENCH_ROUNDS (default 3 per setting).
 *   npx bun run test/bench/up.ts
 */
import { rmSync } from "node:fs";
import { create, toBinary } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { InferenceProxy } from "../../src/gen/inference_pb.ts";
import { AIOSPacketSchema } from "../../src/gen/payload_pb.ts";
import { freshDataDir, startAiosUp } from "../support/aios-up.ts";
import { intEnv } from "./support/env.ts";

const ROUNDS = intEnv("BENCH_ROUNDS", 3);

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
};

interface Sample {
  listening: number;
  firstInference: number;
}

const once = async (dataDir: string, env?: Record<string, string>): Promise<Sample> => {
  const began = performance.now();
  const up = await startAiosUp({ dataDir, ...(env ? { env } : {}) });
  try {
    const listening = performance.now() - began;
    const client = createClient(InferenceProxy, createGrpcTransport({ baseUrl: up.grpcUrl }));
    const packet = create(AIOSPacketSchema, {
      sessionId: "bench",
      seqNo: 1n,
      data: JSON.stringify({ text: "I love this phone" }),
      ts: Date.now() / 1000,
    });
    // The admin token aios up saved (every call needs a token).
    const res = await client.infer({ rpcData: toBinary(AIOSPacketSchema, packet) }, { headers: up.auth });
    if (!res.message) throw new Error("the first inference did not succeed");
    const sample = { listening, firstInference: performance.now() - began };
    const code = await up.stop();
    if (code !== 0) throw new Error(`aios up exited with ${code}`);
    return sample;
  } catch (err) {
    await up.stop();
    throw err;
  }
};

const samples: Record<"fresh" | "first install" | "reused", Sample[]> = {
  fresh: [],
  "first install": [],
  reused: [],
};
const reusedDir = freshDataDir();
// The reused directory's first start is its creation: not measured.
await once(reusedDir);
for (let round = 0; round < ROUNDS; round++) {
  const dir = freshDataDir();
  samples.fresh.push(await once(dir));
  rmSync(dir, { recursive: true, force: true });
  const bare = freshDataDir();
  samples["first install"].push(await once(bare, { AIOS_PGLITE_TEMPLATE: "off" }));
  rmSync(bare, { recursive: true, force: true });
  samples.reused.push(await once(reusedDir));
  console.error(`round ${round + 1}/${ROUNDS} done`);
}
rmSync(reusedDir, { recursive: true, force: true });

const s = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
console.log(`aios up cold start to first inference (median of ${ROUNDS})`);
console.log("data dir       listening   first inference   target");
for (const [name, target] of [
  ["fresh", 10_000],
  ["first install", 10_000],
  ["reused", 5_000],
] as const) {
  const list = samples[name];
  const first = median(list.map((x) => x.firstInference));
  console.log(
    `${name.padEnd(14)} ${s(median(list.map((x) => x.listening))).padEnd(11)} ${s(first).padEnd(17)} < ${s(target)} ${first < target ? "met" : "MISSED"}`,
  );
}
console.log(
  `ratio reused/fresh: ${(median(samples.reused.map((x) => x.firstInference)) / median(samples.fresh.map((x) => x.firstInference))).toFixed(2)}`,
);
