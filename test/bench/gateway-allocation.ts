/**
 * Gateway allocation benchmark (issue 6): time from a block specification to the allocation decision
 * (the cluster allocator's `post_dry_run` pick) over 1, 10 and 100 candidate clusters, each a real
 * cluster controller in this process on its own port (sharing one store), answering `dry_run` with the
 * block's resourceAllocator policy. Dry runs at once (aios) and one at a time (the original system),
 * alternating, side by side.
 *
 * Environment: BENCH_ROUNDS (default 5), BENCH_CLUSTERS (default 1,10,100).
 *   npx bun run test/bench/gateway-allocation.ts
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startRegistry } from "../../src/cli/serve.ts";
import { type RunningController, startController } from "../../src/controller/serve.ts";
import { allocateBlock } from "../../src/gateway/allocation.ts";
import { blockCreateIR } from "../../src/gateway/ir.ts";
import { parseBlockSpec } from "../../src/gateway/spec.ts";
import { installBuiltinPolicies } from "../../src/policy/builtins.ts";
import { PolicySet } from "../../src/policy/set.ts";
import { PolicyStore } from "../../src/policy/store.ts";
import { RegistryClient } from "../../src/registry/client.ts";
import { openStore } from "../../src/store/index.ts";
import { intEnv } from "./support/env.ts";

const ROUNDS = intEnv("BENCH_ROUNDS", 5);
const SIZES = (process.env.BENCH_CLUSTERS ?? "1,10,100").split(",").map(Number);

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
};

/** Thrown once the decision is made: the bench stops before any instance starts. */
class Decided extends Error {}

const work = mkdtempSync(join(tmpdir(), "aios-bench-gateway-"));
const registry = await startRegistry({ host: "127.0.0.1", port: 0, metricsPort: 0 });
await installBuiltinPolicies(new PolicyStore(registry.store));
const client = new RegistryClient(registry.listeners[0]!.url);
const shared = await openStore({});
const controllers: RunningController[] = [];

try {
  const maxClusters = Math.max(...SIZES);
  for (let i = 0; i < maxClusters; i++) {
    const id = `bench-c${String(i).padStart(3, "0")}`;
    const gpus = 1 + (i % 8);
    await client.createCluster({
      id,
      status: "live",
      reputation: 90,
      tags: [`size-${gpus}`],
      nodes: {
        count: 1,
        nodeData: [
          {
            id: `${id}-n0`,
            gpus: {
              count: gpus,
              memory: gpus * 16384,
              gpus: Array.from({ length: gpus }, () => ({ memory: 16384 })),
            },
          },
        ],
      },
    });
    controllers.push(
      await startController({
        clusterId: id,
        port: 0,
        registryUrl: client.baseUrl,
        store: shared,
        runDir: join(work, id),
        scanIntervalMs: 3_600_000,
      }),
    );
  }
  console.log(`${maxClusters} controllers up`);

  const values = parseBlockSpec({
    body: {
      spec: {
        values: {
          blockComponentURI: "model.bench:1.0.0",
          minInstances: 1,
          maxInstances: 4,
          policyRulesSpec: [
            {
              values: {
                name: "clusterAllocator",
                policyRuleURI: "policy.clusterAllocator.highest-score:v0.0.1",
              },
            },
            {
              values: {
                name: "resourceAllocator",
                policyRuleURI: "policy.resourceAllocator.gpu-free-memory:v0.0.1",
                parameters: { gpus: 1, gpu_memory_per_instance: 16000 },
              },
            },
          ],
        },
      },
    },
  });

  const policies = new PolicySet((uri) => client.compiledPolicy(uri));
  const decide = async (clusters: number, sequential: boolean): Promise<number> => {
    const block = blockCreateIR(values, { runtime: { command: ["true"] } });
    const limit = `bench-c${String(clusters).padStart(3, "0")}`;
    // Candidates: the first `clusters` controllers, by the filter on their ids.
    block.policies.clusterAllocator = {
      ...block.policies.clusterAllocator!,
      parameters: {
        filter: {
          clusterQuery: {
            logicalOperator: "AND",
            conditions: [{ variable: "id", operator: "<", value: limit }],
          },
        },
      },
    };
    const t0 = performance.now();
    try {
      await allocateBlock(
        {
          registry: client,
          policies,
          sequentialDryRuns: sequential,
          dryRunTimeoutMs: 30_000,
          async record(step) {
            if (step.step === "dry_run" && !step.ok)
              throw new Error(`dry runs failed: ${JSON.stringify(step.detail)}`);
            if (step.step === "post_dry_run") throw new Decided();
          },
        },
        block,
      );
    } catch (err) {
      if (!(err instanceof Decided)) throw err;
    }
    return performance.now() - t0;
  };

  const rows: string[] = [];
  for (const n of SIZES) {
    await decide(n, false); // warm-up: policies compiled, connections open
    const times = { parallel: [] as number[], sequential: [] as number[] };
    for (let r = 0; r < ROUNDS; r++) {
      times.parallel.push(await decide(n, false));
      times.sequential.push(await decide(n, true));
    }
    const p = median(times.parallel);
    const s = median(times.sequential);
    rows.push(
      `${String(n).padEnd(10)}${p.toFixed(1).padStart(14)}${s.toFixed(1).padStart(16)}${(s / p).toFixed(2).padStart(12)}x`,
    );
  }
  console.log(`\ntime to the allocation decision (median of ${ROUNDS} rounds, ms)`);
  console.log(`clusters  dry runs at once   one at a time   speed-up`);
  for (const r of rows) console.log(r);
  await policies.close();
} finally {
  for (const c of controllers.splice(0)) await c.stop().catch(() => {});
  await shared.close();
  await registry.stop();
  rmSync(work, { recursive: true, force: true });
}
