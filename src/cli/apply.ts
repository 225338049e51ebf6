/**
 * `aios apply <spec.json>`: creates the block a specification describes, through the gateway, printing
 * each allocation step as the gateway records it (filter, selection, dry runs, the choice, allocation).
 * The creation answers only once the block runs, so the steps are read from `GET /api/blocks/{id}` while
 * the POST is in flight.
 */
import { readFile } from "node:fs/promises";
import type { GatewayClient } from "../gateway/client.ts";
import type { BlockDetail } from "../gateway/views.ts";
import { ServiceClientError } from "../http/client.ts";
import { parseFlags, UsageError, type Verb } from "./args.ts";
import { CLIENT_FLAGS, CLIENT_FLAGS_USAGE, clientFrom, print } from "./output.ts";

type Step = BlockDetail["steps"][number];

const POLL_MS = 150;

const score = (value: unknown): string =>
  typeof value === "number" ? ` (score ${Number(value.toFixed(3))})` : "";

const clusterList = (ids: unknown): string[] => (Array.isArray(ids) ? ids.map((id) => String(id)) : []);

/** Why a cluster's dry run failed, from the error the gateway recorded: timeout or refusal. */
const dryRunFailure = (error: string): string =>
  /no dry-run answer within|timed? ?out|aborted/i.test(error) ? `timeout (${error})` : `refused (${error})`;

/** One recorded allocation step as lines for people (a dry run gives one line per cluster). */
export const describeStep = (s: Step): string[] => {
  const d = (s.detail ?? {}) as Record<string, unknown>;
  switch (s.step) {
    case "filter":
    case "selection": {
      const ids = clusterList(d.clusters);
      const what = s.step === "filter" ? "candidate" : "selected";
      if (ids.length === 0)
        return [`${s.step}: no cluster ${s.step === "filter" ? "matches the filter" : "selected"}`];
      return [`${s.step}: ${ids.length} ${what} cluster${ids.length === 1 ? "" : "s"} (${ids.join(", ")})`];
    }
    case "dry_run": {
      const entries = Object.entries(d);
      if (entries.length === 0) return [`dry_run: ${s.ok ? "ok" : "no answer"}`];
      return entries.map(([cluster, result]) => {
        const r = (result ?? {}) as { score?: unknown; error?: unknown };
        return typeof r.error === "string"
          ? `dry_run on cluster ${cluster}: ${dryRunFailure(r.error)}`
          : `dry_run on cluster ${cluster}: ok${score(r.score)}`;
      });
    }
    case "post_dry_run":
      return [`post_dry_run: chose cluster ${String(d.cluster_id)}${score(d.score)}`];
    case "allocation":
      return [
        `allocation on cluster ${String(d.cluster_id)}: ${s.ok ? "ok" : `failed (${String(d.error ?? "no reason given")})`}`,
      ];
  }
  return [`${String(s.step)}: ${s.ok ? "ok" : "failed"} ${JSON.stringify(s.detail)}`];
};

/** What to do next when a creation fails, by the gateway's error code. */
const NEXT_STEPS: Record<string, (blockId: string) => string> = {
  no_candidate_cluster: () =>
    "aios get clusters lists the clusters; the spec's clusterAllocator filter must admit one",
  dry_run_failed: () => "aios get clusters shows which controllers answer",
  allocation_failed: (id) => `aios get block ${id} shows each cluster's reason`,
  dry_run_refused: (id) => `aios get block ${id} shows why each cluster refused it`,
  allocation_refused: (id) => `aios get block ${id} shows why each cluster refused it`,
  block_exists: (id) => `aios delete ${id} first, or choose another blockId`,
};

/** The spec file as JSON; a missing or malformed file is the user's to fix (UsageError). */
const readSpec = async (path: string): Promise<unknown> => {
  let text: string;
  try {
    text = path === "-" ? await new Response(Bun.stdin.stream()).text() : await readFile(path, "utf8");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new UsageError(
      code === "ENOENT"
        ? `no such file: ${path} (for an example, see examples/sentiment/block.json)`
        : `cannot read ${path} (${code ?? err})`,
    );
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new UsageError(`${path} is not valid JSON (${err instanceof Error ? err.message : err})`);
  }
};

const specValues = (spec: unknown): Record<string, unknown> => {
  const values = (spec as { body?: { spec?: { values?: unknown } } } | null)?.body?.spec?.values;
  return typeof values === "object" && values !== null ? (values as Record<string, unknown>) : {};
};

/**
 * Follows a creation's steps while `creation` is pending, calling `onStep` for each new one. A record
 * left by an earlier attempt (failed or removed, with its own steps) is not this creation's: it is
 * skipped until the gateway has reset it to allocating, or it was created after `since`.
 */
