/**
 * The cluster controller's routes as an OpenAPI 3.1 document (served at `GET /openapi.json`), with
 * the schemas that validate the requests (actions.ts, vdag.ts, cluster.ts, mgmt.ts, app.ts). Answers
 * without a zod schema in the code (the block document, the scanner's and the stability checker's
 * views, the events' records) are described here from their TypeScript types.
 *
 * `/block/{id}/...` is one proxy route in the app; the document lists what it reaches: the block's
 * own routes (src/block/openapi.ts) under their prefixes.
 *
 * The tables are functions: app.ts imports this module and this module reads schemas from app.ts.
 */
import { z } from "zod";
import {
  executorMetricsRouteTable,
  inferenceRouteTable,
  mgmtBuiltins,
  mgmtRouteTable,
} from "../block/openapi.ts";
import {
  buildOpenApi,
  lazyDocument,
  type OpenApiDocument,
  openApiJsonRoute,
  type RouteSpec,
} from "../http/openapi.ts";
import { BlockEventSchema } from "../queue/index.ts";
import { whoamiRoute } from "../registry/openapi.ts";
import { ClusterSchema, UpdateSchema } from "../registry/schemas.ts";
import {
  BlockRef,
  InitStatus,
  ParameterUpdate,
  ReassignInstances,
  RemoveInstance,
  Scale,
} from "./actions.ts";
import { NodeHealth, QueryBody } from "./app.ts";
import { NewBlockSchema } from "./blocks.ts";
import { NewNode } from "./cluster.ts";
import { LogsQuerySchema } from "./logs.ts";
import { MgmtCommand } from "./mgmt.ts";
import { CreateVdagController, ScaleVdagController, VdagControllerRef } from "./vdag.ts";

const JsonObject = z.record(z.string(), z.unknown());

/** `BlockInstance` (blocks.ts). */
export const BlockInstanceSchema = z.object({
  instance_id: z.string(),
  node_id: z.string(),
  gpus: z.array(z.string()),
  url: z.string(),
  started_at: z.string(),
});

/** A stored block (`BlockDoc`, blocks.ts): what `create_block` was given plus what the controller records. */
export const BlockDocumentSchema = z.looseObject({
  id: z.string(),
  minInstances: z.int(),
  maxInstances: z.int(),
  status: z.enum(["creating", "running", "removing"]),
  cluster_id: z.string(),
  instances: z.array(BlockInstanceSchema),
  services: z.object({ urls: z.record(z.string(), z.string()) }),
  runtime: z.looseObject({
    command: z.array(z.string()).optional(),
    image: z.string().optional(),
    env: z.record(z.string(), z.string()).optional(),
    cwd: z.string().optional(),
  }),
  parameters: JsonObject.optional(),
  blockInitData: JsonObject.optional(),
  initSettings: JsonObject.optional(),
  created_at: z.string().optional(),
});

/** `dry_run` scores a block: `{"block": {...}}` or the block itself. */
const DryRunData = z.union([z.looseObject({ block: JsonObject }), JsonObject]);

const InitContainer = z.object({
  status: z.string(),
  data: z.unknown(),
  instance_id: z.string().nullable(),
  at: z.string(),
});

const Removal = z.object({ removed: z.string(), replacement: BlockInstanceSchema.nullable() });

/** `POST /executeAction`: one member per action of `ACTIONS` (actions.ts), with its input. */
export const ExecuteActionSchema = z.discriminatedUnion("action", [
  z.object({ action: z.literal("create_block"), data: NewBlockSchema }),
  z.object({ action: z.literal("remove_block"), data: BlockRef }),
  z.object({ action: z.literal("scale"), data: Scale }),
  z.object({ action: z.literal("remove_instance"), data: RemoveInstance }),
  z.object({ action: z.literal("reassign_instances"), data: ReassignInstances }),
  z.object({ action: z.literal("parameter_update"), data: ParameterUpdate }),
  z.object({ action: z.literal("dry_run"), data: DryRunData }),
  z.object({ action: z.literal("init_create_status_update"), data: InitStatus }),
  z.object({ action: z.literal("query_init_container_data"), data: BlockRef }),
]);

/** What each action answers, in the order of `ExecuteActionSchema`. */
export const ActionResultSchema = z.union([
  BlockDocumentSchema,
  z.object({ removed: z.string() }),
  z.object({ block_id: z.string(), operation: z.literal("upscale"), added: z.array(BlockInstanceSchema) }),
  z.object({ block_id: z.string(), operation: z.literal("downscale"), removed: z.array(z.string()) }),
  Removal,
  z.object({ block_id: z.string(), reassigned: z.array(Removal) }),
  z.object({ block_id: z.string(), parameters: JsonObject, instances: JsonObject }),
  z.object({ cluster_id: z.string(), selection_score_data: z.unknown() }),
  z.object({ block_id: z.string(), init_container: InitContainer.nullable() }),
]);

