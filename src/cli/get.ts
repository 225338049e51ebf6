/**
 * `aios get clusters|blocks|instances|policies [ID]`: what the gateway knows, as tables (or `--json`).
 * `aios get block ID` shows one block: its status, allocation steps and instances.
 */
import type { PolicySummary } from "../gateway/client.ts";
import type { BlockDetail, BlockView, ClusterView } from "../gateway/views.ts";
import { describeStep } from "./apply.ts";
import { parseFlags, stringFlag, UsageError, type Verb } from "./args.ts";
import {
  age,
  CLIENT_FLAGS,
  CLIENT_FLAGS_USAGE,
  cell,
  clientFrom,
  print,
  printJson,
  table,
} from "./output.ts";

export const clustersTable = (clusters: readonly ClusterView[]): string => {
  if (clusters.length === 0) return "no clusters registered";
  const rows = clusters.map((c) => {
    const healthy = c.nodes.filter((n) => n.healthy).length;
    const gpus = c.nodes.reduce((sum, n) => sum + n.gpus.length, 0);
    const controller = c.controller_url === null ? "none" : c.reachable ? "reachable" : "unreachable";
    return [c.id, cell(c.status), controller, `${healthy}/${c.nodes.length}`, `${gpus}`, `${c.block_count}`];
  });
  const notes = clusters
    .filter((c) => c.error)
    .map((c) => `cluster ${c.id}: ${c.error}`)
    .join("\n");
  const out = table(["CLUSTER", "STATUS", "CONTROLLER", "NODES", "GPUS", "BLOCKS"], rows);
  return notes ? `${out}\n\n${notes}` : out;
};

const instanceCount = (b: BlockView): string => {
  // A running block whose controller did not answer has unknown instances, not zero.
  const count = b.live ? `${b.instances.length}` : b.status === "running" ? "?" : "-";
  return b.min_instances !== null && b.max_instances !== null
    ? `${count} (${b.min_instances}-${b.max_instances})`
    : count;
};

export const blocksTable = (blocks: readonly BlockView[], now: number = Date.now()): string => {
  if (blocks.length === 0) return "no blocks (create one: aios apply examples/sentiment/block.json)";
  const rows = blocks.map((b) => [
    b.id,
    b.status,
    cell(b.cluster_id),
    instanceCount(b),
    cell(b.component),
    cell(b.grpc_url),
    age(b.created_at, now),
  ]);
  const notes = blocks
    .flatMap((b) => [
      ...(b.error ? [`block ${b.id}: ${b.error.message}`] : []),
      ...(b.live || b.status !== "running" ? [] : [`block ${b.id}: its controller did not answer`]),
    ])
    .join("\n");
  const out = table(["BLOCK", "STATUS", "CLUSTER", "INSTANCES", "COMPONENT", "GRPC", "AGE"], rows);
  return notes ? `${out}\n\n${notes}` : out;
};

export const instancesTable = (blocks: readonly BlockView[], now: number = Date.now()): string => {
  const rows = blocks.flatMap((b) =>
    b.instances.map((i) => [
      b.id,
      i.id,
      i.node_id,
      i.gpus.length > 0 ? i.gpus.join(",") : "-",
      cell(i.url),
      age(i.started_at, now),
    ]),
  );
  if (rows.length === 0) return "no instances running";
  return table(["BLOCK", "INSTANCE", "NODE", "GPUS", "URL", "STARTED"], rows);
};

export const policiesTable = (policies: readonly PolicySummary[]): string => {
  if (policies.length === 0) return "no policies stored (upload one: aios policy upload --help)";
  const rows = policies.map((p) => [p.uri, p.kind, `${p.size}`, p.exports.join(","), p.description]);
  return table(["URI", "KIND", "BYTES", "EXPORTS", "DESCRIPTION"], rows);
};

/** One block in full: what `aios get block ID` prints. */
export const blockDetail = (b: BlockDetail, now: number = Date.now()): string => {
  const lines = [
    `block:      ${b.id}`,
    `status:     ${b.status}${b.error ? ` (${b.error.code}: ${b.error.message})` : ""}`,
    `cluster:    ${cell(b.cluster_id)}`,
    `component:  ${cell(b.component)}`,
    `instances:  ${instanceCount(b)}`,
    `grpc:       ${cell(b.grpc_url)}`,
    `created:    ${cell(b.created_at)}${b.created_at ? ` (${age(b.created_at, now)} ago)` : ""}`,
  ];
  if (b.steps.length > 0) {
    lines.push("", "allocation:");
    for (const s of b.steps) for (const line of describeStep(s)) lines.push(`  ${line}`);
  }
  if (b.instances.length > 0) lines.push("", instancesTable([b], now));
  return lines.join("\n");
};

const RESOURCES = ["clusters", "blocks", "instances", "policies"] as const;
type Resource = (typeof RESOURCES)[number];

/** Singular and plural both work, as with kubectl. */
const resourceOf = (word: string): Resource | undefined =>
  RESOURCES.find((r) => r === word || r === `${word}s` || (r === "policies" && word === "policy"));

export const getVerb: Verb = {
  name: "get",
  summary: "list clusters, blocks, instances or policies (through the gateway)",
  usage: `usage: aios get <clusters|blocks|instances|policies> [flags]
       aios get block <id> [flags]

Lists what the gateway knows as a table, or one block with its allocation steps and instances.

  --kind K           policies of one kind only (aios get policies)
${CLIENT_FLAGS_USAGE}`,
  async run(argv) {
    const { values, positionals } = parseFlags(argv, { ...CLIENT_FLAGS, kind: { type: "string" } }, true);
    if (values.help) return print(this.usage);
    const [what, id, ...extra] = positionals;
    if (what === undefined) throw new UsageError(`say what to get: ${RESOURCES.join(", ")}`);
    const resource = resourceOf(what);
    if (resource === undefined)
      throw new UsageError(`cannot get '${what}': choose one of ${RESOURCES.join(", ")}`);
    if (extra.length > 0) throw new UsageError(`unexpected arguments: ${extra.join(" ")}`);
    if (id !== undefined && resource !== "blocks")
      throw new UsageError(`only a block can be shown by id (aios get block ${id})`);
    if (values.kind !== undefined && resource !== "policies")
      throw new UsageError("--kind applies to aios get policies only");
    const client = clientFrom(values);
    const json = values.json === true;
    switch (resource) {
      case "clusters": {
        const clusters = await client.listClusters();
        return json ? printJson(clusters) : print(clustersTable(clusters));
      }
      case "blocks": {
        if (id !== undefined) {
          const block = await client.getBlock(id);
          return json ? printJson(block) : print(blockDetail(block));
        }
        const blocks = await client.listBlocks();
        return json ? printJson(blocks) : print(blocksTable(blocks));
      }
      case "instances": {
        const blocks = await client.listBlocks();
        if (json) return printJson(blocks.flatMap((b) => b.instances.map((i) => ({ block_id: b.id, ...i }))));
        return print(instancesTable(blocks));
      }
      case "policies": {
        const policies = await client.listPolicies(stringFlag(values.kind));
        return json ? printJson(policies) : print(policiesTable(policies));
      }
    }
  },
};
