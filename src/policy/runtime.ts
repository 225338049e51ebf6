/**
 * The policy runtime: compiled modules cached by hash, instances created with `init`, calls to
 * `eval` and `management` run inline through Extism with the sandbox admission added (fuel reset
 * before each call, kernel memory metered, traps told apart), outputs checked against the kind.
 */
import createPlugin, { type CallContext, type Plugin } from "@extism/extism";
import { SANDBOX_DEFAULTS, SANDBOX_EXPORTS, SANDBOX_MODULE, TRAP_REASON } from "./abi.ts";
import { PolicyError } from "./errors.ts";
import { HostCallError, hostFunctions, type LogLevel, type PolicyHost } from "./host.ts";
import { type PolicyKindName, policyKind } from "./kinds/index.ts";

export interface PolicyLimits {
  /** Fuel per exported call (function entries and loop iterations). */
  fuel: number;
  /** Cap of kernel memory allocated per call; the linear memory cap is built into the module. */
  memoryBytes: number;
  outputBytes: number;
}

/** A module ready to instantiate: what the runtime needs of a stored policy. */
export interface CompiledPolicy {
  uri: string;
  kind: PolicyKindName;
  /** sha256 of the bytes compiled (the instrumented module): the cache key. */
  hash: string;
  module: WebAssembly.Module;
  exports: readonly string[];
  limits: PolicyLimits;
  /** False only for benchmarks comparing against the module as uploaded. */
  metered: boolean;
}

export interface InstanceOptions {
  /** The rule this instance serves (the block's policy name, a pre-check hook...): scopes its context. */
  ruleId?: string;
  settings?: Record<string, unknown>;
  parameters?: Record<string, unknown>;
  host?: PolicyHost;
}

export interface EvalOptions {
  /** Overrides the instance's parameters for this call. */
  parameters?: Record<string, unknown>;
  /** Extra call metadata merged into `context`. */
  context?: Record<string, unknown>;
  /** Providers for this call only (e.g. the clusters fetched for this decision). */
  host?: PolicyHost;
  /** Check `input_data` against the kind first (a bad_input error); hosts that build it skip this. */
  validateInput?: boolean;
}

export const sha256Hex = async (bytes: Uint8Array): Promise<string> => {
  const digest = await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
};

/** Compiled modules by hash, shared by every instance of a process. */
export class ModuleCache {
  readonly #modules = new Map<string, Promise<WebAssembly.Module>>();

  async compile(bytes: Uint8Array, hash?: string): Promise<{ hash: string; module: WebAssembly.Module }> {
    const key = hash ?? (await sha256Hex(bytes));
    let module = this.#modules.get(key);
    if (!module) {
      module = WebAssembly.compile(bytes as Uint8Array<ArrayBuffer>);
      this.#modules.set(key, module);
      module.catch(() => this.#modules.delete(key));
    }
    return { hash: key, module: await module };
  }

  get size(): number {
    return this.#modules.size;
  }
}

export const processModuleCache = new ModuleCache();

/** Compiles admitted (or, for benchmarks, raw) bytes into a CompiledPolicy. */
export const compilePolicy = async (
  bytes: Uint8Array,
  meta: {
    uri: string;
    kind: PolicyKindName;
    limits?: Partial<PolicyLimits>;
    metered?: boolean;
    hash?: string;
  },
  cache: ModuleCache = processModuleCache,
): Promise<CompiledPolicy> => {
  const { hash, module } = await cache.compile(bytes, meta.hash);
  return {
    uri: meta.uri,
    kind: meta.kind,
    hash,
    module,
    exports: WebAssembly.Module.exports(module)
      .filter((e) => e.kind === "function")
      .map((e) => e.name),
    limits: {
      fuel: meta.limits?.fuel ?? SANDBOX_DEFAULTS.fuel,
      memoryBytes: meta.limits?.memoryBytes ?? SANDBOX_DEFAULTS.memoryBytes,
      outputBytes: meta.limits?.outputBytes ?? SANDBOX_DEFAULTS.outputBytes,
    },
    metered: meta.metered ?? true,
  };
};

const defaultLog = (uri: string) => (level: LogLevel, message: string) => {
  if (level === "debug") return;
  (level === "info" ? console.log : console.error)(`[policy ${uri}] ${level}: ${message}`);
};

class KernelMemoryExceeded extends Error {}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

const PLUGIN_ERROR_PREFIX = "Plugin-originated error: ";

/**
 * One policy instance: an Extism plugin plus its sandbox state. Calls are serialized (a plugin has
 * one call stack); after a trap the plugin is discarded and re-created, with `init`, on the next call.
 */
export class PolicyInstance {
  readonly uri: string;
  readonly kind: PolicyKindName;
  readonly ruleId: string;
  #plugin: Plugin | null = null;
  #fuel: WebAssembly.Global | null = null;
  #trap: WebAssembly.Global | null = null;
  #allocated = 0;
  #memory: WebAssembly.Memory | null = null;
  /** The input of the call in progress and the output written with aios_output_write, if any. */
  #input: Uint8Array = new Uint8Array(0);
  #output: string | null = null;
  #host: PolicyHost;
  #callHost: PolicyHost | null = null;
  #tail: Promise<void> = Promise.resolve();
  #pending = 0;
  #closed = false;

