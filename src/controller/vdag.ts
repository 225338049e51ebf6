/**
 * `POST /vdag-controller {"action","payload"}` (cluster-controller.md, vDAG controller actions):
 * `create_controller`, `remove_controller`, `scale_controller`, `list_controllers`, with their
 * documents in the `vdag_controllers` collection and their replicas on the runtime.
 *
 * How a replica runs comes from `payload.config.runtime` (`{command}` on the process runtime,
 * `{image}` on Kubernetes): the vDAG controller program itself is specified elsewhere, so it is
 * the caller's to name.
 */
import { z } from "zod";
import { ApiError, badRequest, notFound, parseWith } from "../http/errors.ts";
import { ScopedCollection } from "../store/scoped.ts";
import type { ControllerContext } from "./context.ts";
import { type Caller, runPreCheck } from "./prechecks.ts";

const Id = z.string().regex(/^[a-zA-Z0-9][a-zA-Z0-9._-]{0,62}$/, "1 to 63 letters, digits, '.', '_' or '-'");

export const CreateVdagController = z.looseObject({
  vdag_controller_id: Id,
  vdag_uri: z.string().min(1),
  config: z.looseObject({
    policy_execution_mode: z.string().optional(),
    replicas: z.number().int().min(0).max(100).default(1),
    runtime: z
      .looseObject({
        command: z.array(z.string().min(1)).min(1).optional(),
        image: z.string().min(1).optional(),
        env: z.record(z.string(), z.string()).optional(),
      })
      .optional(),
  }),
  search_tags: z.array(z.string()).default([]),
});

const Body = z.object({ action: z.string().min(1), payload: z.unknown().optional() });

export const ScaleVdagController = z.object({
  vdag_controller_id: Id,
  replicas: z.number().int().min(0).max(100),
});

export const VdagControllerRef = z.object({ vdag_controller_id: Id });

export const VDAG_ACTIONS = [
  "create_controller",
  "remove_controller",
  "scale_controller",
  "list_controllers",
];

export const vdagAction = async (
  ctx: ControllerContext,
  body: unknown,
  caller?: Caller,
): Promise<unknown> => {
  const { action, payload } = parseWith(Body, body);
  // vDAG controller ids are a cluster's own: scoped, so controllers sharing a database never collide.
  const docs = new ScopedCollection(ctx.store.collection("vdag_controllers"), ctx.clusterId);
  switch (action) {
    case "create_controller": {
      const spec = parseWith(
        CreateVdagController,
        await runPreCheck(ctx, "add_vdag_controller", payload ?? {}, caller),
        ["payload"],
      );
      const runtime = spec.config.runtime;
      if (!runtime?.command && !runtime?.image) {
        throw badRequest(
          "invalid_input",
          "payload.config.runtime: give a command (process runtime) or an image",
        );
      }
      if (await docs.get(spec.vdag_controller_id)) {
        throw new ApiError(
          409,
          "vdag_controller_exists",
          `vDAG controller '${spec.vdag_controller_id}' exists`,
        );
      }
      const status = await ctx.runtime.applyVdagController({
        id: spec.vdag_controller_id,
        replicas: spec.config.replicas,
        template: runtime,
        config: spec.config,
      });
      const doc = {
        ...spec,
        id: spec.vdag_controller_id,
        cluster_id: ctx.clusterId,
        public_url: status.urls[0] ?? null,
        urls: status.urls,
        created_at: new Date().toISOString(),
      };
      try {
        return await docs.insert(doc);
      } catch (err) {
        await ctx.runtime.removeVdagController(spec.vdag_controller_id).catch(() => {});
        throw err;
      }
    }
    case "scale_controller": {
      const req = parseWith(ScaleVdagController, payload ?? {}, ["payload"]);
      const doc = await docs.get(req.vdag_controller_id);
      if (!doc) throw notFound(`no vDAG controller '${req.vdag_controller_id}'`);
      const config = doc.config as z.infer<typeof CreateVdagController>["config"];
      const status = await ctx.runtime.applyVdagController({
        id: req.vdag_controller_id,
        replicas: req.replicas,
        template: config.runtime ?? {},
        config,
      });
      return docs.update(req.vdag_controller_id, {
        $set: { "config.replicas": req.replicas, urls: status.urls, public_url: status.urls[0] ?? null },
      });
    }
    case "remove_controller": {
      const req = parseWith(
        VdagControllerRef,
        await runPreCheck(ctx, "remove_vdag_controller", payload ?? {}, caller),
        ["payload"],
      );
      if (!(await docs.get(req.vdag_controller_id)))
        throw notFound(`no vDAG controller '${req.vdag_controller_id}'`);
      await ctx.runtime.removeVdagController(req.vdag_controller_id);
      await docs.delete(req.vdag_controller_id);
      return { removed: req.vdag_controller_id };
    }
    case "list_controllers":
      return { controllers: await docs.find({}) };
    default:
      throw badRequest("unknown_action", `action '${action}' is not one of ${VDAG_ACTIONS.join(", ")}`);
  }
};
