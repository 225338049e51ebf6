/**
 * The gateway's routes as an OpenAPI 3.1 document (`gatewayOpenApi()`, for `GET /openapi.json`):
 * block creation from a block specification (spec.ts) and the console API whose answers are the
 * views of views.ts. `/api/policies` is the registry's policy API, forwarded: its routes come from the
 * registry's table. The static dashboard (`/`, `/ui/...`) is not part of the API and is left out.
 */
import { z } from "zod";
import {
  buildOpenApi,
  lazyDocument,
  type OpenApiDocument,
  openApiJsonRoute,
  type RouteSpec,
} from "../http/openapi.ts";
import { PolicyMetaSchema, policyRouteTable } from "../registry/openapi.ts";
import { BlockSpecSchema } from "./spec.ts";
import {
  AllocationStepSchema,
  BlockDetailSchema,
  BlockEventViewSchema,
  BlockLogsSchema,
  BlockMetricsViewSchema,
  BlockStatusSchema,
  BlockViewSchema,
  ClusterViewSchema,
  CreationViewSchema,
  ScaleRequestSchema,
} from "./views.ts";

/** A creation record (`block_creations`, creations.ts): the block made, its steps and outcome. */
export const CreationRecordSchema = z.looseObject({
  id: z.string(),
  status: z.enum(["allocating", "running", "failed", "removed"]),
  block: z
    .record(z.string(), z.unknown())
    .describe("the block made from the specification (block_create_IR)"),
  steps: z.array(AllocationStepSchema),
  created_at: z.string(),
  updated_at: z.string().optional(),
  cluster_id: z.string().optional(),
  score: z.unknown().optional(),
  error: z.object({ code: z.string(), message: z.string(), details: z.unknown() }).nullable(),
});

const registryUnreachable = { description: "the registry or the block's controller cannot be reached" };

/** The registry's `GET|POST /policies`, as the gateway forwards them under `/api`. */
const forwardedPolicyRoutes = (): RouteSpec[] =>
  policyRouteTable()
    .filter((r) => r.path === "/policies")
    .map((r) => ({
      ...r,
      path: `/api${r.path}`,
      summary: `${r.summary} (forwarded to the registry)`,
      responses: { ...r.responses, 503: registryUnreachable },
    }));

