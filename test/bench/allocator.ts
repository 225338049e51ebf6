/**
 * Resource allocator benchmark: allocation requests over WebSocket with 1,000 and 10,000 registered
 * clusters, the filter path and the search path side by side in one run.
 *
 * Setup per backend (PGlite in memory always; PostgreSQL too when DATABASE_URL is set) and per size:
 * `clusters` and `cluster_metrics` emptied and filled straight through the store with generated
 * documents shaped like the cluster-controller specification's cluster (2-8 nodes of 0-8 GPUs of one
 * model, config with urlMap, tags, clusterMetadata; about 4-9 kB each) and their metrics documents
 * (test/allocator/fixtures.ts, seeded: the same documents on every run); the built-in policies stored;
 * on Postgres the two tables analyzed (as autovacuum would after the load); one allocator server
 * (`startAllocator`, default policy workers) on a free port in this process. PGlite runs no
 * autovacuum, and its planner scans the table for these filters either way.
 *
 * Requests (the built-in `policy.allocator.most-free-gpu:v0.0.1`, inputs {"gpus": 1,
 * "min_gpu_free_memory": 4000}):
 *  - filter: the block specification's filter format, rotating over 30 vendor x region pairs:
 *    clusterQuery vendor ==, regionId ==, gpus.count >= 8, status == live; clusterMetricsQuery
 *    cluster.vcpu.load_15m < 12, cluster.gpu.totalFreeMem > 9000. About 1% of the clusters match, so
 *    the candidates grow with the registry (the `cand` column: mean candidates per request);
 *  - search: full-text queries rotating over five ("vision A100", "llm H100 us-east", ...), the
 *    default limit of 50 candidates; every cluster holding any word is ranked, so the ranking work
 *    grows with the registry while the candidates do not.
 * Each request: parse, candidates and their metrics from the store, the policy in a worker over
 * them, the answer. The load generator (WebSocket clients, closed loop: each connection sends its next
 * request when its answer came) runs in this process too, on the server's thread.
 *
 * Per backend, size and level of requests in flight (1 and 8 connections): a warm-up, then
 * BENCH_ROUNDS rounds alternating the paths (BENCH_ROUND_MS each), so noise hits both alike. The
 * table shows per path the median over rounds of requests/s, p50 and p99 latency (nearest rank), and
 * the search/filter ratios of p50 and of throughput (median of the per-round pairs).
 *
 * Flags and environment: `--quick` or BENCH_QUICK=1 (2 rounds of 700 ms; Postgres with 1,000
 * clusters only), BENCH_ROUNDS (default 3), BENCH_ROUND_MS (default 1200), BENCH_SIZES (default
 * 1000,10000), DATABASE_URL. A full run with Postgres takes about 2 minutes, a third of it filling
 * the tables; --quick about 1 minute.
 *   npx bun run test/bench/allocator.ts [--quick]
 */

import { parseRequest } from "../../src/allocator/protocol.ts";
import { type RunningAllocator, startAllocator } from "../../src/allocator/serve.ts";
import { installBuiltinPolicies } from "../../src/policy/builtins.ts";
import { PolicyStore } from "../../src/policy/store.ts";
import { openPostgres } from "../../src/store/driver/postgres.ts";
import { openStore, type Store, type StoreConfig } from "../../src/store/index.ts";
import { AllocatorClient, seedClusters } from "../allocator/fixtures.ts";
import { intEnv } from "./support/env.ts";

const quick = process.argv.includes("--quick") || process.env.BENCH_QUICK === "1";
const ROUNDS = intEnv("BENCH_ROUNDS", quick ? 2 : 3);
const ROUND_MS = intEnv("BENCH_ROUND_MS", quick ? 700 : 1200);
const WARMUP_MS = quick ? 300 : 600;
const SIZES = (process.env.BENCH_SIZES ?? "1000,10000").split(",").map((s) => {
  const n = Number(s.trim());
  if (!Number.isInteger(n) || n <= 0) throw new Error(`BENCH_SIZES: '${s}' is not a positive integer`);
  return n;
});
const LEVELS = [1, 8];
const DATABASE_URL = process.env.DATABASE_URL || undefined;
const POLICY = "policy.allocator.most-free-gpu:v0.0.1";

