/**
 * OpenAPI 3.1 documents from route tables whose shapes are the services' own zod schemas (the ones
 * that validate the requests), so a document cannot drift from what a service accepts.
 *
 * A table lists `RouteSpec`s; `buildOpenApi` turns them into a document. Schemas given in
 * `components` are emitted once under `components.schemas` and referenced wherever they occur, also
 * nested inside other schemas. When a named schema reads differently as a request (zod's input side:
 * defaults optional, unknown keys allowed) and as an answer (output side), and the document uses both,
 * the request side is named `<Name>Input`. A 4xx or 5xx response without a schema is the common error
 * body of src/http/errors.ts. Pure: no server, no I/O.
 */
import { z } from "zod";

export type HttpMethod = "GET" | "POST" | "PUT" | "PATCH" | "DELETE" | "HEAD" | "OPTIONS";

export type JsonSchema = { [key: string]: unknown };

/** A zod schema, or a JSON Schema for what zod does not describe (module bytes, Prometheus text). */
export type SchemaSource = z.ZodType | JsonSchema;

export interface MediaSpec {
  contentType: string;
  schema?: SchemaSource;
}

/** A zod schema (sent as application/json), one media type, or alternatives. */
export type ContentSpec = z.ZodType | MediaSpec | readonly MediaSpec[];

export interface ResponseSpec {
  description: string;
  schema?: ContentSpec;
}

export interface RouteSpec {
  method: HttpMethod;
  /** OpenAPI style: `/clusters/{id}`. */
  path: string;
  summary: string;
  description?: string;
  /** Default: from the method and the path (`GET /clusters/{id}` -> `getClustersById`). */
  operationId?: string;
  tags?: readonly string[];
  /** The path parameters; a `{name}` it does not list is a string. */
  params?: z.ZodObject;
  query?: z.ZodObject;
  body?: ContentSpec;
  bodyDescription?: string;
  /** Default true when there is a body. */
  bodyRequired?: boolean;
  /** By status code (`200`, `404`) or `default`. */
  responses: Readonly<Record<string, ResponseSpec>>;
}

export interface OpenApiOptions {
  title: string;
  version: string;
  description?: string;
  servers?: readonly { url: string; description?: string }[];
  tags?: readonly { name: string; description?: string }[];
  /** Shared schemas by component name. */
  components?: Readonly<Record<string, z.ZodType>>;
}

export type Operation = JsonSchema & { operationId: string; responses: Record<string, JsonSchema> };

export interface OpenApiDocument {
  openapi: "3.1.0";
  info: { title: string; version: string; description?: string };
  servers?: { url: string; description?: string }[];
  tags?: { name: string; description?: string }[];
  paths: Record<string, Partial<Record<Lowercase<HttpMethod>, Operation>>>;
  components: { schemas: Record<string, JsonSchema> };
}

/** The error body every aios service answers (src/http/errors.ts, `ApiError.toBody`). */
export const ErrorBodySchema = z.object({
  error: z.object({
    code: z.string(),
    message: z.string(),
    details: z.unknown(),
  }),
});

export const ERROR_COMPONENT = "Error";

export const COMPONENTS_PREFIX = "#/components/schemas/";

type Io = "input" | "output";

const isZod = (s: unknown): s is z.ZodType => typeof s === "object" && s !== null && "_zod" in s;

const isMediaList = (c: ContentSpec): c is readonly MediaSpec[] => Array.isArray(c);

/** Applies `fn` to every `$ref` string in a JSON value, in place. */
const mapRefs = (value: unknown, fn: (ref: string) => string): void => {
  if (Array.isArray(value)) {
    for (const v of value) mapRefs(v, fn);
  } else if (value !== null && typeof value === "object") {
    const o = value as Record<string, unknown>;
    for (const [k, v] of Object.entries(o)) {
      if (k === "$ref" && typeof v === "string") o[k] = fn(v);
      else mapRefs(v, fn);
    }
  }
};

const DEFS_PREFIX = "#/$defs/";
/** A reference to a named schema before its final name is known: `@input:Cluster`. */
const placeholder = (io: Io, id: string) => `@${io}:${id}`;
const PLACEHOLDER = /^@(input|output):(.+)$/;

/**
 * Named schemas as zod's metadata: the component name as `id` (zod then references them instead of
 * inlining), over whatever `.meta()`/`.describe()` put in the global registry. zod only calls `get`.
 */
const componentMetadata = (names: ReadonlyMap<z.ZodType, string>) =>
  ({
    get(schema: z.ZodType) {
      const { id: _, ...global } = (z.globalRegistry.get(schema) ?? {}) as { id?: string };
      const id = names.get(schema);
      const meta = id === undefined ? global : { ...global, id };
      return Object.keys(meta).length > 0 ? meta : undefined;
    },
  }) as unknown as z.core.$ZodRegistry<z.core.JSONSchemaMeta>;

