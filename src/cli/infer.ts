/**
 * `aios infer <block> --data '{...}'`: one task to a block over gRPC (`InferenceProxy/infer`, at the
 * block's address as the gateway reports it), printing the instance's result.
 */
import { readFile } from "node:fs/promises";
import { create, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { type GatewayClient, GatewayClientError } from "../gateway/client.ts";
import type { BlockDetail } from "../gateway/views.ts";
import { InferenceProxy, type InferenceResponse } from "../gen/inference_pb.ts";
import { AIOSPacketSchema } from "../gen/payload_pb.ts";
import { errorMessage } from "../http/errors.ts";
import { parseFlags, stringFlag, UsageError, type Verb } from "./args.ts";
import {
  CLIENT_FLAGS,
  CLIENT_FLAGS_USAGE,
  clientFrom,
  clientToken,
  positiveIntFlag,
  print,
  tokenHint,
} from "./output.ts";

const DEFAULT_TIMEOUT_MS = 30_000;

/** `--data`: JSON inline, or `@file` holding it. Checked here so a typo never reaches the block. */
export const parseData = async (raw: string): Promise<string> => {
  let text = raw;
  if (raw.startsWith("@")) {
    try {
      text = await readFile(raw.slice(1), "utf8");
    } catch (err) {
      throw new UsageError(
        `--data ${raw}: cannot read ${raw.slice(1)} (${(err as NodeJS.ErrnoException).code ?? err})`,
      );
    }
  }
  try {
    JSON.parse(text);
  } catch (err) {
    throw new UsageError(
      `--data is not valid JSON (${errorMessage(err)}); quote it for the shell, e.g. --data '{"text": "hello"}'`,
    );
  }
  return text.trim();
};

/** The block by id; an unknown id names the blocks there are. */
export const findBlock = async (client: GatewayClient, id: string): Promise<BlockDetail> => {
  try {
    return await client.getBlock(id);
  } catch (err) {
    if (!(err instanceof GatewayClientError) || err.status !== 404) throw err;
    const known = (await client.listBlocks().catch(() => [])).map((b) => b.id);
    throw new Error(
      `no block '${id}' at the gateway; ${known.length > 0 ? `known blocks: ${known.join(", ")}` : "there are no blocks yet (create one with aios apply <spec.json>)"}`,
    );
  }
};

/** `--grpc`: `host:port` or `http://host:port`, as `aios get blocks` shows it. */
const grpcFlag = (raw: string | undefined): string | undefined => {
  if (raw === undefined) return undefined;
  const url = /^https?:\/\//.test(raw) ? raw : `http://${raw}`;
  if (!/^https?:\/\/[^/\s]+$/.test(url.replace(/\/+$/, "")))
    throw new UsageError(`--grpc must be host:port or http://host:port, got '${raw}'`);
  return url.replace(/\/+$/, "");
};

/** The block's gRPC address as the gateway reports it (to infer:<block> tokens too); a refused token is told of --grpc. */
const grpcUrlOf = async (client: GatewayClient, blockId: string): Promise<string> => {
  let block: BlockDetail;
  try {
    block = await findBlock(client, blockId);
  } catch (err) {
    if (err instanceof GatewayClientError && err.status === 403) {
      throw new Error(
        `${err.message}\nthe gateway will not tell this token where block '${blockId}' is; pass its gRPC address with --grpc host:port (aios get blocks, with a token that may read, shows it)`,
      );
    }
    throw err;
  }
  if (block.grpc_url === null) {
    throw new Error(
      `block '${blockId}' is ${block.status} and has no gRPC address${block.status === "running" ? " (its controller did not answer)" : ""}; see aios get block ${blockId}`,
    );
  }
  return block.grpc_url;
};

/** What the instance answered, for `--json`: the response with its result parsed. */
const responseJson = (res: InferenceResponse) => ({
  message: res.message,
  result: res.result === "" ? null : safeJson(res.result),
  error: res.error,
  instance_id: res.instanceId,
  session_id: res.sessionId,
  seq_no: Number(res.seqNo),
});

const safeJson = (text: string): unknown => {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
};

interface LoadOptions {
  /** Sent with every call: the token (`authorization: Bearer ...`). */
  headers: Record<string, string>;
  data: string;
  session: string;
  repeat: number;
  concurrency: number;
  timeoutMs: number;
}

export interface LoadReport {
  sent: number;
  ok: number;
  failed: number;
  seconds: number;
  requests_per_second: number;
  latency_ms: { p50: number | null; p99: number | null };
  /** Answers per instance: the load balancer's spread, and the instances the autoscaler added. */
  by_instance: Record<string, number>;
  /** The first few distinct failures. */
  errors: string[];
}

const quantile = (sorted: readonly number[], q: number): number | null =>
  sorted.length === 0 ? null : (sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? null);

/** `--repeat N --concurrency C`: N tasks, C at a time, progress on stderr each second. */
const load = async (
  client: ReturnType<typeof createClient<typeof InferenceProxy>>,
  options: LoadOptions,
): Promise<LoadReport> => {
  const latencies: number[] = [];
  const byInstance: Record<string, number> = {};
  const errors = new Set<string>();
  let next = 1;
  let failed = 0;
  const began = performance.now();
  let lastCount = 0;
  const progress = setInterval(() => {
    const done = latencies.length + failed;
    console.error(
      `${done}/${options.repeat} done, ${done - lastCount} req/s, ${failed} failed, instances answering: ${Object.keys(byInstance).length}`,
    );
    lastCount = done;
  }, 1000);
  const worker = async () => {
    for (let seq = next++; seq <= options.repeat; seq = next++) {
      const packet = create(AIOSPacketSchema, {
        sessionId: options.session,
        seqNo: BigInt(seq),
        data: options.data,
        ts: Date.now() / 1000,
      });
      const started = performance.now();
      try {
        const res = await client.infer(
          { rpcData: toBinary(AIOSPacketSchema, packet) },
          { timeoutMs: options.timeoutMs, headers: options.headers },
        );
        if (!res.message) throw new Error(res.error || "the block could not process the task");
        latencies.push(performance.now() - started);
        byInstance[res.instanceId || "?"] = (byInstance[res.instanceId || "?"] ?? 0) + 1;
      } catch (err) {
        failed += 1;
        if (errors.size < 5) errors.add(errorMessage(err));
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.min(options.concurrency, options.repeat) }, worker));
  } finally {
    clearInterval(progress);
  }
  const seconds = (performance.now() - began) / 1000;
  const sorted = [...latencies].sort((a, b) => a - b);
  const round = (v: number | null) => (v === null ? null : Math.round(v * 10) / 10);
  return {
    sent: options.repeat,
    ok: latencies.length,
    failed,
    seconds: Math.round(seconds * 100) / 100,
    requests_per_second: Math.round(options.repeat / seconds),
    latency_ms: { p50: round(quantile(sorted, 0.5)), p99: round(quantile(sorted, 0.99)) },
    by_instance: byInstance,
    errors: [...errors],
  };
};

