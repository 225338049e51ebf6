/**
 * The block events processor (cluster-controller.md, "Block events processor"): instances push named
 * events (src/instance/events.ts) to the stream `aios:block-events`, directly with Redis or through
 * `POST /events` (`acceptEvent`); the processor takes them one at a time and runs the policy the block
 * registered for the event's name in `blockInitData.events` (a URI, or a `{policyRuleURI, parameters?,
 * settings?}` rule), with `{"block_id", "event_name", "event_data"}` as input.
 *
 * Delivery: an event is acknowledged only once its policy ran. A failure that retrying cannot fix (an
 * invalid event, an unknown block, an unregistered event name, a policy that traps, refuses its input or
 * answers badly, a missing policy) is recorded in `event_failures` and acknowledged, so it never holds up
 * the events behind it. A transient failure (the registry or the store unreachable) throws, so the queue
 * delivers the event again, and dead-letters it after `maxDeliveries` (the last attempt is also recorded
 * in `event_failures` when the store allows).
 *
 * Actions a policy returns are carried out through the controller's own actions, with their pre-checks
 * (policies decide, the host acts): `replace_instance` and `remove_instance` become `remove_instance`
 * (with `replace`), on the event's own block only. Their outcomes are kept with the event in `recent()`;
 * a failed action does not make the event fail (running the policy again would repeat the others).
 */
import { hostname } from "node:os";
import { ServiceClientError } from "../http/client.ts";
import { ApiError, errorMessage, parseWith } from "../http/errors.ts";
import { PolicyError } from "../policy/errors.ts";
import type { PolicyRef } from "../policy/set.ts";
import {
  type BlockEvent,
  BlockEventSchema,
  blockEventsStream,
  CONSUME_DEFAULTS,
  type ConsumeOptions,
  type Consumer,
  type QueueMessage,
} from "../queue/index.ts";
import { QueryError, StoreError } from "../store/index.ts";
import { executeAction } from "./actions.ts";
import type { ControllerContext } from "./context.ts";
import { PolicyRefSchema, pathValue } from "./prechecks.ts";

export const EVENTS_GROUP = "controller-events";

/**
 * `POST /events`: validates a BlockEvent (a 400 naming the field at fault) and queues it; resolves to
 * the stream entry's id once queued. The route answers 202 `{"id"}`.
 */
export const acceptEvent = async (
  ctx: ControllerContext,
  body: unknown,
  options: { stream?: string } = {},
): Promise<{ id: string }> => {
  const event = parseWith(BlockEventSchema, body);
  const id = await ctx.queue.publish(options.stream ?? blockEventsStream(ctx.clusterId), event);
  return { id };
};

export const eventRuleId = (blockId: string, eventName: string): string => `event:${blockId}:${eventName}`;

export type EventOutcome = "handled" | "failed" | "retrying" | "dead_lettered";

/** One processed delivery, as `recent()` lists it. */
export interface ProcessedEvent {
  /** The stream entry's id. */
  id: string;
  block_id: string | null;
  event_name: string | null;
  /**
   * handled: the policy ran; failed: recorded in event_failures and acknowledged; retrying: left for
   * redelivery; dead_lettered: the last delivery failed too, moved to `<stream>:dead`.
   */
  outcome: EventOutcome;
  delivery: number;
  at: string;
  policy?: string;
  /** The policy's output (handled). */
  output?: Record<string, unknown>;
  /** Actions the policy asked for. */
  actions?: unknown[];
  /** What became of each action. */
  action_results?: ActionOutcome[];
  error?: string;
}

export interface ActionOutcome {
  action: string;
  instance_id: string | null;
  outcome: "done" | "failed" | "refused";
  error?: string;
}

/** The event policy actions the controller carries out, as its own `/executeAction` actions. */
export const EVENT_ACTIONS = ["replace_instance", "remove_instance"] as const;

/** Carries out one action an event policy asked for, on the event's block; never throws. */
export const carryOutEventAction = async (
  ctx: ControllerContext,
  blockId: string,
  requested: unknown,
): Promise<ActionOutcome> => {
  const a = (requested ?? {}) as {
    action?: unknown;
    block_id?: unknown;
    instance_id?: unknown;
    reason?: unknown;
  };
  const action = typeof a.action === "string" ? a.action : "";
  const instanceId = typeof a.instance_id === "string" ? a.instance_id : null;
  const refused = (error: string): ActionOutcome => ({
    action,
    instance_id: instanceId,
    outcome: "refused",
    error,
  });
  if (!(EVENT_ACTIONS as readonly string[]).includes(action)) {
    return refused(`unknown action '${action}' (known: ${EVENT_ACTIONS.join(", ")})`);
  }
  if (a.block_id !== undefined && a.block_id !== blockId) {
    return refused(`an event of block ${blockId} cannot act on block ${String(a.block_id)}`);
  }
  if (instanceId === null) return refused("instance_id is required");
  try {
    await executeAction(ctx, {
      action: "remove_instance",
      data: {
        block_id: blockId,
        instance_id: instanceId,
        replace: action === "replace_instance",
        reason: typeof a.reason === "string" ? a.reason : "asked by the block's event policy",
      },
    });
    return { action, instance_id: instanceId, outcome: "done" };
  } catch (err) {
    return { action, instance_id: instanceId, outcome: "failed", error: errorMessage(err) };
  }
};

