/**
 * The registry's routes as an OpenAPI 3.1 document (served at `GET /openapi.json`): the cluster and
 * component registries, the policy store and the global metrics API, with the schemas that validate
 * their bodies (schemas.ts, src/policy/store.ts). `metricsOpenApi` is the part the metrics port serves.
 */
import { z } from "zod";
import {
  buildOpenApi,
  lazyDocument,
  type MediaSpec,
  type OpenApiDocument,
  openApiJsonRoute,
  type RouteSpec,
} from "../http/openapi.ts";
import { PolicyUploadSchema, PolicyUri } from "../policy/store.ts";
import {
  ClusterId,
  ClusterSchema,
  ComponentSchema,
  ComponentUri,
  MetricsSchema,
  QueryBodySchema,
  UpdateSchema,
} from "./schemas.ts";

export const RegistryHealthSchema = z.object({ status: z.literal("ok"), store: z.string() });

/** `?limit&skip` as `parseListParams` (documents.ts) accepts them: up to 15 decimal digits. */
export const ListQuerySchema = z.object({
  limit: z.int().min(0).max(999_999_999_999_999).optional(),
  skip: z.int().min(0).max(999_999_999_999_999).optional(),
});

export const DeletedSchema = z.object({ id: z.string(), deleted: z.literal(true) });

/** A PUT body may leave the id out: the URL gives it. */
export const ClusterReplacementSchema = ClusterSchema.partial({ id: true });

/** A stored policy's metadata (`PolicyDoc`, src/policy/store.ts). */
export const PolicyMetaSchema = z.object({
  id: z.string(),
  uri: z.string(),
  name: z.string(),
  version: z.string(),
  kind: PolicyUploadSchema.shape.kind,
  description: z.string(),
  sha256: z.string().describe("sha256 of the module as uploaded"),
  size: z.int(),
  module: z.string().describe("sha256 of the instrumented module"),
  module_size: z.int(),
  exports: z.array(z.string()),
  imports: z.array(z.string()),
  limits: z.object({ fuel: z.int(), memory_bytes: z.int(), output_bytes: z.int() }),
  memory: z.object({ initial_pages: z.int(), max_pages: z.int() }),
  created_at: z.string(),
});

const PolicyDeletedSchema = z.object({ uri: z.string(), deleted: z.literal(true) });

const wasmBytes = { type: "string", contentMediaType: "application/wasm" };

/** What `readPolicyUpload` (policies.ts) reads from the query with a raw module. */
const PolicyUploadQuerySchema = PolicyUploadSchema.partial().extend({
  kind: PolicyUploadSchema.shape.kind
    .optional()
    .describe("required with a raw module; a multipart form gives it as a field"),
});

/** The upload bodies: the module itself, or a form with it in `module` (also `wasm` or `file`). */
const policyUploadBodies = (withUri: boolean): MediaSpec[] => [
  { contentType: "application/wasm", schema: wasmBytes },
  { contentType: "application/octet-stream", schema: wasmBytes },
  {
    contentType: "multipart/form-data",
    schema: PolicyUploadSchema.extend({
      ...(withUri ? { uri: PolicyUri } : {}),
      module: z.file().describe("the WebAssembly module (the field may also be called wasm or file)"),
    }),
  },
];

const policyUploadResponses = {
  200: { description: "the same bytes were already stored under this URI", schema: PolicyMetaSchema },
  201: { description: "stored", schema: PolicyMetaSchema },
  400: { description: "bad metadata, URI or form; an empty module" },
  409: { description: "other bytes (or another kind) are stored under this URI" },
  413: { description: "the module is larger than 16 MiB" },
  415: { description: "neither a module nor a multipart form" },
  422: { description: "admission refused the module (the code says why)" },
};

/** The metrics API's answers: `{"success", "data", "error"}` (metrics.ts). */
const envelope = <T extends z.ZodType>(data: T) =>
  z.object({ success: z.literal(true), data, error: z.null() });

export const MetricsErrorSchema = z.object({
  success: z.literal(false),
  data: z.null(),
  error: z.string(),
  code: z.string(),
  details: z.unknown(),
});

const metricsError = (description: string) => ({ description, schema: MetricsErrorSchema });

/** `GET /cluster/query`: a JSON filter, or plain equalities; the find options in both forms. */
const MetricsQueryParamsSchema = z.object({
  query: z.string().optional().describe("a MongoDB filter as JSON; then no equality parameters"),
  limit: ListQuerySchema.shape.limit,
  skip: ListQuerySchema.shape.skip,
  sort: z.string().optional().describe('find option as a JSON object, e.g. {"id": 1}'),
  projection: z.string().optional().describe("find option as a JSON object"),
  equalities: z
    .record(z.string(), z.string())
    .optional()
    .describe(
      "field=value pairs meaning equality (a repeated field: any of its values; a number-like value also matches the number)",
    ),
});