  constructor(
    readonly policy: CompiledPolicy,
    readonly options: InstanceOptions = {},
  ) {
    this.uri = policy.uri;
    this.kind = policy.kind;
    this.ruleId = options.ruleId ?? policy.uri;
    this.#host = options.host ?? {};
  }

  /** Creates the plugin and runs `init` (when exported). Called by the first call if not before. */
  async start(): Promise<void> {
    if (this.#plugin) return;
    const log = this.#host.log ?? defaultLog(this.uri);
    const logger = {
      debug: (m: string) => log("debug", m),
      info: (m: string) => log("info", m),
      warn: (m: string) => log("warn", m),
      error: (m: string) => log("error", m),
    } as unknown as Console;
    const plugin = await createPlugin(
      { wasm: [{ module: this.policy.module }] },
      {
        useWasi: false,
        runInWorker: false,
        logger,
        functions: {
          [SANDBOX_MODULE]: { alloc: (cx: CallContext, n: bigint) => this.#alloc(cx, n) },
          "extism:host/user": {
            ...hostFunctions(() => ({ host: this.#callHost ?? this.#host, ruleId: this.ruleId })),
            aios_input_read: (_cx: CallContext, dst: bigint) => this.#inputRead(dst),
            aios_output_write: (_cx: CallContext, src: bigint, len: bigint) => this.#outputWrite(src, len),
            aios_block_read: (cx: CallContext, block: bigint, dst: bigint) => this.#blockRead(cx, block, dst),
          },
        },
      },
    );
    const exports = (await plugin.getInstance()).exports;
    this.#plugin = plugin;
    this.#memory = exports.memory instanceof WebAssembly.Memory ? exports.memory : null;
    this.#fuel = this.policy.metered ? (exports[SANDBOX_EXPORTS.fuel] as WebAssembly.Global) : null;
    this.#trap = this.policy.metered ? (exports[SANDBOX_EXPORTS.trap] as WebAssembly.Global) : null;
    if (this.policy.exports.includes("init")) {
      const init = {
        rule_id: this.ruleId,
        settings: this.options.settings ?? {},
        parameters: this.parameters,
      };
      await this.#call("init", JSON.stringify(init));
    }
  }

  get parameters(): Record<string, unknown> {
    return this.options.parameters ?? {};
  }

  /** `eval` with the kind's contract: the output is parsed, validated and cross-checked. */
  async eval<O = Record<string, unknown>>(inputData: unknown, options: EvalOptions = {}): Promise<O> {
    if (options.validateInput) this.#checkInput(inputData);
    const input = {
      parameters: options.parameters ?? this.parameters,
      input_data: inputData,
      context: {
        rule_id: this.ruleId,
        policy_uri: this.uri,
        kind: this.kind,
        now_ms: Date.now(),
        ...options.context,
      },
    };
    const text = await this.#run("eval", JSON.stringify(input), options.host);
    return this.#checkOutput(inputData, this.#parseOutput(text)) as O;
  }

  /** `management` (optional export): `{"action","data"}` -> any JSON object. */
  async management(action: string, data: unknown = {}): Promise<unknown> {
    if (!this.policy.exports.includes("management")) {
      throw new PolicyError("missing_export", this.uri, "the policy has no management export");
    }
    const output = this.#parseOutput(await this.#run("management", JSON.stringify({ action, data })));
    return output;
  }

  async close(): Promise<void> {
    this.#closed = true;
    const plugin = this.#plugin;
    this.#plugin = null;
    await plugin?.close();
  }

  /**
   * Serializes calls: the instance has one call stack, and a call's input, output and host live in
   * this object until its promise settles. Calls made while others are pending wait their turn.
   */
  #run(name: string, input: string, host?: PolicyHost): Promise<string> {
    const call =
      this.#pending === 0
        ? this.#exclusive(name, input, host)
        : this.#tail.then(() => this.#exclusive(name, input, host));
    this.#pending++;
    this.#tail = call.then(this.#settle, this.#settle);
    return call;
  }

  readonly #settle = (): void => {
    this.#pending--;
  };

  async #exclusive(name: string, input: string, host?: PolicyHost): Promise<string> {
    if (this.#closed) throw new PolicyError("trap", this.uri, "instance is closed");
    try {
      if (!this.#plugin) await this.start();
      this.#callHost = host ?? null;
      return await this.#call(name, input);
    } finally {
      this.#callHost = null;
    }
  }

  async #call(name: string, input: string): Promise<string> {
    const plugin = this.#plugin;
    if (!plugin) throw new PolicyError("trap", this.uri, "instance is not started");
    if (this.#fuel) this.#fuel.value = this.policy.limits.fuel;
    if (this.#trap) this.#trap.value = TRAP_REASON.none;
    this.#allocated = 0;
    this.#input = encoder.encode(input);
    this.#output = null;
    try {
      const output = await plugin.call(name, this.#input);
      if (this.#output !== null) return this.#output;
      const bytes = output ? output.bytes().byteLength : 0;
      if (bytes > this.policy.limits.outputBytes) {
        throw new PolicyError(
          "output_too_large",
          this.uri,
          `${name} returned ${bytes} bytes, over the limit of ${this.policy.limits.outputBytes}`,
          { bytes, limit: this.policy.limits.outputBytes },
        );
      }
      return output ? output.text() : "";
    } catch (err) {
      throw this.#classify(name, err);
    } finally {
      // Kernel blocks (input, output, the policy's allocations) live until reset; free them per call.
      if (this.#plugin) void this.#plugin.reset();
    }
  }

  /** aios_input_read: the call's input copied straight into the policy's linear memory. */
  #inputRead(dst: bigint): bigint {
    const view = this.#linear(dst, this.#input.byteLength, "aios_input_read");
    view.set(this.#input);
    return BigInt(this.#input.byteLength);
  }

  /** aios_block_read: a kernel block (a host function's answer) copied into linear memory at once. */
  #blockRead(cx: CallContext, block: bigint, dst: bigint): bigint {
    const output = cx.read(block);
    if (output === null) throw new HostCallError(`aios_block_read: no kernel block at ${block}`);
    const bytes = output.bytes();
    this.#linear(dst, bytes.byteLength, "aios_block_read").set(bytes);
    return BigInt(bytes.byteLength);
  }

  /** aios_output_write: the call's output read straight from the policy's linear memory. */
  #outputWrite(src: bigint, len: bigint): void {
    const bytes = Number(len);
    if (bytes > this.policy.limits.outputBytes) {
      throw new PolicyError(
        "output_too_large",
        this.uri,
        `output of ${bytes} bytes is over the limit of ${this.policy.limits.outputBytes}`,
        {
          bytes,
          limit: this.policy.limits.outputBytes,
        },
      );
    }
    this.#output = decoder.decode(this.#linear(src, bytes, "aios_output_write"));
  }

  #linear(offset: bigint, length: number, what: string): Uint8Array {
    if (!this.#memory) throw new HostCallError(`${what}: the policy does not export its memory as 'memory'`);
    const start = Number(offset);
    if (start < 0 || start + length > this.#memory.buffer.byteLength) {
      throw new HostCallError(`${what}: ${length} bytes at ${start} are outside the policy's memory`);
    }
    return new Uint8Array(this.#memory.buffer, start, length);
  }

  #alloc(cx: CallContext, n: bigint): bigint {
    this.#allocated += Number(n);
    if (this.#allocated > this.policy.limits.memoryBytes) throw new KernelMemoryExceeded();
    return cx.alloc(n);
  }

  #classify(name: string, err: unknown): PolicyError {
    const message = err instanceof Error ? err.message : String(err);
    if (message.startsWith(PLUGIN_ERROR_PREFIX)) {
      // The policy reported an error and returned normally: its instance is intact.
      return new PolicyError("policy_error", this.uri, message.slice(PLUGIN_ERROR_PREFIX.length), {
        export: name,
      });
    }
    const reason = this.#trap?.value ?? TRAP_REASON.none;
    if (err instanceof PolicyError) {
      void this.#discard();
      return err;
    }
    // A trap may leave the instance's memory inconsistent: start afresh on the next call.
    void this.#discard();
    const { fuel, memoryBytes } = this.policy.limits;
    if (reason === TRAP_REASON.fuel) {
      return new PolicyError("fuel_exhausted", this.uri, `${name} ran out of fuel (budget ${fuel})`, {
        export: name,
        fuel,
      });
    }
    if (reason === TRAP_REASON.memory || err instanceof KernelMemoryExceeded) {
      return new PolicyError(
        "memory_exceeded",
        this.uri,
        `${name} needed more memory than its cap of ${Math.round(memoryBytes / 1048576)} MiB`,
        { export: name, memory_bytes: memoryBytes },
      );
    }
    const detail = err instanceof HostCallError ? `host call failed: ${message}` : `trapped: ${message}`;
    return new PolicyError("trap", this.uri, `${name} ${detail}`, { export: name });
  }

  async #discard(): Promise<void> {
    const plugin = this.#plugin;
    this.#plugin = null;
    this.#fuel = null;
    this.#trap = null;
    this.#memory = null;
    await plugin?.close();
  }

  #parseOutput(text: string): Record<string, unknown> {
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      throw new PolicyError(
        "bad_output",
        this.uri,
        `output is not JSON: ${JSON.stringify(text.slice(0, 80))}`,
      );
    }
    if (typeof value !== "object" || value === null || Array.isArray(value)) {
      throw new PolicyError("bad_output", this.uri, "output must be a JSON object", { path: "" });
    }
    return value as Record<string, unknown>;
  }

  #checkInput(inputData: unknown): void {
    const result = policyKind(this.kind).input.safeParse(inputData);
    if (result.success) return;
    const issue = result.error.issues[0];
    const path = issue ? issue.path.join(".") : "";
    throw new PolicyError("bad_input", this.uri, `input_data ${path || "(root)"}: ${issue?.message}`, {
      path,
    });
  }

  #checkOutput(inputData: unknown, output: Record<string, unknown>): Record<string, unknown> {
    const kind = policyKind(this.kind);
    if (kind.accepts?.(inputData, output)) return output;
    const result = kind.output(inputData).safeParse(output);
    if (!result.success) {
      const issue = result.error.issues[0];
      const path = issue ? issue.path.join(".") : "";
      throw new PolicyError("bad_output", this.uri, `output ${path || "(root)"}: ${issue?.message}`, {
        path,
        issues: result.error.issues.map((i) => ({ path: i.path.join("."), message: i.message })),
      });
    }
    const problems = kind.check?.(inputData, result.data) ?? [];
    if (problems.length > 0) {
      throw new PolicyError("bad_output", this.uri, `output ${problems[0]}`, {
        path: problems[0]?.split(":")[0],
        problems,
      });
    }
    return output;
  }
}

/** Creates an instance and runs its `init`. */
export const instantiatePolicy = async (
  policy: CompiledPolicy,
  options: InstanceOptions = {},
): Promise<PolicyInstance> => {
  const instance = new PolicyInstance(policy, options);
  await instance.start();
  return instance;
};
