/**
 * The resource allocator's flow for one request (resource-allocator.md, "Basic flow"): parse and
 * check the payload, find the candidate clusters with their metrics, load the policy named by
 * `policy_rule_uri`, run it with the candidates and the request's `inputs`, and answer its
 * `{"cluster_id", "node_id", "gpus"}`, or an error naming the field at fault. No server here: the
 * WebSocket side (app.ts) hands each message to `handle`.
 */
import { ApiError, toApiError } from "../http/errors.ts";
import type { CompiledPolicy } from "../policy/runtime.ts";
import type { PolicyDoc, PolicyStore } from "../policy/store.ts";
import type { Store } from "../store/index.ts";
import { MAX_LIMIT } from "../store/mongo/options.ts";
import { type Candidate, findCandidates } from "./candidates.ts";
import type { JsonObject } from "./evaluate.ts";
import type { PolicyRunner } from "./pool.ts";
import { type AllocationRequest, DEFAULT_LIMITS, type ProtocolLimits, parseRequest } from "./protocol.ts";

export const ALLOCATOR_POLICY_KIND = "allocatorServer";

export interface AllocatorDeps {
  store: Store;
  policies: PolicyStore;
  runner: PolicyRunner;
  limits?: Partial<ProtocolLimits>;
  /** Where the causes of internal errors go (the client sees only "internal error"). */
  log?: (message: string, err: unknown) => void;
}

export class Allocator {
  readonly limits: ProtocolLimits;
  /** Compiled policies by URI, with the module hash they were compiled from. */
  readonly #compiled = new Map<string, { module: string; policy: Promise<CompiledPolicy> }>();

  constructor(readonly deps: AllocatorDeps) {
    this.limits = { ...DEFAULT_LIMITS, ...deps.limits };
    // Candidate queries ask for one more than the limit to tell "too many", within the store's cap.
    if (
      !Number.isInteger(this.limits.maxCandidates) ||
      this.limits.maxCandidates < 1 ||
      this.limits.maxCandidates >= MAX_LIMIT
    ) {
      throw new Error(`maxCandidates must be an integer from 1 to ${MAX_LIMIT - 1}`);
    }
  }

  /** One message in, one answer out (JSON text); never throws. */
  async handle(message: string): Promise<string> {
    try {
      return JSON.stringify(await this.allocate(parseRequest(message, this.limits)));
    } catch (err) {
      const apiError = toApiError(err);
      if (apiError.status >= 500) (this.deps.log ?? defaultLog)("allocation failed", err);
      return JSON.stringify(apiError.toBody());
    }
  }

  async allocate(request: AllocationRequest): Promise<JsonObject> {
    // Independent reads, run together; when both fail the policy's error is the one reported.
    const [policy, candidates] = await Promise.allSettled([
      this.policy(request.policy_rule_uri),
      this.candidates(request),
    ]);
    if (policy.status === "rejected") throw policy.reason;
    if (candidates.status === "rejected") throw candidates.reason;
    return this.deps.runner.run({
      policy: policy.value,
      parameters: request.parameters,
      settings: request.settings,
      candidates: candidates.value,
      inputs: request.inputs,
    });
  }

  candidates(request: AllocationRequest): Promise<Candidate[]> {
    return findCandidates(
      {
        clusters: this.deps.store.collection("clusters"),
        metrics: this.deps.store.collection("cluster_metrics"),
      },
      request.source,
      this.limits.maxCandidates,
    );
  }

  /**
   * The compiled policy stored under `uri`. Its metadata is read on every request (a URI deleted and
   * uploaded again with other bytes is run as stored now); the compiled module is reused while the
   * stored module hash stays the same.
   */
  async policy(uri: string): Promise<CompiledPolicy> {
    const doc = (await this.deps.store.collection("policies").get(uri)) as PolicyDoc | null;
    if (!doc) {
      throw new ApiError(404, "policy_not_found", `policy_rule_uri: no policy is stored under '${uri}'`, {
        path: "policy_rule_uri",
        uri,
      });
    }
    if (doc.kind !== ALLOCATOR_POLICY_KIND) {
      throw new ApiError(
        422,
        "wrong_policy_kind",
        `policy_rule_uri: '${uri}' is a ${doc.kind} policy, not an ${ALLOCATOR_POLICY_KIND} policy`,
        { path: "policy_rule_uri", uri, kind: doc.kind },
      );
    }
    const cached = this.#compiled.get(uri);
    if (cached?.module === doc.module) return cached.policy;
    const policy = this.deps.policies.compiled(uri);
    const entry = { module: doc.module, policy };
    this.#compiled.set(uri, entry);
    policy.catch(() => {
      if (this.#compiled.get(uri) === entry) this.#compiled.delete(uri);
    });
    return policy;
  }
}

const defaultLog = (message: string, err: unknown) => console.error(`[allocator] ${message}:`, err);
