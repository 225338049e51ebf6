/**
 * An instance's configuration, read from the environment the block gives its instances:
 *
 * - `AIOS_BLOCK_ID`: the block this instance serves (default `""`).
 * - `AIOS_INSTANCE_ID`: this instance's id, reported in `/metrics` (default: the host name).
 * - `AIOS_INIT_DATA`: JSON handed to `init` as `initData` (default `{}`).
 * - `AIOS_INIT_SETTINGS`: JSON handed to `init` as `settings` (default `{}`).
 * - `AIOS_PARAMETERS`: a JSON object, the initial parameters `parameter_update` merges into (default `{}`).
 * - `AIOS_INSTANCE_PORT`: the port to listen on, 0 to 65535 (default 0: any free port).
 * - `CUDA_VISIBLE_DEVICES`: the GPU ids assigned, comma separated (`0,2` -> `["0", "2"]`), as `ctx.gpus`.
 * - `REDIS_URL`: where `BlockEvents` pushes events (the cluster's Redis, stream
 *   `aios:block-events:<AIOS_CLUSTER_ID>`).
 * - `AIOS_CLUSTER_ID`: the cluster the instance runs in (set by the runtime).
 * - `AIOS_CONTROLLER_URL`: the cluster controller, where `BlockEvents` posts events when `REDIS_URL` is unset,
 *   and where `serveInstance` checks the tokens callers present (`GET /auth/whoami`).
 * - `AIOS_TOKEN`: the instance's own credential (set by the runtime): sent with its events, and accepted
 *   from callers without asking the controller.
 * - `AIOS_ANONYMOUS`: `1` lets calls without a token in (set by the runtime when the user turned
 *   anonymous access on). With none of these three, `serveInstance` checks no tokens (serve.ts).
 *
 * An empty variable counts as unset. A malformed value is a ConfigError whose message names the variable,
 * thrown before the server starts.
 */
import { hostname } from "node:os";

export type Env = Readonly<Record<string, string | undefined>>;

export interface InstanceConfig {
  blockId: string;
  instanceId: string;
  initData: unknown;
  settings: unknown;
  parameters: Record<string, unknown>;
  port: number;
  gpus: string[];
}

/** A malformed environment variable; `variable` names it. */
export class ConfigError extends Error {
  override readonly name = "ConfigError";
  constructor(
    readonly variable: string,
    message: string,
  ) {
    super(`${variable}: ${message}`);
  }
}

/** A variable's trimmed value; undefined when unset or empty. */
export const envValue = (env: Env, name: string): string | undefined => {
  const v = env[name]?.trim();
  return v === undefined || v === "" ? undefined : v;
};

/** `AIOS_BLOCK_ID`, `""` when unset. */
export const readBlockId = (env: Env = process.env): string => envValue(env, "AIOS_BLOCK_ID") ?? "";

/** `AIOS_INSTANCE_ID`, the host name when unset. */
export const readInstanceId = (env: Env = process.env): string =>
  envValue(env, "AIOS_INSTANCE_ID") ?? hostname();

const json = (env: Env, name: string): unknown => {
  const text = envValue(env, name);
  if (text === undefined) return {};
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new ConfigError(name, `not valid JSON (${err instanceof Error ? err.message : String(err)})`);
  }
};

const isRecord = (v: unknown): v is Record<string, unknown> =>
  v !== null && typeof v === "object" && !Array.isArray(v);

/** Parses a port value (from the environment or an option); ConfigError naming `name` when invalid. */
export const parsePort = (text: string, name = "AIOS_INSTANCE_PORT"): number => {
  const port = /^\d+$/.test(text) ? Number(text) : Number.NaN;
  if (!Number.isInteger(port) || port > 65535) {
    throw new ConfigError(name, `must be a port number from 0 to 65535, got ${JSON.stringify(text)}`);
  }
  return port;
};

/** `CUDA_VISIBLE_DEVICES=0,2` -> `["0", "2"]`; unset or empty -> `[]`. */
export const parseGpus = (text: string | undefined): string[] =>
  (text ?? "")
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "");

export const readInstanceConfig = (env: Env = process.env): InstanceConfig => {
  const parameters = json(env, "AIOS_PARAMETERS");
  if (!isRecord(parameters)) throw new ConfigError("AIOS_PARAMETERS", "must be a JSON object");
  const port = envValue(env, "AIOS_INSTANCE_PORT");
  return {
    blockId: readBlockId(env),
    instanceId: readInstanceId(env),
    initData: json(env, "AIOS_INIT_DATA"),
    settings: json(env, "AIOS_INIT_SETTINGS"),
    parameters,
    port: port === undefined ? 0 : parsePort(port),
    gpus: parseGpus(env.CUDA_VISIBLE_DEVICES),
  };
};
