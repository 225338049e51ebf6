/**
 * The audit log: one document per state-changing call (routes.ts decides which), in `audit_log`.
 * Who (token id and name, and the user a service acted for), what (service, method, path, target),
 * when, and the outcome (the status answered: a refused call is recorded as well as a done one).
 */
import { z } from "zod";
import { errorMessage, parseWith } from "../http/errors.ts";
import { timeOrderedId } from "../store/ids.ts";
import type { Store } from "../store/index.ts";
import type { Principal } from "./scopes.ts";

export interface AuditEntry {
  id: string;
  at: string;
  actor: { id: string; name: string };
  on_behalf_of?: { id: string; name: string } | null;
  service: string;
  method: string;
  path: string;
  /** The path's resource (`/api/blocks/demo/scale` -> `demo`), when it names one. */
  target?: string | null;
  status: number;
  outcome: "success" | "refused" | "failed";
}

export const outcomeOf = (status: number): AuditEntry["outcome"] =>
  status < 400 ? "success" : status < 500 ? "refused" : "failed";

/** The entry of one call: who (undefined: no valid token), what and how it ended. */
export const callEntry = (
  principal: Principal | undefined,
  call: { service: string; method: string; path: string; target: string | null; status: number },
): Omit<AuditEntry, "id" | "at"> => ({
  actor: principal
    ? { id: principal.id, name: principal.name }
    : { id: "unauthenticated", name: "unauthenticated" },
  on_behalf_of: principal?.onBehalfOf
    ? { id: principal.onBehalfOf.id, name: principal.onBehalfOf.name }
    : null,
  ...call,
  outcome: outcomeOf(call.status),
});

export const AuditQuerySchema = z.strictObject({
  actor: z.string().max(200).optional(),
  service: z.string().max(50).optional(),
  method: z.enum(["POST", "PUT", "PATCH", "DELETE", "WS", "GRPC"]).optional(),
  outcome: z.enum(["success", "refused", "failed"]).optional(),
  target: z.string().max(300).optional(),
  /** ISO time: entries at or after it. */
  since: z.iso.datetime({ offset: true }).optional(),
  until: z.iso.datetime({ offset: true }).optional(),
  limit: z.coerce.number().int().min(1).max(1000).default(100),
});
export type AuditQuery = z.infer<typeof AuditQuerySchema>;

export class AuditLog {
  constructor(private readonly store: Store) {}

  private get entries() {
    return this.store.collection("audit_log");
  }

  /** Records an entry; a failure to record is logged and does not fail the call it records. */
  async record(entry: Omit<AuditEntry, "id" | "at">, at = Date.now()): Promise<void> {
    try {
      await this.entries.insert({ id: timeOrderedId(at), at: new Date(at).toISOString(), ...entry });
    } catch (err) {
      console.error(`[aios] audit: could not record ${entry.method} ${entry.path}: ${errorMessage(err)}`);
    }
  }

  /** Newest first; `actor` matches the token id or name, or the user a service acted for. */
  async query(input: unknown): Promise<AuditEntry[]> {
    const q = parseWith(AuditQuerySchema, input);
    const and: Record<string, unknown>[] = [];
    if (q.actor !== undefined) {
      and.push({
        $or: [
          { "actor.id": q.actor },
          { "actor.name": q.actor },
          { "on_behalf_of.id": q.actor },
          { "on_behalf_of.name": q.actor },
        ],
      });
    }
    for (const key of ["service", "method", "outcome", "target"] as const) {
      if (q[key] !== undefined) and.push({ [key]: q[key] });
    }
    // ISO strings in UTC compare as times.
    if (q.since !== undefined) and.push({ at: { $gte: new Date(q.since).toISOString() } });
    if (q.until !== undefined) and.push({ at: { $lte: new Date(q.until).toISOString() } });
    const docs = await this.entries.find(and.length > 0 ? { $and: and } : {}, {
      sort: { id: -1 },
      limit: q.limit,
    });
    return docs as unknown as AuditEntry[];
  }
}
