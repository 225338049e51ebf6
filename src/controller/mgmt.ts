/**
 * The Management Command Executor (cluster-controller.md, `POST /mgmt`): routes a management command
 * to a block's `instances` (each instance's `/mgmt`), `executor`, `autoscaler` or `health` service
 * after the `block_mgmt` pre-check, or, without `block_id`, to the stability checker after the
 * `cluster_mgmt` pre-check.
 */
import { z } from "zod";
import { authHeaders } from "../auth/credential.ts";
import { MGMT_SERVICES } from "../block/client.ts";
import { badRequest, parseWith } from "../http/errors.ts";
import { blockClient, getBlock } from "./blocks.ts";
import type { ControllerContext } from "./context.ts";
import { type Caller, runPreCheck } from "./prechecks.ts";

export const MgmtCommand = z.object({
  block_id: z.string().min(1).optional(),
  service: z.string().min(1),
  mgmt_action: z.string().min(1),
  mgmt_data: z.unknown().optional(),
});

export const BLOCK_SERVICES = ["instances", ...Object.keys(MGMT_SERVICES)] as const;

export const executeMgmt = async (
  ctx: ControllerContext,
  body: unknown,
  stability: { management(action: string, data: unknown): Promise<unknown> },
  caller?: Caller,
): Promise<unknown> => {
  const command = parseWith(MgmtCommand, body);
  if (command.block_id === undefined) {
    if (command.service !== "stability_checker") {
      throw badRequest(
        "invalid_input",
        "block_id: required unless service is stability_checker (the cluster's stability checker)",
      );
    }
    const checked = parseWith(MgmtCommand, await runPreCheck(ctx, "cluster_mgmt", command, caller));
    return stability.management(checked.mgmt_action, checked.mgmt_data ?? {});
  }
  const checked = parseWith(MgmtCommand, await runPreCheck(ctx, "block_mgmt", command, caller));
  const block = await getBlock(ctx, checked.block_id ?? command.block_id);
  const data = checked.mgmt_data ?? {};
  if (checked.service === "instances") {
    const answers: Record<string, unknown> = {};
    await Promise.all(
      block.instances.map(async (i) => {
        try {
          const res = await fetch(`${i.url}/mgmt`, {
            method: "POST",
            headers: { "content-type": "application/json", ...authHeaders() },
            body: JSON.stringify({ mgmt_action: checked.mgmt_action, mgmt_data: data }),
            signal: AbortSignal.timeout(10_000),
          });
          answers[i.instance_id] = { status: res.status, body: await res.json().catch(() => null) };
        } catch (err) {
          answers[i.instance_id] = { error: err instanceof Error ? err.message : String(err) };
        }
      }),
    );
    return { block_id: block.id, service: "instances", results: answers };
  }
  if (!Object.hasOwn(MGMT_SERVICES, checked.service)) {
    throw badRequest(
      "invalid_input",
      `service: '${checked.service}' is not one of ${BLOCK_SERVICES.join(", ")}`,
    );
  }
  return blockClient(block).mgmt(checked.service as keyof typeof MGMT_SERVICES, checked.mgmt_action, data);
};
