/**
 * Boundary schemas of the registry APIs. Documents are open: every schema is a loose object (unknown
 * fields are kept as sent) and only the fields the specification shows are type-checked, loosely: a
 * known field is either absent or of the type the specification's example gives it. `null` is not a
 * type of any known field; leave the field out instead.
 */
import { z } from "zod";
import { MAX_ID_LENGTH, versionedUri } from "../store/uri.ts";

/** Ids travel in URL paths: non-empty, bounded, with no character that would end a path segment. */
const ID_PATTERN = /^[^\s/?#\\]+$/;

export const DocumentId = z
  .string()
  .min(1, "must not be empty")
  .max(MAX_ID_LENGTH, `must be at most ${MAX_ID_LENGTH} characters`)
  .regex(ID_PATTERN, "must not contain whitespace, '/', '\\', '?' or '#'");

/**
 * `GET /cluster/query` is a route of the metrics API, so no cluster may be called `query`: its metrics
 * would be unreachable at `GET /cluster/{id}`.
 */
export const RESERVED_CLUSTER_IDS: readonly string[] = ["query"];

export const ClusterId = DocumentId.refine((id) => !RESERVED_CLUSTER_IDS.includes(id), {
  message: "'query' is reserved (GET /cluster/query) and cannot be a cluster id",
});

/** A component URI is `name:version`, e.g. `model.object-detector:2.0.0-stable`. */
export const ComponentUri = versionedUri("model.object-detector:2.0.0-stable");

const count = z.number().int().nonnegative();
const quantity = z.number().nonnegative();
const strings = z.array(z.string());
const anyObject = z.record(z.string(), z.unknown());

const GpuSchema = z.looseObject({
  modelName: z.string().optional(),
  memory: quantity.optional(),
});

const GpusSchema = z.looseObject({
  count: count.optional(),
  memory: quantity.optional(),
  gpus: z.array(GpuSchema).optional(),
  features: strings.optional(),
  modelName: strings.optional(),
});

const VcpusSchema = z.looseObject({ count: count.optional() });

const StorageSchema = z.looseObject({
  disks: count.optional(),
  size: quantity.optional(),
});

const NetworkSchema = z.looseObject({
  interfaces: count.optional(),
  txBandwidth: quantity.optional(),
  rxBandwidth: quantity.optional(),
});

/** The resources a node has, and (summed) a cluster has. */
const resourceFields = {
  gpus: GpusSchema.optional(),
  vcpus: VcpusSchema.optional(),
  memory: quantity.optional(),
  swap: quantity.optional(),
  storage: StorageSchema.optional(),
  network: NetworkSchema.optional(),
};

export const NodeSchema = z.looseObject({
  id: z.string().optional(),
  ...resourceFields,
});

const ClusterConfigSchema = z.looseObject({
  policyExecutorId: z.string().optional(),
  policyExecutionMode: z.string().optional(),
  customPolicySystem: z
    .looseObject({ name: z.string().optional(), version: z.string().optional() })
    .optional(),
  publicHostname: z.string().optional(),
  useGateway: z.boolean().optional(),
  actionsPolicyMap: z.record(z.string(), z.string()).optional(),
  urlMap: z.record(z.string(), z.string()).optional(),
});

const ClusterMetadataSchema = z.looseObject({
  name: z.string().optional(),
  description: z.string().optional(),
  owner: z.string().optional(),
  email: z.string().optional(),
  countries: strings.optional(),
  miscContactInfo: anyObject.optional(),
  additionalInfo: anyObject.optional(),
});

/** A cluster document, as in the cluster-controller specification's example (`cluster_data`). */
export const ClusterSchema = z.looseObject({
  id: ClusterId,
  regionId: z.string().optional(),
  status: z.string().optional(),
  nodes: z
    .looseObject({
      count: count.optional(),
      nodeData: z.array(NodeSchema).optional(),
    })
    .optional(),
  ...resourceFields,
  config: ClusterConfigSchema.optional(),
  tags: strings.optional(),
  clusterMetadata: ClusterMetadataSchema.optional(),
  reputation: z.number().optional(),
});

/**
 * A component: the registered base of blocks. The fields a block inherits from it (the block
 * specification's "Inherited Fields from Component") are checked; the id is the component URI, sent
 * as `componentURI` or `id`, and stored under both.
 */
export const ComponentSchema = z.looseObject({
  id: ComponentUri.optional(),
  componentURI: ComponentUri.optional(),
  componentInitData: anyObject.optional(),
  componentInitSettings: anyObject.optional(),
  componentParameters: anyObject.optional(),
  componentMetadata: anyObject.optional(),
  tags: strings.optional(),
});

/** A cluster's global metrics document: any object; the cluster id comes from the path. */
export const MetricsSchema = z.looseObject({ id: ClusterId.optional() });

/** The body of every `POST .../query`: a MongoDB filter and find options (checked by the store). */
export const QueryBodySchema = z.strictObject({
  query: z.record(z.string(), z.unknown()).optional(),
  options: z.unknown().optional(),
});
export type QueryBody = z.output<typeof QueryBodySchema>;

/** A MongoDB update document: an object whose keys are all `$`-operators (checked further by the store). */
export const UpdateSchema = z.record(z.string(), z.unknown());

/** Unwraps optional/nullable/default wrappers to the schema that checks the value itself. */
const unwrap = (schema: z.ZodType): z.ZodType => {
  let s = schema;
  for (;;) {
    if (s instanceof z.ZodOptional || s instanceof z.ZodNullable) s = s.unwrap() as z.ZodType;
    else if (s instanceof z.ZodDefault) s = s.unwrap() as z.ZodType;
    else return s;
  }
};

/**
 * The schema of the value at a dotted path inside a document schema (`nodes.nodeData.0.memory`),
 * following object shapes and array elements; undefined when the path leaves the known fields.
 */
export const schemaAtPath = (schema: z.ZodType, path: readonly string[]): z.ZodType | undefined => {
  let s: z.ZodType = schema;
  for (const segment of path) {
    const inner = unwrap(s);
    if (inner instanceof z.ZodObject) {
      const shape = inner.shape as Record<string, z.ZodType>;
      if (!Object.hasOwn(shape, segment)) return undefined;
      s = shape[segment]!;
    } else if (inner instanceof z.ZodArray && /^\d+$/.test(segment)) {
      s = inner.element as z.ZodType;
    } else if (inner instanceof z.ZodRecord) {
      s = inner.valueType as z.ZodType;
    } else {
      return undefined;
    }
  }
  return unwrap(s);
};

/** The schema of one element of the array at `path`, when the path is a known array field. */
export const elementSchemaAtPath = (schema: z.ZodType, path: readonly string[]): z.ZodType | undefined => {
  const s = schemaAtPath(schema, path);
  return s instanceof z.ZodArray ? (s.element as z.ZodType) : undefined;
};