/** What `event_failures` documents hold. */
export interface EventFailureDoc {
  id: string;
  stream: string;
  message_id: string;
  block_id: string | null;
  instance_id: string | null;
  event_name: string | null;
  event_data: unknown;
  policy: string | null;
  error: string;
  /** A stable code: invalid_event, unknown_block, unregistered_event, invalid_registration, policy_failed, unavailable. */
  code: string;
  at: string;
  delivery: number;
  [key: string]: unknown;
}

export interface EventsProcessorOptions {
  /** This processor's consumer name in the group (default: controller-<cluster>-<host>-<pid>). */
  consumer?: string;
  /** The stream consumed (default the cluster's, `aios:block-events:<cluster>`; tests use their own). */
  stream?: string;
  /** Processed events kept for `recent()` (default 100). */
  recentLimit?: number;
  /** Queue timings (claim, dead letters); the defaults suit production. */
  consume?: ConsumeOptions;
}

/** A failure worth retrying: something the controller depends on is down, not the event or its policy. */
export const isTransient = (err: unknown): boolean => {
  if (err instanceof PolicyError) return false;
  if (err instanceof QueryError || err instanceof StoreError) return false;
  if (err instanceof ServiceClientError) {
    return err.status === 0 || err.status === 408 || err.status === 429 || err.status >= 500;
  }
  if (err instanceof ApiError) return err.status >= 500;
  // Anything else (a refused connection to the database, a fetch that failed) is assumed transient: the
  // queue retries it a few times, then dead-letters it, so nothing is retried forever.
  return true;
};

/** A failure that is not retried: recorded and acknowledged. */
class EventFailure extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly policy: string | null = null,
  ) {
    super(message);
  }
}

const stringField = (message: Record<string, unknown>, key: string): string | null => {
  const v = message[key];
  return typeof v === "string" ? v : null;
};

export class EventsProcessor {
  readonly stream: string;
  readonly consumerName: string;
  readonly #ctx: ControllerContext;
  readonly #recentLimit: number;
  readonly #consumeOptions: ConsumeOptions;
  #consumer: Consumer | null = null;
  readonly #recent: ProcessedEvent[] = [];

  constructor(ctx: ControllerContext, options: EventsProcessorOptions = {}) {
    this.#ctx = ctx;
    this.stream = options.stream ?? blockEventsStream(ctx.clusterId);
    this.consumerName = options.consumer ?? `controller-${ctx.clusterId}-${hostname()}-${process.pid}`;
    this.#recentLimit = Math.max(1, options.recentLimit ?? 100);
    this.#consumeOptions = options.consume ?? {};
  }

  get running(): boolean {
    return this.#consumer !== null;
  }

  /** Starts consuming (no-op when running). Events queued while no processor ran are processed now. */
  start(): void {
    if (this.#consumer) return;
    this.#consumer = this.#ctx.queue.consume(
      this.stream,
      EVENTS_GROUP,
      this.consumerName,
      (msg) => this.handle(msg),
      this.#consumeOptions,
    );
  }

  /** Stops consuming, waiting for the event in progress; events not yet handled stay queued. */
  async stop(): Promise<void> {
    const consumer = this.#consumer;
    this.#consumer = null;
    await consumer?.stop();
  }

