/**
 * Block executor overhead benchmark: the same load straight to one instance and through the block
 * executor, side by side in one run, at 1, 16 and 128 requests in flight.
 *
 * Processes (all real; the children are this script again, chosen by BENCH_EXECUTOR_ROLE):
 *  - one instance: the instance SDK (`serveInstance`) with a cheap `onTask` (counts the words and
 *    characters of `data.text`), started as a controller starts one (AIOS_TOKEN, the block's
 *    credential) with AIOS_ANONYMOUS=1 so that both block runtimes below can use it;
 *  - block runtimes: the `aios` command's entry point (`main` of src/cli/main.ts) running
 *    `block-runtime --block-id bench-block --instance i0=<instance>` with every port 0 and no
 *    policies (the executor routes round-robin over its one instance): what `bun run src/cli/main.ts
 *    block-runtime ...` runs. Two of them (BENCH_AUTH, default `both`):
 *    - auth off (`off`): AIOS_ANONYMOUS=1, clients send no token (the local development setup);
 *    - auth on (`on`): what a controller starts: AIOS_TOKEN (its own credential, presented to the
 *      instance when the task channel opens) and --controller, where the clients' token (scope
 *      infer:bench-block, sent as `authorization: Bearer` metadata) is verified (`GET /auth/whoami`,
 *      served by this process; cached 5 s by the runtime, so asked once per 5 s, printed at the end);
 *  - the load generator: this process, closed loop (each of N workers sends its next request when the
 *    previous one answered), so "in flight" is N.
 * The children also stop when their stdin closes, so none outlives the load generator, even killed.
 *
 * Paths, each request with a unique (session_id, seq_no) so the instance's repeat cache never answers:
 *  - direct (fetch): keep-alive `fetch` POST of the task JSON to the instance's `/task`;
 *  - executor (connect): `InferenceProxy.infer` over gRPC (HTTP/2) with a Connect client
 *    (`createGrpcTransport`, one client reused), rpc_data a serialized AIOSPacket;
 *  - executor (grpc-js): the same call with @grpc/grpc-js (test/support/grpc.ts);
 *  - executor (raw h2): the same call as one node:http2 stream with the gRPC frame written by hand,
 *    the cheapest client there is. The machine's cores are shared by all three processes, so what a
 *    client costs the load generator is taken from the block runtime: this line shows the executor
 *    with the least client in the way;
 *  - `exec+auth (...)`: the same three clients against the auth-on runtime, with the token.
 *
 * Per concurrency level: a warm-up of every path, then BENCH_ROUNDS rounds; a round runs each path in
 * turn for BENCH_ROUND_MS, so machine noise hits every path alike. For each round and path: requests
 * per second (answers / wall time until the last answer), p50 and p99 of the per-request latency
 * (nearest rank). The table shows per path the median over rounds; the comparisons are medians over
 * rounds of the per-round pair (executor round r against direct round r): throughput executor/direct
 * (`thr x`), added p50 and added p99 (executor minus direct, ms). The `cpu µs/req` columns are CPU
 * time (user + system, all threads, from /proc/PID/stat and process.cpuUsage) per answered request over
 * all rounds of the path, for the load generator (gen), the block runtime (exec) and the instance
 * (inst): at high concurrency on few cores, throughput is bounded by their sum.
 *
 * Targets (issue): added p50 <= 0.5 ms at 1 in flight; through-executor throughput >= 60% of direct
 * at 128 in flight. They are judged on the raw h2 line: the three processes share two cores, so a
 * client's own CPU (the `gen` column: Connect's costs several times the executor's) is taken from
 * the executor; a gRPC client in C (Python's, Go's) costs about what the raw client does. The other
 * executor lines show theirs in parentheses.
 * Environment and flags: `--quick` or BENCH_QUICK=1 (about 35 s: 3 rounds of 400 ms), BENCH_ROUNDS
 * (default 5), BENCH_ROUND_MS (default 1500), BENCH_WARMUP_MS (per path and level, default 500),
 * BENCH_LEVELS (comma separated, default 1,16,128), BENCH_CPU_PROF=DIR (both children write a CPU
 * profile there, .cpuprofile and .md, when they stop), BENCH_AUTH (off, on or both; default both). A
 * full run takes about 100 s per runtime (BENCH_AUTH=both: about 170 s).
 *   npx bun run test/bench/executor.ts [--quick]
 */
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { connect as http2Connect, type IncomingHttpHeaders } from "node:http2";
import { join } from "node:path";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { createClient, type Interceptor } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import type { Subprocess } from "bun";
import {
  InferenceMessageSchema,
  InferenceProxy,
  type InferenceResponse,
  InferenceResponseSchema,
} from "../../src/gen/inference_pb.ts";
import { AIOSPacketSchema } from "../../src/gen/payload_pb.ts";
import { serveInstance } from "../../src/instance/serve.ts";
import { grpcJsInferenceClient } from "../support/grpc.ts";
import { blockRuntimeArgs } from "../support/processes.ts";
import { intEnv } from "./support/env.ts";