/** A vDAG controller's document (vdag.ts): its creation payload plus where it runs. */
export const VdagControllerSchema = CreateVdagController.extend({
  id: z.string(),
  cluster_id: z.string(),
  public_url: z.string().nullable(),
  urls: z.array(z.string()),
  created_at: z.string(),
});

export const VdagActionSchema = z.discriminatedUnion("action", [
  z.object({ action: z.literal("create_controller"), payload: CreateVdagController }),
  z.object({ action: z.literal("scale_controller"), payload: ScaleVdagController }),
  z.object({ action: z.literal("remove_controller"), payload: VdagControllerRef }),
  z.object({ action: z.literal("list_controllers"), payload: z.unknown().optional() }),
]);

const Usage = z.object({ total: z.number(), allocatable: z.number(), usage_percent: z.number() }).nullable();

/** `NodeState` (scanner.ts). */
export const NodeStateSchema = z.object({
  node_id: z.string(),
  status: z.enum(["healthy", "unhealthy"]),
  reason: z.string().nullable(),
  source: z.enum(["probe", "operator"]),
  cpu_utilization_percent: z.number().nullable(),
  memory: Usage,
  disk: Usage,
  gpus: z.array(
    z.object({
      id: z.string(),
      memory_total: z.number().nullable(),
      memory_used: z.number().nullable(),
      utilization: z.number().nullable(),
    }),
  ),
  checked_at: z.string(),
});

/** `StabilityResult` (stability.ts). */
export const StabilityResultSchema = z.object({
  is_stable: z.boolean(),
  stability_check_data: JsonObject,
  checked_at: z.string(),
  nodes: z.array(
    z.object({
      node_id: z.string(),
      status: z.enum(["healthy", "unhealthy"]),
      cpu_utilization_percent: z.number().nullable(),
      memory: Usage,
      disk: Usage,
      reason: z.string().optional(),
    }),
  ),
  policy: z.string().nullable().describe("the policy that judged; null for the built-in rule"),
});

/** `ProcessedEvent` (events.ts). */
const ProcessedEventSchema = z.object({
  id: z.string(),
  block_id: z.string().nullable(),
  event_name: z.string().nullable(),
  outcome: z.enum(["handled", "failed", "retrying", "dead_lettered"]),
  delivery: z.int(),
  at: z.string(),
  policy: z.string().optional(),
  output: JsonObject.optional(),
  actions: z.array(z.unknown()).optional(),
  action_results: z
    .array(
      z.object({
        action: z.string(),
        instance_id: z.string().nullable(),
        outcome: z.enum(["done", "failed", "refused"]),
        error: z.string().optional(),
      }),
    )
    .optional(),
  error: z.string().optional(),
});

/** `EventFailureDoc` (events.ts). */
const EventFailureSchema = z.looseObject({
  id: z.string(),
  stream: z.string(),
  message_id: z.string(),
  block_id: z.string().nullable(),
  instance_id: z.string().nullable(),
  event_name: z.string().nullable(),
  event_data: z.unknown(),
  policy: z.string().nullable(),
  error: z.string(),
  code: z.string(),
  at: z.string(),
  delivery: z.int(),
});

/** `HealingRecord` (scanner.ts). */
const HealingRecordSchema = z.object({
  at: z.string(),
  kind: z.enum(["instance_replaced", "node_evacuated", "services_restarted", "healing_failed"]),
  block_id: z.string().optional(),
  instance_id: z.string().optional(),
  node_id: z.string().optional(),
  detail: z.unknown(),
});

const NodesSchema = z.object({ nodes: z.array(NodeStateSchema) });

const precheckRefused = { description: "the pre-check policy refused it (its reason in the message)" };

/** The block's services as the public gateway reaches them: `/block/{id}/<service>/...`. */
const blockProxyRoutes = (): RouteSpec[] => {
  const under = (prefix: string, routes: RouteSpec[]): RouteSpec[] =>
    routes.map((r) => ({
      ...r,
      path: `/block/{id}${prefix}${r.path}`,
      summary: `${r.summary} (the block's, proxied)`,
      tags: ["block gateway"],
      responses: { ...r.responses, 404: { description: "no such block, or the service is not running" } },
    }));
  return [
    ...under("/rpc", inferenceRouteTable()),
    ...under("", executorMetricsRouteTable()),
    ...under("/executor", mgmtRouteTable("executor", mgmtBuiltins("executor"))),
    ...under("/autoscaler", mgmtRouteTable("auto-scaler", mgmtBuiltins("sidecar"))),
    ...under("/health-checker", mgmtRouteTable("health checker", mgmtBuiltins("sidecar"))),
  ];
};

