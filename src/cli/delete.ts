/** `aios delete <block>`: removes a block from its cluster (its instances and services stop). */
import { parseFlags, UsageError, type Verb } from "./args.ts";
import { CLIENT_FLAGS, CLIENT_FLAGS_USAGE, clientFrom, print, printJson } from "./output.ts";

export const deleteVerb: Verb = {
  name: "delete",
  summary: "remove a block from its cluster",
  usage: `usage: aios delete <block> [flags]

Stops the block's instances and services on its cluster. The gateway keeps its record, marked removed,
so the block id can be applied again.

${CLIENT_FLAGS_USAGE}`,
  async run(argv) {
    const { values, positionals } = parseFlags(argv, CLIENT_FLAGS, true);
    if (values.help) return print(this.usage);
    // `aios delete block ID` reads as well as `aios delete ID`.
    const words = positionals[0] === "block" && positionals.length === 2 ? positionals.slice(1) : positionals;
    if (words.length !== 1) throw new UsageError("give the one block to delete (aios get blocks lists them)");
    const [blockId] = words as [string];
    const record = await clientFrom(values).deleteBlock(blockId);
    if (values.json) return printJson(record);
    return print(
      `deleted block ${record.id}${record.cluster_id ? ` (was on cluster ${record.cluster_id})` : ""}`,
    );
  },
};
