/**
 * The console API's shapes: what the gateway answers to people's tools (the `aios` client verbs and the
 * dashboard) about clusters, blocks, their metrics, logs and events. Each view gathers what the registry,
 * the creation records and the clusters' controllers know, so a client talks to the gateway alone.
 * The schemas also feed the OpenAPI document.
 */
import { z } from "zod";

export const NodeViewSchema = z.object({
  id: z.string(),
  healthy: z.boolean(),
  reason: z.string().nullable(),
  cpu_utilization_percent: z.number().nullable(),
  memory: z.object({ total: z.number(), allocatable: z.number(), usage_percent: z.number() }).nullable(),
  gpus: z.array(
    z.object({
      id: z.string(),
      memory_total: z.number().nullable(),
      memory_used: z.number().nullable(),
      utilization: z.number().nullable(),
    }),
  ),
});

export const ClusterViewSchema = z.object({
  id: z.string(),
  status: z.string().nullable(),
  /** The controller's base URL from the cluster's urlMap; null when it names none. */
  controller_url: z.string().nullable(),
  /** Whether the controller answered just now. */
  reachable: z.boolean(),
  /** Why it did not, when it did not. */
  error: z.string().nullable(),
  nodes: z.array(NodeViewSchema),
  block_count: z.number().int(),
});

export const InstanceViewSchema = z.object({
  id: z.string(),
  node_id: z.string(),
  gpus: z.array(z.string()),
  url: z.string().nullable(),
  started_at: z.string().nullable(),
});

export const BlockStatusSchema = z.enum([
  "allocating",
  "running",
  "failed",
  "removed",
  "creating",
  "removing",
]);

export const BlockViewSchema = z.object({
  id: z.string(),
  cluster_id: z.string().nullable(),
  /** The creation's status, or the controller's for a block created at the cluster directly. */
  status: BlockStatusSchema,
  /** blockComponentURI. */
  component: z.string().nullable(),
  created_at: z.string().nullable(),
  updated_at: z.string().nullable(),
  error: z.object({ code: z.string(), message: z.string() }).nullable(),
  instances: z.array(InstanceViewSchema),
  min_instances: z.number().int().nullable(),
  max_instances: z.number().int().nullable(),
  /** The block's gRPC inference address (`InferenceProxy/infer`), as `http://host:port`. */
  grpc_url: z.string().nullable(),
  /** False when the block's controller did not answer: instances are then unknown (empty). */
  live: z.boolean(),
});

export const AllocationStepSchema = z.object({
  step: z.enum(["filter", "selection", "dry_run", "post_dry_run", "allocation"]),
  ok: z.boolean(),
  detail: z.unknown(),
  at: z.string(),
});

/** `GET /api/blocks/{id}`: the view plus the creation's allocation steps (empty if not created here). */
export const BlockDetailSchema = BlockViewSchema.extend({ steps: z.array(AllocationStepSchema) });

export const CreationViewSchema = z.object({
  id: z.string(),
  status: BlockStatusSchema,
  cluster_id: z.string().nullable(),
  component: z.string().nullable(),
  created_at: z.string().nullable(),
  error: z.object({ code: z.string(), message: z.string() }).nullable(),
  steps: z.array(AllocationStepSchema),
});

export const BlockMetricsViewSchema = z.object({
  block_id: z.string(),
  /** When read, ms since the epoch. Requests/s is the difference of two reads' requests_total. */
  at: z.number(),
  requests_total: z.number(),
  errors_total: z.number(),
  in_flight: z.number(),
  latency_ms: z.object({ p50: z.number().nullable(), p99: z.number().nullable() }),
  instances: z.number().int(),
});

export const ScaleRequestSchema = z
  .object({
    /** The instance count wanted, within the block's min and max. */
    instances: z.number().int().min(0).optional(),
    /** Or a change: +n adds n instances, -n removes n. */
    delta: z.number().int().optional(),
  })
  .refine((b) => (b.instances === undefined) !== (b.delta === undefined), {
    message: "give exactly one of instances or delta",
  });

export const BlockLogsSchema = z.object({
  block_id: z.string(),
  /** The instance whose output this is, or null for the block's services (executor and sidecars). */
  instance_id: z.string().nullable(),
  lines: z.array(z.string()),
});

export const BlockEventViewSchema = z.object({
  id: z.string(),
  event_name: z.string().nullable(),
  outcome: z.string(),
  at: z.string(),
  policy: z.string().optional(),
  actions: z.array(z.unknown()).optional(),
  action_results: z.array(z.unknown()).optional(),
  error: z.string().optional(),
});

export type NodeView = z.infer<typeof NodeViewSchema>;
export type ClusterView = z.infer<typeof ClusterViewSchema>;
export type InstanceView = z.infer<typeof InstanceViewSchema>;
export type BlockView = z.infer<typeof BlockViewSchema>;
export type BlockDetail = z.infer<typeof BlockDetailSchema>;
export type CreationView = z.infer<typeof CreationViewSchema>;
export type BlockMetricsView = z.infer<typeof BlockMetricsViewSchema>;
export type ScaleRequest = z.infer<typeof ScaleRequestSchema>;
export type BlockLogs = z.infer<typeof BlockLogsSchema>;
export type BlockEventView = z.infer<typeof BlockEventViewSchema>;
