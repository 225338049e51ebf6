/**
 * Load-balancer policy call benchmark: the per-call latency of the built-in round-robin policy
 * (`policy.loadBalancer.roundrobin:v0.0.1`) through the policy runtime, inline on Bun, with the
 * specification's input (an AIOSPacket and 8 instances), metered (as admitted: fuel and memory
 * sandbox) against unmetered (the module as compiled), side by side in one run.
 *
 * What one call is: `instance.eval(input_data)`: JSON-encode the eval input, Extism call, reset of the
 * kernel blocks, JSON-decode the output, check it against the loadBalancer contract (the id must be
 * one of the instances). A third row is the hand-written WebAssembly text round-robin
 * (test/policy/fixtures/roundrobin-lb.wat: no SDK, no JSON parser, a byte scan of the input), metered
 * through the same runtime: the floor of what the runtime and Extism cost per call.
 *
 * Calls run in alternating batches (BENCH_BATCH calls of one variant, then of the next) so machine
 * noise hits all variants alike; session ids cycle over 5,000 sessions, so the policy's 1,000-entry
 * session cache both hits and evicts. Targets (issue 3): metered p50 <= 15 µs, p99 <= 60 µs, metered /
 * unmetered p50 <= 1.3.
 *
 * Environment: BENCH_CALLS (calls per variant, default 100000), BENCH_BATCH (default 2000).
 *   npx bun run test/bench/policy-call.ts
 */
import { existsSync, readFileSync } from "node:fs";
import {
  compilePolicy,
  instantiatePolicy,
  ModuleCache,
  type PolicyInstance,
} from "../../src/policy/runtime.ts";
import { admitPolicyModule } from "../../src/policy/wasm/admission.ts";
import { BUILTIN_POLICIES } from "../../wasm-policies/catalog.ts";
import { compileWat } from "../support/wat.ts";

const intEnv = (name: string, fallback: number): number => {
  const n = Number(process.env[name] ?? fallback);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`${name} must be a positive integer`);
  return n;
};
const CALLS = intEnv("BENCH_CALLS", 100_000);
const BATCH = intEnv("BENCH_BATCH", 2_000);
const URI = "policy.loadBalancer.roundrobin:v0.0.1";

const entry = BUILTIN_POLICIES.find((p) => p.uri === URI);
if (!entry) throw new Error(`${URI} is not in wasm-policies/catalog.ts`);
const path = new URL(`../../${entry.file}`, import.meta.url);
if (!existsSync(path)) {
  const build = Bun.spawnSync([process.execPath, "run", "wasm-policies/build.ts", "--if-stale"], {
    cwd: new URL("../..", import.meta.url).pathname,
    stdout: "inherit",
    stderr: "inherit",
  });
  if (build.exitCode !== 0) throw new Error("building the built-in policies failed");
}
const original = new Uint8Array(readFileSync(path));
const admitted = admitPolicyModule(original);

const instances = Array.from({ length: 8 }, (_, i) => `instance-${i}`);
const inputFor = (i: number) => ({
  packet: {
    session_id: `session-${i % 5000}`,
    seq_no: i,
    data: JSON.stringify({ image: "frame-0001.jpg", threshold: 0.5 }),
    ts: 1_700_000_000 + i,
    output_ptr: "",
    files: [],
  },
  instances,
});
const settings = {
  block_data: { id: "block-bench", minInstances: 1, maxInstances: 8 },
  cluster_data: { id: "cluster-bench" },
  session_cache_size: 1000,
};
const parameters = { cache_sessions: true };

const cache = new ModuleCache();
const start = async (bytes: Uint8Array, metered: boolean): Promise<PolicyInstance> =>
  instantiatePolicy(await compilePolicy(bytes, { uri: URI, kind: "loadBalancer", metered }, cache), {
    ruleId: "loadBalancer",
    settings,
    parameters,
  });

const metered = await start(admitted.instrumented, true);
const unmetered = await start(original, false);
const watBytes = await compileWat(
  readFileSync(new URL("../policy/fixtures/roundrobin-lb.wat", import.meta.url), "utf8"),
);
const wat = await instantiatePolicy(
  await compilePolicy(
    admitPolicyModule(watBytes).instrumented,
    { uri: "wat-roundrobin", kind: "loadBalancer" },
    cache,
  ),
  { ruleId: "loadBalancer" },
);

type Variant = { name: string; call: (i: number) => Promise<unknown>; samples: Float64Array; n: number };
const variants: Variant[] = [
  {
    name: "metered (runtime)",
    call: (i) => metered.eval(inputFor(i)),
    samples: new Float64Array(CALLS),
    n: 0,
  },
  {
    name: "unmetered (runtime)",
    call: (i) => unmetered.eval(inputFor(i)),
    samples: new Float64Array(CALLS),
    n: 0,
  },
  {
    name: "metered, hand-written WAT",
    call: (i) => wat.eval(inputFor(i)),
    samples: new Float64Array(CALLS),
    n: 0,
  },
];

// Warm-up: let the JIT settle on every path.
for (const v of variants) for (let i = 0; i < 5000; i++) await v.call(i);

let seq = 0;
while (variants.some((v) => v.n < CALLS)) {
  for (const v of variants) {
    const end = Math.min(CALLS, v.n + BATCH);
    while (v.n < end) {
      const i = seq++;
      const t0 = Bun.nanoseconds();
      await v.call(i);
      v.samples[v.n++] = (Bun.nanoseconds() - t0) / 1000;
    }
  }
}

const quantile = (sorted: Float64Array, q: number) =>
  sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)] ?? NaN;
const stats = variants.map((v) => {
  const sorted = v.samples.slice().sort();
  return {
    name: v.name,
    p50: quantile(sorted, 0.5),
    p99: quantile(sorted, 0.99),
    max: sorted[sorted.length - 1] ?? NaN,
  };
});

const fmt = (x: number) => x.toFixed(1).padStart(8);
console.log(
  `round-robin load balancer, ${CALLS} calls per variant, batches of ${BATCH}, input: packet + 8 instances`,
);
console.log(`${"variant".padEnd(28)}${"p50 µs".padStart(8)}${"p99 µs".padStart(8)}${"max µs".padStart(8)}`);
for (const s of stats) console.log(`${s.name.padEnd(28)}${fmt(s.p50)}${fmt(s.p99)}${fmt(s.max)}`);
const [m, u] = stats;
if (m && u) {
  const ratio = m.p50 / u.p50;
  console.log(`metering overhead (p50 metered / unmetered): ${ratio.toFixed(2)}x`);
  const ok = (cond: boolean) => (cond ? "ok" : "MISSED");
  console.log(
    `targets: p50 <= 15 µs ${ok(m.p50 <= 15)}, p99 <= 60 µs ${ok(m.p99 <= 60)}, overhead <= 1.3x ${ok(ratio <= 1.3)}`,
  );
}
await Promise.all([metered.close(), unmetered.close(), wat.close()]);
