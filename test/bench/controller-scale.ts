/**
 * Cluster controller scale-up benchmark (issue 5): a block of the sentiment example (real processes on
 * the process runtime) scaled from 1 to 10 instances with one `scale` action; measured is the time
 * from the request until all 10 instances have answered inference through the block's executor
 * (each answer names its instance). Side by side in one run: the controller starting instances one
 * at a time (startConcurrency 1) and several at once (4, the default), alternating rounds.
 *
 * Columns: `scale` is the `/executeAction` round trip (the instances are healthy and in the mapper when
 * it answers); `all serve` adds the time until every instance has served a request.
 *
 * Environment: BENCH_ROUNDS (default 3 per setting), BENCH_INSTANCES (default 10).
 *   npx bun run test/bench/controller-scale.ts
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create, toBinary } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { startRegistry } from "../../src/cli/serve.ts";
import { type RunningController, startController } from "../../src/controller/serve.ts";
import { InferenceProxy } from "../../src/gen/inference_pb.ts";
import { AIOSPacketSchema } from "../../src/gen/payload_pb.ts";
import { installBuiltinPolicies } from "../../src/policy/builtins.ts";
import { PolicyStore } from "../../src/policy/store.ts";
import { intEnv } from "./support/env.ts";

const ROUNDS = intEnv("BENCH_ROUNDS", 3);
const TARGET = intEnv("BENCH_INSTANCES", 10);
const SETTINGS = [1, 4];

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
};

const post = async (url: string, body: unknown) => {
  const res = await fetch(url, {
    method: "POST",
    body: JSON.stringify(body),
    headers: { "content-type": "application/json" },
  });
  const json = (await res.json()) as Record<string, unknown>;
  if (!res.ok) throw new Error(`${url}: HTTP ${res.status} ${JSON.stringify(json)}`);
  return json;
};

const work = mkdtempSync(join(tmpdir(), "aios-bench-scale-"));
const registry = await startRegistry({ host: "127.0.0.1", port: 0, metricsPort: 0 });
await installBuiltinPolicies(new PolicyStore(registry.store));
const registryUrl = registry.listeners[0]!.url;
const controllers: RunningController[] = [];

const stopAll = async () => {
  for (const c of controllers.splice(0)) await c.stopAll().catch(() => {});
  await registry.stop();
  rmSync(work, { recursive: true, force: true });
};
process.on("SIGINT", () => void stopAll().then(() => process.exit(130)));

try {
  const setups = [];
  for (const concurrency of SETTINGS) {
    const ctl = await startController({
      clusterId: `bench-scale-${concurrency}`,
      port: 0,
      registryUrl,
      runDir: join(work, `run-${concurrency}`),
      startConcurrency: concurrency,
      scanIntervalMs: 60_000,
    });
    controllers.push(ctl);
    const blockId = `scale-${concurrency}`;
    const block = await post(`${ctl.url}/executeAction`, {
      action: "create_block",
      data: {
        id: blockId,
        minInstances: 1,
        maxInstances: TARGET,
        runtime: { command: [process.execPath, "examples/sentiment/instance.ts"] },
        policies: { loadBalancer: { policyRuleURI: "policy.loadBalancer.roundrobin:v0.0.1" } },
      },
    });
    const grpc = (block.services as { urls: { grpc: string } }).urls.grpc;
    setups.push({
      concurrency,
      ctl,
      blockId,
      client: createClient(InferenceProxy, createGrpcTransport({ baseUrl: grpc })),
    });
  }
  console.log(`controllers up; scaling 1 -> ${TARGET}, ${ROUNDS} rounds per setting, alternating`);

  let seq = 0n;
  const results = new Map<number, { scale: number[]; all: number[] }>(
    SETTINGS.map((c) => [c, { scale: [], all: [] }]),
  );
  for (let round = 0; round < ROUNDS; round++) {
    for (const s of setups) {
      const t0 = performance.now();
      await post(`${s.ctl.url}/executeAction`, {
        action: "scale",
        data: { block_id: s.blockId, operation: "upscale", instances_count: TARGET - 1 },
      });
      const tScale = performance.now() - t0;
      const seen = new Set<string>();
      while (seen.size < TARGET) {
        const answers = await Promise.all(
          Array.from({ length: TARGET }, () => {
            seq += 1n;
            const rpcData = toBinary(
              AIOSPacketSchema,
              create(AIOSPacketSchema, {
                sessionId: `b-${seq}`,
                seqNo: seq,
                data: '{"text":"a fine film"}',
                ts: Date.now() / 1000,
              }),
            );
            return s.client.infer({ rpcData });
          }),
        );
        for (const a of answers) if (a.message) seen.add(a.instanceId);
        if (performance.now() - t0 > 120_000) throw new Error("instances did not all serve within 120 s");
      }
      const tAll = performance.now() - t0;
      const r = results.get(s.concurrency)!;
      r.scale.push(tScale);
      r.all.push(tAll);
      console.log(
        `  round ${round + 1} concurrency ${s.concurrency}: scale ${tScale.toFixed(0)} ms, all serve ${tAll.toFixed(0)} ms`,
      );
      const doc = (await (await fetch(`${s.ctl.url}/blocks/${s.blockId}`)).json()) as {
        instances: { instance_id: string }[];
      };
      await post(`${s.ctl.url}/executeAction`, {
        action: "scale",
        data: {
          block_id: s.blockId,
          operation: "downscale",
          instances_list: doc.instances.slice(1).map((i) => i.instance_id),
        },
      });
    }
  }

  const base = results.get(1)!;
  console.log(`\nscale 1 -> ${TARGET} instances (median of ${ROUNDS} rounds)`);
  console.log("start concurrency   scale ms   all serve ms   per instance ms   vs one at a time");
  for (const c of SETTINGS) {
    const r = results.get(c)!;
    const all = median(r.all);
    console.log(
      `${String(c).padEnd(20)}${median(r.scale).toFixed(0).padStart(8)}${all.toFixed(0).padStart(15)}${(all / (TARGET - 1)).toFixed(0).padStart(18)}${(median(base.all) / all).toFixed(2).padStart(18)}x`,
    );
  }
} finally {
  await stopAll();
}