/** Every API route of `createGatewayApp` (the dashboard's static files aside). */
export const gatewayRouteTable = (): RouteSpec[] => {
  const blocks = ["blocks"];
  return [
    {
      method: "GET",
      path: "/health",
      summary: "Liveness",
      tags: ["health"],
      responses: { 200: { description: "up", schema: z.object({ status: z.literal("ok") }) } },
    },
    openApiJsonRoute(["health"]),
    {
      method: "POST",
      path: "/api/createBlock",
      summary: "Create a block from a block specification",
      description:
        "Makes the block from its component, places it on a cluster (filter, selection, dry runs, " +
        "post_dry_run, create_block) and records each step; GET /api/blocks/{id} shows them.",
      tags: blocks,
      body: BlockSpecSchema,
      responses: {
        201: { description: "the block runs: its creation record", schema: CreationRecordSchema },
        400: { description: "invalid specification (the message names the JSON path)" },
        409: { description: "a block with this id exists" },
        422: { description: "unknown component, or one that says nothing about how it runs" },
        503: { description: "no cluster could take the block, or a service is unreachable" },
      },
    },
    {
      method: "GET",
      path: "/api/clusters",
      summary: "Every cluster with its nodes and block count",
      tags: ["clusters"],
      responses: { 200: { description: "the clusters", schema: z.array(ClusterViewSchema) } },
    },
    {
      method: "GET",
      path: "/api/blocks",
      summary: "Every block: on the clusters, and creations not (or no longer) on one",
      tags: blocks,
      query: z.object({ status: BlockStatusSchema.optional() }),
      responses: { 200: { description: "the blocks, by id", schema: z.array(BlockViewSchema) } },
    },
    {
      method: "GET",
      path: "/api/blocks/{id}",
      summary: "A block, with its creation's allocation steps",
      tags: blocks,
      responses: {
        200: { description: "the block", schema: BlockDetailSchema },
        404: { description: "no such block on any cluster" },
      },
    },
    {
      method: "DELETE",
      path: "/api/blocks/{id}",
      summary: "Remove a block from its cluster",
      tags: blocks,
      responses: {
        200: { description: "the creation record, marked removed", schema: CreationRecordSchema },
        404: { description: "no block of this id was created through this gateway" },
        409: { description: "the block is not running" },
        503: registryUnreachable,
      },
    },
    {
      method: "POST",
      path: "/api/blocks/{id}/scale",
      summary: "Scale a block to a number of instances, or by a difference",
      description: "Give exactly one of instances (the count wanted) or delta (+n adds n, -n removes n).",
      tags: blocks,
      body: ScaleRequestSchema,
      responses: {
        200: { description: "the block after scaling", schema: BlockViewSchema },
        400: { description: "invalid request, or a target outside the block's min and max" },
        404: { description: "no such block" },
        503: registryUnreachable,
      },
    },
    {
      method: "GET",
      path: "/api/blocks/{id}/metrics",
      summary: "A block's executor metrics",
      tags: blocks,
      responses: {
        200: { description: "the metrics now", schema: BlockMetricsViewSchema },
        404: { description: "no such block" },
        503: registryUnreachable,
      },
    },
    {
      method: "GET",
      path: "/api/blocks/{id}/logs",
      summary: "The last lines an instance (or the block's services) wrote",
      tags: blocks,
      query: z.object({
        instance: z.string().optional().describe("an instance id; none: the block's services"),
        tail: z.int().min(1).optional().describe("how many lines, from the end"),
      }),
      responses: {
        200: { description: "the lines", schema: BlockLogsSchema },
        400: { description: "bad tail" },
        404: { description: "no such block or instance" },
        503: registryUnreachable,
      },
    },
    {
      method: "GET",
      path: "/api/blocks/{id}/events",
      summary: "A block's recent events and what became of them",
      tags: blocks,
      responses: {
        200: { description: "newest first", schema: z.array(BlockEventViewSchema) },
        404: { description: "no such block" },
        503: registryUnreachable,
      },
    },
    {
      method: "GET",
      path: "/api/creations",
      summary: "The latest creations through this gateway",
      tags: blocks,
      query: z.object({ limit: z.int().min(1).max(1000).optional().describe("default 10") }),
      responses: {
        200: { description: "newest first, with their steps", schema: z.array(CreationViewSchema) },
        400: { description: "bad limit" },
      },
    },
    ...forwardedPolicyRoutes(),
  ];
};

export const gatewayOpenApi: () => OpenApiDocument = lazyDocument(() =>
  buildOpenApi(gatewayRouteTable(), {
    title: "aios gateway",
    version: "0.1.0",
    description:
      "Block creation from block specifications, and the console API the aios client and the dashboard use. " +
      'Errors are `{"error": {"code", "message", "details"}}`.',
    tags: [
      { name: "blocks", description: "creation, the blocks' views, scaling, metrics, logs, events" },
      { name: "clusters", description: "the clusters and their nodes" },
      { name: "policies", description: "the registry's policies, forwarded" },
      { name: "health" },
    ],
    components: {
      BlockSpec: BlockSpecSchema,
      CreationRecord: CreationRecordSchema,
      ClusterView: ClusterViewSchema,
      BlockView: BlockViewSchema,
      BlockDetail: BlockDetailSchema,
      CreationView: CreationViewSchema,
      BlockMetricsView: BlockMetricsViewSchema,
      ScaleRequest: ScaleRequestSchema,
      BlockLogs: BlockLogsSchema,
      BlockEventView: BlockEventViewSchema,
      AllocationStep: AllocationStepSchema,
      Policy: PolicyMetaSchema,
    },
  }),
);
