/**
 * What the auto-scaler and the health checker share: a block, its policy, the instance list the
 * mapper pushes, and a run on an interval (never two at once) whose last records `/mgmt` shows.
 */
import type { PolicyInstance } from "../policy/runtime.ts";
import type { BlockConfig } from "./config.ts";
import type { InstanceRef } from "./mapper.ts";
import { Periodic } from "./periodic.ts";

export type SidecarPolicy = Pick<PolicyInstance, "uri" | "eval" | "management">;

export abstract class Sidecar<R> {
  readonly blockId: string;
  protected block: BlockConfig;
  protected instances: readonly InstanceRef[] = [];
  readonly #policy: SidecarPolicy | null;
  readonly #periodic: Periodic<R>;

  constructor(block: BlockConfig, policy: SidecarPolicy | null, intervalMs: number) {
    this.blockId = block.blockId;
    this.block = block;
    this.#policy = policy;
    this.#periodic = new Periodic(intervalMs, () => this.run());
  }

  /** One run: probe, ask the policy, act; always a record, never a throw. */
  protected abstract run(): Promise<R>;

  get policy(): SidecarPolicy | null {
    return this.#policy;
  }

  get intervalMs(): number {
    return this.#periodic.intervalMs;
  }

  get history(): readonly R[] {
    return this.#periodic.history;
  }

  get running(): boolean {
    return this.#periodic.running;
  }

  setInstances(list: readonly InstanceRef[]): void {
    this.instances = list;
  }

  /** New bounds or policy settings after a block update. */
  setBlock(block: BlockConfig): void {
    this.block = block;
  }

  /** One run now (or the one in progress). */
  runNow(): Promise<R> {
    return this.#periodic.runNow();
  }

  start(): void {
    this.#periodic.start();
  }

  stop(): Promise<void> {
    return this.#periodic.stop();
  }
}