const ROOT = join(import.meta.dir, "../..");
const SELF = import.meta.path;
const ROLE_ENV = "BENCH_EXECUTOR_ROLE";

/** The task every request carries (its text is what the instance's onTask counts). */
const DATA = { text: "the quick brown fox jumps over the lazy dog", threshold: 0.5 };
const DATA_JSON = JSON.stringify(DATA);

// ---------------------------------------------------------------------------------------------
// The children's roles.

/** Resolves when stdin ends: the parent holds our stdin, so it ends when the parent goes (even killed). */
const stdinEnded = async (): Promise<void> => {
  const reader = Bun.stdin.stream().getReader();
  while (!(await reader.read()).done) {
    // Nothing is sent on stdin; only its end matters.
  }
};

const runInstance = async (): Promise<void> => {
  const served = await serveInstance(
    {
      onTask: (task) => {
        const text = (task.data as { text?: unknown } | null)?.text;
        const s = typeof text === "string" ? text : "";
        return { words: s.split(" ").length, chars: s.length, seq_no: task.seqNo };
      },
    },
    { hostname: "127.0.0.1", port: 0 },
  );
  const stop = async () => {
    await served.stop();
    process.exit(0);
  };
  process.on("SIGTERM", () => void stop());
  console.log(`listening instance ${served.url}`);
  await stdinEnded();
  await stop();
};

/**
 * The block runtime role: the `aios` command's own entry point (`main` of src/cli/main.ts) with the
 * block-runtime verb, as `bun run src/cli/main.ts block-runtime ...` runs it, plus a stdin watch so
 * that it stops (through its SIGTERM handling) even when the load generator was killed.
 */
const runBlockRuntime = async (argv: string[]): Promise<void> => {
  const { main: aios } = await import("../../src/cli/main.ts");
  void stdinEnded().then(() => process.kill(process.pid, "SIGTERM"));
  process.exit(await aios(argv));
};

// ---------------------------------------------------------------------------------------------
// The load generator.

const quick = process.argv.includes("--quick") || process.env.BENCH_QUICK === "1";

const children: Subprocess<"pipe", "pipe", "inherit">[] = [];
const killChildren = () => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill();
};

