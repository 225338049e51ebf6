/**
 * The block's health checker sidecar (block-runtime.md, "Block health checker"): on its interval,
 * calls every instance's `/health` with a timeout (non-200 or no answer in time is unhealthy), runs
 * the block's stabilityChecker policy on `{"health_check_data": {id: bool}, "instances"}` and carries
 * out the actions it returns through the cluster controller (policies decide, hosts act):
 *
 * - `replace_instance` -> `remove_instance` with `replace: true` (a fresh instance takes its place);
 * - `remove_instance` -> `remove_instance` with `replace: false`.
 *
 * An action naming an instance that is not in the block is refused, never sent.
 */
import { authHeaders } from "../auth/credential.ts";
import type { ControllerClient } from "../controller/client.ts";
import { errorMessage } from "../http/errors.ts";
import { isPolicyError } from "../policy/errors.ts";
import type { BlockConfig } from "./config.ts";
import type { InstanceRef } from "./mapper.ts";
import { Sidecar, type SidecarPolicy } from "./sidecar.ts";

export type HealthPolicy = SidecarPolicy;

export interface ProbeResult {
  healthy: boolean;
  /** HTTP status, or null when there was no answer. */
  status: number | null;
  latency_ms: number;
  reason?: string;
}

export interface ActionResult {
  action: string;
  instance_id: string | null;
  outcome: "done" | "failed" | "refused";
  error?: string;
}

export interface HealthRun {
  at: string;
  health_check_data: Record<string, boolean>;
  probes: Record<string, ProbeResult>;
  outcome: "no_policy" | "evaluated" | "policy_error";
  actions: ActionResult[];
  error?: string;
}

export const HEALTH_ACTIONS = ["replace_instance", "remove_instance"] as const;

export interface HealthCheckerOptions {
  block: BlockConfig;
  policy: HealthPolicy | null;
  /** Default 15 s. */
  intervalMs?: number;
  /** Longest wait for one `/health`; default 5 s. */
  timeoutMs?: number;
  controller: Pick<ControllerClient, "removeInstance">;
}

interface PolicyAnswer {
  actions?: { action: string; instance_id?: string; reason?: string }[];
}

/** One `GET {url}/health` bounded by `timeoutMs`. */
export const probeInstance = async (url: string, timeoutMs: number): Promise<ProbeResult> => {
  const began = performance.now();
  const latency = () => Math.round((performance.now() - began) * 1000) / 1000;
  try {
    // `/health` is public; the credential goes anyway (an instance may refuse a call without one).
    const res = await fetch(`${url.replace(/\/+$/, "")}/health`, {
      headers: authHeaders(),
      signal: AbortSignal.timeout(timeoutMs),
    });
    await res.arrayBuffer().catch(() => {});
    if (res.status === 200) return { healthy: true, status: 200, latency_ms: latency() };
    return { healthy: false, status: res.status, latency_ms: latency(), reason: `HTTP ${res.status}` };
  } catch (err) {
    const reason =
      err instanceof Error && (err.name === "TimeoutError" || err.name === "AbortError")
        ? `no answer within ${timeoutMs} ms`
        : `unreachable: ${errorMessage(err)}`;
    return { healthy: false, status: null, latency_ms: latency(), reason };
  }
};

export class HealthChecker extends Sidecar<HealthRun> {
  readonly timeoutMs: number;
  readonly #controller: HealthCheckerOptions["controller"];

  constructor(options: HealthCheckerOptions) {
    super(options.block, options.policy, options.intervalMs ?? 15_000);
    this.timeoutMs = options.timeoutMs ?? 5000;
    this.#controller = options.controller;
  }

  /** One check now (or the one in progress). */
  check(): Promise<HealthRun> {
    return this.runNow();
  }

  protected async run(): Promise<HealthRun> {
    const instances = this.instances;
    const probes: Record<string, ProbeResult> = {};
    await Promise.all(
      instances.map(async (i) => {
        probes[i.id] = await probeInstance(i.url, this.timeoutMs);
      }),
    );
    const data: Record<string, boolean> = {};
    for (const i of instances) data[i.id] = probes[i.id]?.healthy ?? false;
    const run = (fields: Pick<HealthRun, "outcome" | "actions"> & { error?: string }): HealthRun => ({
      at: new Date().toISOString(),
      health_check_data: data,
      probes,
      ...fields,
    });
    const policy = this.policy;
    if (!policy) return run({ outcome: "no_policy", actions: [] });
    let answer: PolicyAnswer;
    try {
      answer = await policy.eval<PolicyAnswer>({
        health_check_data: data,
        instances: instances.map((i) => i.id),
      });
    } catch (err) {
      const error = isPolicyError(err) ? `${err.code}: ${err.message}` : errorMessage(err);
      return run({ outcome: "policy_error", actions: [], error });
    }
    const actions: ActionResult[] = [];
    for (const a of answer.actions ?? []) actions.push(await this.#carryOut(a, instances));
    return run({ outcome: "evaluated", actions });
  }

  async #carryOut(
    a: { action: string; instance_id?: string; reason?: string },
    instances: readonly InstanceRef[],
  ): Promise<ActionResult> {
    const id = a.instance_id ?? null;
    const refused = (error: string): ActionResult => ({
      action: a.action,
      instance_id: id,
      outcome: "refused",
      error,
    });
    if (!(HEALTH_ACTIONS as readonly string[]).includes(a.action)) {
      return refused(`unknown action '${a.action}' (known: ${HEALTH_ACTIONS.join(", ")})`);
    }
    if (id === null || !instances.some((i) => i.id === id)) {
      return refused(`instance_id '${id ?? ""}' is not an instance of block ${this.blockId}`);
    }
    try {
      await this.#controller.removeInstance({
        block_id: this.block.blockId,
        instance_id: id,
        replace: a.action === "replace_instance",
        reason: a.reason ?? "judged unhealthy by the block's health policy",
      });
      return { action: a.action, instance_id: id, outcome: "done" };
    } catch (err) {
      return { action: a.action, instance_id: id, outcome: "failed", error: errorMessage(err) };
    }
  }
}