/** Every route of `createControllerApp`. */
export const controllerRouteTable = (): RouteSpec[] => {
  const blockId = z.object({ id: z.string().min(1) });
  return [
    {
      method: "GET",
      path: "/health",
      summary: "Liveness, and which cluster this controller runs",
      tags: ["health"],
      responses: {
        200: { description: "up", schema: z.object({ status: z.literal("ok"), cluster_id: z.string() }) },
      },
    },
    openApiJsonRoute(["health"]),
    whoamiRoute(),
    {
      method: "POST",
      path: "/executeAction",
      summary: "Run a block action",
      description:
        "The action's pre-check policy (if the cluster names one) may refuse it or rewrite its data.",
      tags: ["blocks"],
      body: ExecuteActionSchema,
      responses: {
        200: { description: "the action's result", schema: ActionResultSchema },
        400: { description: "unknown action or invalid data (the message names the field)" },
        403: precheckRefused,
        404: { description: "no such block or instance" },
        409: { description: "the block exists, or is at its min or max instances" },
        503: { description: "an instance or a service did not come up" },
      },
    },
    {
      method: "POST",
      path: "/vdag-controller",
      summary: "Create, scale, remove or list vDAG controllers",
      tags: ["vdag"],
      body: VdagActionSchema,
      responses: {
        200: {
          description: "the controller's document, {removed}, or {controllers}",
          schema: z.union([
            VdagControllerSchema,
            z.object({ removed: z.string() }),
            z.object({ controllers: z.array(VdagControllerSchema) }),
          ]),
        },
        400: { description: "unknown action or invalid payload" },
        403: precheckRefused,
        404: { description: "no such vDAG controller" },
        409: { description: "the vDAG controller exists" },
      },
    },
    {
      method: "POST",
      path: "/cluster-actions/add-node",
      summary: "Add a node to the cluster document",
      tags: ["cluster"],
      body: NewNode,
      responses: {
        200: { description: "the cluster document", schema: ClusterSchema },
        400: { description: "invalid node" },
        403: precheckRefused,
        409: { description: "the node exists" },
      },
    },
    {
      method: "DELETE",
      path: "/cluster-actions/remove-node/{id}",
      summary: "Move a node's instances elsewhere, then remove it",
      tags: ["cluster"],
      responses: {
        200: {
          description: "the node removed, the instances moved and the cluster document",
          schema: z.object({
            removed: z.string(),
            moved_instances: z.array(z.string()),
            cluster: ClusterSchema,
          }),
        },
        403: precheckRefused,
        404: { description: "no such node" },
      },
    },
    {
      method: "GET",
      path: "/cluster-actions/get-cluster",
      summary: "The cluster document",
      tags: ["cluster"],
      responses: { 200: { description: "the cluster document", schema: ClusterSchema } },
    },
    {
      method: "PATCH",
      path: "/cluster-actions/update-cluster",
      summary: "Update the cluster document with a MongoDB update document",
      tags: ["cluster"],
      body: UpdateSchema,
      responses: {
        200: { description: "the updated cluster document", schema: ClusterSchema },
        400: { description: "an update the registry refuses" },
        403: precheckRefused,
      },
    },
    {
      method: "GET",
      path: "/blocks",
      summary: "The cluster's blocks",
      tags: ["blocks"],
      responses: { 200: { description: "the block documents", schema: z.array(BlockDocumentSchema) } },
    },
    {
      method: "GET",
      path: "/blocks/{id}",
      summary: "A block's document",
      tags: ["blocks"],
      params: blockId,
      responses: {
        200: { description: "the block document", schema: BlockDocumentSchema },
        404: { description: "no such block in this cluster" },
      },
    },
    {
      method: "GET",
      path: "/blocks/{id}/logs",
      summary: "The last lines a block's services (no instance) or one of its instances wrote",
      tags: ["blocks"],
      params: blockId,
      query: LogsQuerySchema,
      responses: {
        200: {
          description: "the lines, oldest first",
          schema: z.object({
            block_id: z.string(),
            instance_id: z.string().nullable(),
            lines: z.array(z.string()),
          }),
        },
        400: { description: "bad instance or tail" },
        404: { description: "no such block, or no log for it or the instance" },
      },
    },
    {
      method: "POST",
      path: "/blocks/query",
      summary: "Find the cluster's blocks with a MongoDB filter",
      tags: ["blocks"],
      body: QueryBody,
      responses: {
        200: { description: "the matching block documents", schema: z.array(BlockDocumentSchema) },
        400: { description: "a filter or option the store refuses" },
      },
    },
    {
      method: "PUT",
      path: "/block/update/{id}",
      summary: "Update a block's document with a MongoDB update document",
      tags: ["blocks"],
      params: blockId,
      body: UpdateSchema,
      responses: {
        200: { description: "the updated block document", schema: BlockDocumentSchema },
        400: { description: "an update the store refuses" },
        404: { description: "no such block in this cluster" },
      },
    },
    {
      method: "GET",
      path: "/healthy_nodes",
      summary: "The ids of the healthy nodes",
      tags: ["nodes"],
      responses: {
        200: { description: "node ids", schema: z.object({ healthy_nodes: z.array(z.string()) }) },
      },
    },
    {
      method: "GET",
      path: "/nodes_status",
      summary: "Every node's last known state",
      tags: ["nodes"],
      responses: { 200: { description: "the nodes", schema: NodesSchema } },
    },
    {
      method: "PUT",
      path: "/nodes_status/{id}",
      summary: "Mark a node healthy or unhealthy, or hand it back to the probe (null)",
      tags: ["nodes"],
      body: NodeHealth,
      responses: {
        200: { description: "the nodes after a scan", schema: NodesSchema },
        400: { description: "invalid status" },
      },
    },
    {
      method: "GET",
      path: "/check_stability",
      summary: "Check the cluster's stability now",
      tags: ["stability"],
      responses: { 200: { description: "the check", schema: StabilityResultSchema } },
    },
    {
      method: "POST",
      path: "/mgmt",
      summary: "A management command to a block's services or to the stability checker",
      description:
        "With block_id: service instances (each instance's /mgmt), executor, autoscaler or health. " +
        "Without: service stability_checker.",
      tags: ["management"],
      body: MgmtCommand,
      responses: {
        200: { description: "the service's answer", schema: JsonObject },
        400: { description: "invalid command or unknown service" },
        403: precheckRefused,
        404: { description: "no such block" },
      },
    },
    {
      method: "POST",
      path: "/events",
      summary: "Queue a block event for the events processor",
      tags: ["events"],
      body: BlockEventSchema,
      responses: {
        202: { description: "queued: the stream entry's id", schema: z.object({ id: z.string() }) },
        400: { description: "invalid event (the message names the field)" },
      },
    },
    {
      method: "GET",
      path: "/events",
      summary: "Recent events, recorded failures and self-healing records",
      tags: ["events"],
      responses: {
        200: {
          description: "newest first",
          schema: z.object({
            recent: z.array(ProcessedEventSchema),
            failures: z.array(EventFailureSchema),
            healing: z.array(HealingRecordSchema),
          }),
        },
      },
    },
    ...blockProxyRoutes(),
  ];
};

