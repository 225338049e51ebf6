/**
 * The storage backends a suite runs on: in-memory PGlite always, and the real PostgreSQL too when
 * DATABASE_URL is set (as .ci/run does when one is reachable), so both are checked in one run.
 */
import { openStore, type Store } from "../../src/store/index.ts";

export interface Backend {
  name: string;
  open: () => Promise<Store>;
}

export const backends: Backend[] = [
  { name: "pglite", open: () => openStore({}) },
  ...(process.env.DATABASE_URL
    ? [{ name: "postgres", open: () => openStore({ databaseUrl: process.env.DATABASE_URL }) }]
    : []),
];

/** The same backends with sequential scans off, so queries go through the GIN index where they can. */
export const indexedBackends: Backend[] = backends.map((b) => ({
  name: `${b.name} (GIN index forced)`,
  open: () =>
    openStore({
      databaseUrl: b.name === "postgres" ? process.env.DATABASE_URL : undefined,
      settings: { enable_seqscan: "off" },
    }),
}));
