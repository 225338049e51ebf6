/**
 * The Dynamic Infrastructure Scanner (cluster-controller.md): keeps the health of the cluster's nodes
 * and heals what breaks.
 *
 * - Nodes: every interval the runtime probes what it can see (the local machine for the process
 *   runtime, whose declared nodes all run here and share its health); an operator can also mark a
 *   node unhealthy or healthy (`PUT /nodes_status/{id}`), as one cordons a node; the verdict is kept
 *   in the store (`node_overrides`), so a restarted controller does not put the node back. A node
 *   that turns unhealthy has its instances reassigned to healthy nodes with fresh placements.
 * - Instances: an instance whose process exits (the runtime's `instance_exited`) is replaced at once
 *   by a fresh one, unless the controller stopped it on purpose (it is gone from its block by then).
 * - Block services: when a running block's services exit on their own (`services_exited`, the process
 *   runtime's; Kubernetes restarts a Deployment's pod itself), they are started again with the block's
 *   instances, on new ports recorded in the block.
 *
 * What it healed, or failed to, is recorded in the store (`healing_log`), read by `GET /events`.
 */

import { errorMessage } from "../http/errors.ts";
import type { NodeStatus, RuntimeEvent } from "../runtime/types.ts";
import { timeOrderedId } from "../store/ids.ts";
import { ScopedCollection } from "../store/scoped.ts";
import { removeInstance, restartServices } from "./blocks.ts";
import { evacuateNode } from "./cluster.ts";
import type { ControllerContext } from "./context.ts";
import { declaredNodeIds } from "./placement.ts";

export interface NodeState {
  node_id: string;
  status: "healthy" | "unhealthy";
  reason: string | null;
  /** Who decided: the probe or an operator. */
  source: "probe" | "operator";
  cpu_utilization_percent: number | null;
  memory: NodeStatus["memory"];
  disk: NodeStatus["disk"];
  gpus: NodeStatus["gpus"];
  checked_at: string;
}

export interface HealingRecord {
  at: string;
  kind: "instance_replaced" | "node_evacuated" | "services_restarted" | "healing_failed";
  block_id?: string;
  instance_id?: string;
  node_id?: string;
  detail: unknown;
}

/** How long after an exit the block is read again, so an intended stop has left the block. */
const EXIT_SETTLE_MS = 300;
/** How many healing records `GET /events` shows (the newest). */
const HEALING_SHOWN = 100;

export class InfraScanner {
  readonly #ctx: ControllerContext;
  readonly intervalMs: number;
  readonly #states = new Map<string, NodeState>();
  readonly #overrides = new Map<string, boolean>();
  readonly #cordoned = new Set<string>();
  readonly #healing = new Set<string>();
  /** The operator's verdicts and the healing records, of this controller's cluster only. */
  readonly #overrideDocs: ScopedCollection;
  readonly #healingDocs: ScopedCollection;
  #overridesLoaded: Promise<void> | null = null;
  #timer: ReturnType<typeof setTimeout> | null = null;
  #scanning: Promise<NodeState[]> | null = null;
  #unwatch: (() => void) | null = null;

  readonly #publish: ((nodes: readonly NodeState[]) => Promise<void>) | null;

  constructor(
    ctx: ControllerContext,
    options: {
      intervalMs?: number;
      /** After each scan, hand the node states on (the controller publishes the cluster's metrics). */
      publish?: (nodes: readonly NodeState[]) => Promise<void>;
    } = {},
  ) {
    this.#ctx = ctx;
    this.#overrideDocs = new ScopedCollection(ctx.store.collection("node_overrides"), ctx.clusterId);
    this.#healingDocs = new ScopedCollection(ctx.store.collection("healing_log"), ctx.clusterId);
    this.intervalMs = options.intervalMs ?? 10_000;
    this.#publish = options.publish ?? null;
  }

