/**
 * The cluster registry: cluster documents (the cluster-controller specification's `cluster_data`) keyed
 * by their `id`. The REST routes return the document, or the array of documents, as the whole JSON body
 * (no envelope), because the specification's Python `ClusterClient` returns `response.json()` as is.
 */
import { parseWith } from "../http/errors.ts";
import type { Doc, Store } from "../store/index.ts";
import { checkDocumentKeys, type DocumentKind, DocumentRegistry, withPathId } from "./documents.ts";
import { ClusterId, ClusterSchema } from "./schemas.ts";

export const clusterKind: DocumentKind = {
  noun: "cluster",
  parseId: (id) => parseWith(ClusterId, id, ["id"]),
  toDocument(body: unknown, pathId?: string): Doc {
    checkDocumentKeys(body);
    return parseWith(ClusterSchema, withPathId(body, "id", pathId)) as Doc;
  },
  schema: ClusterSchema,
  immutable: ["id"],
};

export const clusterRegistry = (store: Store): DocumentRegistry =>
  new DocumentRegistry(clusterKind, store.collection("clusters"));