export const loadSummary = (blockId: string, r: LoadReport): string =>
  [
    `block ${blockId}: ${r.ok}/${r.sent} answered, ${r.failed} failed in ${r.seconds} s (${r.requests_per_second} req/s)`,
    `latency p50 ${r.latency_ms.p50 ?? "-"} ms, p99 ${r.latency_ms.p99 ?? "-"} ms`,
    `answers by instance: ${Object.entries(r.by_instance)
      .map(([id, n]) => `${id} ${n}`)
      .join(", ")}`,
    ...r.errors.map((e) => `error: ${e}`),
  ].join("\n");

export const inferVerb: Verb = {
  name: "infer",
  summary: "send one task to a block over gRPC and print the result",
  usage: `usage: aios infer <block> --data JSON [flags]

Sends one task to the block's gRPC inference API (InferenceProxy/infer) and prints the instance's
result as JSON; which instance answered and how long it took go to stderr. Exits 1 when the task
fails (the block's error is printed).

  --data JSON        the task's data, e.g. '{"text": "what a lovely day"}', or @file.json
  --session ID       session id (default: a fresh one); an instance answers a repeated
                     (session, seq) with its first outcome
  --seq N            sequence number within the session (default 1)
  --timeout MS       longest wait for the answer (default ${DEFAULT_TIMEOUT_MS})
  --repeat N         send the task N times (seq 1..N in one session): load, to watch the block scale;
                     prints progress each second on stderr and a summary (req/s, latency, instances)
  --concurrency C    tasks in flight at once with --repeat (default 1)
  --grpc ADDR        the block's gRPC address (host:port or http://host:port) instead of asking the
                     gateway (which tells a token with infer:<block> where that block is)
${CLIENT_FLAGS_USAGE.replace("the gateway's answer", "the whole response")}`,
  async run(argv) {
    const { values, positionals } = parseFlags(
      argv,
      {
        ...CLIENT_FLAGS,
        data: { type: "string", short: "d" },
        session: { type: "string" },
        seq: { type: "string" },
        timeout: { type: "string" },
        repeat: { type: "string" },
        concurrency: { type: "string" },
        grpc: { type: "string" },
      },
      true,
    );
    if (values.help) return print(this.usage);
    const [blockId, ...extra] = positionals;
    if (blockId === undefined)
      throw new UsageError("give the block to send the task to (aios get blocks lists them)");
    if (extra.length > 0)
      throw new UsageError(`unexpected arguments: ${extra.join(" ")} (quote the --data JSON)`);
    const raw = stringFlag(values.data);
    if (raw === undefined) throw new UsageError(`--data is required, e.g. --data '{"text": "hello"}'`);
    const data = await parseData(raw);
    const seq = positiveIntFlag(values.seq, "--seq") ?? 1;
    const timeoutMs = positiveIntFlag(values.timeout, "--timeout") ?? DEFAULT_TIMEOUT_MS;
    const session = stringFlag(values.session) ?? `aios-cli-${crypto.randomUUID()}`;

    // The block checks the same token (infer:<block>, infer:*, operator or admin) on the gRPC call.
    const { token, source } = clientToken(values.token);
    const headers: Record<string, string> = token ? { authorization: `Bearer ${token}` } : {};
    const grpcUrl = grpcFlag(stringFlag(values.grpc)) ?? (await grpcUrlOf(clientFrom(values), blockId));
    const client = createClient(InferenceProxy, createGrpcTransport({ baseUrl: grpcUrl }));
    const packet = create(AIOSPacketSchema, {
      sessionId: session,
      seqNo: BigInt(seq),
      data,
      ts: Date.now() / 1000,
    });
    const repeat = positiveIntFlag(values.repeat, "--repeat") ?? 1;
    const concurrency = positiveIntFlag(values.concurrency, "--concurrency") ?? 1;
    if (repeat > 1 || concurrency > 1) {
      const report = await load(client, { headers, data, session, repeat, concurrency, timeoutMs });
      if (values.json) console.log(JSON.stringify(report, null, 2));
      else console.log(loadSummary(blockId, report));
      return report.failed === 0 ? 0 : 1;
    }
    const started = performance.now();
    let res: InferenceResponse;
    try {
      res = await client.infer({ rpcData: toBinary(AIOSPacketSchema, packet) }, { timeoutMs, headers });
    } catch (err) {
      const e = ConnectError.from(err);
      const hint = e.code === Code.Unauthenticated ? `\n${tokenHint(source)}` : "";
      throw new Error(`the gRPC call to block '${blockId}' at ${grpcUrl} failed: ${e.message}${hint}`);
    }
    const ms = Math.round(performance.now() - started);
    if (values.json) {
      console.log(JSON.stringify(responseJson(res), null, 2));
      return res.message ? 0 : 1;
    }
    if (!res.message) {
      console.error(
        `aios infer: block '${blockId}' could not process the task${res.instanceId ? ` (instance ${res.instanceId})` : ""}: ${res.error || "no reason given"}`,
      );
      return 1;
    }
    console.log(res.result === "" ? "null" : JSON.stringify(safeJson(res.result), null, 2));
    console.error(
      `answered by instance ${res.instanceId || "?"} in ${ms} ms (session ${session}, seq ${seq})`,
    );
    return 0;
  },
};
