/**
 * `startAllocator`: the resource allocator server in this process (`aios allocator`). Opens the store
 * (or uses the one given), where the cluster registry, the global metrics and the policy store keep
 * their documents, starts the policy workers and serves the WebSocket endpoint.
 */
import { displayHost, type Listener } from "../http/listen.ts";
import { PolicyStore } from "../policy/store.ts";
import { openStore, type Store, type StoreConfig } from "../store/index.ts";
import { Allocator } from "./allocator.ts";
import { allocatorFetch, allocatorWebSocket, type SocketData, type SocketOptions } from "./app.ts";
import { defaultWorkerCount, InlineRunner, type PolicyRunner, WorkerPool } from "./pool.ts";
import { DEFAULT_LIMITS, type ProtocolLimits } from "./protocol.ts";

export const ALLOCATOR_PORT = 8765;

/** Largest request message accepted; a larger one closes the socket (1009 "Received too big message"). */
export const MAX_MESSAGE_BYTES = 4 * 1024 * 1024;

export interface AllocatorOptions extends SocketOptions {
  host?: string;
  port?: number;
  /** A store to use (kept open on stop), or the configuration of one to open (closed on stop). */
  store?: Store | StoreConfig;
  /** Policy workers; 0 runs policies on the server's thread. Default: defaultWorkerCount(). */
  workers?: number;
  limits?: Partial<ProtocolLimits>;
}

export interface RunningAllocator {
  url: string;
  port: number;
  listeners: Listener[];
  allocator: Allocator;
  store: Store;
  runner: PolicyRunner;
  stop(): Promise<void>;
}

const isStore = (s: Store | StoreConfig | undefined): s is Store =>
  s !== undefined && typeof (s as Store).collection === "function";

export const startAllocator = async (options: AllocatorOptions = {}): Promise<RunningAllocator> => {
  const ownStore = !isStore(options.store);
  const store = isStore(options.store) ? options.store : await openStore(options.store ?? {});
  const workers = options.workers ?? defaultWorkerCount();
  const runner: PolicyRunner = workers === 0 ? new InlineRunner() : new WorkerPool(workers);
  const allocator = new Allocator({
    store,
    policies: new PolicyStore(store),
    runner,
    limits: { ...DEFAULT_LIMITS, ...options.limits },
  });
  let server: ReturnType<typeof Bun.serve<SocketData>>;
  try {
    server = Bun.serve<SocketData>({
      hostname: options.host ?? "127.0.0.1",
      port: options.port ?? ALLOCATOR_PORT,
      fetch: (req, server) => allocatorFetch(req, server, options),
      websocket: { ...allocatorWebSocket(allocator, options), maxPayloadLength: MAX_MESSAGE_BYTES },
    });
  } catch (err) {
    await runner.close();
    if (ownStore) await store.close();
    throw err;
  }
  const url = `ws://${displayHost(options.host ?? "127.0.0.1")}:${server.port}`;
  return {
    url,
    port: server.port ?? 0,
    listeners: [{ name: "allocator", url }],
    allocator,
    store,
    runner,
    async stop() {
      await server.stop(true);
      await runner.close();
      if (ownStore) await store.close();
    },
  };
};
