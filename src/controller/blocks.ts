/**
 * A cluster's blocks: their documents in the `blocks` collection and their lifecycle on the runtime
 * (create, scale, replace or remove instances, remove). Every step that starts something is undone
 * when a later step fails, so a failed action leaves the cluster as it found it.
 *
 * The block document is the gateway's `block_create_IR` output plus what this controller records:
 * `status`, `cluster_id`, `instances` (`[{instance_id, node_id, gpus, url}]`) and `services`
 * (`{urls}`). How an instance runs comes from `runtime` (`{command}` on the process runtime,
 * `{image}` on Kubernetes, `env`).
 */
import { randomUUID } from "node:crypto";
import { z } from "zod";
import { authHeaders } from "../auth/credential.ts";
import { BlockClient } from "../block/client.ts";
import { ApiError, badRequest, notFound, parseWith } from "../http/errors.ts";
import type { InstanceStatus, WorkloadTemplate } from "../runtime/types.ts";
import type { Doc } from "../store/index.ts";
import type { ControllerContext } from "./context.ts";
import { type Placement, type PlacementAction, placeInstance } from "./placement.ts";

const JsonObject = z.record(z.string(), z.unknown());

const PolicyRefSchema = z.looseObject({
  policyRuleURI: z.string(),
  parameters: JsonObject.optional(),
  settings: JsonObject.optional(),
});

export const NewBlockSchema = z
  .looseObject({
    id: z.string().regex(/^[a-zA-Z0-9][a-zA-Z0-9._-]{0,62}$/, "1 to 63 letters, digits, '.', '_' or '-'"),
    minInstances: z.number().int().min(0).max(1000),
    maxInstances: z.number().int().min(1).max(1000),
    blockInitData: JsonObject.optional(),
    initSettings: JsonObject.optional(),
    parameters: JsonObject.optional(),
    policies: z.record(z.string(), PolicyRefSchema).optional(),
    runtime: z.looseObject({
      command: z.array(z.string().min(1)).min(1).optional(),
      image: z.string().min(1).optional(),
      env: z.record(z.string(), z.string()).optional(),
    }),
  })
  .refine((b) => b.minInstances <= b.maxInstances, {
    path: ["minInstances"],
    message: "minInstances must not exceed maxInstances",
  });

export interface BlockInstance {
  instance_id: string;
  node_id: string;
  gpus: string[];
  url: string;
  started_at: string;
}

export type BlockDoc = Doc & {
  minInstances: number;
  maxInstances: number;
  status: "creating" | "running" | "removing";
  cluster_id: string;
  instances: BlockInstance[];
  services: { urls: Record<string, string> };
  runtime: WorkloadTemplate;
  parameters?: Record<string, unknown>;
  blockInitData?: Record<string, unknown>;
  initSettings?: Record<string, unknown>;
};

const blocks = (ctx: ControllerContext) => ctx.store.collection("blocks");

/** This cluster's blocks matching `filter` (controllers may share one database). */
export const findBlocks = (ctx: ControllerContext, filter: Record<string, unknown> = {}, options?: unknown) =>
  blocks(ctx).find({ $and: [{ cluster_id: ctx.clusterId }, filter] }, options) as Promise<BlockDoc[]>;

export const getBlock = async (ctx: ControllerContext, id: string): Promise<BlockDoc> => {
  const doc = await blocks(ctx).get(id);
  // Controllers may share one database: another cluster's block is not this one's.
  if (!doc || doc.cluster_id !== ctx.clusterId)
    throw notFound(`cluster ${ctx.clusterId} has no block '${id}'`);
  return doc as BlockDoc;
};

export const blockClient = (block: BlockDoc): BlockClient =>
  new BlockClient(block.id, block.services?.urls ?? {});

const newInstanceId = (blockId: string): string => `${blockId}-${randomUUID().slice(0, 8)}`;

/**
 * Starts `count` instances: placed one after another (each placement sees the cluster as it is), then
 * started `ctx.startConcurrency` at a time, each handed to `onReady` as soon as it is healthy. Rejects
 * with the first failure once every start has settled; instances already ready stay.
 */
