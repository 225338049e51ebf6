/**
 * `serveInstance(handlers, options)`: the instance SDK. Reads the configuration from the environment
 * (config.ts lists the variables), starts the task protocol server (app.ts, and `GET /task/ws`:
 * task-socket.ts), runs `init`, and only then reports healthy and takes tasks (until then `/health` and
 * `/task` answer 503). Callers are checked by `options.guard`, by default the one the environment
 * describes (`instanceGuardFromEnv`); the WebSocket is checked before the upgrade.
 *
 * ```ts
 * const instance = await serveInstance({
 *   onTask: (task) => ({ words: String((task.data as { text: string }).text).split(/\s+/).length }),
 * });
 * ```
 */
import type { Server } from "bun";
import { ON_BEHALF_OF } from "../auth/credential.ts";
import { Guard } from "../auth/guard.ts";
import { anonymousFromEnv, workloadGuard } from "../auth/index.ts";
import { toApiError } from "../http/errors.ts";
import {
  createInstanceApp,
  createTaskHandler,
  DEFAULT_TASK_BODY_LIMIT,
  type InstanceAppOptions,
  type InstanceContext,
  type InstanceHandlers,
} from "./app.ts";
import { type Env, envValue, type InstanceConfig, parsePort, readInstanceConfig } from "./config.ts";
import { BlockEvents } from "./events.ts";
import { InstanceMetrics } from "./metrics.ts";
import { TASK_SOCKET_PATH, taskSocketHandlers } from "./task-socket.ts";

export interface ServeInstanceOptions extends InstanceAppOptions {
  /** Default: `AIOS_INSTANCE_PORT`, else 0 (any free port). */
  port?: number;
  /** Default `0.0.0.0`. */
  hostname?: string;
  /** Where the configuration is read from; default `process.env`. */
  env?: Env;
}

export interface ServedInstance {
  /** `http://host:port`, with 127.0.0.1 for a wildcard host. */
  url: string;
  port: number;
  config: InstanceConfig;
  metrics: InstanceMetrics;
  /** The instance's event client (also `ctx.events` in the handlers). */
  events: BlockEvents;
  /** The current parameters. */
  readonly parameters: Record<string, unknown>;
  /** Stops listening and closes open connections. */
  stop(): Promise<void>;
}

/**
 * The guard an instance's environment describes. The runtime starts every instance with AIOS_TOKEN
 * (its own credential; the block's executor presents it, or a token the controller vouches for),
 * AIOS_CONTROLLER_URL (where other tokens are checked, `GET /auth/whoami`, cached 5 s) and, when the
 * user turned anonymous access on, AIOS_ANONYMOUS=1: the same guard as `aios block-runtime`'s. An
 * instance given none of the three (started by hand, outside a cluster) has nothing to check a token
 * with, and serves every caller (Guard.open()).
 */
export const instanceGuardFromEnv = (env: Env = process.env): Guard => {
  const token = envValue(env, "AIOS_TOKEN");
  const verifyUrl = envValue(env, "AIOS_CONTROLLER_URL");
  const anonymous = anonymousFromEnv(env);
  if (token === undefined && verifyUrl === undefined && !anonymous) return Guard.open();
  return workloadGuard({ token, verifyUrl, anonymous });
};

/** `GET /task/ws`: the caller checked (routes.ts, `WS /task/ws`), then upgraded; the refusal otherwise. */
const upgradeTaskSocket = async (req: Request, srv: Server<undefined>, guard: Guard) => {
  try {
    await guard.check("instance", "WS", TASK_SOCKET_PATH, {
      authorization: req.headers.get("authorization"),
      onBehalfOf: req.headers.get(ON_BEHALF_OF),
    });
  } catch (err) {
    const refusal = toApiError(err);
    return Response.json(refusal.toBody(), { status: refusal.status });
  }
  if (srv.upgrade(req)) return undefined;
  return Response.json(
    { error: { code: "bad_request", message: "expected a WebSocket upgrade", details: null } },
    { status: 400 },
  );
};

export const serveInstance = async (
  handlers: InstanceHandlers,
  options: ServeInstanceOptions = {},
): Promise<ServedInstance> => {
  const config = readInstanceConfig(options.env ?? process.env);
  const port = options.port ?? config.port;
  parsePort(String(port), "port");
  const metrics = new InstanceMetrics(config.instanceId, config.blockId);
  // Built now so a malformed REDIS_URL or AIOS_CONTROLLER_URL fails the start, not the first event.
  const events = new BlockEvents({
    env: options.env ?? process.env,
    blockId: config.blockId,
    instanceId: config.instanceId,
  });
  const state = { ready: false, config, parameters: { ...config.parameters }, metrics };
  const ctx: InstanceContext = {
    instanceId: config.instanceId,
    blockId: config.blockId,
    initData: config.initData,
    settings: config.settings,
    get parameters() {
      return state.parameters;
    },
    gpus: [...config.gpus],
    metrics,
    events,
  };
  // One handler (one dedup cache, one set of slots) for both transports: a retry is a repeat whichever
  // way either attempt came.
  const handleTask = createTaskHandler(handlers, state, ctx, options);
  const guard = options.guard ?? instanceGuardFromEnv(options.env ?? process.env);
  const app = createInstanceApp(handlers, state, ctx, { ...options, guard }, handleTask);
  const hostname = options.hostname ?? "0.0.0.0";
  const server = Bun.serve({
    port,
    hostname,
    idleTimeout: 0,
    fetch(req, srv) {
      // One header lookup on the HTTP path; the URL is parsed only for an upgrade.
      if (req.headers.get("upgrade") !== null && new URL(req.url).pathname === TASK_SOCKET_PATH) {
        return upgradeTaskSocket(req, srv, guard);
      }
      return app.fetch(req);
    },
    // Closed by `server.stop(true)` (code 1001): the executor retries their tasks elsewhere.
    websocket: taskSocketHandlers(handleTask, { bodyLimit: options.bodyLimit ?? DEFAULT_TASK_BODY_LIMIT }),
  });
  const stop = async () => {
    await server.stop(true);
    await events.close();
  };
  try {
    await handlers.init?.(ctx);
  } catch (err) {
    await stop();
    throw err;
  }
  state.ready = true;
  const host = hostname === "0.0.0.0" || hostname === "::" ? "127.0.0.1" : hostname;
  const listening = server.port ?? port;
  return {
    url: `http://${host.includes(":") ? `[${host}]` : host}:${listening}`,
    port: listening,
    config,
    metrics,
    events,
    get parameters() {
      return state.parameters;
    },
    stop,
  };
};