const VENDORS = ["dma-bangalore", "cloudworks", "northwind", "aurora-compute", "helix"];
const REGIONS = ["us-west-2", "us-east-1", "eu-central-1", "eu-west-1", "ap-south-1", "ap-northeast-1"];
const QUERIES = [
  "vision A100",
  "llm H100 us-east",
  "speech recognition eu",
  "recommendation embedding L4",
  "batch scoring T4 ap",
];
const INPUTS = { gpus: 1, min_gpu_free_memory: 4000 };

const base = { adhoc: true, policy_rule_uri: POLICY, inputs: INPUTS };
const filterRequest = (i: number) => {
  const vendor = VENDORS[i % VENDORS.length]!;
  const region = REGIONS[Math.floor(i / VENDORS.length) % REGIONS.length]!;
  return {
    ...base,
    filter: {
      clusterQuery: {
        logicalOperator: "AND",
        conditions: [
          { variable: "clusterMetadata.vendor", operator: "==", value: vendor },
          { variable: "regionId", operator: "==", value: region },
          { variable: "gpus.count", operator: ">=", value: "8" },
          { variable: "status", operator: "==", value: "live" },
        ],
      },
      clusterMetricsQuery: {
        logicalOperator: "AND",
        conditions: [
          { variable: "cluster.vcpu.load_15m", operator: "<", value: "12" },
          { variable: "cluster.gpu.totalFreeMem", operator: ">", value: "9000" },
        ],
      },
    },
  };
};
const searchRequest = (i: number) => ({ ...base, search: { query: QUERIES[i % QUERIES.length]! } });

interface Path {
  name: "filter" | "search";
  request(i: number): unknown;
  /** The distinct requests, rotated through. */
  variants: number;
}
const PATHS: Path[] = [
  { name: "filter", request: filterRequest, variants: VENDORS.length * REGIONS.length },
  { name: "search", request: searchRequest, variants: QUERIES.length },
];

interface Round {
  rps: number;
  p50: number;
  p99: number;
  n: number;
  errors: number;
}

const quantile = (sorted: Float64Array, q: number) =>
  sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] ?? Number.NaN;
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0
    ? Number.NaN
    : s.length % 2
      ? s[(s.length - 1) / 2]!
      : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

/** Closed loop over `clients` for `ms`: each sends its next request when the last one was answered. */
const runLoad = async (
  clients: AllocatorClient[],
  path: Path,
  ms: number,
  firstErrors: string[],
): Promise<Round> => {
  const lat: number[] = [];
  let errors = 0;
  let seq = 0;
  const end = performance.now() + ms;
  const start = performance.now();
  await Promise.all(
    clients.map(async (c) => {
      while (performance.now() < end) {
        const req = path.request(seq++);
        const t = performance.now();
        const answer = await c.request(req);
        lat.push(performance.now() - t);
        if (answer.error !== undefined) {
          errors++;
          if (firstErrors.length < 3)
            firstErrors.push(`${path.name}: ${JSON.stringify(answer.error).slice(0, 200)}`);
        }
      }
    }),
  );
  const seconds = (performance.now() - start) / 1000;
  const sorted = Float64Array.from(lat).sort();
  return {
    rps: lat.length / seconds,
    p50: quantile(sorted, 0.5),
    p99: quantile(sorted, 0.99),
    n: lat.length,
    errors,
  };
};

/** Mean candidates per request of a path, asked of the allocator directly (no policy run). */
const meanCandidates = async (server: RunningAllocator, path: Path): Promise<number> => {
  let total = 0;
  for (let i = 0; i < path.variants; i++) {
    try {
      total += (await server.allocator.candidates(parseRequest(JSON.stringify(path.request(i))))).length;
    } catch {
      // no candidates: counts as zero
    }
  }
  return total / path.variants;
};

interface Row {
  backend: string;
  size: number;
  level: number;
  path: Path["name"];
  cand: number;
  rounds: Round[];
}

const rows: Row[] = [];
const firstErrors: string[] = [];
const t0 = performance.now();
const backends: [string, StoreConfig][] = [
  ["pglite", {}],
  ...(DATABASE_URL ? [["postgres", { databaseUrl: DATABASE_URL }] as [string, StoreConfig]] : []),
];

