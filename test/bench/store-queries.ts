/**
 * Store query benchmark: MongoDB filters over the `clusters` collection, with and without the GIN index.
 *
 * The measurement: 100,000 cluster documents shaped like the specification's cluster document;
 * five representative queries (equality on a nested path, numeric range, $in on tags, $elemMatch on
 * node GPUs, $or of two); on PGlite in memory and on Postgres; with the GIN index and without it; p50
 * and p99 of each; target: "Postgres p50 under 5 ms for the indexed equality and containment queries"
 * (here queries 1 and 3).
 *
 * What this script does:
 *  - generates BENCH_DOCS (default 100,000) cluster documents from a seeded PRNG (same documents on
 *    every run and backend), shaped like the cluster document in the cluster-controller specification;
 *  - bulk-loads them into `clusters` 1,000 per INSERT (index dropped while loading, built afterwards,
 *    then ANALYZE);
 *  - runs each query through `collection.find(filter, { limit: 100 })` (the collection's own SQL), 3
 *    warm-up runs then BENCH_RUNS (default 50) timed runs, first with the GIN index `clusters_doc_gin`,
 *    then after `DROP INDEX clusters_doc_gin`; the index is then recreated and the table analyzed;
 *  - reports the number of matching documents once per index state through `collection.count(filter)`,
 *    and checks it against mingo (an in-memory MongoDB matcher) evaluated on the generated documents;
 *  - prints, with the index, the plan node under the Limit of `EXPLAIN` (no ANALYZE) of exactly the SQL
 *    and bind values `find` sent (recorded from the driver), and whether it uses the index. Both drivers
 *    send unnamed statements (postgres.js `unsafe` does not prepare), so every execution gets a custom
 *    plan built for the actual values, which is what EXPLAIN with the same bind values shows;
 *  - prints the server's execution time with the index (EXPLAIN ANALYZE, median of 3): the rest of a
 *    find's time is sending, decoding and parsing the up to 100 documents of about 3.5 kB each;
 *  - prints one table (backend, query, matches, p50/p99 with and without the index, the ratio) and
 *    whether the target holds.
 *
 * Backends: PGlite in memory always; Postgres when DATABASE_URL is set, for example
 *   DATABASE_URL=postgres://postgres@127.0.0.1:5432/test npm run bench
 * The Postgres database is shared with the tests: `clusters` is emptied before and after the run, the
 * index is recreated even when the run fails or gets SIGINT/SIGTERM, and the run stops if the table
 * holds other rows than ours (something else writing to it would skew the counts).
 *
 * Environment: BENCH_DOCS (documents, default 100000), BENCH_RUNS (timed runs per query and index
 * state, default 50), BENCH_BUDGET_S (stop a query's timed runs early once they took this many seconds,
 * after at least 5 runs; default 10; the table shows how many runs were made), DATABASE_URL.
 * p99 is nearest-rank: with 50 runs it is the slowest run.
 */
import { fileURLToPath } from "node:url";
import { Query } from "mingo";
import { DocumentCollection } from "../../src/store/collection.ts";
import { openPglite } from "../../src/store/driver/pglite.ts";
import { openPostgres } from "../../src/store/driver/postgres.ts";
import type { Driver } from "../../src/store/driver/types.ts";
import { intEnv } from "./support/env.ts";

const DOCS = intEnv("BENCH_DOCS", 100_000);
const RUNS = intEnv("BENCH_RUNS", 50);
const BUDGET_MS = intEnv("BENCH_BUDGET_S", 10) * 1000;
const MIN_RUNS = Math.min(5, RUNS);
const WARMUP = 3;
const LIMIT = 100;
const BATCH = 1000;
const SEED = 0x41105;
const TARGET_MS = 5;
const DATABASE_URL = process.env.DATABASE_URL || undefined;
const MIGRATIONS = fileURLToPath(new URL("../../migrations", import.meta.url));

// ---------------------------------------------------------------------------------------------------
// Deterministic documents

/** mulberry32: a small, fast, seedable PRNG. */
const prng = (seed: number): (() => number) => {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
};

type Rng = () => number;
const int = (rng: Rng, lo: number, hi: number): number => lo + Math.floor(rng() * (hi - lo + 1));
const pick = <T>(rng: Rng, items: readonly T[]): T => items[Math.floor(rng() * items.length)]!;

