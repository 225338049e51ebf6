/**
 * The gateway's routes as an OpenAPI 3.1 document (`gatewayOpenApi()`, for `GET /openapi.json`):
 * block creation from a block specification (spec.ts) and the console API whose answers are the
 * views of views.ts. `/api/policies` is the registry's policy API, forwarded: its routes come from the
 * registry's table. The static dashboard (`/`, `/ui/...`) is not part of the API and is left out.
 */
import { z } from "zod";
import { AuditQuerySchema } from "../auth/audit.ts";
import { NewTokenSchema } from "../auth/tokens.ts";
import {
  buildOpenApi,
  lazyDocument,
  type OpenApiDocument,
  openApiJsonRoute,
  type RouteSpec,
} from "../http/openapi.ts";
import { PolicyMetaSchema, policyRouteTable, WhoamiSchema, whoamiRoute } from "../registry/openapi.ts";
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

/** A token as `GET /api/tokens` lists it: everything but the hash of its secret (src/auth/tokens.ts). */
export const TokenInfoSchema = z.object({
  id: z.string().describe("tok_ and 12 characters; the token itself is aios_<id part>_<secret>"),
  name: z.string(),
  scopes: z.array(z.string()).describe("admin, operator, internal, infer:<blockId> or infer:*"),
  created_at: z.string(),
  created_by: z.string().describe("the token id that created it, or aios up"),
  expires_at: z.string().nullable().optional(),
  revoked_at: z.string().nullable().optional(),
});

/** `POST /api/tokens` answers the token once, with its record. */
export const CreatedTokenSchema = TokenInfoSchema.extend({
  token: z.string().describe("the token: shown here once, stored only as a hash"),
});

/** One audit log entry (src/auth/audit.ts). */
export const AuditEntrySchema = z.object({
  id: z.string(),
  at: z.string(),
  actor: z.object({ id: z.string(), name: z.string() }).describe("the token that called"),
  on_behalf_of: z
    .object({ id: z.string(), name: z.string() })
    .nullable()
    .optional()
    .describe("the user a service acted for"),
  service: z.string(),
  method: z.string(),
  path: z.string(),
  target: z.string().nullable().optional().describe("the resource the path names"),
  status: z.int(),
  outcome: z.enum(["success", "refused", "failed"]),
});

const adminOnly = {
  401: { description: "no valid token" },
  403: { description: "the token is not an admin token" },
};

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
        422: {
          description:
            "unknown component, one that says nothing about how it runs, or every cluster that answered refused the block",
        },
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
    whoamiRoute("/api/whoami"),
    {
      method: "GET",
      path: "/api/tokens",
      summary: "Every token, revoked and expired ones included (never the secrets)",
      tags: ["auth"],
      responses: { 200: { description: "oldest first", schema: z.array(TokenInfoSchema) }, ...adminOnly },
    },
    {
      method: "POST",
      path: "/api/tokens",
      summary: "Create a token; the answer holds it, once",
      tags: ["auth"],
      body: NewTokenSchema,
      responses: {
        201: { description: "the token and its record", schema: CreatedTokenSchema },
        400: { description: "a bad name, scope or expiry" },
        ...adminOnly,
      },
    },
    {
      method: "DELETE",
      path: "/api/tokens/{id}",
      summary: "Revoke a token (it stops working within 5 s everywhere)",
      tags: ["auth"],
      responses: {
        200: { description: "the token's record, revoked", schema: TokenInfoSchema },
        400: { description: "not a token id" },
        404: { description: "no such token" },
        ...adminOnly,
      },
    },
    {
      method: "GET",
      path: "/api/audit",
      summary: "The audit log of state-changing calls, newest first",
      description:
        "actor matches a token id or name, or the user a service acted for; since and until are ISO times.",
      tags: ["auth"],
      query: AuditQuerySchema,
      responses: {
        200: { description: "the entries", schema: z.array(AuditEntrySchema) },
        400: { description: "a bad filter" },
        ...adminOnly,
      },
    },
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
      { name: "auth", description: "who you are, tokens and the audit log (Authorization: Bearer <token>)" },
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
      Whoami: WhoamiSchema,
      TokenInfo: TokenInfoSchema,
      CreatedToken: CreatedTokenSchema,
      AuditEntry: AuditEntrySchema,
    },
  }),
);
