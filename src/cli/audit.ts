/**
 * `aios audit`: the audit log of state-changing calls (who, what, when, the outcome), newest first,
 * through the gateway (admin scope).
 */
import type { AuditEntry, AuditFilter } from "../gateway/client.ts";
import { parseFlags, stringFlag, UsageError, type Verb } from "./args.ts";
import {
  CLIENT_FLAGS,
  CLIENT_FLAGS_USAGE,
  cell,
  clientFrom,
  positiveIntFlag,
  print,
  printJson,
  table,
} from "./output.ts";

const OUTCOMES = ["success", "refused", "failed"];
const METHODS = ["POST", "PUT", "PATCH", "DELETE", "WS", "GRPC"];

/** `at` as `2025-01-31 12:34:56` (UTC), short enough for a table. */
const when = (iso: string): string => iso.replace("T", " ").replace(/\.\d+Z$|Z$/, "");

export const auditTable = (entries: readonly AuditEntry[]): string => {
  if (entries.length === 0) return "no audit entries match";
  const rows = entries.map((e) => [
    when(e.at),
    e.actor.name === e.actor.id ? e.actor.id : `${e.actor.name} (${e.actor.id})`,
    e.on_behalf_of ? e.on_behalf_of.name : "-",
    e.service,
    `${e.method} ${e.path}`,
    cell(e.target),
    `${e.outcome} ${e.status}`,
  ]);
  return table(["AT (UTC)", "ACTOR", "FOR", "SERVICE", "CALL", "TARGET", "OUTCOME"], rows);
};

/** An ISO time, or a UsageError naming the flag. */
const isoFlag = (raw: string | undefined, flag: string): string | undefined => {
  if (raw === undefined) return undefined;
  if (!/^\d{4}-\d\d-\d\d/.test(raw) || Number.isNaN(Date.parse(raw)))
    throw new UsageError(`${flag} must be an ISO time, e.g. 2025-01-31T12:00:00Z, got '${raw}'`);
  // The API takes a full date-time with its offset; a date alone is that day's start, UTC.
  return new Date(raw).toISOString();
};

export const auditVerb: Verb = {
  name: "audit",
  summary: "show the audit log: who changed what, when, and the outcome (admin)",
  usage: `usage: aios audit [--actor X] [--service S] [--method M] [--outcome O] [--target T]
                  [--since ISO] [--until ISO] [--limit N] [flags]

Lists state-changing calls newest first: when, the token that called (and the user a service acted
for), the service and call, the resource, and the outcome (success, refused or failed, with the status).

  --actor X          a token id or name, or the user a service acted for
  --service S        registry, gateway, controller, ... (the service that recorded the call)
  --method M         ${METHODS.join(", ")}
  --outcome O        ${OUTCOMES.join(", ")}
  --target T         the resource, e.g. a block id
  --since ISO        entries at or after this time, e.g. 2025-01-31T12:00:00Z
  --until ISO        entries at or before this time
  --limit N          at most N entries (default 100, at most 1000)
${CLIENT_FLAGS_USAGE}`,
  async run(argv) {
    const { values, positionals } = parseFlags(argv, {
      ...CLIENT_FLAGS,
      actor: { type: "string" },
      service: { type: "string" },
      method: { type: "string" },
      outcome: { type: "string" },
      target: { type: "string" },
      since: { type: "string" },
      until: { type: "string" },
      limit: { type: "string" },
    });
    if (values.help) return print(this.usage);
    if (positionals.length > 0) throw new UsageError(`unexpected arguments: ${positionals.join(" ")}`);
    const method = stringFlag(values.method)?.toUpperCase();
    if (method !== undefined && !METHODS.includes(method))
      throw new UsageError(`--method must be one of ${METHODS.join(", ")}, got '${method}'`);
    const outcome = stringFlag(values.outcome);
    if (outcome !== undefined && !OUTCOMES.includes(outcome))
      throw new UsageError(`--outcome must be one of ${OUTCOMES.join(", ")}, got '${outcome}'`);
    const filter: AuditFilter = {};
    const set = <K extends keyof AuditFilter>(k: K, v: AuditFilter[K] | undefined) => {
      if (v !== undefined) filter[k] = v;
    };
    set("actor", stringFlag(values.actor));
    set("service", stringFlag(values.service));
    set("method", method);
    set("outcome", outcome);
    set("target", stringFlag(values.target));
    set("since", isoFlag(stringFlag(values.since), "--since"));
    set("until", isoFlag(stringFlag(values.until), "--until"));
    set("limit", positiveIntFlag(values.limit, "--limit"));
    const entries = await clientFrom(values).audit(filter);
    return values.json ? printJson(entries) : print(auditTable(entries));
  },
};
