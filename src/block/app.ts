/**
 * The block's network faces: the InferenceProxy gRPC service (connect-node routes, served over
 * HTTP/2); the executor's metrics and `/mgmt`; the mapper's instance API; the sidecars' `/mgmt`.
 * Each is its own small app on its own port (DESIGN.md lists the ports).
 */

import { fromBinary, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, type ConnectRouter, type HandlerContext } from "@connectrpc/connect";
import { Hono } from "hono";
import { z } from "zod";
import { ON_BEHALF_OF } from "../auth/credential.ts";
import { Guard } from "../auth/guard.ts";
import { guardRoutes } from "../auth/hono.ts";
import type { Principal } from "../auth/scopes.ts";
import {
  type InferenceMessage,
  InferenceMessageSchema,
  InferenceProxy,
  InferenceResponseSchema,
} from "../gen/inference_pb.ts";
import {
  ApiError,
  badRequest,
  errorMessage,
  notFound,
  onError,
  onNotFound,
  readJson,
  readJsonWith,
} from "../http/errors.ts";
import { grpcUnaryHandler } from "../http/grpc-unary.ts";
import { type Executor, ExecutorError, type LoadBalancerPolicy } from "./executor.ts";
import { type InstanceRef, type Mapper, readInstanceList } from "./mapper.ts";
import { executorMetricsOpenApi, mapperOpenApi, mgmtOpenApi } from "./openapi.ts";
import { PacketError } from "./packet.ts";
import type { Sidecar } from "./sidecar.ts";

/** Maps the executor's errors to gRPC codes; anything else is left to connect-node (Internal). */
export const toConnectError = (err: unknown): unknown => {
  if (err instanceof PacketError) return new ConnectError(err.message, Code.InvalidArgument);
  if (err instanceof ExecutorError) {
    const code = err.code === "deadline_exceeded" ? Code.DeadlineExceeded : Code.Unavailable;
    return new ConnectError(err.message, code);
  }
  return err;
};

/** Largest InferenceMessage accepted (files travel inside `rpc_data`). */
export const MAX_INFERENCE_MESSAGE_BYTES = 64 * 1024 * 1024;

const INFER_PATH = `/${InferenceProxy.typeName}/${InferenceProxy.method.infer.name}`;

/** The gRPC status of a refused call: 401 UNAUTHENTICATED, 403 PERMISSION_DENIED, 503 UNAVAILABLE. */
const AUTH_CODES: Readonly<Record<number, Code>> = {
  400: Code.InvalidArgument,
  401: Code.Unauthenticated,
  403: Code.PermissionDenied,
  503: Code.Unavailable,
};

/** A guard's refusal as the ConnectError both gRPC paths answer (grpc-status and grpc-message). */
export const authConnectError = (err: unknown): ConnectError => {
  if (err instanceof ApiError) return new ConnectError(err.message, AUTH_CODES[err.status] ?? Code.Internal);
  return new ConnectError(`cannot check the caller: ${errorMessage(err)}`, Code.Unavailable);
};

/** The gRPC headers the guard reads (a plain object on the fast path, Headers through Connect). */
export interface CallHeaders {
  authorization?: string | null | undefined;
  onBehalfOf?: string | null | undefined;
}

/**
 * The check of an inference call (routes.ts: service `executor`, `GRPC /InferenceProxy/infer`, level
 * `infer` on this block): the caller, or a ConnectError (UNAUTHENTICATED, PERMISSION_DENIED,
 * UNAVAILABLE). Tokens are verified once per the authenticator's cache period, not per call, and
 * calls in flight when an entry expires share one check (CachedAuthenticator).
 */
export const inferAuthorizer =
  (guard: Guard, blockId: string) =>
  async (headers: CallHeaders): Promise<Principal> => {
    try {
      const { principal } = await guard.check(
        "executor",
        "GRPC",
        INFER_PATH,
        { authorization: headers.authorization, onBehalfOf: headers.onBehalfOf },
        blockId,
      );
      return principal;
    } catch (err) {
      throw authConnectError(err);
    }
  };

const headerValue = (v: string | string[] | undefined): string | undefined => (Array.isArray(v) ? v[0] : v);

/**
 * The hot path: plain unary gRPC calls of `InferenceProxy.infer` served straight off the HTTP/2
 * stream (src/http/grpc-unary.ts), with the same answers and status codes as `executorRoutes`,
 * the caller checked from the `authorization` metadata first.
 */
