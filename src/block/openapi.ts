/**
 * The block's HTTP services as OpenAPI 3.1 documents, one per listener (each is its own app on its own
 * port, and the three management apps share the path `/mgmt`): the executor's metrics, the
 * management APIs (executor, auto-scaler, health checker) and the mapper. Each app serves its own at
 * `GET /openapi.json`. The route tables are also what the cluster controller's public gateway
 * (`/block/{id}/...`) documents, under its prefixes.
 *
 * The tables are functions: app.ts imports this module and this module reads schemas from app.ts.
 */
import { z } from "zod";
import { buildOpenApi, type OpenApiDocument, openApiJsonRoute, type RouteSpec } from "../http/openapi.ts";
import { BUILTIN_MGMT_ACTIONS, MgmtBody } from "./app.ts";
import { InstanceListSchema, InstanceRefSchema } from "./mapper.ts";

const Latency = z.object({ p50: z.number().nullable(), p99: z.number().nullable() });

/** `GET /metrics/json`: `BlockMetricsJson` (metrics.ts), what load balancer policies read. */
export const BlockMetricsSchema = z.object({
  block_id: z.string(),
  instances: z.record(
    z.string(),
    z.object({
      in_flight: z.number(),
      requests_total: z.number(),
      errors_total: z.number(),
      latency_ms: Latency.describe("estimated from the histogram; null before the first completed request"),
    }),
  ),
  requests_total: z.number().describe("since the executor started, counting removed instances too"),
  errors_total: z.number(),
  in_flight: z.number(),
  policy_fallbacks_total: z.number(),
  recent_latency_ms: Latency.describe("over the last 10 to 20 seconds"),
});

/** The mapper's answers: its list and the version that counts its changes. */
export const MapperStateSchema = z.object({
  block_id: z.string(),
  version: z.int(),
  instances: z.array(z.object({ id: z.string(), url: z.string() })),
});

/** `PUT /instances`: what `readInstanceList` (mapper.ts) reads. */
export const InstanceListBodySchema = z.union([
  InstanceListSchema,
  z.object({ instances: InstanceListSchema }),
  z.object({ data: z.object({ instances: InstanceListSchema }) }),
]);

/** `InferenceProxy.infer` in Connect's JSON form (proto/inference.proto); bytes as base64. */
export const InferenceMessageJsonSchema = z.object({
  rpcData: z.base64().describe("the AIOSPacket (proto/payload.proto), serialized"),
});

export const InferenceResponseJsonSchema = z.object({
  message: z.boolean().optional().describe("true when the instance produced a result"),
  result: z.string().optional().describe("the result as JSON"),
  error: z.string().optional(),
  instanceId: z.string().optional(),
  sessionId: z.string().optional(),
  seqNo: z.string().optional().describe("uint64, as a decimal string"),
});

const MgmtAnswerSchema = z.record(z.string(), z.unknown());

const BINARY = { type: "string", contentEncoding: "binary" };

/** A Connect error answer (its code also maps to the HTTP status). */
export const ConnectErrorSchema = z.object({ code: z.string(), message: z.string().optional() });

const connectError = (description: string) => ({
  description,
  schema: { contentType: "application/json", schema: ConnectErrorSchema },
});

/** The gRPC listener's Connect and gRPC-web unary call (not a Hono app: documented for the gateway). */
export const inferenceRouteTable = (): RouteSpec[] => [
  {
    method: "POST",
    path: "/InferenceProxy/infer",
    summary: "Run one inference task",
    description:
      "Connect unary (JSON or binary protobuf) and gRPC-web; plain gRPC over HTTP/2 too. A bad packet is " +
      "invalid_argument naming the field; no instance available is unavailable.",
    tags: ["inference"],
    body: [
      { contentType: "application/json", schema: InferenceMessageJsonSchema },
      { contentType: "application/proto", schema: BINARY },
      { contentType: "application/grpc-web+proto", schema: BINARY },
    ],
    responses: {
      200: {
        description: "the InferenceResponse",
        schema: [
          { contentType: "application/json", schema: InferenceResponseJsonSchema },
          { contentType: "application/proto", schema: BINARY },
          { contentType: "application/grpc-web+proto", schema: BINARY },
        ],
      },
      400: connectError("invalid_argument: the packet is malformed (the message names the field)"),
      503: connectError("unavailable: no instance could take the task"),
      504: connectError("deadline_exceeded"),
    },
  },
];