export const followSteps = async (
  client: GatewayClient,
  blockId: string | undefined,
  creation: Promise<unknown>,
  onStep: (step: Step) => void,
  since: number,
): Promise<{ flush(record?: { id: string; status: string; steps?: Step[] }): Promise<void> }> => {
  let printed = 0;
  let ours = false;
  let done = false;
  const finish = () => {
    done = true;
  };
  const settled = creation.then(finish, finish);
  const accept = (b: { status: string; created_at?: string | null }) => {
    if (b.status === "allocating") ours = true;
    // Up to a second of clock difference between the gateway and here.
    return ours || (b.created_at != null && Date.parse(b.created_at) >= since - 1000);
  };
  const show = (steps: readonly Step[]) => {
    for (; printed < steps.length; printed++) onStep(steps[printed] as Step);
  };
  const poll = async (id = blockId) => {
    if (id === undefined) return;
    try {
      const b = await client.getBlock(id);
      if (accept(b)) show(b.steps);
    } catch {
      // Not recorded yet (404), or a passing failure: the next poll or the final answer tells.
    }
  };
  while (!done) {
    await Promise.race([Bun.sleep(POLL_MS), settled]);
    if (!done) await poll();
  }
  return {
    // The steps recorded between the last poll and the answer (all of them when the spec named no id).
    async flush(record) {
      if (record?.steps && accept(record)) return show(record.steps);
      await poll(record?.id);
    },
  };
};

export const applyVerb: Verb = {
  name: "apply",
  summary: "create a block from a specification, showing each allocation step",
  usage: `usage: aios apply <spec.json | -> [flags]

Sends the block specification (e.g. examples/sentiment/block.json; - reads it from stdin) to the
gateway, which places the block on a cluster, and prints each allocation step as it happens: the
clusters the filter admits, the dry run on each candidate (ok, refused or timeout), the cluster chosen
and the allocation. Ends when the block runs (exit 0) or the creation fails (exit 1, with the reason).
With --json, the steps go to stderr and the created block's JSON to stdout.

${CLIENT_FLAGS_USAGE}`,
  async run(argv) {
    const { values, positionals } = parseFlags(argv, CLIENT_FLAGS, true);
    if (values.help) return print(this.usage);
    const [path, ...extra] = positionals;
    if (path === undefined) throw new UsageError("give the block specification file (JSON)");
    if (extra.length > 0) throw new UsageError(`one specification at a time, got also: ${extra.join(" ")}`);
    const spec = await readSpec(path);
    const { blockId, blockComponentURI } = specValues(spec);
    const json = values.json === true;
    // With --json, stdout holds the answer alone.
    const say = json ? (line: string) => console.error(line) : (line: string) => console.log(line);
    const client = clientFrom(values);
    say(
      typeof blockId === "string"
        ? `creating block ${blockId}${typeof blockComponentURI === "string" ? ` (${blockComponentURI})` : ""} through ${client.baseUrl}`
        : `creating the block of ${path} through ${client.baseUrl}`,
    );
    const since = Date.now();
    const creation = client.createBlock(spec);
    // Without a block id in the spec (the gateway then names the block) the steps come at the end.
    const follower = await followSteps(
      client,
      typeof blockId === "string" ? blockId : undefined,
      creation,
      (s) => {
        for (const line of describeStep(s)) say(`  ${line}`);
      },
      since,
    );
    let record: Awaited<typeof creation>;
    try {
      record = await creation;
    } catch (err) {
      // An unreachable gateway recorded nothing; otherwise show the steps up to the failure.
      if (!(err instanceof ServiceClientError) || err.status === 0) throw err;
      await follower.flush();
      const next = NEXT_STEPS[err.code];
      throw next ? new Error(`${err.message}; ${next(typeof blockId === "string" ? blockId : "ID")}`) : err;
    }
    await follower.flush(record);
    const id = record.id;
    const block = await client.getBlock(id).catch(() => null);
    if (json) {
      console.log(JSON.stringify(block ?? record, null, 2));
      return 0;
    }
    const cluster = block?.cluster_id ?? record.cluster_id ?? "?";
    const count = block
      ? ` with ${block.instances.length} instance${block.instances.length === 1 ? "" : "s"}`
      : "";
    say(
      `block ${id} running on cluster ${cluster}${count}${block?.grpc_url ? ` (gRPC ${block.grpc_url})` : ""}`,
    );
    say(`try it: aios infer ${id} --data '{"text": "what a lovely day"}'`);
    return 0;
  },
};
