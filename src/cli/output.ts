/**
 * What the client verbs (apply, get, infer, scale, delete, logs, token, audit) share: the `--gateway`,
 * `--token` and `--json` flags, the token found when no flag gives one, aligned tables for people and
 * raw JSON for scripts.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { GatewayClient, gatewayUrl } from "../gateway/client.ts";
import { type FlagSpec, type FlagValue, stringFlag, UsageError } from "./args.ts";

/** The flags every client verb takes. */
export const CLIENT_FLAGS = {
  gateway: { type: "string" },
  token: { type: "string" },
  json: { type: "boolean" },
} as const satisfies FlagSpec;

export const CLIENT_FLAGS_USAGE = `  --gateway URL      the gateway (default $AIOS_GATEWAY_URL, else http://127.0.0.1:8080)
  --token T          the API token to present (default $AIOS_TOKEN, else the admin token aios up
                     saved in $AIOS_DATA_DIR/admin-token, AIOS_DATA_DIR defaulting to .data)
  --json             print the gateway's answer as JSON, for scripts
  -h, --help         show this help`;

/** Where `aios up` keeps the admin token it made, for the CLI on the same machine. */
export const ADMIN_TOKEN_FILE = "admin-token";

export const adminTokenPath = (dataDir: string): string => join(dataDir, ADMIN_TOKEN_FILE);

/** The data directory the CLI looks in for the admin token: $AIOS_DATA_DIR, else `.data`. */
export const cliDataDir = (env = process.env): string => env.AIOS_DATA_DIR || ".data";

/** The token a client verb presents, and where it came from (for a 401's message). */
export interface ClientToken {
  token: string | undefined;
  source: string;
}

/** `--token`, else $AIOS_TOKEN, else the file `aios up` wrote; none is fine where no token is needed. */
export const clientToken = (flag: FlagValue, env = process.env): ClientToken => {
  const given = stringFlag(flag);
  if (given !== undefined) return { token: given, source: "--token" };
  if (env.AIOS_TOKEN) return { token: env.AIOS_TOKEN, source: "$AIOS_TOKEN" };
  const file = adminTokenPath(cliDataDir(env));
  try {
    const token = readFileSync(file, "utf8").trim();
    if (token !== "") return { token, source: file };
  } catch {
    // No file: no token.
  }
  return { token: undefined, source: "none" };
};

/** What a user does about a 401: where a token comes from. */
export const tokenHint = (source: string): string =>
  source === "none"
    ? `no token was given: pass --token T, set AIOS_TOKEN, or run where aios up saved its admin token ` +
      `(${adminTokenPath(cliDataDir())}; set AIOS_DATA_DIR=<aios up's --data-dir> if it was elsewhere); ` +
      "an admin makes more with aios token create"
    : `the token from ${source} was refused; pass another with --token T or AIOS_TOKEN ` +
      "(aios token list shows which tokens are valid)";

/** The gateway client of a client verb: `--gateway`, and the token found (a 401 says how to give one). */
export const clientFrom = (values: Record<string, FlagValue>): GatewayClient => {
  const { token, source } = clientToken(values.token);
  return new GatewayClient(gatewayUrl(stringFlag(values.gateway)), {
    ...(token !== undefined ? { token } : {}),
    unauthenticatedHint: tokenHint(source),
  });
};

/** Prints and answers exit status 0. */
export const print = (text: string): number => {
  console.log(text);
  return 0;
};

export const printJson = (value: unknown): number => print(JSON.stringify(value, null, 2));

/** Rows under a header, columns aligned on the widest cell, two spaces apart, no trailing blanks. */
export const table = (header: readonly string[], rows: readonly (readonly string[])[]): string => {
  const all = [header, ...rows];
  const widths = header.map((_, i) => Math.max(...all.map((r) => (r[i] ?? "").length)));
  return all
    .map((r) =>
      header
        .map((_, i) => (r[i] ?? "").padEnd(widths[i] ?? 0))
        .join("  ")
        .trimEnd(),
    )
    .join("\n");
};

/** A cell for a value that may be missing. */
export const cell = (value: string | number | null | undefined): string =>
  value === null || value === undefined || value === "" ? "-" : String(value);

/** How long ago an ISO time was, as kubectl shows it: 45s, 12m, 3h, 2d. */
export const age = (iso: string | null | undefined, now: number = Date.now()): string => {
  if (!iso) return "-";
  const then = Date.parse(iso);
  if (Number.isNaN(then)) return "-";
  const s = Math.max(0, Math.floor((now - then) / 1000));
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.floor(s / 60)}m`;
  if (s < 172_800) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86_400)}d`;
};

/** A positive integer flag, e.g. `--tail 50`. */
export const positiveIntFlag = (raw: FlagValue, flag: string): number | undefined => {
  const value = stringFlag(raw);
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value) || Number(value) <= 0)
    throw new UsageError(`${flag} must be a positive integer, got '${value}'`);
  return Number(value);
};