/** Reads `listening <name> <url>` lines from a child's stdout; the rest of stdout goes to stderr. */
const waitForListening = async (
  child: Subprocess<"pipe", "pipe", "inherit">,
  names: readonly string[],
  timeoutMs: number,
): Promise<Map<string, string>> => {
  const urls = new Map<string, string>();
  const reader = child.stdout.getReader();
  const decoder = new TextDecoder();
  let buffered = "";
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timedOut = new Promise<"timeout">((resolve) => {
    timer = setTimeout(() => resolve("timeout"), timeoutMs);
  });
  try {
    while (names.some((n) => !urls.has(n))) {
      const chunk = await Promise.race([reader.read(), timedOut]);
      if (chunk === "timeout") throw new Error(`no listening lines within ${timeoutMs} ms`);
      if (chunk.done) throw new Error(`the child exited (${await child.exited}) before listening`);
      buffered += decoder.decode(chunk.value, { stream: true });
      for (let nl = buffered.indexOf("\n"); nl >= 0; nl = buffered.indexOf("\n")) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        const m = /^listening (\S+) (\S+)$/.exec(line);
        if (m?.[1] && m[2]) urls.set(m[1], m[2]);
        else if (line) console.error(`[child ${child.pid}] ${line}`);
      }
    }
  } finally {
    clearTimeout(timer);
  }
  // Keep draining, so a chatty child never blocks on a full pipe (its other listeners are dropped).
  void (async () => {
    for (let r = await reader.read(); !r.done; r = await reader.read()) {
      for (const line of decoder.decode(r.value, { stream: true }).split("\n")) {
        if (line && !line.startsWith("listening ")) console.error(`[child ${child.pid}] ${line}`);
      }
    }
  })().catch(() => {});
  return urls;
};

/** BENCH_CPU_PROF=DIR: both children write a CPU profile (.cpuprofile and .md) there when they stop. */
const PROFILE_DIR = process.env.BENCH_CPU_PROF;
const profileFlags = PROFILE_DIR ? ["--cpu-prof", "--cpu-prof-md", `--cpu-prof-dir=${PROFILE_DIR}`] : [];

const spawn = (argv: string[], env: Record<string, string>): Subprocess<"pipe", "pipe", "inherit"> => {
  const child = Bun.spawn([process.execPath, ...profileFlags, ...argv], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdin: "pipe",
    stdout: "pipe",
    stderr: "inherit",
  });
  children.push(child);
  return child;
};

let clockTicks: number | undefined;
/** Clock ticks per second, the unit of /proc/PID/stat's CPU times (`getconf CLK_TCK`, else 100). */
const clkTck = (): number => {
  if (clockTicks === undefined) {
    clockTicks = 100;
    try {
      const out = Bun.spawnSync(["getconf", "CLK_TCK"], { stdout: "pipe", stderr: "ignore" });
      const n = Number(out.stdout.toString().trim());
      if (Number.isInteger(n) && n > 0) clockTicks = n;
    } catch {
      // No getconf: Linux's USER_HZ is 100 nearly everywhere.
    }
  }
  return clockTicks;
};
/** CPU time (user + system, all threads, µs) of a process so far, from /proc; NaN without /proc. */
const procCpuUs = (pid: number): number => {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // Fields after the command name (which may hold spaces) start at field 3: utime is 14, stime 15.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return ((Number(fields[11]) + Number(fields[12])) / clkTck()) * 1e6;
  } catch {
    return Number.NaN;
  }
};
const selfCpuUs = (): number => {
  const u = process.cpuUsage();
  return u.user + u.system;
};

/**
 * The lightest gRPC client we can write: one unary call is one HTTP/2 stream on node:http2 with the
 * 5-byte gRPC frame written by hand, no interceptors, streams or abort signals. It shows what the
 * executor costs when the client costs little (the machine's cores are shared by all three processes).
 */
