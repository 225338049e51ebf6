/** What every server prints and returns about where it listens. */

export interface Listener {
  name: string;
  url: string;
}

/** The address to print for a bound host: a wildcard bind is reachable on loopback. */
export const displayHost = (host: string): string => {
  if (host === "0.0.0.0" || host === "::" || host === "") return "127.0.0.1";
  return host.includes(":") ? `[${host}]` : host;
};