/** `createExecutorMetricsApp`. */
export const executorMetricsRouteTable = (): RouteSpec[] => [
  {
    method: "GET",
    path: "/metrics",
    summary: "The executor's metrics, Prometheus text",
    tags: ["metrics"],
    responses: {
      200: {
        description: "text exposition format 0.0.4",
        schema: { contentType: "text/plain; version=0.0.4", schema: { type: "string" } },
      },
    },
  },
  {
    method: "GET",
    path: "/metrics/json",
    summary: "The block metrics the policies read",
    tags: ["metrics"],
    responses: { 200: { description: "per instance and block totals", schema: BlockMetricsSchema } },
  },
];

/** Built-in management actions (app.ts), answered before the policy's own; the sidecars add run_now. */
export const mgmtBuiltins = (service: "executor" | "sidecar"): string[] =>
  service === "executor" ? [...BUILTIN_MGMT_ACTIONS] : [...BUILTIN_MGMT_ACTIONS, "run_now"];

/** `createMgmtApp`: `POST /mgmt` of the executor, the auto-scaler or the health checker. */
export const mgmtRouteTable = (service: string, builtins: readonly string[]): RouteSpec[] => [
  {
    method: "POST",
    path: "/mgmt",
    summary: `A management command to the ${service}`,
    description: `Built-in actions: ${builtins.join(", ")}; any other goes to the ${service}'s policy (its management export).`,
    tags: ["management"],
    body: MgmtBody,
    responses: {
      200: { description: "the action's answer", schema: MgmtAnswerSchema },
      400: { description: "invalid body, or an action neither built in nor known to a policy" },
      422: { description: "the policy failed or refused the action" },
    },
  },
];

/** `createMapperApp`. */
export const mapperRouteTable = (): RouteSpec[] => {
  const tags = ["instances"];
  const state = { description: "the list now", schema: MapperStateSchema };
  return [
    {
      method: "GET",
      path: "/instances",
      summary: "The live instance list",
      tags,
      responses: {
        200: {
          description: "the list, and the last poll of the source",
          schema: MapperStateSchema.extend({
            last_poll: z.object({ at: z.number(), error: z.string().nullable() }).nullable(),
          }),
        },
      },
    },
    {
      method: "PUT",
      path: "/instances",
      summary: "Replace the instance list",
      tags,
      body: InstanceListBodySchema,
      responses: { 200: state, 400: { description: "invalid list (the message names the field)" } },
    },
    {
      method: "POST",
      path: "/instances",
      summary: "Add an instance, or move it to a new URL",
      tags,
      body: InstanceRefSchema,
      responses: { 200: state, 400: { description: "invalid instance" } },
    },
    {
      method: "DELETE",
      path: "/instances/{id}",
      summary: "Remove an instance",
      tags,
      responses: { 200: state, 404: { description: "no such instance" } },
    },
  ];
};

const document = (
  title: string,
  description: string,
  routes: RouteSpec[],
  components: Record<string, z.ZodType>,
): OpenApiDocument =>
  buildOpenApi([...routes, openApiJsonRoute()], { title, version: "0.1.0", description, components });

const cache = new Map<string, OpenApiDocument>();
const cached = (key: string, build: () => OpenApiDocument) => {
  const doc = cache.get(key) ?? build();
  cache.set(key, doc);
  return doc;
};

export const executorMetricsOpenApi = (): OpenApiDocument =>
  cached("metrics", () =>
    document("aios block executor metrics", "The executor's metrics listener.", executorMetricsRouteTable(), {
      BlockMetrics: BlockMetricsSchema,
    }),
  );

/** The management app of one service, with its built-in actions. */
export const mgmtOpenApi = (service: string, builtins: readonly string[]): OpenApiDocument =>
  cached(`mgmt:${service}:${builtins.join(",")}`, () =>
    document(
      `aios block ${service} management`,
      `The ${service}'s management API.`,
      mgmtRouteTable(service, builtins),
      {
        MgmtCommand: MgmtBody,
      },
    ),
  );

export const mapperOpenApi = (): OpenApiDocument =>
  cached("mapper", () =>
    document("aios block mapper", "The block's live instance list (internal).", mapperRouteTable(), {
      MapperState: MapperStateSchema,
    }),
  );
