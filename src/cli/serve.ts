/**
 * Starting and stopping the registry service: open the store (Postgres when DATABASE_URL is set, PGlite
 * on disk with --data-dir, else PGlite in memory), serve the registry app on one port and the global
 * metrics API on another, and shut down cleanly on SIGINT/SIGTERM.
 */
import { type AuthSettings, bootstrapTokens, type Guard, storeGuard } from "../auth/index.ts";
import { displayHost, type Listener } from "../http/listen.ts";
import { createMetricsApp, createRegistryApp } from "../registry/app.ts";
import { openStore, type Store, storeConfigFrom } from "../store/index.ts";

export interface RegistryServerOptions {
  host: string;
  port: number;
  metricsPort: number;
  dataDir?: string | undefined;
  /** An open store to serve (kept open on stop), e.g. the one `aios up` shares between its services. */
  store?: Store;
  /** Who may call (default Guard.open(): no tokens; the `aios` verbs pass storeGuard). */
  guard?: Guard;
}

export type { Listener };

export interface RunningServers {
  store: Store;
  listeners: Listener[];
  stop(): Promise<void>;
}

type Server = ReturnType<typeof Bun.serve>;

/** Opens the store and starts both listeners; everything started so far is stopped if one fails. */
export const startRegistry = async (options: RegistryServerOptions): Promise<RunningServers> => {
  const store = options.store ?? (await openStore(storeConfigFrom({ dataDir: options.dataDir })));
  const servers: Server[] = [];
  const stop = async () => {
    for (const server of servers.splice(0)) await server.stop(true);
    if (!options.store) await store.close();
  };
  try {
    const registry = Bun.serve({
      hostname: options.host,
      port: options.port,
      fetch: createRegistryApp(store, options.guard).fetch,
    });
    servers.push(registry);
    const metrics = Bun.serve({
      hostname: options.host,
      port: options.metricsPort,
      fetch: createMetricsApp(store, options.guard).fetch,
    });
    servers.push(metrics);
    const host = displayHost(options.host);
    return {
      store,
      listeners: [
        { name: "registry", url: `http://${host}:${registry.port}` },
        { name: "metrics", url: `http://${host}:${metrics.port}` },
      ],
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
};

/** What a server verb stores at start: its own token (`--token` / AIOS_TOKEN) and AIOS_ADMIN_TOKEN. */
export const bootstrapFrom = (auth: AuthSettings, env = process.env) => ({
  service: auth.token,
  admin: env.AIOS_ADMIN_TOKEN || undefined,
});

/** Prints one `listening <name> <url>` line per listener. */
export const announce = (listeners: readonly Listener[]): void => {
  for (const l of listeners) console.log(`listening ${l.name} ${l.url}`);
};

export interface SignalWatch {
  /** The first SIGINT or SIGTERM received so far, if any. */
  readonly received: NodeJS.Signals | undefined;
  /** Resolves with the first SIGINT or SIGTERM. */
  readonly next: Promise<NodeJS.Signals>;
}

/**
 * Catches SIGINT and SIGTERM from now on (so that a signal while the store opens does not kill the
 * process half-way); the first one resolves `next`, later ones are ignored while stopping.
 */
export const watchSignals = (): SignalWatch => {
  let received: NodeJS.Signals | undefined;
  let resolve: (s: NodeJS.Signals) => void = () => {};
  const next = new Promise<NodeJS.Signals>((r) => {
    resolve = r;
  });
  const onSignal = (signal: NodeJS.Signals) => {
    if (received !== undefined) return;
    received = signal;
    resolve(signal);
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  return {
    get received() {
      return received;
    },
    next,
  };
};

/**
 * Starts the registry, runs `ready` (e.g. seeding), prints the listening lines, serves until
 * SIGINT/SIGTERM; the exit status.
 */
export const serveUntilSignal = (
  options: RegistryServerOptions & { auth?: AuthSettings },
  ready?: (running: RunningServers) => Promise<void>,
): Promise<number> =>
  serveService("registry", async () => {
    // The store is opened here so the guard can look tokens up in it.
    const store = options.store ?? (await openStore(storeConfigFrom({ dataDir: options.dataDir })));
    let running: RunningServers;
    try {
      // Tokens a deployment brings (its Secret): the service credential, AIOS_ADMIN_TOKEN.
      if (options.auth) await bootstrapTokens(store, bootstrapFrom(options.auth));
      const started = await startRegistry({
        ...options,
        store,
        guard: options.guard ?? storeGuard(store, options.auth ?? {}),
      });
      running = {
        ...started,
        stop: async () => {
          await started.stop();
          if (!options.store) await store.close();
        },
      };
    } catch (err) {
      if (!options.store) await store.close();
      throw err;
    }
    try {
      await ready?.(running);
    } catch (err) {
      await running.stop();
      throw err;
    }
    return running;
  });

/**
 * The life of a server verb: starts it (a SIGINT/SIGTERM meanwhile is kept), prints its listening
 * lines, serves until a signal, stops it; the exit status.
 */
export const serveService = async (
  verb: string,
  start: () => Promise<{ listeners: readonly Listener[]; stop(): Promise<void> }>,
  stopping = "stopping",
): Promise<number> => {
  const signals = watchSignals();
  const running = await start();
  if (signals.received === undefined) announce(running.listeners);
  const signal = await signals.next;
  console.error(`aios ${verb}: ${signal} received, ${stopping}`);
  try {
    await running.stop();
    return 0;
  } catch (err) {
    console.error(`aios ${verb}: error while stopping:`, err);
    return 1;
  }
};