const rawGrpcClient = (baseUrl: string, token?: string) => {
  const session = http2Connect(baseUrl);
  session.on("error", () => {}); // a broken session fails its requests, which report it
  const headers = {
    ":method": "POST",
    ":path": "/InferenceProxy/infer",
    "content-type": "application/grpc",
    te: "trailers",
    ...(token === undefined ? {} : { authorization: `Bearer ${token}` }),
  };
  const infer = (rpcData: Uint8Array) =>
    new Promise<InferenceResponse>((resolve, reject) => {
      const body = toBinary(InferenceMessageSchema, create(InferenceMessageSchema, { rpcData }));
      const frame = Buffer.allocUnsafe(5 + body.byteLength);
      frame[0] = 0;
      frame.writeUInt32BE(body.byteLength, 1);
      frame.set(body, 5);
      const req = session.request(headers);
      const chunks: Buffer[] = [];
      let status: string | undefined;
      let message = "";
      // grpc-status comes in the trailers, or in the headers of a trailers-only answer (an error).
      const readStatus = (h: IncomingHttpHeaders) => {
        const s = h["grpc-status"];
        if (typeof s === "string") {
          status = s;
          message = String(h["grpc-message"] ?? "");
        }
      };
      req.on("response", readStatus);
      req.on("trailers", readStatus);
      req.on("data", (chunk: Buffer) => chunks.push(chunk));
      req.on("error", reject);
      req.on("end", () => {
        if (status !== "0") {
          reject(new Error(`grpc-status ${status ?? "missing"}: ${decodeURIComponent(message)}`));
          return;
        }
        const answer = Buffer.concat(chunks);
        if (answer.byteLength < 5 || answer[0] !== 0) {
          reject(new Error("the answer is not one uncompressed gRPC message"));
          return;
        }
        resolve(fromBinary(InferenceResponseSchema, answer.subarray(5, 5 + answer.readUInt32BE(1))));
      });
      req.end(frame);
    });
  return { infer, close: () => session.close() };
};

interface Path {
  name: string;
  /** The block runtime it goes through (its CPU is the `exec` column); none for the direct path. */
  runtimePid?: number;
  /** Sends one request with this (session, seq) and resolves once its answer was checked. */
  call(session: string, seq: number): Promise<void>;
}

interface Round {
  rps: number;
  p50: number;
  p99: number;
  n: number;
}

interface PathResult {
  rounds: Round[];
  answered: number;
  cpu: { gen: number; exec: number; inst: number };
}

const quantile = (sorted: Float64Array, q: number): number =>
  sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] ?? Number.NaN;
const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return Number.NaN;
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
};

let seq = 0;

/** `inFlight` workers, each sending requests back to back until `ms` passed; latencies in ms. */
const runLoad = async (path: Path, inFlight: number, ms: number, tag: string): Promise<Round> => {
  let lat = new Float64Array(4096);
  let n = 0;
  const start = performance.now();
  const deadline = start + ms;
  const worker = async (w: number) => {
    const session = `${tag}-w${w}`;
    while (performance.now() < deadline) {
      const t0 = performance.now();
      await path.call(session, ++seq);
      const dt = performance.now() - t0;
      if (n === lat.length) {
        const bigger = new Float64Array(lat.length * 2);
        bigger.set(lat);
        lat = bigger;
      }
      lat[n++] = dt;
    }
  };
  await Promise.all(Array.from({ length: inFlight }, (_, w) => worker(w)));
  const seconds = (performance.now() - start) / 1000;
  const sorted = lat.subarray(0, n).sort();
  return { rps: n / seconds, p50: quantile(sorted, 0.5), p99: quantile(sorted, 0.99), n };
};