/** Weighted choice over items with Zipf-like weights 1/(rank+1)^s: early items common, late ones rare. */
const zipf = <T>(items: readonly T[], s: number) => {
  const weights = items.map((_, i) => 1 / (i + 1) ** s);
  const total = weights.reduce((a, b) => a + b, 0);
  const cumulative: number[] = [];
  let acc = 0;
  for (const w of weights) {
    acc += w / total;
    cumulative.push(acc);
  }
  return (rng: Rng): T => {
    const r = rng();
    const i = cumulative.findIndex((c) => r < c);
    return items[i === -1 ? items.length - 1 : i]!;
  };
};

/** `n` distinct draws from a weighted chooser. */
const distinct = <T>(rng: Rng, choose: (rng: Rng) => T, n: number): T[] => {
  const out = new Set<T>();
  while (out.size < n) out.add(choose(rng));
  return [...out];
};

const REGIONS = [
  "us-east-1",
  "us-west-2",
  "eu-west-1",
  "eu-central-1",
  "ap-southeast-1",
  "us-east-2",
  "ap-northeast-1",
  "us-west-1",
  "eu-west-2",
  "ap-south-1",
  "ca-central-1",
  "eu-north-1",
  "ap-southeast-2",
  "sa-east-1",
  "eu-west-3",
  "ap-northeast-2",
  "eu-south-1",
  "ap-east-1",
  "me-south-1",
  "af-south-1",
] as const;

const TAGS = [
  "gpu",
  "production",
  "ml",
  "inference",
  "cloud",
  "training",
  "llm",
  "vision",
  "nlp",
  "staging",
  "batch",
  "realtime",
  "high-memory",
  "spot",
  "edge",
  "dedicated",
  "low-latency",
  "reserved",
  "multi-tenant",
  "on-prem",
  "dev",
  "research",
  "soc2",
  "gdpr",
  "fine-tuning",
  "green-energy",
  "beta",
  "hipaa",
  "embeddings",
  "audio",
] as const;

interface GpuModel {
  name: string;
  memory: readonly number[];
  features: readonly string[];
}

const GPU_MODELS: readonly GpuModel[] = [
  { name: "NVIDIA A100", memory: [40960, 81920], features: ["fp16", "bf16", "tensor_cores", "mig"] },
  { name: "NVIDIA T4", memory: [16384], features: ["fp16", "int8", "tensor_cores"] },
  { name: "NVIDIA V100", memory: [16384, 32768], features: ["fp16", "tensor_cores"] },
  { name: "NVIDIA L4", memory: [24576], features: ["fp16", "fp8", "int8", "tensor_cores"] },
  { name: "NVIDIA A10G", memory: [24576], features: ["fp16", "bf16", "tensor_cores"] },
  { name: "NVIDIA RTX 4090", memory: [24576], features: ["fp16", "fp8", "tensor_cores"] },
  { name: "NVIDIA H100", memory: [81920, 95232], features: ["fp16", "bf16", "fp8", "tensor_cores", "mig"] },
  { name: "AMD MI250X", memory: [131072], features: ["fp16", "bf16", "matrix_cores"] },
];

const ORGS = [
  "Acme",
  "Globex",
  "Initech",
  "Umbrella",
  "Hooli",
  "Stark",
  "Wayne",
  "Cyberdyne",
  "Tyrell",
  "Soylent",
  "Aperture",
  "Vandelay",
  "Wonka",
  "Gringotts",
  "Oscorp",
  "Massive Dynamic",
  "Nakatomi",
  "Virtucon",
  "Monarch",
  "Dunder Mifflin",
  "Pied Piper",
  "Prestige",
  "Sirius",
  "Blue Sun",
  "Ollivander",
  "Kwik-E",
  "Bluth",
  "Gekko",
  "Duff",
  "Spacely",
  "Cogswell",
  "Krusty",
  "Sterling",
  "Pendant",
  "Rekall",
  "Weyland",
  "Yoyodyne",
  "Zorg",
  "Omni",
  "Ingen",
] as const;
const UNITS = [
  "AI Infrastructure",
  "ML Platform",
  "Vision",
  "Speech",
  "Search",
  "Ads Ranking",
  "Recommendations",
  "Research",
  "Data Science",
  "Fraud",
  "Robotics",
  "LLM Serving",
  "Edge Compute",
  "Analytics",
  "Translation",
  "Health AI",
  "Security",
  "Forecasting",
  "Gaming",
  "Media",
  "Finance AI",
  "Customer Support",
  "Autonomy",
  "Genomics",
  "Climate",
] as const;
/** 40 x 25 = 1,000 owners, each owning about 0.1% of the clusters. */
const OWNERS = UNITS.flatMap((u) => ORGS.map((o) => `${o} ${u} Team`));