export const executorGrpcFastPath = (executor: Executor, guard: Guard = Guard.open()) => {
  const authorize = inferAuthorizer(guard, executor.blockId);
  return grpcUnaryHandler({
    path: INFER_PATH,
    maxMessageBytes: MAX_INFERENCE_MESSAGE_BYTES,
    authorize: (headers) =>
      authorize({
        authorization: headerValue(headers.authorization),
        onBehalfOf: headerValue(headers[ON_BEHALF_OF]),
      }),
    async handle(message, signal) {
      let rpcData: Uint8Array;
      try {
        rpcData = fromBinary(InferenceMessageSchema, message).rpcData;
      } catch {
        throw new ConnectError("the request is not an InferenceMessage", Code.InvalidArgument);
      }
      return toBinary(InferenceResponseSchema, await executor.infer(rpcData, signal));
    },
    status(err) {
      const mapped = toConnectError(err);
      if (mapped instanceof ConnectError) return { code: mapped.code, message: mapped.rawMessage };
      console.error(`[executor ${executor.blockId}] infer failed:`, err);
      return { code: Code.Internal, message: "internal error" };
    },
  });
};

/**
 * `connectHandler({ routes: executorRoutes(executor, guard) })`: every protocol but plain unary
 * gRPC over HTTP/2 (Connect, gRPC-web, HTTP/1.1), with the same check of the caller.
 */
export const executorRoutes = (executor: Executor, guard: Guard = Guard.open()) => {
  const authorize = inferAuthorizer(guard, executor.blockId);
  return (router: ConnectRouter): ConnectRouter =>
    router.service(InferenceProxy, {
      async infer(request: InferenceMessage, context: HandlerContext) {
        await authorize({
          authorization: context.requestHeader.get("authorization"),
          onBehalfOf: context.requestHeader.get(ON_BEHALF_OF),
        });
        try {
          // The context's signal aborts when the RPC's deadline passes or the caller goes away.
          return await executor.infer(request.rpcData, context.signal);
        } catch (err) {
          throw toConnectError(err);
        }
      },
    });
};

/** `GET /metrics` (Prometheus text) and `GET /metrics/json` (the JSON the policies read). */
export const createExecutorMetricsApp = (executor: Executor, guard: Guard = Guard.open()): Hono => {
  const app = new Hono({ strict: false });
  app.onError(onError);
  app.notFound(onNotFound);
  app.use(guardRoutes(guard, "executor-metrics"));
  app.get("/metrics", (c) =>
    c.text(executor.metrics.prometheus(), 200, {
      "content-type": "text/plain; version=0.0.4; charset=utf-8",
    }),
  );
  app.get("/metrics/json", (c) => c.json(executor.metrics.blockMetrics()));
  app.get("/openapi.json", (c) => c.json(executorMetricsOpenApi()));
  return app;
};

export const MgmtBody = z.object({
  mgmt_action: z.string().min(1),
  mgmt_data: z.unknown().optional(),
});

/** A policy as the management apps use it (a PolicyInstance, or a test double). */
type ManagedPolicy = Pick<LoadBalancerPolicy, "uri" | "management">;

export interface MgmtAppOptions {
  /** Built-in actions, answered before the policy's own (so name them apart from policy actions). */
  builtins: Record<string, (data: unknown) => unknown>;
  policy: () => ManagedPolicy | null;
  /** For messages: "executor", "auto-scaler", "health checker". */
  service: string;
  /** Checks callers (routes.ts, as `guardService`); default Guard.open(). */
  guard?: Guard;
  /** The app's name in routes.ts. */
  guardService: "executor-mgmt" | "sidecar-mgmt";
}

/**
 * `POST /mgmt` `{"mgmt_action","mgmt_data"}` (block-runtime.md, the three management APIs):
 * built-in actions, then the policy's `management` export.
 */