  /** Node ids out of placement: unhealthy or cordoned. */
  unhealthy(): ReadonlySet<string> {
    const out = new Set(this.#cordoned);
    for (const s of this.#states.values()) if (s.status === "unhealthy") out.add(s.node_id);
    return out;
  }

  cordon(nodeId: string, cordoned: boolean): void {
    if (cordoned) this.#cordoned.add(nodeId);
    else this.#cordoned.delete(nodeId);
  }

  /** The newest healing records, oldest first. */
  async healingRecords(limit = HEALING_SHOWN): Promise<HealingRecord[]> {
    const docs = await this.#healingDocs.find({}, { sort: { id: -1 }, limit });
    return docs.reverse().map(({ id: _, scope: __, ...record }) => record as unknown as HealingRecord);
  }

  /** The last state of every node (scanning first when none was taken yet). */
  async nodesStatus(): Promise<NodeState[]> {
    if (this.#states.size === 0) await this.scan();
    return [...this.#states.values()];
  }

  async healthyNodes(): Promise<string[]> {
    return (await this.nodesStatus()).filter((s) => s.status === "healthy").map((s) => s.node_id);
  }

  /** An operator's verdict on a node (null: back to the probe's), stored, then applied by a scan. */
  async setNodeHealth(nodeId: string, healthy: boolean | null): Promise<NodeState[]> {
    await this.#loadOverrides();
    if (healthy === null) {
      await this.#overrideDocs.delete(nodeId);
      this.#overrides.delete(nodeId);
    } else {
      await this.#overrideDocs.upsert(nodeId, { id: nodeId, healthy, at: new Date().toISOString() });
      this.#overrides.set(nodeId, healthy);
    }
    return this.scan();
  }

  /** The verdicts an earlier controller of this cluster stored, read once (again after a failure). */
  #loadOverrides(): Promise<void> {
    this.#overridesLoaded ??= this.#overrideDocs.find({}).then(
      (docs) => {
        for (const d of docs) if (typeof d.healthy === "boolean") this.#overrides.set(d.id, d.healthy);
      },
      (err: unknown) => {
        this.#overridesLoaded = null;
        throw err;
      },
    );
    return this.#overridesLoaded;
  }

  /** One scan now (or the one in progress): node states, and evacuation of nodes turned unhealthy. */
  scan(): Promise<NodeState[]> {
    this.#scanning ??= this.#scan().finally(() => {
      this.#scanning = null;
    });
    return this.#scanning;
  }