const COUNTRIES = [
  "USA",
  "Canada",
  "Germany",
  "France",
  "United Kingdom",
  "Ireland",
  "Netherlands",
  "Sweden",
  "India",
  "Singapore",
  "Japan",
  "South Korea",
  "Australia",
  "Brazil",
  "South Africa",
  "United Arab Emirates",
  "Italy",
  "Spain",
  "Poland",
  "Finland",
  "Switzerland",
  "Hong Kong",
  "Indonesia",
  "Mexico",
  "Chile",
] as const;
const VENDORS = ["aws", "gcp", "azure", "coreweave", "lambda", "oci", "on-prem"] as const;
const POLICY_SYSTEMS = ["AdvancedPolicyRunner", "SimplePolicyRunner", "WasmPolicyHost"] as const;
const STATUSES = ["live", "live", "live", "live", "live", "live", "maintenance", "provisioning", "offline"];
const VCPUS = [8, 16, 32, 48, 64, 96, 128] as const;
const BANDWIDTH = [1000, 5000, 10000, 25000, 100000] as const;

const chooseRegion = zipf(REGIONS, 0.8);
const chooseTag = zipf(TAGS, 1.5);
const chooseCountry = zipf(COUNTRIES, 1);
const chooseModel = zipf(
  GPU_MODELS.map((_, i) => i),
  1,
);

type Json = Record<string, unknown>;

