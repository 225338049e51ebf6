/**
 * Runs a built policy through the plain Extism JS SDK with in-memory host functions: what the tests
 * use, and what a policy author can use to try a policy without the rest of aios.
 *
 *   const lb = await openPolicy("roundrobin");
 *   await lb.init({ settings: { session_cache_size: 10 } });
 *   await lb.eval({ packet: { session_id: "s1" }, instances: ["a", "b"] });   // { instance_id: "a" }
 */

import { join } from "node:path";
import { type CallContext, createPlugin, type Plugin } from "@extism/extism";
import { buildPolicies } from "./build.ts";
import { BUILTIN_POLICIES, POLICY_FIXTURES } from "./catalog.ts";

const ROOT = join(import.meta.dir, "..");

let built: Promise<void> | null = null;

/** Builds whatever is stale, once per process (tests run without the `pretest` script too). */
export function ensureBuilt(): Promise<void> {
  built ??= buildPolicies({ ifStale: true }).then((report) => {
    if (report.failed.length > 0) {
      throw new Error(`building the policies failed:\n${report.failed.map((f) => f.message).join("\n")}`);
    }
  });
  return built;
}

/** What the host functions answer; every field may change between calls. */
export interface FakeHost {
  /** `aios_get_metrics`: a value or a function giving one per call. */
  metrics?: unknown;
  /** `aios_context_get`/`set`: the rule's context store. */
  context?: Map<string, unknown>;
  /** `aios_cluster_read`/`aios_cluster_query` (the query answers every cluster). */
  clusters?: Record<string, unknown>;
  /** `aios_metrics_get`/`aios_metrics_query`. */
  clusterMetrics?: Record<string, unknown>;
  /** Every log line the policy writes. */
  logs?: { level: string; message: string }[];
  /** Host function calls by name. */
  calls?: Map<string, number>;
}

/** A policy's answer: JSON of the kind's shape, read loosely by tests. */
// biome-ignore lint/suspicious/noExplicitAny: answers are JSON whose shape each test knows
export type Answer = any;

export class PolicyCallError extends Error {
  override readonly name = "PolicyCallError";
}

const PREFIX = "Plugin-originated error: ";

/** The built .wasm of a built-in policy or fixture, by name. */
export async function policyBytes(name: string): Promise<Uint8Array> {
  const file =
    BUILTIN_POLICIES.find((p) => p.name === name)?.file ?? POLICY_FIXTURES.find((f) => f.name === name)?.file;
  if (!file) throw new Error(`no built-in policy or fixture named '${name}'`);
  return new Uint8Array(await Bun.file(join(ROOT, file)).arrayBuffer());
}

/**
 * The call in progress as the direct host functions see it: the input `aios_input_read` copies into
 * the policy's memory and the output `aios_output_write` takes from it.
 */
export class DirectIo {
  input: Uint8Array = new Uint8Array(0);
  output: string | null = null;
  memory: WebAssembly.Memory | null = null;

