/**
 * The component registry: the components blocks are created from, keyed by their URI `name:version`
 * (e.g. `model.object-detector:2.0.0-stable`). A body names its URI as `componentURI` or `id` (both
 * must agree when both are given); the stored document holds it under both. In a URL the URI is one
 * path segment: `:` may be sent as is or percent-encoded (`%3A`). Responses carry the document or the
 * array of documents as the whole JSON body, like the cluster registry.
 */
import { badRequest, parseWith } from "../http/errors.ts";
import type { Doc, Store } from "../store/index.ts";
import { checkDocumentKeys, type DocumentKind, DocumentRegistry, withPathId } from "./documents.ts";
import { ComponentSchema, ComponentUri } from "./schemas.ts";

export const componentKind: DocumentKind = {
  noun: "component",
  parseId: (id) => parseWith(ComponentUri, id, ["componentURI"]),
  toDocument(body: unknown, pathId?: string): Doc {
    checkDocumentKeys(body);
    const parsed = parseWith(
      ComponentSchema,
      withPathId(withPathId(body, "componentURI", pathId), "id", pathId),
    );
    const { id, componentURI } = parsed;
    if (id !== undefined && componentURI !== undefined && id !== componentURI) {
      throw badRequest("id_mismatch", `id: '${id}' differs from componentURI '${componentURI}'`, {
        path: "id",
      });
    }
    const uri = componentURI ?? id;
    if (uri === undefined) {
      throw badRequest(
        "invalid_input",
        "componentURI: Invalid input: the component URI (name:version) is required",
        {
          path: "componentURI",
        },
      );
    }
    return { ...parsed, id: uri, componentURI: uri };
  },
  schema: ComponentSchema,
  immutable: ["id", "componentURI"],
};

export const componentRegistry = (store: Store): DocumentRegistry =>
  new DocumentRegistry(componentKind, store.collection("components"));
