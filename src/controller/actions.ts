/**
 * `POST /executeAction {"action","data"}` (cluster-controller.md, Block Actions API): every action,
 * its input schema and the pre-check hook that governs it, registered in one table. The hook's
 * policy may refuse (403) or rewrite the input; what it returns is what runs.
 */
import { z } from "zod";
import { badRequest, parseWith } from "../http/errors.ts";
import type { PreCheckHook } from "../policy/kinds/pre-check.ts";
import {
  createBlock,
  downscale,
  getBlock,
  removeBlock,
  removeInstance,
  updateParameters,
  upscale,
} from "./blocks.ts";
import type { ControllerContext } from "./context.ts";
import { dryRun } from "./placement.ts";
import { type Caller, runPreCheck } from "./prechecks.ts";

const BlockId = z.string().min(1);

export const Scale = z.discriminatedUnion("operation", [
  z.object({
    block_id: BlockId,
    operation: z.literal("upscale"),
    instances_count: z.number().int().min(1).max(100),
  }),
  z.object({
    block_id: BlockId,
    operation: z.literal("downscale"),
    instances_list: z.array(z.string().min(1)).min(1),
  }),
]);

export const RemoveInstance = z.object({
  block_id: BlockId,
  instance_id: z.string().min(1),
  replace: z.boolean().default(false),
  reason: z.string().optional(),
});

export const InitStatus = z.object({
  block_id: BlockId,
  instance_id: z.string().optional(),
  status: z.string().min(1),
  data: z.unknown().optional(),
});

export const BlockRef = z.object({ block_id: BlockId });

export const ReassignInstances = z.object({
  block_id: BlockId,
  instance_ids: z.array(z.string().min(1)).min(1),
});

export const ParameterUpdate = z.object({ block_id: BlockId, parameters: z.record(z.string(), z.unknown()) });

interface ActionDef {
  /** The pre-check hook run before the action, if any. */
  hook?: PreCheckHook;
  run(ctx: ControllerContext, data: unknown): Promise<unknown>;
}

/** The actions, as the specification lists them. */
export const ACTIONS: Record<string, ActionDef> = {
  create_block: { hook: "add_block", run: (ctx, data) => createBlock(ctx, data) },
  remove_block: {
    hook: "remove_block",
    run: (ctx, data) => removeBlock(ctx, parseWith(BlockRef, data, ["data"]).block_id),
  },
  scale: {
    hook: "scale_block",
    async run(ctx, data) {
      const req = parseWith(Scale, data, ["data"]);
      if (req.operation === "upscale") {
        const added = await upscale(ctx, req.block_id, req.instances_count);
        return { block_id: req.block_id, operation: "upscale", added };
      }
      return {
        block_id: req.block_id,
        operation: "downscale",
        removed: await downscale(ctx, req.block_id, req.instances_list),
      };
    },
  },
  remove_instance: {
    hook: "scale_block",
    async run(ctx, data) {
      const req = parseWith(RemoveInstance, data, ["data"]);
      return removeInstance(ctx, req.block_id, req.instance_id, req.replace);
    },
  },
  reassign_instances: {
    async run(ctx, data) {
      const req = parseWith(ReassignInstances, data, ["data"]);
      const moved = [];
      for (const id of req.instance_ids) moved.push(await removeInstance(ctx, req.block_id, id, true));
      return { block_id: req.block_id, reassigned: moved };
    },
  },
  parameter_update: {
    hook: "block_mgmt",
    async run(ctx, data) {
      const req = parseWith(ParameterUpdate, data, ["data"]);
      return updateParameters(ctx, req.block_id, req.parameters);
    },
  },
  dry_run: {
    async run(ctx, data) {
      const block = (data as { block?: unknown } | null)?.block ?? data;
      if (block === null || typeof block !== "object" || Array.isArray(block)) {
        throw badRequest("invalid_input", "data.block: the block to score must be an object");
      }
      return {
        cluster_id: ctx.clusterId,
        selection_score_data: await dryRun(ctx, block as Record<string, unknown>),
      };
    },
  },
  init_create_status_update: {
    async run(ctx, data) {
      const req = parseWith(InitStatus, data, ["data"]);
      await getBlock(ctx, req.block_id);
      const entry = {
        status: req.status,
        data: req.data ?? null,
        instance_id: req.instance_id ?? null,
        at: new Date().toISOString(),
      };
      await ctx.store.collection("blocks").update(req.block_id, { $set: { init_container: entry } });
      return { block_id: req.block_id, init_container: entry };
    },
  },
  query_init_container_data: {
    async run(ctx, data) {
      const req = parseWith(BlockRef, data, ["data"]);
      const block = await getBlock(ctx, req.block_id);
      return {
        block_id: req.block_id,
        init_container: (block as { init_container?: unknown }).init_container ?? null,
      };
    },
  },
};

const Body = z.object({ action: z.string().min(1), data: z.unknown().optional() });

/**
 * Runs one `/executeAction` request: the action's pre-check (which sees `caller`; none: the controller
 * acting on its own), then the action.
 */
export const executeAction = async (
  ctx: ControllerContext,
  body: unknown,
  caller?: Caller,
): Promise<unknown> => {
  const { action, data } = parseWith(Body, body);
  const def = Object.hasOwn(ACTIONS, action) ? ACTIONS[action] : undefined;
  if (!def) {
    throw badRequest(
      "unknown_action",
      `action '${action}' is not one of ${Object.keys(ACTIONS).join(", ")}`,
      {
        actions: Object.keys(ACTIONS),
      },
    );
  }
  const input = def.hook ? await runPreCheck(ctx, def.hook, data ?? {}, caller) : (data ?? {});
  return def.run(ctx, input);
};
