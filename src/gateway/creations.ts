/**
 * Block creation through the gateway: the specification parsed, the block made from its component,
 * placed on a cluster by the allocation flow, each step recorded in `block_creations` (by block id),
 * so `GET /api/blocks/{id}` says where a creation is and why it failed. Removal asks the block's
 * cluster controller to remove it.
 */
import { ServiceClientError } from "../http/client.ts";
import { ApiError, notFound } from "../http/errors.ts";
import type { PolicySet } from "../policy/set.ts";
import type { RegistryClient } from "../registry/client.ts";
import type { DocumentCollection } from "../store/index.ts";
import { type AllocationDeps, allocateBlock, controllerOf, type Step } from "./allocation.ts";
import { blockCreateIR } from "./ir.ts";
import { parseBlockSpec } from "./spec.ts";

export type CreationStatus = "allocating" | "running" | "failed" | "removed";

export interface GatewayDeps {
  registry: RegistryClient;
  policies: PolicySet;
  creations: DocumentCollection;
  dryRunTimeoutMs?: number;
  sequentialDryRuns?: boolean;
  /** Headers naming the user a call acts for (onBehalfOfHeader), sent to the controllers. */
  actingFor?: Record<string, string>;
}

const now = () => new Date().toISOString();

const loadComponent = async (registry: RegistryClient, uri: string) => {
  try {
    return await registry.getComponent(uri);
  } catch (err) {
    if (err instanceof ServiceClientError && err.status === 404) {
      throw new ApiError(
        422,
        "unknown_component",
        `body.spec.values.blockComponentURI: no component '${uri}' is registered`,
      );
    }
    throw err;
  }
};

/** `POST /api/createBlock`: the creation record once the block runs (or the error, recorded). */
export const createBlock = async (deps: GatewayDeps, body: unknown) => {
  const values = parseBlockSpec(body);
  const component = await loadComponent(deps.registry, values.blockComponentURI);
  const block = blockCreateIR(values, component);
  if (!block.runtime) {
    throw new ApiError(
      422,
      "component_without_runtime",
      `component '${values.blockComponentURI}' says nothing about how its instances run (runtime.command or runtime.image)`,
    );
  }
  const previous = await deps.creations.get(block.id);
  if (previous && previous.status !== "failed" && previous.status !== "removed") {
    throw new ApiError(409, "block_exists", `block '${block.id}' is already ${String(previous.status)}`);
  }
  const record = {
    id: block.id,
    status: "allocating",
    block,
    steps: [] as unknown[],
    created_at: now(),
    error: null,
  };
  if (previous) await deps.creations.upsert(block.id, record);
  else await deps.creations.insert(record);
  const recordStep = async (step: Step) => {
    await deps.creations.update(block.id, { $push: { steps: { ...step, at: now() } } });
  };
  const allocation: AllocationDeps = {
    registry: deps.registry,
    policies: deps.policies,
    record: recordStep,
    ...(deps.actingFor ? { actingFor: deps.actingFor } : {}),
    ...(deps.dryRunTimeoutMs !== undefined ? { dryRunTimeoutMs: deps.dryRunTimeoutMs } : {}),
    ...(deps.sequentialDryRuns !== undefined ? { sequentialDryRuns: deps.sequentialDryRuns } : {}),
  };
  try {
    const placed = await allocateBlock(allocation, block);
    return await deps.creations.update(block.id, {
      $set: { status: "running", cluster_id: placed.cluster_id, score: placed.score, updated_at: now() },
    });
  } catch (err) {
    const error =
      err instanceof ApiError
        ? { code: err.code, message: err.message, details: err.details ?? null }
        : { code: "internal", message: err instanceof Error ? err.message : String(err), details: null };
    await deps.creations.update(block.id, { $set: { status: "failed", error, updated_at: now() } });
    throw err;
  } finally {
    // The cluster allocator's instance served this block's creation only.
    await deps.policies.forget(`cluster-allocator:${block.id}`);
  }
};

export const getCreation = async (deps: GatewayDeps, id: string) => {
  const doc = await deps.creations.get(id);
  if (!doc) throw notFound(`no block '${id}' was created through this gateway`);
  return doc;
};

/** Removes the block from its cluster; the record stays, marked removed. */
export const removeBlock = async (deps: GatewayDeps, id: string) => {
  const doc = await getCreation(deps, id);
  if (doc.status !== "running") {
    throw new ApiError(409, "not_running", `block '${id}' is ${String(doc.status)}, not running`);
  }
  const cluster = await deps.registry.getCluster(String(doc.cluster_id));
  const controller = controllerOf(cluster);
  if (!controller) {
    throw new ApiError(503, "no_controller", `cluster ${String(doc.cluster_id)} names no controller`);
  }
  await controller.executeAction("remove_block", { block_id: id }, { headers: deps.actingFor ?? {} });
  return deps.creations.update(id, { $set: { status: "removed", updated_at: now() } });
};
