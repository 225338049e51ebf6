/**
 * API tokens: `aios_<id>_<secret>`, where the id finds the record and the secret proves the caller
 * holds it. Only the sha256 of the secret is stored (`api_tokens`): the secret is 32 random bytes, so a
 * fast hash is enough (as GitHub and Kubernetes bootstrap tokens do); a slow one would only slow every
 * call. The plain token is returned once, when it is created.
 */
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { z } from "zod";
import { ApiError, badRequest, notFound, parseWith } from "../http/errors.ts";
import type { Store } from "../store/index.ts";
import { type Principal, type Scope, scopeProblem } from "./scopes.ts";

export const TOKEN_PREFIX = "aios_";
const TOKEN = /^aios_([a-z0-9]{12})_([A-Za-z0-9_-]{43})$/;

export interface TokenRecord {
  id: string;
  name: string;
  scopes: Scope[];
  /** sha256 of the secret, hex. */
  hash: string;
  created_at: string;
  /** Who created it (a token id, or `aios up`). */
  created_by: string;
  expires_at?: string | null;
  revoked_at?: string | null;
}

/** A token as listed: everything but the hash. */
export type TokenInfo = Omit<TokenRecord, "hash">;

export const NewTokenSchema = z.strictObject({
  name: z.string().min(1).max(200),
  scopes: z
    .array(z.string().max(300))
    .min(1)
    .max(32)
    .superRefine((scopes, ctx) => {
      for (const [i, s] of scopes.entries()) {
        const problem = scopeProblem(s);
        if (problem) ctx.addIssue({ code: "custom", message: problem, path: [i] });
      }
    }),
  /** Seconds until the token stops working; none means it works until revoked. */
  expires_in: z
    .int()
    .min(60)
    .max(10 * 365 * 86400)
    .optional(),
});
export type NewToken = z.infer<typeof NewTokenSchema>;

/** A fresh random token, not stored anywhere (TokenStore.create and .ensure store one). */
export const generateToken = (): string => {
  const short = randomBytes(12).toString("hex").slice(0, 12);
  return `${TOKEN_PREFIX}${short}_${randomBytes(32).toString("base64url")}`;
};

const sha256 = (s: string): string => createHash("sha256").update(s).digest("hex");

/** `{id, secret}` of a well-formed token, or null. */
export const parseToken = (token: string): { id: string; secret: string } | null => {
  const m = TOKEN.exec(token);
  return m ? { id: `tok_${m[1]}`, secret: m[2] as string } : null;
};

const sameHash = (a: string, b: string): boolean =>
  a.length === b.length && timingSafeEqual(Buffer.from(a), Buffer.from(b));

const info = ({ hash: _, ...rest }: TokenRecord): TokenInfo => rest;

export class TokenStore {
  constructor(private readonly store: Store) {}

  private get tokens() {
    return this.store.collection("api_tokens");
  }

  /** Creates a token; the plain token is in the answer and nowhere else. */
  async create(input: unknown, createdBy: string): Promise<{ token: string; info: TokenInfo }> {
    const spec = parseWith(NewTokenSchema, input);
    const token = generateToken();
    const { id, secret } = parseToken(token)!;
    const now = new Date();
    const record: TokenRecord = {
      id,
      name: spec.name,
      scopes: [...new Set(spec.scopes)] as Scope[],
      hash: sha256(secret),
      created_at: now.toISOString(),
      created_by: createdBy,
      expires_at: spec.expires_in ? new Date(now.getTime() + spec.expires_in * 1000).toISOString() : null,
      revoked_at: null,
    };
    await this.tokens.insert({ ...record });
    return { token, info: info(record) };
  }

  /**
   * Stores a token made elsewhere (`aios token generate`, a Kubernetes Secret) if its id is not stored
   * yet: how a deployment bootstraps its first admin and its services' credential without a running
   * API. A token whose id is stored with another secret, or revoked, is refused.
   */
  async ensure(token: string, name: string, scopes: Scope[], createdBy = "bootstrap"): Promise<TokenInfo> {
    const parsed = parseToken(token);
    if (!parsed)
      throw badRequest(
        "invalid_token",
        "not an aios token (aios_<12 chars>_<43 chars>; aios token generate makes one)",
      );
    const existing = (await this.tokens.get(parsed.id)) as unknown as TokenRecord | null;
    if (existing) {
      if (!sameHash(sha256(parsed.secret), existing.hash) || existing.revoked_at) {
        throw new ApiError(
          409,
          "token_conflict",
          `token ${parsed.id} is stored with another secret or revoked`,
        );
      }
      return info(existing);
    }
    const record: TokenRecord = {
      id: parsed.id,
      name,
      scopes,
      hash: sha256(parsed.secret),
      created_at: new Date().toISOString(),
      created_by: createdBy,
      expires_at: null,
      revoked_at: null,
    };
    await this.tokens.upsert(parsed.id, { ...record });
    return info(record);
  }

  async list(): Promise<TokenInfo[]> {
    const docs = await this.tokens.find({}, { sort: { created_at: 1 }, limit: 10_000 });
    return docs.map((d) => info(d as unknown as TokenRecord));
  }

  /** Revokes a token (kept, marked revoked, so the audit log's ids still name something). */
  async revoke(id: string): Promise<TokenInfo> {
    if (!/^tok_[a-z0-9]{12}$/.test(id))
      throw badRequest("invalid_input", `'${id}' is not a token id (tok_...)`);
    const doc = await this.tokens.get(id);
    if (!doc) throw notFound(`no token '${id}'`);
    const record = doc as unknown as TokenRecord;
    if (record.revoked_at) return info(record);
    const updated = await this.tokens.update(id, { $set: { revoked_at: new Date().toISOString() } });
    return info((updated ?? doc) as unknown as TokenRecord);
  }

  /** The principal a token stands for; null when unknown, wrong, revoked or expired. */
  async verify(token: string, now = Date.now()): Promise<Principal | null> {
    const parsed = parseToken(token);
    if (!parsed) return null;
    const doc = await this.tokens.get(parsed.id);
    if (!doc) return null;
    const record = doc as unknown as TokenRecord;
    if (!sameHash(sha256(parsed.secret), record.hash)) return null;
    if (record.revoked_at) return null;
    if (record.expires_at && Date.parse(record.expires_at) <= now) return null;
    return { id: record.id, name: record.name, scopes: record.scopes };
  }
}

/** A token refused because it is not one (as opposed to one lacking a scope). */
export const unauthenticated = (message: string): ApiError => new ApiError(401, "unauthenticated", message);
