/**
 * The credential this process presents when it calls another aios service: a service's token
 * (`aios up` makes one; a server verb reads `--token` or AIOS_TOKEN; a workload gets AIOS_TOKEN from
 * its controller), or the user's in the CLI. One per process, set once at start.
 */
let token: string | undefined = process.env.AIOS_TOKEN || undefined;

export const useServiceToken = (value: string | undefined): void => {
  token = value || undefined;
};

export const serviceToken = (): string | undefined => token;

/** `{authorization: "Bearer ..."}` when this process has a credential, else nothing. */
export const authHeaders = (): Record<string, string> => (token ? { authorization: `Bearer ${token}` } : {});

/** The header a service sets to name the user it acts for (honoured only from `internal` callers). */
export const ON_BEHALF_OF = "x-aios-on-behalf-of";
