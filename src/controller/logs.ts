/**
 * `GET /blocks/{id}/logs?instance=&tail=`: the last lines a block's services (no instance) or one of its
 * instances wrote, as the runtime keeps them (files for processes, pod logs on Kubernetes).
 */
import { z } from "zod";
import { notFound, parseWith } from "../http/errors.ts";
import { getBlock } from "./blocks.ts";
import type { ControllerContext } from "./context.ts";

export const MAX_LOG_LINES = 5000;

export const LogsQuerySchema = z.object({
  instance: z.string().min(1).optional(),
  tail: z.coerce.number().int().min(1).max(MAX_LOG_LINES).default(200),
});

export const blockLogs = async (ctx: ControllerContext, blockId: string, query: unknown) => {
  const { instance, tail } = parseWith(LogsQuerySchema, query, ["query"]);
  await getBlock(ctx, blockId);
  const lines = await ctx.runtime.readLogs(blockId, instance ?? null, tail);
  if (lines === null) {
    throw notFound(
      instance
        ? `block ${blockId} has no log for instance '${instance}'`
        : `block ${blockId} has no log for its services`,
    );
  }
  return { block_id: blockId, instance_id: instance ?? null, lines };
};
