/**
 * Flag parsing shared by the verbs: `node:util` parseArgs (strict, so a mistyped flag is an error) and
 * the checks every server verb needs (ports).
 */
import { parseArgs } from "node:util";
import { type AuthSettings, anonymousFromEnv, useServiceToken } from "../auth/index.ts";

/** A mistake in the command line: the verb prints its usage on stderr and exits with status 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/** A flag's raw value as parseArgs gives it. */
export type FlagValue = string | boolean | string[] | undefined;

export type FlagSpec = Record<string, { type: "string" | "boolean"; short?: string; multiple?: boolean }>;

export interface Parsed {
  values: Record<string, FlagValue>;
  positionals: string[];
}

/** Parses argv (after the verb) against a flag spec; unknown flags and missing values are UsageErrors. */
export const parseFlags = (argv: string[], flags: FlagSpec, allowPositionals = false): Parsed => {
  try {
    const { values, positionals } = parseArgs({
      args: argv,
      options: { ...flags, help: { type: "boolean", short: "h" } },
      strict: true,
      allowPositionals,
    });
    return { values: values as Parsed["values"], positionals };
  } catch (err) {
    throw new UsageError(err instanceof Error ? err.message : String(err));
  }
};

/** A TCP port from a flag: an integer from 0 (pick a free port) to 65535. */
export const parsePort = (raw: FlagValue, flag: string, fallback: number): number => {
  if (raw === undefined) return fallback;
  if (typeof raw !== "string" || !/^\d{1,5}$/.test(raw) || Number(raw) > 65535) {
    throw new UsageError(`${flag} must be a port number from 0 to 65535, got ${JSON.stringify(raw)}`);
  }
  return Number(raw);
};

export const stringFlag = (raw: FlagValue): string | undefined => (typeof raw === "string" ? raw : undefined);

/** A verb of the `aios` command. `run` resolves to the exit status. */
export interface Verb {
  name: string;
  summary: string;
  usage: string;
  run(argv: string[]): Promise<number>;
}

/** The flags of a server verb about callers and its own credential. */
export const AUTH_FLAGS = {
  anonymous: { type: "boolean" },
  token: { type: "string" },
} as const satisfies FlagSpec;

export const AUTH_FLAGS_USAGE = `  --anonymous         let calls without a token in, as admin: local development only
                      (also AIOS_ANONYMOUS=1); otherwise every call needs a token
  --token T           this service's own token for the calls it makes to other aios services
                      (default $AIOS_TOKEN; made with aios token create, or aios token generate:
                      a service holding the store stores it, scope internal, at start, and
                      AIOS_ADMIN_TOKEN as an admin token, so a deployment brings its first tokens)`;

/**
 * `--anonymous` / AIOS_ANONYMOUS and `--token` / AIOS_TOKEN; the token becomes this process's
 * credential (src/auth/credential.ts) for every call it makes.
 */
export const authSettingsFrom = (values: Record<string, FlagValue>): AuthSettings => {
  const anonymous = values.anonymous === true || anonymousFromEnv();
  const token = stringFlag(values.token) ?? (process.env.AIOS_TOKEN || undefined);
  if (token !== undefined) useServiceToken(token);
  return { anonymous, ...(token !== undefined ? { token } : {}) };
};