for (const [backend, config] of backends) {
  const store: Store = await openStore(config);
  await installBuiltinPolicies(new PolicyStore(store));
  try {
    for (const size of SIZES) {
      if (quick && backend === "postgres" && size > 1000) continue;
      const seeded = performance.now();
      await seedClusters(store, size, { concurrency: backend === "postgres" ? 32 : 8 });
      if (DATABASE_URL && backend === "postgres") {
        // What autovacuum does soon after a bulk load; without statistics the planner scans the table.
        const driver = await openPostgres(DATABASE_URL, {}, 1);
        await driver.query("ANALYZE clusters", []);
        await driver.query("ANALYZE cluster_metrics", []);
        await driver.close();
      }
      console.error(
        `${backend}: ${size} clusters stored in ${((performance.now() - seeded) / 1000).toFixed(1)} s`,
      );
      const server = await startAllocator({ store, port: 0 });
      try {
        const cand = new Map<string, number>();
        for (const p of PATHS) cand.set(p.name, await meanCandidates(server, p));
        for (const level of LEVELS) {
          const clients = await Promise.all(
            Array.from({ length: level }, () => AllocatorClient.connect(server.url)),
          );
          for (const p of PATHS) await runLoad(clients, p, WARMUP_MS, []);
          const perPath = PATHS.map((p) => ({ path: p, rounds: [] as Round[] }));
          for (let r = 0; r < ROUNDS; r++) {
            for (const pp of perPath) pp.rounds.push(await runLoad(clients, pp.path, ROUND_MS, firstErrors));
          }
          for (const pp of perPath) {
            rows.push({
              backend,
              size,
              level,
              path: pp.path.name,
              cand: cand.get(pp.path.name)!,
              rounds: pp.rounds,
            });
          }
          for (const c of clients) c.close();
        }
      } finally {
        await server.stop();
      }
      console.error(`${backend} ${size}: done (${Math.round((performance.now() - t0) / 1000)} s)`);
    }
  } finally {
    await store.collection("clusters").clear();
    await store.collection("cluster_metrics").clear();
    await store.close();
  }
}

const col = (s: string, w: number) => s.padStart(w);
const num = (x: number, digits: number, w: number) => col(Number.isFinite(x) ? x.toFixed(digits) : "-", w);
console.log(
  `\nresource allocator: ${ROUNDS} rounds of ${ROUND_MS} ms per path, alternating; medians over rounds; policy ${POLICY}`,
);
console.log(
  `${"backend".padEnd(10)}${col("clusters", 9)}${col("in flight", 10)}  ${"path".padEnd(8)}${col("cand", 6)}` +
    `${col("req/s", 8)}${col("p50 ms", 8)}${col("p99 ms", 8)}${col("errors", 7)}${col("p50 x", 7)}${col("thr x", 7)}`,
);
for (const row of rows) {
  const filter = rows.find(
    (r) => r.backend === row.backend && r.size === row.size && r.level === row.level && r.path === "filter",
  )!;
  const pairs = row.rounds.map((r, k) => ({ r, f: filter.rounds[k]! }));
  const isSearch = row.path === "search";
  console.log(
    `${row.backend.padEnd(10)}${col(String(row.size), 9)}${col(String(row.level), 10)}  ${row.path.padEnd(8)}` +
      `${num(row.cand, 0, 6)}` +
      `${num(median(row.rounds.map((r) => r.rps)), 0, 8)}` +
      `${num(median(row.rounds.map((r) => r.p50)), 2, 8)}${num(median(row.rounds.map((r) => r.p99)), 2, 8)}` +
      `${col(String(row.rounds.reduce((s, r) => s + r.errors, 0)), 7)}` +
      `${isSearch ? num(median(pairs.map(({ r, f }) => r.p50 / f.p50)), 2, 7) : col("", 7)}` +
      `${isSearch ? num(median(pairs.map(({ r, f }) => r.rps / f.rps)), 2, 7) : col("", 7)}`,
  );
}
console.log("p50 x, thr x: search / filter (median of per-round pairs)");
if (firstErrors.length > 0) console.log(`first errors: ${firstErrors.join("\n  ")}`);
console.log(`total ${Math.round((performance.now() - t0) / 1000)} s`);
process.exit(0);