  /** The last processed deliveries, newest first, with their outcome. */
  recent(): ProcessedEvent[] {
    return [...this.#recent];
  }

  /**
   * Handles one delivery (the queue's handler; exported for tests and for hosts with another source).
   * Resolves when the event is done with (handled or recorded as failed); rejects to have it redelivered.
   */
  async handle(msg: QueueMessage): Promise<void> {
    const at = new Date().toISOString();
    const base = {
      id: msg.id,
      block_id: stringField(msg.message, "block_id"),
      event_name: stringField(msg.message, "event_name"),
      delivery: msg.deliveries,
      at,
    };
    try {
      const { policy, output } = await this.#run(msg);
      const actions = Array.isArray(output.actions) ? output.actions : [];
      const action_results: ActionOutcome[] = [];
      for (const a of actions)
        action_results.push(await carryOutEventAction(this.#ctx, base.block_id ?? "", a));
      this.#remember({ ...base, outcome: "handled", policy, output, actions, action_results });
    } catch (err) {
      if (err instanceof EventFailure) {
        try {
          await this.#recordFailure(msg, err.code, err.message, err.policy, at);
        } catch (storeErr) {
          // Not recorded: not acknowledged either, so the failure is not lost.
          this.#remember({
            ...base,
            outcome: "retrying",
            error: `${err.message}; recording it failed: ${errorMessage(storeErr)}`,
          });
          throw storeErr;
        }
        this.#remember({ ...base, outcome: "failed", error: err.message, ...policyOf(err.policy) });
        return;
      }
      const maxDeliveries = this.#consumeOptions.maxDeliveries ?? CONSUME_DEFAULTS.maxDeliveries;
      const last = msg.deliveries >= maxDeliveries;
      if (last) {
        // The queue dead-letters it after this throw; leave the operator a trace where they look first.
        await this.#recordFailure(msg, "unavailable", errorMessage(err), null, at).catch(() => {});
      }
      this.#remember({ ...base, outcome: last ? "dead_lettered" : "retrying", error: errorMessage(err) });
      throw err;
    }
  }

  async #run(msg: QueueMessage): Promise<{ policy: string; output: Record<string, unknown> }> {
    const parsed = BlockEventSchema.safeParse(msg.message);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new EventFailure(
        "invalid_event",
        `invalid event: ${issue?.path.join(".") || "body"}: ${issue?.message}`,
      );
    }
    const event = parsed.data;
    const ref = await this.#policyFor(event);
    try {
      const instance = await this.#ctx.policies.get(
        eventRuleId(event.block_id, event.event_name),
        ref,
        "eventHandler",
      );
      const output = await instance.eval(
        { block_id: event.block_id, event_name: event.event_name, event_data: event.event_data },
        {
          context: {
            cluster_id: this.#ctx.clusterId,
            instance_id: event.instance_id,
            delivery: msg.deliveries,
          },
        },
      );
      return { policy: ref.policyRuleURI, output };
    } catch (err) {
      if (isTransient(err)) throw err;
      throw new EventFailure("policy_failed", errorMessage(err), ref.policyRuleURI);
    }
  }

  /** The policy rule the block registered for the event (store errors propagate: they are transient). */
  async #policyFor(event: BlockEvent): Promise<PolicyRef> {
    const block = await this.#ctx.store.collection("blocks").get(event.block_id);
    if (block === null) throw new EventFailure("unknown_block", `unknown block '${event.block_id}'`);
    const events = pathValue(block, ["blockInitData", "events"]);
    const registered =
      typeof events === "object" && events !== null ? (events as Record<string, unknown>) : {};
    const entry = Object.hasOwn(registered, event.event_name) ? registered[event.event_name] : undefined;
    if (entry === undefined || entry === null) {
      const names = Object.keys(registered);
      throw new EventFailure(
        "unregistered_event",
        `block '${event.block_id}' registers no policy for event '${event.event_name}' in blockInitData.events (registered: ${names.length > 0 ? names.join(", ") : "none"})`,
      );
    }
    if (typeof entry === "string" && entry !== "") return { policyRuleURI: entry };
    const rule = PolicyRefSchema.safeParse(entry);
    if (rule.success) return rule.data;
    throw new EventFailure(
      "invalid_registration",
      `block '${event.block_id}': blockInitData.events.${event.event_name} must be a policy URI or {policyRuleURI, parameters?, settings?}`,
    );
  }

  /** Idempotent per message (upsert by stream and id), since a message may be delivered twice. */
  async #recordFailure(
    msg: QueueMessage,
    code: string,
    error: string,
    policy: string | null,
    at: string,
  ): Promise<void> {
    const doc: EventFailureDoc = {
      id: `${this.stream}/${msg.id}`,
      stream: this.stream,
      message_id: msg.id,
      block_id: stringField(msg.message, "block_id"),
      instance_id: stringField(msg.message, "instance_id"),
      event_name: stringField(msg.message, "event_name"),
      event_data: msg.message.event_data ?? null,
      policy,
      error,
      code,
      at,
      delivery: msg.deliveries,
    };
    await this.#ctx.store.collection("event_failures").upsert(doc.id, doc);
  }

  #remember(entry: ProcessedEvent): void {
    this.#recent.unshift(entry);
    if (this.#recent.length > this.#recentLimit) this.#recent.length = this.#recentLimit;
  }
}

const policyOf = (policy: string | null): { policy?: string } => (policy === null ? {} : { policy });