const startInstances = async (
  ctx: ControllerContext,
  block: BlockDoc,
  action: PlacementAction,
  count: number,
  onReady: (instance: BlockInstance) => Promise<void>,
  extra: Record<string, unknown> = {},
): Promise<BlockInstance[]> => {
  const placements: Placement[] = [];
  for (let i = 0; i < count; i++) {
    // The allocator sees the placements made before this one as instances of the block (a "spread"
    // allocator would otherwise put every instance of a batch on the same node).
    const placed = placements.map((p, n) => ({
      instance_id: `(placing ${n})`,
      node_id: p.node_id,
      gpus: p.gpus,
    }));
    const seen = { ...block, instances: [...(block.instances ?? []), ...placed] };
    placements.push(await placeInstance(ctx, seen, action, extra));
  }
  const ready: BlockInstance[] = [];
  const failures = await inParallel(ctx.startConcurrency, placements, async (placement) => {
    const instance = await launchInstance(ctx, block, newInstanceId(block.id), placement);
    try {
      await onReady(instance);
      ready.push(instance);
    } catch (err) {
      await stopQuietly(ctx, block.id, instance.instance_id);
      throw err;
    }
  });
  if (failures.length > 0) throw failures[0];
  return ready;
};

/** Runs `task` over `items`, `concurrency` at a time; the failures, once every task has settled. */
const inParallel = async <T>(
  concurrency: number,
  items: readonly T[],
  task: (item: T) => Promise<void>,
): Promise<unknown[]> => {
  const queue = [...items];
  const failures: unknown[] = [];
  const worker = async () => {
    for (let next = queue.shift(); next !== undefined; next = queue.shift()) {
      try {
        await task(next);
      } catch (err) {
        failures.push(err);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(concurrency, items.length)) }, worker));
  return failures;
};

/** Starts one instance of the block with this id where `placement` says; resolves once it is healthy. */
const launchInstance = async (
  ctx: ControllerContext,
  block: BlockDoc,
  instanceId: string,
  placement: Placement,
): Promise<BlockInstance> => {
  const status: InstanceStatus = await ctx.runtime.startInstance({
    blockId: block.id,
    instanceId,
    nodeId: placement.node_id,
    gpus: placement.gpus,
    template: block.runtime,
    initData: block.blockInitData ?? {},
    initSettings: block.initSettings ?? {},
    parameters: block.parameters ?? {},
    controllerUrl: ctx.url,
  });
  if (!status.url) {
    await stopQuietly(ctx, block.id, status.instanceId);
    throw new ApiError(503, "instance_unreachable", `instance ${status.instanceId} has no URL`);
  }
  return {
    instance_id: status.instanceId,
    node_id: placement.node_id,
    gpus: placement.gpus,
    url: status.url,
    started_at: status.startedAt,
  };
};

/** The block's executor and sidecars, knowing `instances` from the start. */
const startServices = (ctx: ControllerContext, block: BlockDoc, instances: BlockInstance[]) =>
  ctx.runtime.startBlockServices({
    blockId: block.id,
    block: { ...block, instances },
    instances: instances.map((i) => ({ id: i.instance_id, url: i.url })),
    controllerUrl: ctx.url,
    registryUrl: ctx.registryUrl,
    clusterId: ctx.clusterId,
  });

export interface ResumedBlock {
  block_id: string;
  /** Instances started again, with their ids, nodes and GPUs. */
  restarted: string[];
  /** Instances that would not start again, dropped from the block. */
  dropped: string[];
  services_restarted: boolean;
}

/**
 * After a restart that found some of a running block's workloads gone (`aios up` stops them all on
 * Ctrl-C; a reboot does too): each missing instance starts again with its id, node and GPUs, then the
 * block's services with the instances as they now are. What still runs is left alone.
 */
export const resumeBlocks = async (ctx: ControllerContext): Promise<ResumedBlock[]> => {
  const alive = new Set(
    (await ctx.runtime.listInstances())
      .filter((i) => i.state === "running" || i.state === "starting")
      .map((i) => `${i.blockId}\n${i.instanceId}`),
  );
  const resumed: ResumedBlock[] = [];
  for (const block of await findBlocks(ctx, { status: "running" })) {
    const instances = block.instances ?? [];
    const missing = instances.filter((i) => !alive.has(`${block.id}\n${i.instance_id}`));
    const servicesUp = (await ctx.runtime.getBlockServices(block.id))?.state === "running";
    if (missing.length === 0 && servicesUp) continue;
    const restarted = new Map<string, BlockInstance>();
    await inParallel(ctx.startConcurrency, missing, async (i) => {
      restarted.set(i.instance_id, await launchInstance(ctx, block, i.instance_id, i));
    });
    const now = instances.flatMap((i) => {
      const again = restarted.get(i.instance_id);
      return again ? [again] : missing.includes(i) ? [] : [i];
    });
    let urls = block.services?.urls ?? {};
    if (!servicesUp) {
      urls = (await startServices(ctx, block, now)).urls;
    } else {
      const mapper = blockClient(block);
      for (const i of restarted.values()) await mapper.addInstance({ id: i.instance_id, url: i.url });
    }
    await blocks(ctx).update(block.id, { $set: { instances: now, services: { urls } } });
    resumed.push({
      block_id: block.id,
      restarted: [...restarted.keys()],
      dropped: missing.filter((i) => !restarted.has(i.instance_id)).map((i) => i.instance_id),
      services_restarted: !servicesUp,
    });
  }
  return resumed;
};