/** Converts zod schemas, collecting the named ones they reference. */
class SchemaConverter {
  readonly #schemas = new Map<string, z.ZodType>();
  readonly #metadata: z.core.$ZodRegistry<z.core.JSONSchemaMeta>;
  /** Per named schema, its definition on each side it was used on (references as placeholders). */
  readonly #used = new Map<string, Map<Io, JsonSchema>>();
  /** Schemas zod extracted without a name (recursive ones), already final. */
  readonly #anonymous: Record<string, JsonSchema> = {};
  #anonymousCount = 0;
  readonly #differs = new Map<string, boolean>();

  constructor(components: Readonly<Record<string, z.ZodType>>) {
    const names = new Map<z.ZodType, string>();
    for (const [name, schema] of Object.entries(components)) {
      if (names.has(schema)) throw new Error(`openapi: ${name} and ${names.get(schema)} are the same schema`);
      names.set(schema, name);
      this.#schemas.set(name, schema);
    }
    this.#metadata = componentMetadata(names);
  }

  #toJson(schema: z.ZodType, io: Io): JsonSchema {
    return z.toJSONSchema(schema, {
      target: "draft-2020-12",
      io,
      unrepresentable: "any",
      cycles: "ref",
      metadata: this.#metadata,
    }) as JsonSchema;
  }

  /** A JSON Schema for an OpenAPI document; named schemas referenced as placeholders until `finish`. */
  convert(source: SchemaSource, io: Io): JsonSchema {
    if (!isZod(source)) return structuredClone(source);
    const json = this.#toJson(source, io);
    const defs = (json.$defs ?? {}) as Record<string, JsonSchema>;
    delete json.$defs;
    delete json.$schema;
    const local = new Map<string, string>();
    for (const id of Object.keys(defs)) if (!this.#schemas.has(id)) local.set(id, this.#anonymousName());
    // A schema that contains itself refers to its root as `#`, which in a document is the document.
    let self: string | undefined;
    const rewrite = (ref: string) => {
      if (ref === "#") {
        self ??= this.#anonymousName();
        return COMPONENTS_PREFIX + self;
      }
      if (!ref.startsWith(DEFS_PREFIX)) return ref;
      const id = ref.slice(DEFS_PREFIX.length).replace(/~1/g, "/").replace(/~0/g, "~");
      const anonymous = local.get(id);
      return anonymous ? COMPONENTS_PREFIX + anonymous : placeholder(io, id);
    };
    for (const [id, def] of Object.entries(defs)) {
      mapRefs(def, rewrite);
      const anonymous = local.get(id);
      if (anonymous) this.#anonymous[anonymous] = def;
      else {
        const sides = this.#used.get(id) ?? new Map<Io, JsonSchema>();
        sides.set(io, def);
        this.#used.set(id, sides);
      }
    }
    mapRefs(json, rewrite);
    if (self === undefined) return json;
    this.#anonymous[self] = json;
    return { $ref: COMPONENTS_PREFIX + self };
  }

  #anonymousName(): string {
    return `Schema${++this.#anonymousCount}`;
  }

  isUsed(name: string): boolean {
    return this.#used.has(name);
  }

  /** Whether a named schema (with everything it references) reads differently as input and output. */
  #differsAcrossSides(id: string): boolean {
    let differs = this.#differs.get(id);
    if (differs === undefined) {
      const schema = this.#schemas.get(id)!;
      differs =
        JSON.stringify(this.#toJson(schema, "input")) !== JSON.stringify(this.#toJson(schema, "output"));
      this.#differs.set(id, differs);
    }
    return differs;
  }

  #nameOf(id: string, io: Io): string {
    const sides = this.#used.get(id);
    return io === "input" && sides?.size === 2 && this.#differsAcrossSides(id) ? `${id}Input` : id;
  }

  /** Gives every placeholder in `doc` its final component name; answers `components.schemas`. */
  finish(doc: unknown): Record<string, JsonSchema> {
    const final = (ref: string) => {
      const m = PLACEHOLDER.exec(ref);
      return m ? COMPONENTS_PREFIX + this.#nameOf(m[2]!, m[1] as Io) : ref;
    };
    const schemas: Record<string, JsonSchema> = {};
    for (const [id, sides] of this.#used) {
      for (const [io, def] of sides) {
        const name = this.#nameOf(id, io);
        if (schemas[name]) continue;
        mapRefs(def, final);
        schemas[name] = def;
      }
    }
    Object.assign(schemas, this.#anonymous);
    mapRefs(doc, final);
    return Object.fromEntries(Object.entries(schemas).sort(([a], [b]) => a.localeCompare(b)));
  }
}

const words = (s: string) => s.split(/[^A-Za-z0-9]+/).filter(Boolean);
const pascal = (s: string) =>
  words(s)
    .map((w) => w[0]!.toUpperCase() + w.slice(1))
    .join("");

/** `GET /clusters/{id}/wasm` -> `getClustersByIdWasm`. */
export const defaultOperationId = (method: HttpMethod, path: string): string => {
  const parts = path
    .split("/")
    .filter(Boolean)
    .map((segment) => {
      const param = /^\{(.+)\}$/.exec(segment);
      return param ? `By${pascal(param[1]!)}` : pascal(segment);
    });
  return method.toLowerCase() + (parts.length > 0 ? parts.join("") : "Root");
};

