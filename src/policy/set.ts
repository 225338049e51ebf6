/**
 * A service's policy instances, one per rule (a pre-check hook, a block's resource or cluster
 * allocator, the stability checker, an event handler), kept across calls so a policy keeps its state
 * as the specification's Python objects do, and re-created when the rule's URI, parameters or
 * settings change.
 */
import { ApiError } from "../http/errors.ts";
import type { PolicyHost } from "./host.ts";
import type { PolicyKindName } from "./kinds/index.ts";
import { type CompiledPolicy, instantiatePolicy, type PolicyInstance } from "./runtime.ts";

export type PolicyResolver = (uri: string) => Promise<CompiledPolicy>;

/** A policy rule as documents write it (`policyRuleURI`, `parameters`, `settings`). */
export interface PolicyRef {
  policyRuleURI: string;
  parameters?: Record<string, unknown>;
  settings?: Record<string, unknown>;
}

interface Entry {
  fingerprint: string;
  instance: Promise<PolicyInstance>;
}

export class PolicySet {
  readonly #entries = new Map<string, Entry>();

  constructor(
    readonly resolve: PolicyResolver,
    readonly host: PolicyHost = {},
  ) {}

  /**
   * The instance serving `ruleId` as `ref` says; a 422 ApiError when the stored policy is not of the
   * `kind` the rule needs (a load balancer named as a pre-check, say).
   */
  async get(ruleId: string, ref: PolicyRef, kind: PolicyKindName): Promise<PolicyInstance> {
    const fingerprint = JSON.stringify([ref.policyRuleURI, ref.parameters ?? {}, ref.settings ?? {}]);
    const current = this.#entries.get(ruleId);
    if (current?.fingerprint === fingerprint) return current.instance;
    if (current) void current.instance.then((i) => i.close()).catch(() => {});
    const instance = (async () => {
      const compiled = await this.resolve(ref.policyRuleURI);
      if (compiled.kind !== kind) {
        throw new ApiError(
          422,
          "wrong_policy_kind",
          `${ruleId}: ${ref.policyRuleURI} is a ${compiled.kind} policy, not a ${kind} policy`,
        );
      }
      return instantiatePolicy(compiled, {
        ruleId,
        settings: ref.settings ?? {},
        parameters: ref.parameters ?? {},
        host: this.host,
      });
    })();
    this.#entries.set(ruleId, { fingerprint, instance });
    // A failed load is not cached: the next call tries again (the registry may be back).
    instance.catch(() => {
      if (this.#entries.get(ruleId)?.instance === instance) this.#entries.delete(ruleId);
    });
    return instance;
  }

  /** The instance serving `ruleId`, if one was loaded (for `/mgmt`). */
  async current(ruleId: string): Promise<PolicyInstance | null> {
    const entry = this.#entries.get(ruleId);
    return entry ? entry.instance.catch(() => null) : null;
  }

  /** Drops the instance serving `ruleId` (a rule that will not be used again). */
  async forget(ruleId: string): Promise<void> {
    const entry = this.#entries.get(ruleId);
    this.#entries.delete(ruleId);
    await entry?.instance.then((i) => i.close()).catch(() => {});
  }

  async close(): Promise<void> {
    const entries = [...this.#entries.values()];
    this.#entries.clear();
    await Promise.all(entries.map((e) => e.instance.then((i) => i.close()).catch(() => {})));
  }
}