/**
 * A running block's services exited on their own (a crash): starts them again with the block's
 * instances as they are now and records their new addresses. Null when there is nothing to do (no
 * such block here, not running, or its services run).
 */
export const restartServices = async (ctx: ControllerContext, blockId: string): Promise<BlockDoc | null> => {
  const block = (await blocks(ctx).get(blockId)) as BlockDoc | null;
  if (block?.cluster_id !== ctx.clusterId || block.status !== "running") return null;
  if ((await ctx.runtime.getBlockServices(blockId))?.state === "running") return null;
  const { urls } = await startServices(ctx, block, block.instances ?? []);
  return (await blocks(ctx).update(blockId, { $set: { services: { urls } } })) as BlockDoc;
};

/** Starts one instance (a replacement) where the resource allocator says. */
const startInstance = async (
  ctx: ControllerContext,
  block: BlockDoc,
  action: PlacementAction,
  extra: Record<string, unknown> = {},
): Promise<BlockInstance> => {
  const [instance] = await startInstances(ctx, block, action, 1, async () => {}, extra);
  return instance!;
};

const stopQuietly = async (ctx: ControllerContext, blockId: string, instanceId: string) => {
  await ctx.runtime.stopInstance(blockId, instanceId).catch((err: unknown) => {
    console.error(`[controller] stopping ${instanceId} failed:`, err);
  });
};

/** `create_block`: stores the block, starts minInstances instances and the block's services. */
export const createBlock = async (ctx: ControllerContext, data: unknown): Promise<BlockDoc> => {
  const spec = parseWith(NewBlockSchema, data, ["data"]);
  if (!spec.runtime.command && !spec.runtime.image) {
    throw badRequest("invalid_input", "data.runtime: give a command (process runtime) or an image");
  }
  const doc = {
    ...spec,
    status: "creating",
    cluster_id: ctx.clusterId,
    instances: [],
    services: { urls: {} },
    created_at: new Date().toISOString(),
  } as unknown as BlockDoc;
  try {
    await blocks(ctx).insert(doc);
  } catch (err) {
    if ((err as { status?: number }).status === 409) {
      throw new ApiError(
        409,
        "block_exists",
        `block '${spec.id}' already exists in cluster ${ctx.clusterId}`,
      );
    }
    throw err;
  }
  const started: BlockInstance[] = [];
  try {
    await startInstances(ctx, doc, "allocation", spec.minInstances, async (i) => {
      started.push(i);
    });
    const services = await startServices(ctx, doc, started);
    const updated = await blocks(ctx).update(doc.id, {
      $set: { status: "running", instances: started, services: { urls: services.urls } },
    });
    return updated as BlockDoc;
  } catch (err) {
    // Roll back: what was started is stopped, the document removed.
    await ctx.runtime.stopBlockServices(doc.id).catch(() => {});
    for (const i of started) await stopQuietly(ctx, doc.id, i.instance_id);
    await blocks(ctx).delete(doc.id);
    throw err;
  }
};

/** `remove_block`: stops the services (no more traffic), then every instance, then forgets it. */
export const removeBlock = async (ctx: ControllerContext, blockId: string): Promise<{ removed: string }> => {
  const block = await getBlock(ctx, blockId);
  await blocks(ctx).update(blockId, { $set: { status: "removing" } });
  await ctx.runtime.stopBlockServices(blockId);
  for (const i of block.instances) await stopQuietly(ctx, blockId, i.instance_id);
  await blocks(ctx).delete(blockId);
  return { removed: blockId };
};