/** The `{name}`s of a path template, in order. */
export const pathParamNames = (path: string): string[] =>
  [...path.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]!);

/** A parameter; its schema's description moves to the parameter, where tools show it. */
const parameter = (
  name: string,
  where: "path" | "query",
  required: boolean,
  schema: JsonSchema,
): JsonSchema => {
  const { description, ...rest } = schema;
  return {
    name,
    in: where,
    required,
    schema: rest,
    ...(typeof description === "string" ? { description } : {}),
  };
};

const objectParts = (json: JsonSchema) => ({
  properties: (json.properties ?? {}) as Record<string, JsonSchema>,
  required: new Set((json.required ?? []) as string[]),
});

export const buildOpenApi = (routes: readonly RouteSpec[], options: OpenApiOptions): OpenApiDocument => {
  const components = { [ERROR_COMPONENT]: ErrorBodySchema, ...options.components };
  const converter = new SchemaConverter(components);

  const content = (spec: ContentSpec, io: Io): Record<string, { schema?: JsonSchema }> => {
    const media: readonly MediaSpec[] = isZod(spec)
      ? [{ contentType: "application/json", schema: spec }]
      : isMediaList(spec)
        ? spec
        : [spec as MediaSpec];
    return Object.fromEntries(
      media.map((m) => [
        m.contentType,
        m.schema === undefined ? {} : { schema: converter.convert(m.schema, io) },
      ]),
    );
  };

  const parameters = (route: RouteSpec): JsonSchema[] => {
    const out: JsonSchema[] = [];
    const path = route.params ? objectParts(converter.convert(route.params, "input")) : null;
    for (const name of pathParamNames(route.path)) {
      out.push(parameter(name, "path", true, path?.properties[name] ?? { type: "string" }));
    }
    if (route.query) {
      const { properties, required } = objectParts(converter.convert(route.query, "input"));
      for (const [name, schema] of Object.entries(properties)) {
        const param = parameter(name, "query", required.has(name), schema);
        // An object-valued parameter stands for free-form `key=value` pairs (OpenAPI's form/explode).
        out.push(schema.type === "object" ? { ...param, style: "form", explode: true } : param);
      }
    }
    return out;
  };

  const paths: OpenApiDocument["paths"] = {};
  const operationIds = new Set<string>();
  for (const route of routes) {
    const method = route.method.toLowerCase() as Lowercase<HttpMethod>;
    paths[route.path] ??= {};
    const item = paths[route.path]!;
    if (item[method]) throw new Error(`openapi: ${route.method} ${route.path} is listed twice`);
    const operationId = route.operationId ?? defaultOperationId(route.method, route.path);
    if (operationIds.has(operationId)) throw new Error(`openapi: operationId ${operationId} is used twice`);
    operationIds.add(operationId);

    const responses: Record<string, JsonSchema> = {};
    for (const [status, response] of Object.entries(route.responses)) {
      const schema = response.schema ?? (/^[45]/.test(status) ? ErrorBodySchema : undefined);
      responses[status] = {
        description: response.description,
        ...(schema === undefined ? {} : { content: content(schema, "output") }),
      };
    }
    const params = parameters(route);
    item[method] = {
      operationId,
      summary: route.summary,
      ...(route.description ? { description: route.description } : {}),
      ...(route.tags && route.tags.length > 0 ? { tags: [...route.tags] } : {}),
      ...(params.length > 0 ? { parameters: params } : {}),
      ...(route.body === undefined
        ? {}
        : {
            requestBody: {
              required: route.bodyRequired ?? true,
              ...(route.bodyDescription ? { description: route.bodyDescription } : {}),
              content: content(route.body, "input"),
            },
          }),
      responses,
    };
  }

  // Shared schemas no route used are still listed: they are part of the contract (e.g. views).
  for (const [name, schema] of Object.entries(components)) {
    if (!converter.isUsed(name)) converter.convert(schema, "output");
  }
  const doc: OpenApiDocument = {
    openapi: "3.1.0",
    info: {
      title: options.title,
      version: options.version,
      ...(options.description ? { description: options.description } : {}),
    },
    ...(options.servers ? { servers: options.servers.map((s) => ({ ...s })) } : {}),
    ...(options.tags ? { tags: options.tags.map((t) => ({ ...t })) } : {}),
    paths,
    components: { schemas: {} },
  };
  doc.components.schemas = converter.finish(doc.paths);
  return doc;
};

/** `GET /openapi.json`, which every service serving its document lists too. */
export const openApiJsonRoute = (tags?: readonly string[]): RouteSpec => ({
  method: "GET",
  path: "/openapi.json",
  summary: "This document",
  ...(tags ? { tags } : {}),
  responses: {
    200: {
      description: "the service's OpenAPI 3.1 document",
      schema: { contentType: "application/json", schema: { type: "object" } },
    },
  },
});

/** Builds a document once, on first use (tables reference schemas of modules that import them). */
export const lazyDocument = (build: () => OpenApiDocument): (() => OpenApiDocument) => {
  let doc: OpenApiDocument | undefined;
  return () => {
    doc ??= build();
    return doc;
  };
};