/** The cluster document number `i`: the same for a given i on every run. */
const clusterDoc = (i: number): Json & { id: string } => {
  const rng = prng((SEED ^ Math.imul(i + 1, 0x9e3779b1)) >>> 0);
  const id = `cluster-${i.toString().padStart(6, "0")}`;
  const regionId = chooseRegion(rng);
  const nodeData: Json[] = [];
  const total = {
    gpus: 0,
    gpuMemory: 0,
    vcpus: 0,
    memory: 0,
    swap: 0,
    disks: 0,
    size: 0,
    nics: 0,
    tx: 0,
    rx: 0,
  };
  const nodeCount = int(rng, 1, 8);
  for (let n = 0; n < nodeCount; n++) {
    const model = GPU_MODELS[chooseModel(rng)]!;
    const gpuCount = int(rng, 0, 8);
    const gpuMemory = pick(rng, model.memory);
    const vcpus = pick(rng, VCPUS);
    const memory = vcpus * pick(rng, [2048, 4096, 8192]);
    const swap = memory / 16;
    const disks = int(rng, 1, 4);
    const size = disks * pick(rng, [262144, 524288, 1048576]);
    const nics = int(rng, 1, 4);
    const bandwidth = pick(rng, BANDWIDTH);
    nodeData.push({
      id: `node-${n + 1}`,
      gpus: {
        count: gpuCount,
        memory: gpuCount * gpuMemory,
        gpus: Array.from({ length: gpuCount }, () => ({ modelName: model.name, memory: gpuMemory })),
        features: gpuCount > 0 ? [...model.features] : [],
        modelName: gpuCount > 0 ? [model.name] : [],
      },
      vcpus: { count: vcpus },
      memory,
      swap,
      storage: { disks, size },
      network: { interfaces: nics, txBandwidth: bandwidth, rxBandwidth: bandwidth },
    });
    total.gpus += gpuCount;
    total.gpuMemory += gpuCount * gpuMemory;
    total.vcpus += vcpus;
    total.memory += memory;
    total.swap += swap;
    total.disks += disks;
    total.size += size;
    total.nics += nics;
    total.tx += bandwidth;
    total.rx += bandwidth;
  }
  const owner = pick(rng, OWNERS);
  const slug = owner.toLowerCase().replace(/[^a-z0-9]+/g, "-");
  const host = `${id}.${slug}.example.net`;
  const metadata: Json = {
    name: `${regionId} ${pick(rng, ["vision", "llm", "speech", "batch", "general"])} cluster ${i}`,
    description: `Serves ${pick(rng, ["computer vision", "language", "speech", "ranking", "embedding"])} models`,
    owner,
    email: `${slug}@example.net`,
  };
  if (rng() < 0.6) metadata.vendor = pick(rng, VENDORS);
  metadata.countries = distinct(rng, chooseCountry, int(rng, 1, 3));
  metadata.miscContactInfo = { pagerDuty: `https://pager.example.net/${slug}`, slack: `#${slug}` };
  metadata.additionalInfo = {};
  return {
    id,
    regionId,
    status: pick(rng, STATUSES),
    nodes: { count: nodeCount, nodeData },
    gpus: { count: total.gpus, memory: total.gpuMemory },
    vcpus: { count: total.vcpus },
    memory: total.memory,
    swap: total.swap,
    storage: { disks: total.disks, size: total.size },
    network: { interfaces: total.nics, txBandwidth: total.tx, rxBandwidth: total.rx },
    config: {
      policyExecutorId: `policy-exec-${int(rng, 1, 999).toString().padStart(3, "0")}`,
      policyExecutionMode: rng() < 0.8 ? "local" : "remote",
      customPolicySystem: {
        name: pick(rng, POLICY_SYSTEMS),
        version: `${int(rng, 1, 3)}.${int(rng, 0, 9)}.0`,
      },
      publicHostname: host,
      useGateway: rng() < 0.7,
      actionsPolicyMap: { onScaleUp: "evaluate-gpu-availability", onFailure: "notify-admin" },
      urlMap: {
        controllerService: `http://${host}:32000/controller`,
        metricsService: `http://${host}:32000/metrics`,
        blocksQuery: `http://${host}:32000/blocks`,
        publicGateway: `http://${host}:32000`,
        parameterUpdater: `http://${host}:32000/mgmt`,
      },
    },
    tags: distinct(rng, chooseTag, int(rng, 2, 6)),
    clusterMetadata: metadata,
    // Skewed towards high reputations, as a registry that drops bad clusters would be.
    reputation: Math.min(100, Math.floor(101 * Math.sqrt(rng()))),
  };
};

// ---------------------------------------------------------------------------------------------------
// Queries

interface BenchQuery {
  name: string;
  filter: Record<string, unknown>;
  /** Counted in the target: "indexed equality and containment queries". */
  target: boolean;
  /** Fetch only these fields (the projection is applied in SQL, so less data moves). */
  projection?: Record<string, 1>;
}

// What a caller listing clusters typically needs, instead of whole ~3.5 kB documents.
const SUMMARY = { id: 1, regionId: 1, status: 1, reputation: 1, "clusterMetadata.name": 1 } as const;

const QUERIES: BenchQuery[] = [
  { name: "1 eq nested", filter: { "clusterMetadata.owner": OWNERS[417]! }, target: true },
  { name: "2 range", filter: { reputation: { $gte: 90, $lt: 95 } }, target: false },
  { name: "3 $in tags", filter: { tags: { $in: ["embeddings", "audio"] } }, target: true },
  {
    name: "4 $elemMatch",
    filter: {
      "nodes.nodeData": { $elemMatch: { "gpus.count": { $gte: 4 }, "gpus.modelName": "NVIDIA H100" } },
    },
    target: false,
  },
  { name: "5 $or", filter: { $or: [{ regionId: "af-south-1" }, { tags: "edge" }] }, target: false },
  {
    name: "1p eq, projected",
    filter: { "clusterMetadata.owner": OWNERS[417]! },
    target: true,
    projection: SUMMARY,
  },
  {
    name: "3p $in, projected",
    filter: { tags: { $in: ["embeddings", "audio"] } },
    target: true,
    projection: SUMMARY,
  },
];

// ---------------------------------------------------------------------------------------------------
// Measurement

interface Timing {
  runs: number;
  p50: number;
  p99: number;
}

interface Result {
  backend: string;
  query: BenchQuery;
  matches: { indexed: number; unindexed: number };
  indexed: Timing;
  unindexed: Timing;
  plan: string;
  usesIndex: boolean;
  /** Median "Execution Time" of EXPLAIN ANALYZE with the index: the server's share of a find. */
  serverMs: number;
}