const documentRoutes = (
  base: "/clusters" | "/components",
  noun: string,
  schemas: { id: z.ZodType; doc: z.ZodType; replacement: z.ZodType },
): RouteSpec[] => {
  const tags = [base.slice(1)];
  const params = z.object({ id: schemas.id });
  const list = z.array(schemas.doc);
  return [
    {
      method: "GET",
      path: base,
      summary: `List ${noun}s in id order`,
      tags,
      query: ListQuerySchema,
      responses: {
        200: { description: `the ${noun}s`, schema: list },
        400: { description: "bad limit or skip" },
      },
    },
    {
      method: "POST",
      path: base,
      summary: `Create a ${noun}`,
      tags,
      body: schemas.doc,
      responses: {
        201: { description: "created", schema: schemas.doc },
        400: { description: "invalid document (the message names the field)" },
        409: { description: "the id exists" },
        413: { description: "body too large" },
      },
    },
    {
      method: "POST",
      path: `${base}/query`,
      summary: `Find ${noun}s with a MongoDB filter`,
      tags,
      body: QueryBodySchema,
      responses: {
        200: { description: `the matching ${noun}s`, schema: list },
        400: { description: "a filter or option the store refuses" },
      },
    },
    {
      method: "GET",
      path: `${base}/{id}`,
      summary: `Get a ${noun}`,
      tags,
      params,
      responses: {
        200: { description: `the ${noun}`, schema: schemas.doc },
        400: { description: "malformed id" },
        404: { description: `no such ${noun}` },
      },
    },
    {
      method: "PUT",
      path: `${base}/{id}`,
      summary: `Replace (or create) a ${noun}`,
      tags,
      params,
      body: schemas.replacement,
      responses: {
        200: { description: `the stored ${noun}`, schema: schemas.doc },
        400: { description: "invalid document, or its id differs from the URL's" },
      },
    },
    {
      method: "PATCH",
      path: `${base}/{id}`,
      summary: `Update a ${noun} with a MongoDB update document`,
      tags,
      params,
      body: UpdateSchema,
      responses: {
        200: { description: `the updated ${noun}`, schema: schemas.doc },
        400: { description: "an operator, field or value the store or the schema refuses" },
        404: { description: `no such ${noun}` },
      },
    },
    {
      method: "DELETE",
      path: `${base}/{id}`,
      summary: `Remove a ${noun}`,
      tags,
      params,
      responses: {
        200: { description: "removed", schema: DeletedSchema },
        404: { description: `no such ${noun}` },
      },
    },
  ];
};

/** The caller as the guard sees it (src/auth/hono.ts `whoami`). */
export const PrincipalSchema = z.object({
  id: z.string().describe("the token id (tok_...), or anonymous"),
  name: z.string(),
  scopes: z.array(z.string()).describe("admin, operator, internal, infer:<blockId> or infer:*"),
  anonymous: z.literal(true).optional().describe("no token, and this install allows that"),
});
export const WhoamiSchema = z.object({ principal: PrincipalSchema });

/** `GET <path>`: who the token is (any valid token); how workloads check a token at a service. */
export const whoamiRoute = (path = "/auth/whoami", tags: readonly string[] = ["auth"]): RouteSpec => ({
  method: "GET",
  path,
  summary: "The caller: the token's id, name and scopes",
  tags,
  responses: {
    200: { description: "the caller", schema: WhoamiSchema },
    401: { description: "no valid token (unknown, revoked or expired)" },
  },
});

const healthRoute: RouteSpec = {
  method: "GET",
  path: "/health",
  summary: "Liveness, and the kind of store",
  tags: ["health"],
  responses: { 200: { description: "up", schema: RegistryHealthSchema } },
};

/** The global metrics routes (`/cluster/...`): answers and errors in the envelope. */
export const metricsRouteTable = (): RouteSpec[] => {
  const tags = ["metrics"];
  const params = z.object({ id: ClusterId });
  const many = envelope(z.array(MetricsSchema));
  return [
    {
      method: "GET",
      path: "/cluster/query",
      summary: "Find metrics documents from the query string",
      tags,
      query: MetricsQueryParamsSchema,
      responses: {
        200: { description: "the matching documents", schema: many },
        400: metricsError("bad filter or option"),
      },
    },
    {
      method: "POST",
      path: "/cluster/query",
      summary: "Find metrics documents with a MongoDB filter",
      tags,
      body: QueryBodySchema,
      responses: {
        200: { description: "the matching documents", schema: many },
        400: metricsError("bad filter or option"),
      },
    },
    {
      method: "GET",
      path: "/cluster/{id}",
      summary: "A cluster's metrics",
      tags,
      params,
      responses: {
        200: { description: "the metrics document", schema: envelope(MetricsSchema) },
        400: metricsError("malformed cluster id"),
        404: metricsError("no metrics for this cluster"),
      },
    },
    {
      method: "PUT",
      path: "/cluster/{id}",
      summary: "Write a cluster's metrics",
      tags,
      params,
      body: MetricsSchema,
      responses: {
        200: { description: "the stored document", schema: envelope(MetricsSchema) },
        400: metricsError("invalid document"),
      },
    },
    {
      method: "DELETE",
      path: "/cluster/{id}",
      summary: "Remove a cluster's metrics",
      tags,
      params,
      responses: {
        200: { description: "removed", schema: envelope(DeletedSchema) },
        404: metricsError("no metrics for this cluster"),
      },
    },
  ];
};