export const controllerOpenApi: () => OpenApiDocument = lazyDocument(() =>
  buildOpenApi(controllerRouteTable(), {
    title: "aios cluster controller",
    version: "0.1.0",
    description:
      'One cluster\'s controller (cluster-controller.md). Errors are `{"error": {"code", "message", "details"}}`.',
    tags: [
      { name: "blocks", description: "block actions and documents" },
      { name: "vdag", description: "vDAG controllers" },
      { name: "cluster", description: "the cluster document, through the registry" },
      { name: "nodes", description: "the infrastructure scanner" },
      { name: "stability", description: "the stability checker" },
      { name: "management", description: "the management command executor" },
      { name: "events", description: "block events" },
      { name: "block gateway", description: "the public gateway to a block's services" },
      { name: "auth", description: "the caller; where workloads check the tokens they are given" },
      { name: "health" },
    ],
    components: {
      BlockDocument: BlockDocumentSchema,
      BlockInstance: BlockInstanceSchema,
      NewBlock: NewBlockSchema,
      Cluster: ClusterSchema,
      MongoUpdate: UpdateSchema,
      QueryBody,
      ExecuteAction: ExecuteActionSchema,
      ActionResult: ActionResultSchema,
      VdagController: VdagControllerSchema,
      NodeState: NodeStateSchema,
      StabilityResult: StabilityResultSchema,
      BlockEvent: BlockEventSchema,
      MgmtCommand,
    },
  }),
);
