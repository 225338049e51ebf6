/**
 * The OpenAPI documents: each is a well-formed OpenAPI 3.1 document (every $ref resolves, every schema
 * compiles as JSON Schema 2020-12), each lists exactly the routes its Hono app registers, and request
 * bodies from the README and the specification validate against them as the zod schemas decide.
 *
 * No OpenAPI validator is installed; JSON Schema is checked with Ajv (draft 2020-12), which
 * node_modules holds through kubernetes-models.
 */
import { describe, expect, test } from "bun:test";
import Ajv2020 from "ajv/dist/2020";
import addFormats from "ajv-formats";
import type { Hono } from "hono";
import { z } from "zod";
import {
  createExecutorMetricsApp,
  createExecutorMgmtApp,
  createMapperApp,
  createSidecarMgmtApp,
} from "../../src/block/app.ts";
import { InstanceRefSchema } from "../../src/block/mapper.ts";
import { executorMetricsOpenApi, mapperOpenApi, mgmtBuiltins, mgmtOpenApi } from "../../src/block/openapi.ts";
import { createControllerApp } from "../../src/controller/app.ts";
import { controllerOpenApi, ExecuteActionSchema, VdagActionSchema } from "../../src/controller/openapi.ts";
import { createGatewayApp } from "../../src/gateway/app.ts";
import { gatewayOpenApi } from "../../src/gateway/openapi.ts";
import { BlockSpecSchema } from "../../src/gateway/spec.ts";
import {
  buildOpenApi,
  defaultOperationId,
  type JsonSchema,
  type OpenApiDocument,
  pathParamNames,
} from "../../src/http/openapi.ts";
import { BlockEventSchema } from "../../src/queue/index.ts";
import { createMetricsApp, createRegistryApp } from "../../src/registry/app.ts";
import { metricsOpenApi, registryOpenApi } from "../../src/registry/openapi.ts";
import { ClusterSchema, ComponentSchema, QueryBodySchema } from "../../src/registry/schemas.ts";
import { SAMPLE_BLOCK_SPEC } from "../support/spec-samples.ts";

/**
 * Stands in for every dependency an app is built with: building registers routes without calling
 * into the store, the runtime or the clients (the handlers would).
 */
const stub: never = new Proxy(() => {}, {
  get: (_t, key) => (key === "then" ? undefined : key === Symbol.toPrimitive ? () => "stub" : stub),
  apply: () => stub,
  construct: () => stub,
}) as never;

interface Service {
  name: string;
  doc: () => OpenApiDocument;
  app: () => Hono;
  /** `ALL <prefix>/*` routes that only answer 404 (not an API). */
  fallbacks?: readonly string[];
  /** Served routes that are not API (the dashboard's files). */
  notApi?: (path: string) => boolean;
}

const SERVICES: Service[] = [
  { name: "registry", doc: registryOpenApi, app: () => createRegistryApp(stub), fallbacks: ["/cluster/*"] },
  {
    name: "global metrics",
    doc: metricsOpenApi,
    app: () => createMetricsApp(stub),
    fallbacks: ["/cluster/*"],
  },
  {
    name: "controller",
    doc: controllerOpenApi,
    app: () =>
      createControllerApp({ ctx: stub, registry: stub, scanner: stub, stability: stub, events: stub }),
  },
  {
    name: "gateway",
    doc: gatewayOpenApi,
    app: () => createGatewayApp(stub),
    notApi: (path) => path === "/" || path === "/ui" || path.startsWith("/ui/"),
  },
  { name: "block executor metrics", doc: executorMetricsOpenApi, app: () => createExecutorMetricsApp(stub) },
  {
    name: "block executor management",
    doc: () => mgmtOpenApi("executor", mgmtBuiltins("executor")),
    app: () => createExecutorMgmtApp(stub),
  },
  {
    name: "block auto-scaler management",
    doc: () => mgmtOpenApi("auto-scaler", mgmtBuiltins("sidecar")),
    app: () => createSidecarMgmtApp(stub, "auto-scaler", () => []),
  },
  { name: "block mapper", doc: mapperOpenApi, app: () => createMapperApp(stub) },
];

const METHODS = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

