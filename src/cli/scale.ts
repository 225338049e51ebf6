/**
 * `aios scale <block> <n | +n | -n>`: sets a block's instance count, or changes it, within its
 * minimum and maximum (the gateway asks the block's controller, through its pre-checks).
 */
import type { ScaleRequest } from "../gateway/views.ts";
import { parseFlags, UsageError, type Verb } from "./args.ts";
import { CLIENT_FLAGS, CLIENT_FLAGS_USAGE, clientFrom, print, printJson } from "./output.ts";

/** `4` sets the count; `+2` and `-1` change it. */
export const parseScale = (word: string): ScaleRequest => {
  const m = /^([+-]?)(\d+)$/.exec(word);
  if (!m) throw new UsageError(`the instance count must be a number (4) or a change (+2, -1), got '${word}'`);
  const n = Number(m[2]);
  if (m[1] === "") return { instances: n };
  if (n === 0) throw new UsageError(`a change of ${word} does nothing`);
  return { delta: m[1] === "-" ? -n : n };
};

export const scaleVerb: Verb = {
  name: "scale",
  summary: "set or change a block's instance count",
  usage: `usage: aios scale <block> <n | +n | -n> [flags]

  aios scale sentiment-nb-01 4     runs 4 instances
  aios scale sentiment-nb-01 +2    adds 2
  aios scale sentiment-nb-01 -1    removes 1

The count must stay within the block's minInstances and maxInstances.

${CLIENT_FLAGS_USAGE}`,
  async run(argv) {
    // "-1" would read as a flag: take the change out before parsing the flags.
    const change = argv.find((a) => /^-\d+$/.test(a));
    const rest = change === undefined ? argv : argv.filter((a) => a !== change);
    const { values, positionals } = parseFlags(rest, CLIENT_FLAGS, true);
    if (values.help) return print(this.usage);
    const words = change === undefined ? positionals : [...positionals, change];
    if (words.length !== 2)
      throw new UsageError("give the block and the instance count (4) or change (+2, -1)");
    const [blockId, count] = words as [string, string];
    const request = parseScale(count);
    const block = await clientFrom(values).scaleBlock(blockId, request);
    if (values.json) return printJson(block);
    const bounds =
      block.min_instances !== null && block.max_instances !== null
        ? ` (min ${block.min_instances}, max ${block.max_instances})`
        : "";
    const n = block.instances.length;
    const how = request.instances !== undefined ? `to ${request.instances}` : `by ${count}`;
    return print(`scaled block ${block.id} ${how}: ${n} instance${n === 1 ? "" : "s"} now${bounds}`);
  },
};