/** Adds `count` instances (within maxInstances); each takes traffic as soon as it is healthy. */
export const upscale = async (
  ctx: ControllerContext,
  blockId: string,
  count: number,
): Promise<BlockInstance[]> => {
  const block = await getBlock(ctx, blockId);
  const room = block.maxInstances - block.instances.length;
  if (room <= 0) {
    throw new ApiError(
      409,
      "at_max_instances",
      `block ${blockId} already has maxInstances (${block.maxInstances})`,
    );
  }
  const metrics = await blockClient(block)
    .metrics()
    .catch(() => null);
  const onReady = async (instance: BlockInstance) => {
    await blockClient(block).addInstance({ id: instance.instance_id, url: instance.url });
    await blocks(ctx).update(blockId, { $push: { instances: instance } });
  };
  return startInstances(ctx, block, "scale", Math.min(count, room), onReady, { block_metrics: metrics });
};

/** Takes an instance out of traffic, stops it and forgets it. */
const dropInstance = async (ctx: ControllerContext, block: BlockDoc, instanceId: string) => {
  await blockClient(block)
    .removeInstance(instanceId)
    .catch(() => {});
  await stopQuietly(ctx, block.id, instanceId);
  await blocks(ctx).update(block.id, { $pull: { instances: { instance_id: instanceId } } });
};

/** Removes the named instances, never below minInstances. */
export const downscale = async (
  ctx: ControllerContext,
  blockId: string,
  ids: string[],
): Promise<string[]> => {
  const block = await getBlock(ctx, blockId);
  const unknown = ids.filter((id) => !block.instances.some((i) => i.instance_id === id));
  if (unknown.length > 0) throw notFound(`block ${blockId} has no instance ${unknown.join(", ")}`);
  const room = block.instances.length - block.minInstances;
  if (room <= 0) {
    throw new ApiError(
      409,
      "at_min_instances",
      `block ${blockId} is at minInstances (${block.minInstances})`,
    );
  }
  const removed = [...new Set(ids)].slice(0, room);
  for (const id of removed) await dropInstance(ctx, block, id);
  return removed;
};

/**
 * `remove_instance`: takes one instance away; with `replace`, a fresh one takes its place first
 * (placed by the allocator's `reassignment`), so the block never runs short.
 */
export const removeInstance = async (
  ctx: ControllerContext,
  blockId: string,
  instanceId: string,
  replace: boolean,
): Promise<{ removed: string; replacement: BlockInstance | null }> => {
  const block = await getBlock(ctx, blockId);
  const old = block.instances.find((i) => i.instance_id === instanceId);
  if (!old) throw notFound(`block ${blockId} has no instance '${instanceId}'`);
  let replacement: BlockInstance | null = null;
  if (replace) {
    const metrics = await blockClient(block)
      .metrics()
      .catch(() => null);
    replacement = await startInstance(ctx, block, "reassignment", {
      block_metrics: metrics,
      instance_id: instanceId,
      pod_name: instanceId,
    });
    await blockClient(block).addInstance({ id: replacement.instance_id, url: replacement.url });
    await blocks(ctx).update(blockId, { $push: { instances: replacement } });
  }
  await dropInstance(ctx, block, instanceId);
  return { removed: instanceId, replacement };
};

/** `parameter_update`: every instance applies the parameters, then the document records them. */
export const updateParameters = async (
  ctx: ControllerContext,
  blockId: string,
  parameters: Record<string, unknown>,
): Promise<{ block_id: string; parameters: Record<string, unknown>; instances: Record<string, unknown> }> => {
  const block = await getBlock(ctx, blockId);
  const answers: Record<string, unknown> = {};
  for (const i of block.instances) {
    const res = await fetch(`${i.url}/mgmt`, {
      method: "POST",
      headers: { "content-type": "application/json", ...authHeaders() },
      body: JSON.stringify({ mgmt_action: "parameter_update", mgmt_data: parameters }),
      signal: AbortSignal.timeout(10_000),
    }).catch((err: unknown) => err as Error);
    answers[i.instance_id] =
      res instanceof Error
        ? { error: res.message }
        : { status: res.status, body: await res.json().catch(() => null) };
  }
  const merged = { ...(block.parameters ?? {}), ...parameters };
  await blocks(ctx).update(blockId, { $set: { parameters: merged } });
  return { block_id: blockId, parameters: merged, instances: answers };
};
