/**
 * The executor's network faces: the InferenceProxy gRPC service (connect-node routes, served over
 * HTTP/2), and two small Hono apps, one for metrics and one for `/mgmt`, each on its own port.
 */
import { Code, ConnectError, type ConnectRouter, type HandlerContext } from "@connectrpc/connect";
import { Hono } from "hono";
import { z } from "zod";
import { type InferenceMessage, InferenceProxy } from "../gen/inference_pb.ts";
import { badRequest, onError, onNotFound, readJsonWith } from "../http/errors.ts";
import { type Executor, ExecutorError } from "./executor.ts";
import { PacketError } from "./packet.ts";

/** Maps the executor's errors to gRPC codes; anything else is left to connect-node (Internal). */
export const toConnectError = (err: unknown): unknown => {
  if (err instanceof PacketError) return new ConnectError(err.message, Code.InvalidArgument);
  if (err instanceof ExecutorError) {
    const code = err.code === "deadline_exceeded" ? Code.DeadlineExceeded : Code.Unavailable;
    return new ConnectError(err.message, code);
  }
  return err;
};

/** `connectNodeAdapter({ routes: executorRoutes(executor) })`. */
export const executorRoutes =
  (executor: Executor) =>
  (router: ConnectRouter): ConnectRouter =>
    router.service(InferenceProxy, {
      async infer(request: InferenceMessage, context: HandlerContext) {
        try {
          // The context's signal aborts when the RPC's deadline passes or the caller goes away.
          return await executor.infer(request.rpcData, context.signal);
        } catch (err) {
          throw toConnectError(err);
        }
      },
    });

/** `GET /metrics` (Prometheus text) and `GET /metrics/json` (the JSON the policies read). */
export const createExecutorMetricsApp = (executor: Executor): Hono => {
  const app = new Hono({ strict: false });
  app.onError(onError);
  app.notFound(onNotFound);
  app.get("/metrics", (c) =>
    c.text(executor.metrics.prometheus(), 200, {
      "content-type": "text/plain; version=0.0.4; charset=utf-8",
    }),
  );
  app.get("/metrics/json", (c) => c.json(executor.metrics.blockMetrics()));
  return app;
};

const MgmtBody = z.object({
  mgmt_action: z.string().min(1),
  mgmt_data: z.unknown().optional(),
});

export const BUILTIN_MGMT_ACTIONS = ["get_instances", "policy_info"] as const;

/** `POST /mgmt` `{"mgmt_action","mgmt_data"}`: built-in actions, then the policy's own. */
export const createExecutorMgmtApp = (executor: Executor): Hono => {
  const app = new Hono({ strict: false });
  app.onError(onError);
  app.notFound(onNotFound);
  app.post("/mgmt", async (c) => {
    const { mgmt_action: action, mgmt_data: data } = await readJsonWith(c.req.raw, MgmtBody);
    if (action === "get_instances") {
      return c.json({
        block_id: executor.blockId,
        instances: executor.instances.map((i) => ({
          id: i.id,
          url: i.url,
          metrics: executor.metrics.instance(i.id) ?? null,
          last_failure: executor.failures.get(i.id) ?? null,
        })),
      });
    }
    if (action === "policy_info") {
      return c.json({
        block_id: executor.blockId,
        policy: executor.policy?.uri ?? null,
        fallback: "round-robin",
        policy_fallbacks: Object.fromEntries(executor.metrics.policyFallbacks),
      });
    }
    const policy = executor.policy;
    if (!policy) {
      throw badRequest(
        "unknown_action",
        `mgmt_action '${action}' is not built in (${BUILTIN_MGMT_ACTIONS.join(", ")}) and the block has no load balancer policy`,
      );
    }
    // A PolicyError (no management export, the policy's own refusal) becomes a 4xx through onError.
    return c.json((await policy.management(action, data ?? {})) as Record<string, unknown>);
  });
  return app;
};
