/**
 * `serveInstance(handlers, options)`: the instance SDK. Reads the configuration from the environment
 * (config.ts lists the variables), starts the task protocol server (app.ts, and `GET /task/ws`:
 * task-socket.ts), runs `init`, and only then reports healthy and takes tasks (until then `/health` and
 * `/task` answer 503).
 *
 * ```ts
 * const instance = await serveInstance({
 *   onTask: (task) => ({ words: String((task.data as { text: string }).text).split(/\s+/).length }),
 * });
 * ```
 */
import {
  createInstanceApp,
  createTaskHandler,
  DEFAULT_TASK_BODY_LIMIT,
  type InstanceAppOptions,
  type InstanceContext,
  type InstanceHandlers,
} from "./app.ts";
import { type Env, type InstanceConfig, parsePort, readInstanceConfig } from "./config.ts";
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
  const app = createInstanceApp(handlers, state, ctx, options, handleTask);
  const hostname = options.hostname ?? "0.0.0.0";
  const server = Bun.serve({
    port,
    hostname,
    idleTimeout: 0,
    fetch(req, srv) {
      // One header lookup on the HTTP path; the URL is parsed only for an upgrade.
      if (req.headers.get("upgrade") !== null && new URL(req.url).pathname === TASK_SOCKET_PATH) {
        if (srv.upgrade(req)) return undefined;
        return Response.json(
          { error: { code: "bad_request", message: "expected a WebSocket upgrade", details: null } },
          { status: 400 },
        );
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
