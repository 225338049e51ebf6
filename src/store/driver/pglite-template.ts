/**
 * A template for new PGlite databases, as PostgreSQL clones template1 rather than running initdb again:
 * the first database created on this install is dumped (a tarball of its fresh data directory, before
 * any migration) under node_modules/.cache/aios, and every later new database, on disk or in memory,
 * starts from it. initdb in WebAssembly takes seconds; loading the tarball a fraction of one.
 *
 * AIOS_PGLITE_TEMPLATE=off skips it (initdb every time, as on a new install's first start).
 * The template is keyed by PGlite's version, written atomically (temporary file, then rename) so
 * concurrent first starts cannot leave half a file, and dropped if it ever fails to load.
 */
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { PGlite, type PGliteOptions } from "@electric-sql/pglite";

const require = createRequire(import.meta.url);
const pgliteVersion = (): string =>
  (
    JSON.parse(readFileSync(require.resolve("@electric-sql/pglite/package.json"), "utf8")) as {
      version: string;
    }
  ).version;

/** Where the template lives: beside the installed packages, like other tools' caches. */
export const templatePath = (): string => {
  const nodeModules = dirname(dirname(dirname(require.resolve("@electric-sql/pglite/package.json"))));
  return join(nodeModules, ".cache", "aios", `pglite-${pgliteVersion()}.tar`);
};

/** Whether `dataDir` already holds a database (PostgreSQL writes PG_VERSION at initdb). */
const holdsDatabase = (dataDir: string): boolean => existsSync(join(dataDir, "PG_VERSION"));

const saveTemplate = async (client: PGlite, path: string): Promise<void> => {
  try {
    const dump = await client.dumpDataDir("none");
    mkdirSync(dirname(path), { recursive: true });
    const partial = `${path}.${process.pid}.partial`;
    writeFileSync(partial, new Uint8Array(await dump.arrayBuffer()));
    renameSync(partial, path);
  } catch {
    // A read-only install keeps working; new databases just take initdb's time.
  }
};

/**
 * Opens PGlite in `dataDir` (or in memory): an existing database as it is; a new one from the template
 * when there is one, else by initdb, saving the template for next time.
 */
export const createPglite = async (
  dataDir?: string,
  path: string | null = process.env.AIOS_PGLITE_TEMPLATE === "off" ? null : templatePath(),
): Promise<PGlite> => {
  const base: PGliteOptions = dataDir ? { dataDir } : {};
  if (dataDir && holdsDatabase(dataDir)) return PGlite.create(base);
  if (path === null) return PGlite.create(base);
  if (existsSync(path)) {
    try {
      const loadDataDir = new Blob([readFileSync(path)]);
      return await PGlite.create({ ...base, loadDataDir });
    } catch {
      // A broken template (an interrupted copy, another PGlite build): initdb instead, and a new one.
      rmSync(path, { force: true });
    }
  }
  const client = await PGlite.create(base);
  await saveTemplate(client, path);
  return client;
};