  view(offset: bigint, length: number, what: string): Uint8Array {
    if (!this.memory) throw new Error(`${what}: the policy does not export its memory`);
    return new Uint8Array(this.memory.buffer, Number(offset), length);
  }
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export class PolicyHandle {
  constructor(
    readonly plugin: Plugin,
    readonly host: FakeHost,
    readonly uri: string,
    readonly kind: string,
    readonly io: DirectIo,
  ) {}

  ruleId = "rule-1";

  /** One call with raw input; the output text, or PolicyCallError with the policy's message. */
  async raw(name: string, input: string | Uint8Array): Promise<string> {
    const bytes = typeof input === "string" ? encoder.encode(input) : input;
    this.io.input = bytes;
    this.io.output = null;
    try {
      const out = await this.plugin.call(name, bytes);
      return this.io.output ?? out?.text() ?? "";
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      throw new PolicyCallError(message.startsWith(PREFIX) ? message.slice(PREFIX.length) : message);
    } finally {
      // As the aios runtime does: kernel blocks live until reset, so free them after every call.
      await this.plugin.reset();
    }
  }

  /** One call with JSON (or JSON text) in and out. */
  async call(name: string, input: unknown): Promise<unknown> {
    const body = await this.raw(name, typeof input === "string" ? input : JSON.stringify(input));
    return body.length > 0 ? JSON.parse(body) : null;
  }

  /** `init`, as a host calls it once per instance; a no-op for policies without one (it is optional). */
  async init(opts: { ruleId?: string; settings?: unknown; parameters?: unknown } = {}): Promise<unknown> {
    if (opts.ruleId) this.ruleId = opts.ruleId;
    if (!(await this.plugin.functionExists("init"))) return null;
    return this.call("init", {
      rule_id: this.ruleId,
      settings: opts.settings ?? {},
      parameters: opts.parameters ?? {},
    });
  }

  /** `eval` with `input_data`; `context` defaults to this rule's with `now_ms` = now. */
  async eval(
    inputData: unknown,
    parameters: unknown = {},
    context: Record<string, unknown> = {},
  ): Promise<Answer> {
    return this.call("eval", {
      parameters,
      input_data: inputData,
      context: {
        rule_id: this.ruleId,
        policy_uri: this.uri,
        kind: this.kind,
        now_ms: Date.now(),
        ...context,
      },
    });
  }

  async management(action: string, data: unknown = {}): Promise<Answer> {
    return this.call("management", { action, data });
  }

  close(): Promise<void> {
    return this.plugin.close();
  }
}

function hostFunctions(host: FakeHost, io: DirectIo) {
  const count = (name: string) => host.calls?.set(name, (host.calls.get(name) ?? 0) + 1);
  const text = (cx: CallContext, off: bigint) => cx.read(off)?.text() ?? "";
  const json = (cx: CallContext, value: unknown) => cx.store(JSON.stringify(value ?? null));
  const envelope = (map: Record<string, unknown> | undefined, id: string) =>
    map && id in map ? { ok: true, data: map[id] } : { ok: false, error: `'${id}' not found` };
  return {
    aios_get_metrics: (cx: CallContext) => {
      count("aios_get_metrics");
      const m = typeof host.metrics === "function" ? (host.metrics as () => unknown)() : host.metrics;
      return json(cx, m ?? { block_metrics: null, cluster_metrics: null });
    },
    aios_cluster_read: (cx: CallContext, id: bigint) => {
      count("aios_cluster_read");
      return json(cx, envelope(host.clusters, text(cx, id)));
    },
    aios_cluster_query: (cx: CallContext, _query: bigint) => {
      count("aios_cluster_query");
      return json(cx, { ok: true, data: Object.values(host.clusters ?? {}) });
    },
    aios_metrics_get: (cx: CallContext, id: bigint) => {
      count("aios_metrics_get");
      return json(cx, envelope(host.clusterMetrics, text(cx, id)));
    },
    aios_metrics_query: (cx: CallContext, _params: bigint) => {
      count("aios_metrics_query");
      return json(cx, { ok: true, data: Object.values(host.clusterMetrics ?? {}) });
    },
    aios_context_get: (cx: CallContext, key: bigint) => {
      count("aios_context_get");
      const k = text(cx, key);
      return host.context?.has(k) ? json(cx, host.context.get(k)) : 0n;
    },
    aios_input_read: (_cx: CallContext, dst: bigint) => {
      io.view(dst, io.input.byteLength, "aios_input_read").set(io.input);
      return BigInt(io.input.byteLength);
    },
    aios_output_write: (_cx: CallContext, src: bigint, len: bigint) => {
      io.output = decoder.decode(io.view(src, Number(len), "aios_output_write"));
    },
    aios_block_read: (cx: CallContext, block: bigint, dst: bigint) => {
      const bytes = cx.read(block)?.bytes() ?? new Uint8Array(0);
      io.view(dst, bytes.byteLength, "aios_block_read").set(bytes);
      return BigInt(bytes.byteLength);
    },
    aios_context_set: (cx: CallContext, key: bigint, value: bigint) => {
      count("aios_context_set");
      host.context ??= new Map();
      host.context.set(text(cx, key), JSON.parse(text(cx, value)));
    },
  };
}

/** Loads a built-in policy (or fixture) by name with fake host functions. */
export async function openPolicy(name: string, host: FakeHost = {}): Promise<PolicyHandle> {
  const entry = BUILTIN_POLICIES.find((p) => p.name === name);
  host.logs ??= [];
  host.calls ??= new Map();
  const logs = host.logs;
  const logger = {
    info: (message: string) => logs.push({ level: "info", message }),
    debug: (message: string) => logs.push({ level: "debug", message }),
    warn: (message: string) => logs.push({ level: "warn", message }),
    error: (message: string) => logs.push({ level: "error", message }),
  } as unknown as Console;
  const io = new DirectIo();
  const plugin = await createPlugin(
    { wasm: [{ data: await policyBytes(name) }] },
    {
      useWasi: false,
      runInWorker: false,
      logger,
      functions: { "extism:host/user": hostFunctions(host, io) },
    },
  );
  const memory = (await plugin.getInstance()).exports.memory;
  io.memory = memory instanceof WebAssembly.Memory ? memory : null;
  return new PolicyHandle(plugin, host, entry?.uri ?? `fixture.${name}`, entry?.kind ?? "fixture", io);
}