const escapePointer = (s: string) => s.replace(/~/g, "~0").replace(/\//g, "~1");

const resolvePointer = (doc: unknown, ref: string): unknown => {
  if (!ref.startsWith("#/")) return undefined;
  let at: unknown = doc;
  for (const raw of ref.slice(2).split("/")) {
    const key = raw.replace(/~1/g, "/").replace(/~0/g, "~");
    if (at === null || typeof at !== "object" || !Object.hasOwn(at, key)) return undefined;
    at = (at as Record<string, unknown>)[key];
  }
  return at;
};

const refsIn = (value: unknown, out: string[] = []): string[] => {
  if (Array.isArray(value)) for (const v of value) refsIn(v, out);
  else if (value !== null && typeof value === "object") {
    for (const [k, v] of Object.entries(value)) {
      if (k === "$ref" && typeof v === "string") out.push(v);
      else refsIn(v, out);
    }
  }
  return out;
};

type Op = JsonSchema & {
  operationId: string;
  parameters?: JsonSchema[];
  requestBody?: { content: Record<string, { schema?: JsonSchema }> };
  responses: Record<string, { description?: string; content?: Record<string, { schema?: JsonSchema }> }>;
};

const operations = (doc: OpenApiDocument) =>
  Object.entries(doc.paths).flatMap(([path, item]) =>
    Object.entries(item as Record<string, Op>).map(([method, op]) => ({ path, method, op })),
  );

/** JSON pointers of every schema the document embeds. */
const schemaPointers = (doc: OpenApiDocument): string[] => {
  const out = Object.keys(doc.components.schemas).map((n) => `/components/schemas/${escapePointer(n)}`);
  for (const { path, method, op } of operations(doc)) {
    const base = `/paths/${escapePointer(path)}/${method}`;
    for (const [i, p] of (op.parameters ?? []).entries())
      if (p.schema) out.push(`${base}/parameters/${i}/schema`);
    for (const [type, media] of Object.entries(op.requestBody?.content ?? {})) {
      if (media.schema) out.push(`${base}/requestBody/content/${escapePointer(type)}/schema`);
    }
    for (const [status, response] of Object.entries(op.responses)) {
      for (const [type, media] of Object.entries(response.content ?? {})) {
        if (media.schema) out.push(`${base}/responses/${status}/content/${escapePointer(type)}/schema`);
      }
    }
  }
  return out;
};

/** An Ajv holding the document, so embedded schemas compile with their `#/components/...` references. */
const ajvFor = (doc: OpenApiDocument) => {
  const ajv = new Ajv2020({ strict: false, allErrors: true, logger: false });
  addFormats(ajv);
  ajv.addSchema(doc as object, "openapi.json");
  return ajv;
};

const requestValidator = (doc: OpenApiDocument, method: string, path: string, type = "application/json") => {
  const pointer = `/paths/${escapePointer(path)}/${method}/requestBody/content/${escapePointer(type)}/schema`;
  const validate = ajvFor(doc).getSchema(`openapi.json#${pointer}`);
  if (!validate) throw new Error(`no request schema at ${pointer}`);
  return (body: unknown) => validate(body) as boolean;
};

describe("the OpenAPI builder", () => {
  test("named schemas are components, referenced also when nested; 4xx answers are the error body", () => {
    const Item = z.object({ id: z.string(), tags: z.array(z.string()).default([]) });
    const doc = buildOpenApi(
      [
        {
          method: "POST",
          path: "/items/{id}",
          summary: "put",
          params: z.object({ id: z.string().min(2) }),
          query: z.object({ dry: z.boolean().optional(), filters: z.record(z.string(), z.string()) }),
          body: z.object({ item: Item }),
          responses: { 200: { description: "ok", schema: z.array(Item) }, 404: { description: "none" } },
        },
      ],
      { title: "t", version: "1", components: { Item } },
    );
    const op = doc.paths["/items/{id}"]!.post!;
    expect(op.operationId).toBe("postItemsById");
    // Item reads differently as input (tags optional) and output (tags present): two components.
    expect(Object.keys(doc.components.schemas).sort()).toEqual(["Error", "Item", "ItemInput"]);
    expect(JSON.stringify(op.requestBody)).toContain('"#/components/schemas/ItemInput"');
    expect(JSON.stringify(op.responses["200"])).toContain('"#/components/schemas/Item"');
    expect(JSON.stringify(op.responses["404"])).toContain('"#/components/schemas/Error"');
    expect(op.parameters).toEqual([
      { name: "id", in: "path", required: true, schema: { type: "string", minLength: 2 } },
      { name: "dry", in: "query", required: false, schema: { type: "boolean" } },
      {
        name: "filters",
        in: "query",
        required: true,
        schema: {
          type: "object",
          propertyNames: { type: "string" },
          additionalProperties: { type: "string" },
        },
        style: "form",
        explode: true,
      },
    ]);
  });

  test("a recursive schema is extracted under a component name, so its $ref resolves in the document", () => {
    interface Tree {
      children: Tree[];
    }
    const Tree: z.ZodType<Tree> = z.object({ children: z.array(z.lazy(() => Tree)) });
    const doc = buildOpenApi(
      [
        {
          method: "GET",
          path: "/",
          summary: "tree",
          responses: { 200: { description: "ok", schema: Tree } },
        },
      ],
      { title: "t", version: "1" },
    );
    for (const ref of refsIn(doc)) expect(resolvePointer(doc, ref)).toBeDefined();
  });

  test("a route listed twice is a mistake", () => {
    const route = {
      method: "GET" as const,
      path: "/x",
      summary: "x",
      responses: { 200: { description: "ok" } },
    };
    expect(() => buildOpenApi([route, route], { title: "t", version: "1" })).toThrow(/listed twice/);
    expect(defaultOperationId("DELETE", "/cluster-actions/remove-node/{id}")).toBe(
      "deleteClusterActionsRemoveNodeById",
    );
  });
});

describe.each(SERVICES)("$name", (service) => {
  const doc = service.doc();

  test("is an OpenAPI 3.1 document: info, paths, operations, parameters, responses", () => {
    expect(doc.openapi).toBe("3.1.0");
    expect(typeof doc.info.title).toBe("string");
    expect(doc.info.title.length).toBeGreaterThan(0);
    expect(typeof doc.info.version).toBe("string");
    const declaredTags = doc.tags?.map((t) => t.name);
    const ids = new Set<string>();
    expect(Object.keys(doc.paths).length).toBeGreaterThan(0);
    for (const [path, item] of Object.entries(doc.paths)) {
      expect(path).toMatch(/^\//);
      expect(path).not.toMatch(/[:*]/);
      for (const method of Object.keys(item)) expect(METHODS).toContain(method);
    }
    for (const { path, method, op } of operations(doc)) {
      const where = `${method.toUpperCase()} ${path}`;
      expect(typeof op.operationId, where).toBe("string");
      expect(ids.has(op.operationId), `${where}: operationId ${op.operationId} is unique`).toBe(false);
      ids.add(op.operationId);
      expect(typeof op.summary, where).toBe("string");
      if (declaredTags)
        for (const tag of (op.tags ?? []) as string[]) expect(declaredTags, where).toContain(tag);

      const params = op.parameters ?? [];
      const keys = params.map((p) => `${p.in}:${p.name}`);
      expect(new Set(keys).size, `${where}: parameters are unique`).toBe(keys.length);
      for (const p of params) {
        expect(["path", "query", "header", "cookie"], where).toContain(p.in as string);
        expect(typeof p.name, where).toBe("string");
        expect(p.schema, where).toBeDefined();
        if (p.in === "path") expect(p.required, where).toBe(true);
      }
      const inPath = params.filter((p) => p.in === "path").map((p) => p.name);
      expect(inPath, `${where}: path parameters are the template's`).toEqual(pathParamNames(path));

      if (op.requestBody) expect(Object.keys(op.requestBody.content).length, where).toBeGreaterThan(0);
      const statuses = Object.keys(op.responses);
      expect(statuses.length, where).toBeGreaterThan(0);
      for (const status of statuses) {
        expect(status, where).toMatch(/^([1-5]\d\d|[1-5]XX|default)$/);
        expect(typeof op.responses[status]!.description, `${where} ${status}`).toBe("string");
      }
    }
  });

  test("every $ref resolves and every schema compiles as JSON Schema 2020-12", () => {
    const refs = refsIn(doc);
    for (const ref of refs) {
      expect(ref, "references point into components").toMatch(/^#\/components\/schemas\//);
      expect(resolvePointer(doc, ref), ref).toBeDefined();
    }
    const ajv = ajvFor(doc);
    for (const pointer of schemaPointers(doc)) {
      expect(() => ajv.getSchema(`openapi.json#${pointer}`), pointer).not.toThrow();
      expect(ajv.getSchema(`openapi.json#${pointer}`), pointer).toBeFunction();
    }
  });

  test("documents every route the app serves, and serves every route it documents", () => {
    const app = service.app();
    const isApi = (method: string, path: string) =>
      // Global middleware registers as ALL * (and is not a route).
      !(method === "ALL" && (path === "*" || path === "/*")) &&
      !service.fallbacks?.includes(path) &&
      !service.notApi?.(path);
    const served = app.routes
      .map((r) => ({
        method: r.method,
        path: r.path.replace(/:([A-Za-z0-9_]+)(\{[^}]*\})?/g, "{$1}").replace(/(.)\/$/, "$1"),
      }))
      .filter((r) => isApi(r.method, r.path));
    const documented = operations(doc).map(({ path, method }) => ({ method: method.toUpperCase(), path }));

    // A wildcard route (a proxy) is documented by the routes it reaches under its prefix.
    const matches = (s: { method: string; path: string }, d: { method: string; path: string }) =>
      (s.method === "ALL" || s.method === d.method) &&
      (s.path.endsWith("/*") ? d.path.startsWith(s.path.slice(0, -1)) : s.path === d.path);

    const undocumented = served.filter((s) => !documented.some((d) => matches(s, d)));
    expect(undocumented.map((r) => `${r.method} ${r.path}`)).toEqual([]);
    const unserved = documented.filter((d) => !served.some((s) => matches(s, d)));
    expect(unserved.map((r) => `${r.method} ${r.path}`)).toEqual([]);
  });

  test("GET /openapi.json answers this document", async () => {
    const res = await service.app().request("/openapi.json");
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual(JSON.parse(JSON.stringify(doc)));
  });
});

/**
 * Samples and the zod schema that decides them: the document's request schema must agree (for these
 * samples: JSON Schema cannot say everything zod checks, e.g. refinements across fields).
 */
const agree = (
  validate: (body: unknown) => boolean,
  schema: z.ZodType,
  samples: { ok: unknown[]; bad: unknown[] },
) => {
  for (const body of samples.ok) {
    expect(schema.safeParse(body).success, JSON.stringify(body)).toBe(true);
    expect(validate(body), JSON.stringify(body)).toBe(true);
  }
  for (const body of samples.bad) {
    expect(schema.safeParse(body).success, JSON.stringify(body)).toBe(false);
    expect(validate(body), JSON.stringify(body)).toBe(false);
  }
};

describe("request bodies from the README and the specification", () => {
  test("registry: cluster and component documents, queries", () => {
    const doc = registryOpenApi();
    agree(requestValidator(doc, "post", "/clusters"), ClusterSchema, {
      ok: [
        {
          id: "cluster-a",
          regionId: "eu-west",
          nodes: { count: 1, nodeData: [{ id: "node-1", gpus: { count: 2, memory: 80 }, memory: 256 }] },
          config: { urlMap: { controllerService: "http://127.0.0.1:7000" } },
          tags: ["gpu"],
          anything: { kept: true },
        },
      ],
      bad: [
        { regionId: "eu" },
        { id: "has space" },
        { id: "c", gpus: { count: -1 } },
        { id: "c", tags: "gpu" },
      ],
    });
    agree(requestValidator(doc, "post", "/components"), ComponentSchema, {
      ok: [{ componentURI: "model.object-detector:2.0.0-stable", componentInitData: { weights: "w.pt" } }],
      bad: [{ componentURI: "no-version" }, { componentURI: "m:1", tags: [1] }],
    });
    agree(requestValidator(doc, "post", "/clusters/query"), QueryBodySchema, {
      ok: [{ query: { "gpus.count": { $gt: 1 } }, options: { sort: { id: 1 }, limit: 2 } }, {}],
      bad: [{ filter: {} }, { query: [] }],
    });
  });

  test("gateway: the specification's sample block specification", () => {
    const validate = requestValidator(gatewayOpenApi(), "post", "/api/createBlock");
    const values = (SAMPLE_BLOCK_SPEC.body as { spec: { values: Record<string, unknown> } }).spec.values;
    const withValues = (patch: Record<string, unknown>) => ({
      ...SAMPLE_BLOCK_SPEC,
      body: { spec: { values: { ...values, ...patch } } },
    });
    agree(validate, BlockSpecSchema, {
      ok: [SAMPLE_BLOCK_SPEC, withValues({ policyRulesSpec: undefined })],
      bad: [
        withValues({ minInstances: "1" }),
        withValues({ blockComponentURI: "no-version" }),
        withValues({ maxInstances: 0 }),
        { head: {}, body: {} },
      ],
    });
  });

  test("controller: actions, vDAG actions, events, node status", () => {
    const doc = controllerOpenApi();
    agree(requestValidator(doc, "post", "/executeAction"), ExecuteActionSchema, {
      ok: [
        {
          action: "create_block",
          data: {
            id: "demo",
            minInstances: 1,
            maxInstances: 3,
            runtime: { command: ["bun", "examples/sentiment/instance.ts"] },
            policies: { loadBalancer: { policyRuleURI: "policy.loadBalancer.roundrobin:v0.0.1" } },
          },
        },
        { action: "scale", data: { block_id: "demo", operation: "upscale", instances_count: 2 } },
        { action: "scale", data: { block_id: "demo", operation: "downscale", instances_list: ["demo-1"] } },
        { action: "remove_instance", data: { block_id: "demo", instance_id: "demo-1", replace: true } },
        { action: "remove_block", data: { block_id: "demo" } },
        { action: "dry_run", data: { block: { id: "demo" } } },
      ],
      bad: [
        { action: "create_block", data: { id: "demo", maxInstances: 3, runtime: {} } },
        { action: "scale", data: { block_id: "demo", operation: "upscale", instances_count: 0 } },
        { action: "scale", data: { block_id: "demo", operation: "sideways" } },
        { action: "explode", data: {} },
        { data: { block_id: "demo" } },
      ],
    });
    agree(requestValidator(doc, "post", "/vdag-controller"), VdagActionSchema, {
      ok: [
        {
          action: "create_controller",
          payload: { vdag_controller_id: "v1", vdag_uri: "vdag:1", config: { runtime: { command: ["x"] } } },
        },
        { action: "list_controllers" },
      ],
      bad: [{ action: "scale_controller", payload: { vdag_controller_id: "v1", replicas: 101 } }],
    });
    agree(requestValidator(doc, "post", "/events"), BlockEventSchema, {
      ok: [
        {
          block_id: "demo",
          instance_id: "demo-1",
          event_name: "task_done",
          event_data: { seq_no: 1 },
          ts: 1,
        },
      ],
      bad: [{ block_id: "demo", instance_id: "demo-1", event_name: "task_done", event_data: {} }],
    });
    const nodeStatus = requestValidator(doc, "put", "/nodes_status/{id}");
    expect(nodeStatus({ status: null })).toBe(true);
    expect(nodeStatus({ status: "unhealthy" })).toBe(true);
    expect(nodeStatus({ status: "sick" })).toBe(false);
  });

  test("block: the mapper's instances, management commands", () => {
    agree(requestValidator(mapperOpenApi(), "post", "/instances"), InstanceRefSchema, {
      ok: [{ id: "i-1", url: "http://127.0.0.1:8001" }],
      bad: [{ id: "", url: "http://127.0.0.1:8001" }, { id: "i-1" }],
    });
    const mgmt = requestValidator(mgmtOpenApi("executor", mgmtBuiltins("executor")), "post", "/mgmt");
    expect(mgmt({ mgmt_action: "get_instances", mgmt_data: {} })).toBe(true);
    expect(mgmt({ mgmt_data: {} })).toBe(false);
  });
});