/** Nearest-rank percentile. */
const percentile = (sorted: number[], p: number): number =>
  sorted[Math.max(0, Math.ceil((p / 100) * sorted.length) - 1)]!;

const elapsed = (t0: number): string => `${((performance.now() - t0) / 1000).toFixed(1)} s`;

/** A driver that remembers the last statement it ran, so EXPLAIN can use exactly what `find` sent. */
const recording = (inner: Driver) => {
  const last = { text: "", params: [] as unknown[] };
  const driver: Driver = {
    kind: inner.kind,
    query: (text, params) => {
      last.text = text;
      last.params = params;
      return inner.query(text, params);
    },
    migrate: (folder) => inner.migrate(folder),
    close: () => inner.close(),
  };
  return { driver, last };
};

const CREATE_INDEX = `CREATE INDEX IF NOT EXISTS "clusters_doc_gin" ON "clusters" USING gin ("doc" jsonb_path_ops)`;

const load = async (driver: Driver, label: string, expected: number[]): Promise<void> => {
  const matchers = QUERIES.map((q) => new Query(q.filter));
  const t0 = performance.now();
  let bytes = 0;
  for (let start = 0; start < DOCS; start += BATCH) {
    const docs: Json[] = [];
    for (let i = start; i < Math.min(DOCS, start + BATCH); i++) {
      const doc = clusterDoc(i);
      matchers.forEach((m, q) => {
        if (m.test(doc)) expected[q]!++;
      });
      docs.push(doc);
    }
    const json = JSON.stringify(docs);
    bytes += json.length;
    await driver.query(
      `INSERT INTO "clusters" (id, doc) SELECT x->>'id', x FROM jsonb_array_elements($1::jsonb) AS x`,
      [json],
    );
    const done = Math.min(DOCS, start + BATCH);
    if (done === DOCS || (done / BATCH) % 10 === 0)
      console.log(`  [${label}] loaded ${done}/${DOCS} (${elapsed(t0)})`);
  }
  console.log(`  [${label}] average document: ${Math.round(bytes / DOCS)} bytes of JSON`);
};

const time = async (coll: DocumentCollection, q: BenchQuery): Promise<Timing> => {
  const options = { limit: LIMIT, projection: q.projection };
  for (let i = 0; i < WARMUP; i++) await coll.find(q.filter, options);
  const samples: number[] = [];
  const started = performance.now();
  for (let i = 0; i < RUNS; i++) {
    const t0 = performance.now();
    await coll.find(q.filter, options);
    samples.push(performance.now() - t0);
    if (samples.length >= MIN_RUNS && performance.now() - started > BUDGET_MS) break;
  }
  samples.sort((a, b) => a - b);
  return { runs: samples.length, p50: percentile(samples, 50), p99: percentile(samples, 99) };
};

/** The plan node under the Limit, and whether the plan touches the GIN index. */
const explain = async (driver: Driver, text: string, params: unknown[]) => {
  const rows = await driver.query<Record<string, string>>(`EXPLAIN ${text}`, params);
  const lines = rows.map((r) => String(Object.values(r)[0]));
  const node = lines.find((l) => !l.startsWith("Limit")) ?? lines[0] ?? "";
  return {
    plan: node.replace(/^\s*->\s*/, "").trim(),
    usesIndex: lines.some((l) => l.includes("clusters_doc_gin")),
  };
};

/** Median over 3 runs of the server's execution time (no result transfer or JSON output/parsing). */
const serverTime = async (driver: Driver, text: string, params: unknown[]): Promise<number> => {
  const samples: number[] = [];
  for (let i = 0; i < 3; i++) {
    const rows = await driver.query<Record<string, string>>(`EXPLAIN (ANALYZE, FORMAT TEXT) ${text}`, params);
    const line = rows.map((r) => String(Object.values(r)[0])).find((l) => l.startsWith("Execution Time"));
    samples.push(Number(/([0-9.]+) ms/.exec(line ?? "")?.[1] ?? Number.NaN));
  }
  return samples.sort((a, b) => a - b)[1]!;
};