export const policyRouteTable = (): RouteSpec[] => {
  const tags = ["policies"];
  const params = z.object({ uri: PolicyUri });
  return [
    {
      method: "GET",
      path: "/policies",
      summary: "List stored policies' metadata",
      tags,
      query: ListQuerySchema.extend({ kind: PolicyUploadSchema.shape.kind.optional() }),
      responses: {
        200: { description: "metadata, in URI order", schema: z.array(PolicyMetaSchema) },
        400: { description: "unknown kind, bad limit or skip" },
      },
    },
    {
      method: "POST",
      path: "/policies",
      summary: "Upload a policy, its URI in the query or the form",
      tags,
      query: PolicyUploadQuerySchema.extend({ uri: PolicyUri.optional() }),
      body: policyUploadBodies(true),
      responses: policyUploadResponses,
    },
    {
      method: "PUT",
      path: "/policies/{uri}",
      summary: "Upload a policy under a URI",
      tags,
      params,
      query: PolicyUploadQuerySchema,
      body: policyUploadBodies(false),
      responses: policyUploadResponses,
    },
    {
      method: "GET",
      path: "/policies/{uri}",
      summary: "A policy's metadata",
      tags,
      params,
      responses: {
        200: { description: "the metadata", schema: PolicyMetaSchema },
        400: { description: "malformed URI" },
        404: { description: "no such policy" },
      },
    },
    {
      method: "GET",
      path: "/policies/{uri}/wasm",
      summary: "A policy's module, as uploaded or as it runs",
      tags,
      params,
      query: z.object({ form: z.enum(["original", "instrumented"]).optional() }),
      responses: {
        200: { description: "the module", schema: { contentType: "application/wasm", schema: wasmBytes } },
        400: { description: "bad form" },
        404: { description: "no such policy" },
      },
    },
    {
      method: "DELETE",
      path: "/policies/{uri}",
      summary: "Remove a policy",
      tags,
      params,
      responses: {
        200: { description: "removed", schema: PolicyDeletedSchema },
        404: { description: "no such policy" },
      },
    },
  ];
};

/** Every route of `createRegistryApp`. */
export const registryRouteTable = (): RouteSpec[] => [
  healthRoute,
  openApiJsonRoute(["health"]),
  whoamiRoute(),
  ...documentRoutes("/clusters", "cluster", {
    id: ClusterId,
    doc: ClusterSchema,
    replacement: ClusterReplacementSchema,
  }),
  ...documentRoutes("/components", "component", {
    id: ComponentUri,
    doc: ComponentSchema,
    replacement: ComponentSchema,
  }),
  ...policyRouteTable(),
  ...metricsRouteTable(),
];

const components = () => ({
  Cluster: ClusterSchema,
  ClusterReplacement: ClusterReplacementSchema,
  Component: ComponentSchema,
  ClusterMetrics: MetricsSchema,
  QueryBody: QueryBodySchema,
  MongoUpdate: UpdateSchema,
  Policy: PolicyMetaSchema,
  MetricsError: MetricsErrorSchema,
});

const metricsComponents = () => ({
  ClusterMetrics: MetricsSchema,
  QueryBody: QueryBodySchema,
  MetricsError: MetricsErrorSchema,
});

export const registryOpenApi: () => OpenApiDocument = lazyDocument(() =>
  buildOpenApi(registryRouteTable(), {
    title: "aios registry",
    version: "0.1.0",
    description:
      "Clusters, components, WebAssembly policies and the global cluster metrics. Errors are " +
      '`{"error": {"code", "message", "details"}}`, except under /cluster, which keeps the metrics envelope.',
    tags: [
      { name: "clusters", description: "cluster documents" },
      { name: "components", description: "components, keyed by URI name:version" },
      { name: "policies", description: "WebAssembly policies" },
      {
        name: "metrics",
        description: 'global cluster metrics, in the {"success", "data", "error"} envelope',
      },
      { name: "auth", description: "the caller's token (Authorization: Bearer <token>)" },
      { name: "health" },
    ],
    components: components(),
  }),
);

/** `createMetricsApp`: the global metrics API alone. */
export const metricsOpenApi: () => OpenApiDocument = lazyDocument(() =>
  buildOpenApi([healthRoute, openApiJsonRoute(["health"]), ...metricsRouteTable()], {
    title: "aios global cluster metrics",
    version: "0.1.0",
    description: 'Global cluster metrics, in the {"success", "data", "error"} envelope.',
    components: metricsComponents(),
  }),
);
