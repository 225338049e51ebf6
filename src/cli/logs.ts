/**
 * `aios logs <block> [instance]` or `aios logs <instance>`: the last lines a block's services (executor
 * and sidecars) or one of its instances wrote; `--follow` keeps printing new lines.
 */
import type { GatewayClient, LogsQuery } from "../gateway/client.ts";
import { parseFlags, UsageError, type Verb } from "./args.ts";
import { CLIENT_FLAGS, CLIENT_FLAGS_USAGE, clientFrom, positiveIntFlag, print, printJson } from "./output.ts";

const DEFAULT_TAIL = 100;
/** How many lines a follow poll reads: enough to overlap the previous read between two polls. */
const FOLLOW_TAIL = 1000;
const FOLLOW_MS = 1000;

/**
 * The lines of `next` that `prev` did not have, both being the last lines of the same growing log:
 * `next` starts with the end of `prev` (the longest such overlap wins); with no overlap, the log moved
 * on by more than a read, and all of `next` is new.
 */
export const newLines = (prev: readonly string[], next: readonly string[]): string[] => {
  for (let k = Math.min(prev.length, next.length); k > 0; k--) {
    let match = true;
    for (let i = 0; i < k; i++) {
      if (prev[prev.length - k + i] !== next[i]) {
        match = false;
        break;
      }
    }
    if (match) return next.slice(k);
  }
  return [...next];
};

/** `aios logs X`: X is a block, else the instance of some block. */
export const resolveTarget = async (
  client: GatewayClient,
  words: readonly string[],
): Promise<{ blockId: string; instance?: string }> => {
  const [first, second] = words as [string, string | undefined];
  if (second !== undefined) return { blockId: first, instance: second };
  const blocks = await client.listBlocks();
  if (blocks.some((b) => b.id === first)) return { blockId: first };
  const owner = blocks.find((b) => b.instances.some((i) => i.id === first));
  if (owner) return { blockId: owner.id, instance: first };
  throw new Error(
    `no block or instance '${first}' at the gateway; ${
      blocks.length > 0
        ? `blocks: ${blocks.map((b) => b.id).join(", ")} (aios get instances lists their instances)`
        : "there are no blocks yet"
    }`,
  );
};

/** Prints new lines every second until `signal` aborts. */
export const followLogs = async (
  client: GatewayClient,
  blockId: string,
  query: LogsQuery,
  first: readonly string[],
  write: (line: string) => void,
  signal: AbortSignal,
): Promise<void> => {
  let prev = first;
  while (!signal.aborted) {
    await new Promise<void>((resolve) => {
      // One listener at a time: a long follow must not pile them up on the signal.
      const wake = () => {
        clearTimeout(timer);
        signal.removeEventListener("abort", wake);
        resolve();
      };
      const timer = setTimeout(wake, FOLLOW_MS);
      signal.addEventListener("abort", wake);
    });
    if (signal.aborted) return;
    const next = (await client.logs(blockId, { ...query, tail: FOLLOW_TAIL })).lines;
    for (const line of newLines(prev, next)) write(line);
    prev = next;
  }
};

export const logsVerb: Verb = {
  name: "logs",
  summary: "print a block's or an instance's log",
  usage: `usage: aios logs <block> [instance] [flags]
       aios logs <instance> [flags]

Prints the last lines the block's services (executor, mapper, auto-scaler, health checker) wrote, or
those of one instance (aios get instances lists them).

  --tail N           how many lines (default ${DEFAULT_TAIL})
  -f, --follow       keep printing new lines (every second) until Ctrl-C
${CLIENT_FLAGS_USAGE}`,
  async run(argv) {
    const { values, positionals } = parseFlags(
      argv,
      { ...CLIENT_FLAGS, tail: { type: "string" }, follow: { type: "boolean", short: "f" } },
      true,
    );
    if (values.help) return print(this.usage);
    if (positionals.length < 1 || positionals.length > 2)
      throw new UsageError("give a block, a block and one of its instances, or an instance");
    if (values.follow && values.json)
      throw new UsageError("--follow prints lines; it does not go with --json");
    const tail = positiveIntFlag(values.tail, "--tail") ?? DEFAULT_TAIL;
    const client = clientFrom(values);
    const { blockId, instance } = await resolveTarget(client, positionals);
    const query: LogsQuery = instance === undefined ? {} : { instance };
    // Following reads as many lines as each poll will, so the polls overlap this first read.
    const logs = await client.logs(blockId, { ...query, tail: values.follow ? FOLLOW_TAIL : tail });
    if (values.json) return printJson(logs);
    for (const line of logs.lines.slice(-tail)) console.log(line);
    if (!values.follow) {
      if (logs.lines.length === 0)
        console.error(`no log lines yet for ${instance ? `instance ${instance} of ` : ""}block ${blockId}`);
      return 0;
    }
    const stop = new AbortController();
    const onSignal = () => stop.abort();
    process.once("SIGINT", onSignal);
    try {
      await followLogs(client, blockId, query, logs.lines, (line) => console.log(line), stop.signal);
    } finally {
      process.off("SIGINT", onSignal);
    }
    return 0;
  },
};
