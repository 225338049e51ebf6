/**
 * One document table per collection: the document in `doc` (JSONB), its id, timestamps and a version
 * bumped on every write (optimistic concurrency for callers that read, decide, then write).
 * The GIN jsonb_path_ops index serves the `@@` jsonpath predicates the Mongo filter compiles to.
 */
import { sql } from "drizzle-orm";
import { customType, index, integer, jsonb, pgTable, text, timestamp } from "drizzle-orm/pg-core";

const documentColumns = () => ({
  id: text("id").primaryKey(),
  doc: jsonb("doc").notNull(),
  version: integer("version").notNull().default(1),
  createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
  updatedAt: timestamp("updated_at", { withTimezone: true }).notNull().defaultNow(),
});

const documentTable = <N extends string>(name: N) =>
  pgTable(name, documentColumns(), (t) => [
    index(`${name}_doc_gin`).using("gin", sql`${t.doc} jsonb_path_ops`),
  ]);

const tsvector = customType<{ data: string }>({ dataType: () => "tsvector" });

/** The text search configuration of `search_vector` (queries must name the same one to use the index). */
export const SEARCH_CONFIG = "english";

/**
 * A document table with full-text search: `search_vector` holds the words of every string value of the
 * document (keys and numbers left out), kept by PostgreSQL itself, so a search ranks rows without
 * re-parsing their documents; its GIN index finds the rows that contain a word.
 */
const searchableDocumentTable = <N extends string>(name: N) =>
  pgTable(
    name,
    {
      ...documentColumns(),
      searchVector: tsvector("search_vector")
        .notNull()
        .generatedAlwaysAs(sql.raw(`to_tsvector('${SEARCH_CONFIG}'::regconfig, doc)`)),
    },
    (t) => [
      index(`${name}_doc_gin`).using("gin", sql`${t.doc} jsonb_path_ops`),
      index(`${name}_search_gin`).using("gin", t.searchVector),
    ],
  );

/** Cluster documents are searched by similarity (the resource allocator's `search`). */
export const clusters = searchableDocumentTable("clusters");
export const components = documentTable("components");
export const blocks = documentTable("blocks");
export const policies = documentTable("policies");
export const vdagControllers = documentTable("vdag_controllers");
export const clusterMetrics = documentTable("cluster_metrics");
/** What the process runtime started (instances, block services, vDAG replicas), so a restart adopts it. */
export const runtimeProcesses = documentTable("runtime_processes");
/** The gateway's record of each block it was asked to create: where the creation is, and why it failed. */
export const blockCreations = documentTable("block_creations");
/** Block events whose policy failed, kept for the operator (the queue moves on). */
export const eventFailures = documentTable("event_failures");
/** API tokens: name, scopes and the sha256 of the secret; the secret itself is never stored. */
export const apiTokens = documentTable("api_tokens");
/** Every state-changing call: who, what, when, outcome (src/auth/audit.ts). */
export const auditLog = documentTable("audit_log");
/** A cluster controller's operator verdicts on its nodes (`PUT /nodes_status/{id}`), kept across restarts. */
export const nodeOverrides = documentTable("node_overrides");
/** What a cluster controller's scanner healed (or failed to): replacements, evacuations, restarts. */
export const healingLog = documentTable("healing_log");

const bytea = customType<{ data: Uint8Array; driverData: Uint8Array }>({ dataType: () => "bytea" });

/**
 * Policy modules, content-addressed by the sha256 of the instrumented bytes (what runs); the
 * metadata lives in the `policies` collection, whose documents name their module by this hash.
 */
export const policyModules = pgTable("policy_modules", {
  sha256: text("sha256").primaryKey(),
  original: bytea("original").notNull(),
  instrumented: bytea("instrumented").notNull(),
  createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
});

export const COLLECTIONS = {
  clusters,
  components,
  blocks,
  policies,
  vdag_controllers: vdagControllers,
  cluster_metrics: clusterMetrics,
  runtime_processes: runtimeProcesses,
  event_failures: eventFailures,
  block_creations: blockCreations,
  api_tokens: apiTokens,
  audit_log: auditLog,
  node_overrides: nodeOverrides,
  healing_log: healingLog,
} as const;

export type CollectionName = keyof typeof COLLECTIONS;
export const COLLECTION_NAMES = Object.keys(COLLECTIONS) as CollectionName[];

/** The collections with a `search_vector` column (DocumentCollection.search). */
export const SEARCHABLE_COLLECTIONS: readonly CollectionName[] = ["clusters"];