export const createMgmtApp = ({
  builtins,
  policy: current,
  service,
  guard = Guard.open(),
  guardService,
}: MgmtAppOptions): Hono => {
  const app = new Hono({ strict: false });
  app.onError(onError);
  app.notFound(onNotFound);
  app.use(guardRoutes(guard, guardService));
  const names = Object.keys(builtins);
  app.get("/openapi.json", (c) => c.json(mgmtOpenApi(service, names)));
  app.post("/mgmt", async (c) => {
    const { mgmt_action: action, mgmt_data: data } = await readJsonWith(c.req.raw, MgmtBody);
    const builtin = Object.hasOwn(builtins, action) ? builtins[action] : undefined;
    if (builtin) return c.json((await builtin(data ?? {})) as Record<string, unknown>);
    const policy = current();
    if (!policy) {
      throw badRequest(
        "unknown_action",
        `mgmt_action '${action}' is not built in (${names.join(", ")}) and the ${service} has no policy`,
      );
    }
    // A PolicyError (no management export, the policy's own refusal) becomes a 4xx through onError.
    return c.json((await policy.management(action, data ?? {})) as Record<string, unknown>);
  });
  return app;
};

export const BUILTIN_MGMT_ACTIONS = ["get_instances", "policy_info"] as const;

/** The executor's `/mgmt`: `get_instances` (with metrics and last failures), `policy_info`. */
export const createExecutorMgmtApp = (executor: Executor, guard: Guard = Guard.open()): Hono =>
  createMgmtApp({
    service: "executor",
    guard,
    guardService: "executor-mgmt",
    policy: () => executor.policy,
    builtins: {
      get_instances: () => ({
        block_id: executor.blockId,
        instances: executor.instances.map((i) => ({
          id: i.id,
          url: i.url,
          metrics: executor.metrics.instance(i.id) ?? null,
          last_failure: executor.failures.get(i.id) ?? null,
          ejected_until: executor.ejected.get(i.id) ?? null,
        })),
      }),
      policy_info: () => ({
        block_id: executor.blockId,
        policy: executor.policy?.uri ?? null,
        fallback: "round-robin",
        policy_fallbacks: Object.fromEntries(executor.metrics.policyFallbacks),
      }),
    },
  });

/**
 * The auto-scaler's and the health checker's `/mgmt`: `get_instances`, `policy_info` (policy,
 * interval, recent runs), `run_now` (one run at once, answered with its record); then the policy's.
 */
export const createSidecarMgmtApp = (
  sidecar: Sidecar<unknown>,
  service: string,
  instances: () => readonly InstanceRef[],
  guard: Guard = Guard.open(),
): Hono =>
  createMgmtApp({
    service,
    guard,
    guardService: "sidecar-mgmt",
    policy: () => sidecar.policy,
    builtins: {
      get_instances: () => ({ block_id: sidecar.blockId, instances: instances() }),
      policy_info: () => ({
        block_id: sidecar.blockId,
        policy: sidecar.policy?.uri ?? null,
        interval_ms: sidecar.intervalMs,
        running: sidecar.running,
        history: sidecar.history,
      }),
      run_now: () => sidecar.runNow(),
    },
  });

/**
 * The mapper's API (port 5000, internal): `GET /instances`; `PUT /instances` `{"instances": [...]}`
 * replaces the list; `POST /instances` `{"id","url"}` adds or moves one; `DELETE /instances/{id}`.
 * Every change reaches the executor and the sidecars before the answer.
 */
export const createMapperApp = (mapper: Mapper, guard: Guard = Guard.open()): Hono => {
  const app = new Hono({ strict: false });
  app.onError(onError);
  app.notFound(onNotFound);
  app.use(guardRoutes(guard, "mapper"));
  const state = () => ({ block_id: mapper.blockId, version: mapper.version, instances: mapper.instances });
  app.get("/instances", (c) => c.json({ ...state(), last_poll: mapper.lastPoll }));
  app.put("/instances", async (c) => {
    mapper.set(readInstanceList(await readJson(c.req.raw)));
    return c.json(state());
  });
  app.post("/instances", async (c) => {
    const body = await readJson(c.req.raw);
    const [instance] = readInstanceList([body], "instance");
    if (instance) mapper.upsert(instance);
    return c.json(state());
  });
  app.delete("/instances/:id", (c) => {
    const id = c.req.param("id");
    if (!mapper.instances.some((i) => i.id === id)) {
      throw notFound(`block ${mapper.blockId} has no instance '${id}'`);
    }
    mapper.remove(id);
    return c.json(state());
  });
  app.get("/openapi.json", (c) => c.json(mapperOpenApi()));
  return app;
};