/** The table must hold exactly our documents: the Postgres database is shared with the tests. */
const checkRows = async (driver: Driver, label: string): Promise<void> => {
  const [row] = await driver.query<{ n: number | string }>(`SELECT count(*)::int AS n FROM "clusters"`, []);
  const n = Number(row?.n);
  if (n !== DOCS)
    throw new Error(
      `${label}: clusters holds ${n} rows, not ${DOCS}: something else writes to this database`,
    );
};

/** Restores the index and empties the table if the run is interrupted (Ctrl-C, kill). */
let onInterrupt: (() => Promise<void>) | undefined;
for (const [signal, code] of [
  ["SIGINT", 130],
  ["SIGTERM", 143],
] as const) {
  process.on(signal, () => {
    console.error(`\n${signal}: cleaning up`);
    const done = () => process.exit(code);
    (onInterrupt ? onInterrupt() : Promise.resolve()).then(done, done);
  });
}

const benchBackend = async (label: string, raw: Driver): Promise<Result[]> => {
  const t0 = performance.now();
  console.log(`\n== ${label} ==`);
  const { driver, last } = recording(raw);
  await driver.migrate(MIGRATIONS);
  const coll = new DocumentCollection(driver, "clusters");
  // Leave the schema as the migrations made it and the shared table empty, even after a failure.
  const restore = async () => {
    await raw.query(CREATE_INDEX, []).catch((e) => console.error(`  [${label}] recreating index: ${e}`));
    await raw.query(`TRUNCATE "clusters"`, []).catch((e) => console.error(`  [${label}] emptying: ${e}`));
  };
  onInterrupt = restore;
  try {
    await coll.clear();
    await driver.query(`DROP INDEX IF EXISTS "clusters_doc_gin"`, []);
    const expected = QUERIES.map(() => 0);
    await load(driver, label, expected);
    await checkRows(driver, label);
    let t = performance.now();
    await driver.query(CREATE_INDEX, []);
    await driver.query(`ANALYZE "clusters"`, []);
    console.log(`  [${label}] GIN index built and table analyzed (${elapsed(t)})`);
    const [size] = await driver.query<{ table: string; index: string }>(
      `SELECT pg_size_pretty(pg_total_relation_size('clusters')) AS table,
              pg_size_pretty(pg_relation_size('clusters_doc_gin')) AS index`,
      [],
    );
    console.log(`  [${label}] table with TOAST and indexes: ${size?.table}, GIN index: ${size?.index}`);

    const partial = new Map<BenchQuery, Omit<Result, "unindexed" | "matches"> & { matches: number }>();
    for (const q of QUERIES) {
      const matches = await coll.count(q.filter);
      const docs = await coll.find(q.filter, { limit: LIMIT, projection: q.projection });
      if (docs.length !== Math.min(LIMIT, matches))
        throw new Error(`${label} ${q.name}: find returned ${docs.length} documents, count says ${matches}`);
      const { text, params } = last;
      const { plan, usesIndex } = await explain(raw, text, params);
      t = performance.now();
      const indexed = await time(coll, q);
      const serverMs = await serverTime(raw, text, params);
      console.log(
        `  [${label}] with index    ${q.name.padEnd(13)} ${indexed.runs} runs (${elapsed(t)}); index used: ${usesIndex ? "yes" : "NO "} | ${plan}`,
      );
      partial.set(q, { backend: label, query: q, matches, indexed, plan, usesIndex, serverMs });
    }

    await checkRows(driver, label);
    await driver.query(`DROP INDEX "clusters_doc_gin"`, []);
    const results: Result[] = [];
    for (const q of QUERIES) {
      const p = partial.get(q)!;
      const matches = await coll.count(q.filter);
      t = performance.now();
      const unindexed = await time(coll, q);
      console.log(`  [${label}] without index ${q.name.padEnd(13)} ${unindexed.runs} runs (${elapsed(t)})`);
      results.push({ ...p, matches: { indexed: p.matches, unindexed: matches }, unindexed });
    }
    await checkRows(driver, label);
    await driver.query(CREATE_INDEX, []);
    await driver.query(`ANALYZE "clusters"`, []);

    let bad = 0;
    results.forEach((r, i) => {
      const want = expected[i]!;
      if (r.matches.indexed !== want || r.matches.unindexed !== want) {
        bad++;
        console.error(
          `  [${label}] MISMATCH ${r.query.name} ${JSON.stringify(r.query.filter)}: count ${r.matches.indexed} with index, ${r.matches.unindexed} without, mingo ${want}`,
        );
      }
    });
    if (bad === 0) console.log(`  [${label}] counts agree with mingo for all ${QUERIES.length} queries`);
    else process.exitCode = 1;
    console.log(`  [${label}] done in ${elapsed(t0)}`);
    return results;
  } finally {
    onInterrupt = undefined;
    await restore();
  }
};

