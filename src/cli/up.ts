/**
 * `aios up`: everything, embedded. For now that is the registry alone; the gateway, cluster controller
 * and resource allocator join as they are built.
 */
import { installBuiltinPolicies } from "../policy/builtins.ts";
import { PolicyStore } from "../policy/store.ts";
import type { Verb } from "./args.ts";
import { parseServerFlags, serveRegistry, serverFlagsUsage } from "./registry.ts";

export const upVerb: Verb = {
  name: "up",
  summary: "run the whole system embedded (for now: the registry)",
  usage: `usage: aios up [--port P] [--metrics-port M] [--host H] [--data-dir DIR]

Runs every aios service in one process. In this version only the registry (clusters, components,
policies, global metrics) is started, with the built-in policies stored; run the gateway, a cluster
controller and the resource allocator with their own verbs (aios gateway, aios controller, aios
allocator) until aios up starts them too.
State is kept on disk in ./.data (PGlite) unless --data-dir or DATABASE_URL says otherwise, so a
restart keeps everything.

${serverFlagsUsage}`,
  async run(argv) {
    const options = parseServerFlags(argv);
    if (options.help) {
      console.log(this.usage);
      return 0;
    }
    if (!options.dataDir && !process.env.DATABASE_URL) options.dataDir = ".data";
    console.log(
      "aios up: starting the registry only (start the others with aios gateway, aios controller --cluster-id ID, aios allocator)",
    );
    return serveRegistry(options, async (running) => {
      const report = await installBuiltinPolicies(new PolicyStore(running.store));
      console.log(
        `aios up: built-in policies: ${report.installed.length} installed, ${report.unchanged.length} already stored`,
      );
      for (const k of report.kept) console.error(`aios up: kept the stored ${k.uri}: ${k.reason}`);
    });
  },
};
