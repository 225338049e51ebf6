/**
 * `aios token create|list|revoke`: the API tokens of a running system, through the gateway (admin
 * scope). A token is shown once, when it is created; the system keeps only its hash. `aios token
 * generate` makes one offline, for a deployment's first tokens (AIOS_TOKEN, AIOS_ADMIN_TOKEN).
 */
import { generateToken } from "../auth/index.ts";
import type { CreatedToken, TokenInfo } from "../gateway/client.ts";
import { parseFlags, stringFlag, UsageError, type Verb } from "./args.ts";
import {
  age,
  CLIENT_FLAGS,
  CLIENT_FLAGS_USAGE,
  cell,
  clientFrom,
  print,
  printJson,
  table,
} from "./output.ts";

const CREATE_USAGE = `usage: aios token create --name N --scope S [--scope S2 ...] [--expires-in SECONDS] [flags]

Makes a token and prints it once: it is not shown again (the system keeps only its hash).
  --name N             what the token is for, e.g. "ci deploys" (shown in the audit log)
  --scope S            admin, operator, internal, infer:<blockId> or infer:* (repeat for more)
  --expires-in SECONDS it stops working after this long (from 60); default: until revoked`;

const LIST_USAGE = `usage: aios token list [flags]

Lists every token (revoked and expired ones too): id, name, scopes, state, when made and by whom.`;

const REVOKE_USAGE = `usage: aios token revoke <id> [flags]

Revokes a token by its id (tok_..., aios token list shows them); it stops working within 5 s.`;

const GENERATE_USAGE = `usage: aios token generate

Prints a fresh random token, stored nowhere: for a deployment's Secret. A service that holds the store
stores it at start when given as its --token / AIOS_TOKEN (scope internal) or as AIOS_ADMIN_TOKEN
(scope admin). Needs no running system.`;

/** active, revoked or expired. */
export const tokenState = (t: TokenInfo, now: number = Date.now()): string =>
  t.revoked_at ? "revoked" : t.expires_at && Date.parse(t.expires_at) <= now ? "expired" : "active";

const expiry = (t: TokenInfo, now: number): string => {
  if (!t.expires_at) return "never";
  const left = Date.parse(t.expires_at) - now;
  if (left <= 0) return "expired";
  // age() reads a past time; the time left reads the same way from the other side.
  return `in ${age(new Date(now - left).toISOString(), now)}`;
};

export const tokensTable = (tokens: readonly TokenInfo[], now: number = Date.now()): string => {
  if (tokens.length === 0) return "no tokens (make one: aios token create --name N --scope S)";
  const rows = tokens.map((t) => [
    t.id,
    t.name,
    t.scopes.join(","),
    tokenState(t, now),
    expiry(t, now),
    age(t.created_at, now),
    cell(t.created_by),
  ]);
  return table(["ID", "NAME", "SCOPES", "STATE", "EXPIRES", "AGE", "CREATED BY"], rows);
};

/** What `aios token create` prints: the token once, and that it will not be shown again. */
export const createdToken = (t: CreatedToken): string =>
  [
    `created token ${t.id} (${t.name}, scopes ${t.scopes.join(",")}${t.expires_at ? `, expires ${t.expires_at}` : ""})`,
    "",
    `  ${t.token}`,
    "",
    "This is the only time the token is shown: store it now (the system keeps only its hash).",
    "Use it with --token, AIOS_TOKEN, or 'Authorization: Bearer <token>'.",
  ].join("\n");

const create = async (argv: string[]): Promise<number> => {
  const { values, positionals } = parseFlags(argv, {
    ...CLIENT_FLAGS,
    name: { type: "string" },
    scope: { type: "string", multiple: true },
    "expires-in": { type: "string" },
  });
  if (values.help) return print(`${CREATE_USAGE}\n${CLIENT_FLAGS_USAGE}`);
  if (positionals.length > 0) throw new UsageError(`unexpected arguments: ${positionals.join(" ")}`);
  const name = stringFlag(values.name);
  if (!name) throw new UsageError("--name is required (what the token is for)");
  const scopes = Array.isArray(values.scope) ? values.scope : [];
  if (scopes.length === 0)
    throw new UsageError("give at least one --scope (admin, operator, internal, infer:<blockId>, infer:*)");
  const rawExpiry = stringFlag(values["expires-in"]);
  if (rawExpiry !== undefined && !/^\d+$/.test(rawExpiry))
    throw new UsageError(`--expires-in must be a number of seconds, got '${rawExpiry}'`);
  const created = await clientFrom(values).createToken({
    name,
    scopes,
    ...(rawExpiry !== undefined ? { expires_in: Number(rawExpiry) } : {}),
  });
  if (values.json) return printJson(created);
  return print(createdToken(created));
};

const list = async (argv: string[]): Promise<number> => {
  const { values, positionals } = parseFlags(argv, CLIENT_FLAGS, true);
  if (values.help) return print(`${LIST_USAGE}\n${CLIENT_FLAGS_USAGE}`);
  if (positionals.length > 0) throw new UsageError(`unexpected arguments: ${positionals.join(" ")}`);
  const tokens = await clientFrom(values).listTokens();
  return values.json ? printJson(tokens) : print(tokensTable(tokens));
};

const revoke = async (argv: string[]): Promise<number> => {
  const { values, positionals } = parseFlags(argv, CLIENT_FLAGS, true);
  if (values.help) return print(`${REVOKE_USAGE}\n${CLIENT_FLAGS_USAGE}`);
  if (positionals.length !== 1) throw new UsageError("give the one token id to revoke (aios token list)");
  const revoked = await clientFrom(values).revokeToken(positionals[0] as string);
  if (values.json) return printJson(revoked);
  return print(`revoked token ${revoked.id} (${revoked.name}); it stops working within 5 s`);
};

const generate = async (argv: string[]): Promise<number> => {
  const { values } = parseFlags(argv, {});
  if (values.help) return print(GENERATE_USAGE);
  return print(generateToken());
};

const SUBCOMMANDS: Record<string, (argv: string[]) => Promise<number>> = {
  create,
  list,
  revoke,
  generate,
};

export const tokenVerb: Verb = {
  name: "token",
  summary: "create, list and revoke API tokens (admin); generate one offline",
  usage: `usage: aios token <create|list|revoke|generate> [flags]

${CREATE_USAGE}

${LIST_USAGE}

${REVOKE_USAGE}

create, list and revoke take:
${CLIENT_FLAGS_USAGE}

${GENERATE_USAGE}`,
  async run(argv) {
    const [sub, ...rest] = argv;
    if (sub === "--help" || sub === "-h") return print(this.usage);
    if (sub === undefined) throw new UsageError("say what to do: create, list, revoke or generate");
    const run = SUBCOMMANDS[sub];
    if (!run) throw new UsageError(`unknown subcommand '${sub}' (create, list, revoke, generate)`);
    return run(rest);
  },
};