const main = async (): Promise<void> => {
  const ROUNDS = intEnv("BENCH_ROUNDS", quick ? 3 : 5);
  const ROUND_MS = intEnv("BENCH_ROUND_MS", quick ? 400 : 1500);
  const WARMUP_MS = intEnv("BENCH_WARMUP_MS", quick ? 250 : 500);
  const LEVELS = (process.env.BENCH_LEVELS ?? "1,16,128").split(",").map((s) => {
    const n = Number(s.trim());
    if (!Number.isInteger(n) || n <= 0) throw new Error(`BENCH_LEVELS: '${s}' is not a positive integer`);
    return n;
  });

  const AUTH = process.env.BENCH_AUTH ?? "both";
  if (!["off", "on", "both"].includes(AUTH)) throw new Error(`BENCH_AUTH: '${AUTH}' is not off, on or both`);

  // The block's credential (what a controller gives its workloads) and a client's token, which the
  // auth-on runtime verifies at this stand-in for the controller's `GET /auth/whoami`.
  const ownToken = `aios-bench-block-${randomBytes(16).toString("hex")}`;
  const userToken = `aios-bench-client-${randomBytes(16).toString("hex")}`;
  let whoamiAsked = 0;
  const verifier = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    fetch(req) {
      if (new URL(req.url).pathname !== "/auth/whoami") return new Response("not found", { status: 404 });
      whoamiAsked += 1;
      if (req.headers.get("authorization") !== `Bearer ${userToken}`) {
        return Response.json({ error: { code: "unauthenticated", message: "no" } }, { status: 401 });
      }
      return Response.json({
        principal: { id: "tok_benchclient0", name: "bench client", scopes: ["infer:bench-block"] },
      });
    },
  });

  const t0 = performance.now();
  const instance = spawn(["run", SELF], {
    [ROLE_ENV]: "instance",
    AIOS_INSTANCE_ID: "i0",
    AIOS_BLOCK_ID: "bench-block",
    AIOS_INSTANCE_PORT: "0",
    AIOS_TOKEN: ownToken,
    AIOS_ANONYMOUS: "1",
    AIOS_CONTROLLER_URL: "",
  });
  const instanceUrl = (await waitForListening(instance, ["instance"], 30_000)).get("instance")!;
  const startRuntime = async (auth: boolean) => {
    const args = blockRuntimeArgs("bench-block", [["i0", instanceUrl]]);
    const child = spawn(
      [
        "run",
        SELF,
        ...args,
        ...(auth
          ? ["--controller", `http://127.0.0.1:${verifier.port}`, "--block", '{"id":"bench-block"}']
          : []),
      ],
      auth
        ? { [ROLE_ENV]: "block-runtime", AIOS_TOKEN: ownToken, AIOS_ANONYMOUS: "", AIOS_CONTROLLER_URL: "" }
        : { [ROLE_ENV]: "block-runtime", AIOS_TOKEN: "", AIOS_ANONYMOUS: "1", AIOS_CONTROLLER_URL: "" },
    );
    const url = (await waitForListening(child, ["grpc"], 30_000)).get("grpc")!;
    return { child, url };
  };
  const runtimes = {
    ...(AUTH !== "on" ? { off: await startRuntime(false) } : {}),
    ...(AUTH !== "off" ? { on: await startRuntime(true) } : {}),
  };
  console.log(
    `started instance ${instanceUrl} (pid ${instance.pid}) and block runtime(s) ${Object.entries(runtimes)
      .map(([auth, r]) => `auth ${auth} ${r.url} (pid ${r.child.pid})`)
      .join(", ")} in ${Math.round(performance.now() - t0)} ms`,
  );

  const taskUrl = `${instanceUrl}/task`;
  const jsonHeaders = { "content-type": "application/json" };
  const ts = Date.now() / 1000;
  const direct: Path = {
    name: "direct (fetch)",
    async call(session, n) {
      const res = await fetch(taskUrl, {
        method: "POST",
        headers: jsonHeaders,
        body: JSON.stringify({
          session_id: session,
          seq_no: n,
          data: DATA,
          ts,
          output_ptr: "",
          frame_ptr: "",
          files: [],
        }),
      });
      const body = (await res.json()) as { result?: unknown };
      if (res.status !== 200 || body.result === undefined) {
        throw new Error(`direct: HTTP ${res.status} ${JSON.stringify(body).slice(0, 200)}`);
      }
    },
  };
  const rpcData = (session: string, n: number): Uint8Array =>
    toBinary(
      AIOSPacketSchema,
      create(AIOSPacketSchema, { sessionId: session, seqNo: BigInt(n), data: DATA_JSON, ts }),
    );
  const closers: (() => void)[] = [];
  /** The three clients of one runtime; with a token, each call carries it as metadata. */
  const executorPaths = (grpcUrl: string, runtimePid: number, token?: string): Path[] => {
    const label = token === undefined ? "executor" : "exec+auth";
    const withToken: Interceptor[] =
      token === undefined
        ? []
        : [
            (next) => (req) => {
              req.header.set("authorization", `Bearer ${token}`);
              return next(req);
            },
          ];
    const connectClient = createClient(
      InferenceProxy,
      createGrpcTransport({ baseUrl: grpcUrl, interceptors: withToken }),
    );
    const grpcJs = grpcJsInferenceClient(
      grpcUrl.replace(/^http:\/\//, ""),
      token === undefined ? {} : { token },
    );
    const raw = rawGrpcClient(grpcUrl, token);
    closers.push(grpcJs.close, raw.close);
    const path = (client: string, infer: (data: Uint8Array) => Promise<InferenceResponse>): Path => {
      const name = `${label} (${client})`;
      return {
        name,
        runtimePid,
        async call(session, n) {
          const res = await infer(rpcData(session, n));
          if (!res.message) throw new Error(`${name}: ${res.error}`);
        },
      };
    };
    return [
      path("connect", (d) => connectClient.infer({ rpcData: d })),
      path("grpc-js", grpcJs.infer),
      path("raw h2", raw.infer),
    ];
  };
  const paths = [
    direct,
    ...(runtimes.off ? executorPaths(runtimes.off.url, runtimes.off.child.pid) : []),
    ...(runtimes.on ? executorPaths(runtimes.on.url, runtimes.on.child.pid, userToken) : []),
  ];
  const isRaw = (p: Path) => p.name.endsWith("(raw h2)");

  const results = new Map<number, PathResult[]>();
  for (const level of LEVELS) {
    for (const p of paths) await runLoad(p, level, WARMUP_MS, `warm-${level}`);
    const perPath: PathResult[] = paths.map(() => ({
      rounds: [],
      answered: 0,
      cpu: { gen: 0, exec: 0, inst: 0 },
    }));
    for (let r = 0; r < ROUNDS; r++) {
      for (const [i, p] of paths.entries()) {
        const acc = perPath[i]!;
        const execCpu = () => (p.runtimePid === undefined ? 0 : procCpuUs(p.runtimePid));
        const before = { gen: selfCpuUs(), exec: execCpu(), inst: procCpuUs(instance.pid) };
        const round = await runLoad(p, level, ROUND_MS, `l${level}-r${r}-p${i}`);
        acc.cpu.gen += selfCpuUs() - before.gen;
        acc.cpu.exec += execCpu() - before.exec;
        acc.cpu.inst += procCpuUs(instance.pid) - before.inst;
        acc.rounds.push(round);
        acc.answered += round.n;
      }
    }
    results.set(level, perPath);
    console.error(`level ${level} in flight done (${Math.round((performance.now() - t0) / 1000)} s)`);
  }
  for (const close of closers) close();
  verifier.stop(true);

  // The table.
  const col = (s: string, w: number) => s.padStart(w);
  const num = (x: number, digits: number, w: number) => col(Number.isFinite(x) ? x.toFixed(digits) : "-", w);
  const signed = (x: number, w: number) =>
    col(Number.isFinite(x) ? `${x >= 0 ? "+" : ""}${x.toFixed(3)}` : "-", w);
  console.log(
    `\nexecutor overhead: ${ROUNDS} rounds of ${ROUND_MS} ms per path and level, alternating; medians over rounds`,
  );
  console.log(
    `${"".padEnd(42)}${"latency ms".padStart(13)}${"vs direct, paired".padStart(25)}${"cpu µs/req".padStart(16)}`,
  );
  console.log(
    `${"in flight".padEnd(10)}${"path".padEnd(24)}${col("req/s", 8)}${col("p50", 8)}${col("p99", 8)}` +
      `${col("thr x", 7)}${col("+p50", 9)}${col("+p99", 9)}` +
      `${col("gen", 6)}${col("exec", 6)}${col("inst", 6)}  target`,
  );
  const verdicts: string[] = [];
  for (const [level, perPath] of results) {
    const base = perPath[0]!;
    for (const [i, p] of paths.entries()) {
      const res = perPath[i]!;
      const pairs = res.rounds.map((r, k) => ({ r, d: base.rounds[k]! }));
      const ratio = i === 0 ? Number.NaN : median(pairs.map(({ r, d }) => r.rps / d.rps));
      const add50 = i === 0 ? Number.NaN : median(pairs.map(({ r, d }) => r.p50 - d.p50));
      const add99 = i === 0 ? Number.NaN : median(pairs.map(({ r, d }) => r.p99 - d.p99));
      const per = (x: number) => x / res.answered;
      let target = "";
      if (i > 0 && level === 1) target = `+p50 <= 0.5 ms ${add50 <= 0.5 ? "PASS" : "MISS"}`;
      if (i > 0 && level === 128) target = `thr >= 0.60x ${ratio >= 0.6 ? "PASS" : "MISS"}`;
      if (target && isRaw(p)) verdicts.push(`${level} in flight, ${p.name}: ${target}`);
      if (target && !isRaw(p)) target = `(${target})`;
      console.log(
        `${String(level).padEnd(10)}${p.name.padEnd(24)}` +
          `${num(median(res.rounds.map((r) => r.rps)), 0, 8)}` +
          `${num(median(res.rounds.map((r) => r.p50)), 3, 8)}${num(median(res.rounds.map((r) => r.p99)), 3, 8)}` +
          `${i === 0 ? col("", 7) : col(`${ratio.toFixed(2)}x`, 7)}${signed(add50, 9)}${signed(add99, 9)}` +
          `${num(per(res.cpu.gen), 0, 6)}${num(per(res.cpu.exec), 0, 6)}${num(per(res.cpu.inst), 0, 6)}  ${target}`,
      );
    }
  }
  if (verdicts.length > 0) console.log(`targets (executor via raw h2): ${verdicts.join("; ")}`);
  if (runtimes.off && runtimes.on) {
    // The cost of the check: each auth-on path against its auth-off twin, per level (medians of rounds).
    console.log("\nauth on vs off (same client, medians over rounds): req/s ratio, p50 ms off -> on");
    for (const [level, perPath] of results) {
      const cells: string[] = [];
      for (const [i, p] of paths.entries()) {
        if (!p.name.startsWith("exec+auth")) continue;
        const twin = paths.findIndex((q) => q.name === p.name.replace("exec+auth", "executor"));
        const on = perPath[i]!.rounds;
        const off = perPath[twin]!.rounds;
        const rps = median(on.map((r) => r.rps)) / median(off.map((r) => r.rps));
        const p50 = (rs: Round[]) => median(rs.map((r) => r.p50)).toFixed(3);
        cells.push(`${p.name.slice("exec+auth ".length)} ${rps.toFixed(2)}x ${p50(off)} -> ${p50(on)}`);
      }
      console.log(`${String(level).padEnd(10)}${cells.join("   ")}`);
    }
  }
  if (runtimes.on) console.log(`token checks at the controller during the run: ${whoamiAsked}`);
};

// ---------------------------------------------------------------------------------------------

const role = process.env[ROLE_ENV];
if (role === "instance") {
  await runInstance();
} else if (role === "block-runtime") {
  await runBlockRuntime(process.argv.slice(2));
} else {
  process.on("exit", killChildren);
  for (const [signal, code] of [
    ["SIGINT", 130],
    ["SIGTERM", 143],
  ] as const) {
    process.on(signal, () => {
      killChildren();
      process.exit(code);
    });
  }
  try {
    await main();
  } catch (err) {
    console.error(err instanceof Error ? (err.stack ?? err.message) : err);
    process.exitCode = 1;
  }
  killChildren();
  await Promise.race([Promise.all(children.map((c) => c.exited)), Bun.sleep(5000)]);
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
  // Idle HTTP/2 sessions of the clients would keep the process alive.
  process.exit();
}