// ---------------------------------------------------------------------------------------------------
// Report

const ms = (n: number): string => n.toFixed(2);

const table = (header: string[], rows: string[][]): string => {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) =>
    cells.map((c, i) => (i < 2 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(" | ");
  return [line(header), widths.map((w) => "-".repeat(w)).join("-|-"), ...rows.map(line)].join("\n");
};

const main = async () => {
  const started = performance.now();
  console.log(
    `store query bench: ${DOCS} cluster documents, find(filter, { limit: ${LIMIT} }), ${WARMUP} warm-up + up to ${RUNS} runs per query and index state (budget ${BUDGET_MS / 1000} s)`,
  );
  for (const q of QUERIES) console.log(`  query ${q.name}: ${JSON.stringify(q.filter)}`);
  if (!DATABASE_URL)
    console.log(
      "  Postgres skipped: set DATABASE_URL, e.g. DATABASE_URL=postgres://postgres@127.0.0.1:5432/test npm run bench",
    );

  const results: Result[] = [];
  const pglite = await openPglite();
  try {
    results.push(...(await benchBackend("pglite-memory", pglite)));
  } finally {
    await pglite.close();
  }
  if (DATABASE_URL) {
    // One connection: the run is sequential, and it keeps every statement on the same backend process.
    const pg = await openPostgres(DATABASE_URL, {}, 1);
    try {
      results.push(...(await benchBackend("postgres", pg)));
    } finally {
      await pg.close();
    }
  }

  console.log(`\nResults (ms per find(filter, { limit: ${LIMIT} }); p99 is nearest-rank over the runs):\n`);
  console.log(
    table(
      [
        "backend",
        "query",
        "matches",
        "runs",
        "GIN p50",
        "GIN p99",
        "no-index p50",
        "no-index p99",
        "no-index/GIN p50",
        "index used",
      ],
      results.map((r) => [
        r.backend,
        r.query.name,
        String(r.matches.indexed),
        r.indexed.runs === r.unindexed.runs
          ? String(r.indexed.runs)
          : `${r.indexed.runs}/${r.unindexed.runs}`,
        ms(r.indexed.p50),
        ms(r.indexed.p99),
        ms(r.unindexed.p50),
        ms(r.unindexed.p99),
        `${(r.unindexed.p50 / r.indexed.p50).toFixed(1)}x`,
        r.usesIndex ? "yes" : "no",
      ]),
    ),
  );

  console.log(
    "\nPlans with the index (EXPLAIN, node under the Limit) and the server's execution time (EXPLAIN ANALYZE, median of 3):",
  );
  for (const r of results)
    console.log(
      `  ${r.backend.padEnd(13)} ${r.query.name.padEnd(13)} server ${ms(r.serverMs).padStart(6)} ms | ${r.plan}`,
    );

  const target = `Postgres p50 under ${TARGET_MS} ms for the indexed equality and containment queries`;
  const pgRows = results.filter((r) => r.backend === "postgres" && r.query.target);
  const figures = (rows: Result[]) =>
    rows.map((r) => `${r.query.name} p50 ${ms(r.indexed.p50)} ms`).join(", ");
  if (pgRows.length === 0) {
    const ref = results.filter((r) => r.query.target);
    console.log(
      `\nTarget "${target}": NOT EVALUATED (no DATABASE_URL); PGlite for reference: ${figures(ref)}`,
    );
  } else {
    const holds = pgRows.every((r) => r.indexed.p50 < TARGET_MS);
    console.log(`\nTarget "${target}": ${holds ? "HOLDS" : "DOES NOT HOLD"} (${figures(pgRows)})`);
  }
  console.log(`\nTotal ${elapsed(started)}`);
};

await main();