  async #scan(): Promise<NodeState[]> {
    const ctx = this.#ctx;
    await this.#loadOverrides();
    const declared = declaredNodeIds(await ctx.cluster());
    const probed = await ctx.runtime.probeNodes();
    const local = probed[0];
    const ids = declared.length > 0 ? declared : probed.map((p) => p.nodeId);
    const now = new Date().toISOString();
    const turnedUnhealthy: string[] = [];
    const next = new Map<string, NodeState>();
    for (const id of ids) {
      // The process runtime probes this machine alone, which stands for every declared node; another
      // runtime reports each node, and one it does not know is unhealthy, not the first one's twin.
      const probe =
        probed.find((p) => p.nodeId === id) ?? (ctx.runtime.name === "process" ? local : undefined);
      const override = this.#overrides.get(id);
      const healthy = override ?? probe?.healthy ?? false;
      const reason = healthy
        ? null
        : override === false
          ? "marked unhealthy by an operator"
          : (probe?.reason ?? "no probe reached this node");
      const state: NodeState = {
        node_id: id,
        status: healthy ? "healthy" : "unhealthy",
        reason,
        source: override === undefined ? "probe" : "operator",
        cpu_utilization_percent: probe?.cpu_utilization_percent ?? null,
        memory: probe?.memory ?? null,
        disk: probe?.disk ?? null,
        gpus: probe?.gpus ?? [],
        checked_at: now,
      };
      const before = this.#states.get(id);
      if (!healthy && (before === undefined || before.status === "healthy")) turnedUnhealthy.push(id);
      next.set(id, state);
    }
    this.#states.clear();
    for (const [id, s] of next) this.#states.set(id, s);
    // Metrics are advisory: a registry that does not answer must not stop the healing below.
    await this.#publish?.([...next.values()]).catch((err: unknown) => {
      console.error("[controller] publishing the cluster metrics failed:", errorMessage(err));
    });
    // Exits the watch may have missed (a restart in between): every exited instance still in a block.
    for (const i of await ctx.runtime.listInstances()) {
      if (i.state === "exited" || i.state === "failed") {
        void this.#onEvent({
          type: "instance_exited",
          blockId: i.blockId,
          instanceId: i.instanceId,
          exitCode: i.exitCode ?? null,
        });
      }
    }
    for (const id of turnedUnhealthy) {
      try {
        const moved = await evacuateNode(ctx, id);
        if (moved.length > 0) await this.#record({ kind: "node_evacuated", node_id: id, detail: { moved } });
      } catch (err) {
        await this.#record({ kind: "healing_failed", node_id: id, detail: String(err) });
      }
    }
    return [...this.#states.values()];
  }

  /** Stores a record; a store that fails is logged and does not undo the healing it records. */
  async #record(r: Omit<HealingRecord, "at">): Promise<void> {
    const at = Date.now();
    const record: HealingRecord = { at: new Date(at).toISOString(), ...r };
    try {
      await this.#healingDocs.insert({ id: timeOrderedId(at), ...record });
    } catch (err) {
      console.error(`[scanner] could not record ${JSON.stringify(record)}: ${errorMessage(err)}`);
    }
  }

  /** Replaces an instance that exited on its own; starts again block services that did. */
  async #onEvent(event: RuntimeEvent): Promise<void> {
    if (event.type === "services_exited") return this.#onServicesExit(event.blockId, event.exitCode);
    if (event.type !== "instance_exited") return;
    const key = `${event.blockId}/${event.instanceId}`;
    if (this.#healing.has(key)) return;
    this.#healing.add(key);
    try {
      await Bun.sleep(EXIT_SETTLE_MS);
      const block = await this.#ctx.store.collection("blocks").get(event.blockId);
      const listed = (block?.instances as { instance_id: string }[] | undefined)?.some(
        (i) => i.instance_id === event.instanceId,
      );
      if (block?.status !== "running" || !listed) return;
      const result = await removeInstance(this.#ctx, event.blockId, event.instanceId, true);
      await this.#record({
        kind: "instance_replaced",
        block_id: event.blockId,
        instance_id: event.instanceId,
        detail: { exit_code: event.exitCode, replacement: result.replacement?.instance_id ?? null },
      });
    } catch (err) {
      await this.#record({
        kind: "healing_failed",
        block_id: event.blockId,
        instance_id: event.instanceId,
        detail: errorMessage(err),
      });
    } finally {
      this.#healing.delete(key);
    }
  }

  async #onServicesExit(blockId: string, exitCode: number | null): Promise<void> {
    const key = `${blockId}/services`;
    if (this.#healing.has(key)) return;
    this.#healing.add(key);
    try {
      // As for instances: a stop on purpose (remove_block) has marked the block by then.
      await Bun.sleep(EXIT_SETTLE_MS);
      const block = await restartServices(this.#ctx, blockId);
      if (block) {
        await this.#record({
          kind: "services_restarted",
          block_id: blockId,
          detail: { exit_code: exitCode, urls: block.services.urls },
        });
      }
    } catch (err) {
      await this.#record({ kind: "healing_failed", block_id: blockId, detail: errorMessage(err) });
    } finally {
      this.#healing.delete(key);
    }
  }

  start(): void {
    this.#unwatch = this.#ctx.runtime.watch((event) => {
      void this.#onEvent(event);
    });
    const loop = async () => {
      await this.scan().catch((err: unknown) => console.error("[scanner] scan failed:", err));
      if (this.#unwatch) this.#timer = setTimeout(loop, this.intervalMs);
    };
    this.#timer = setTimeout(loop, 0);
  }

  async stop(): Promise<void> {
    this.#unwatch?.();
    this.#unwatch = null;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    await this.#scanning?.catch(() => {});
  }
}
