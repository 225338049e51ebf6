/** `aios registry`: the cluster, component and global metrics registries over one store. */
import {
  AUTH_FLAGS,
  AUTH_FLAGS_USAGE,
  authSettingsFrom,
  parseFlags,
  parsePort,
  stringFlag,
  type Verb,
} from "./args.ts";
import { serveUntilSignal } from "./serve.ts";

export const REGISTRY_PORT = 3000;
export const METRICS_PORT = 8888;

export const serverFlags = {
  port: { type: "string" },
  "metrics-port": { type: "string" },
  host: { type: "string" },
  "data-dir": { type: "string" },
  ...AUTH_FLAGS,
} as const;

export const serverFlagsUsage = `  --port P            registry port (default ${REGISTRY_PORT}; 0 picks a free port)
  --metrics-port M    global metrics API port (default ${METRICS_PORT}; 0 picks a free port)
  --host H            address to bind (default 127.0.0.1; 0.0.0.0 for every interface)
  --data-dir DIR      keep the data in an on-disk PGlite database in DIR
${AUTH_FLAGS_USAGE}
  -h, --help          show this help

Storage: DATABASE_URL selects PostgreSQL; else --data-dir selects on-disk PGlite; else the data
lives in memory and is lost on exit. Tokens are kept in the same store: make them with aios token
create through a gateway on it (aios up prints an admin token the first time).`;

/** Parses the shared server flags; throws UsageError. */
export const parseServerFlags = (argv: string[]) => {
  const { values } = parseFlags(argv, serverFlags);
  return {
    help: values.help === true,
    host: stringFlag(values.host) ?? "127.0.0.1",
    port: parsePort(values.port, "--port", REGISTRY_PORT),
    metricsPort: parsePort(values["metrics-port"], "--metrics-port", METRICS_PORT),
    dataDir: stringFlag(values["data-dir"]),
    auth: authSettingsFrom(values),
  };
};

/** Starts the registry, prints the listening lines and serves until SIGINT/SIGTERM. */
export const serveRegistry = (
  options: ReturnType<typeof parseServerFlags>,
  ready?: Parameters<typeof serveUntilSignal>[1],
): Promise<number> => serveUntilSignal(options, ready);

export const registryVerb: Verb = {
  name: "registry",
  summary: "serve the cluster, component and global metrics registries",
  usage: `usage: aios registry [--port P] [--metrics-port M] [--host H] [--data-dir DIR] [--anonymous]

Serves /clusters, /components and /cluster (global metrics) on the registry port, and the global
metrics API (/cluster) alone on the metrics port. Prints "listening registry <url>" and
"listening metrics <url>" once ready; stops on SIGINT or SIGTERM.

${serverFlagsUsage}`,
  async run(argv) {
    const options = parseServerFlags(argv);
    if (options.help) {
      console.log(this.usage);
      return 0;
    }
    return serveRegistry(options);
  },
};
