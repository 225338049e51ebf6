/**
 * What the client verbs (apply, get, infer, scale, delete, logs) share: the `--gateway` and `--json`
 * flags, aligned tables for people and raw JSON for scripts.
 */
import { GatewayClient, gatewayUrl } from "../gateway/client.ts";
import { type FlagSpec, type FlagValue, stringFlag, UsageError } from "./args.ts";

/** The flags every client verb takes. */
export const CLIENT_FLAGS = {
  gateway: { type: "string" },
  json: { type: "boolean" },
} as const satisfies FlagSpec;

export const CLIENT_FLAGS_USAGE = `  --gateway URL      the gateway (default $AIOS_GATEWAY_URL, else http://127.0.0.1:8080)
  --json             print the gateway's answer as JSON, for scripts
  -h, --help         show this help`;

export const clientFrom = (values: Record<string, FlagValue>): GatewayClient =>
  new GatewayClient(gatewayUrl(stringFlag(values.gateway)));

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
