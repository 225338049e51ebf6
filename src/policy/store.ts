/**
 * The policy store: upload (admission, then the original and instrumented bytes plus metadata),
 * metadata, download, list, delete, and loading a stored policy for the runtime. A stored URI is
 * immutable: uploading the same bytes again is a no-op, other bytes are refused with 409.
 */
import { z } from "zod";
import { ApiError, badRequest, notFound, parseWith } from "../http/errors.ts";
import type { Doc, Store } from "../store/index.ts";
import { StoreError } from "../store/index.ts";
import { versionedUri } from "../store/uri.ts";
import { SANDBOX_DEFAULTS } from "./abi.ts";
import { PolicyError } from "./errors.ts";
import { isPolicyKindName, POLICY_KIND_NAMES, type PolicyKindName } from "./kinds/index.ts";
import {
  type CompiledPolicy,
  compilePolicy,
  type ModuleCache,
  processModuleCache,
  sha256Hex,
} from "./runtime.ts";
import { AdmissionError, admitPolicyModule } from "./wasm/admission.ts";

export const PolicyUri = versionedUri("policy.loadBalancer.roundrobin:v0.0.1");

/** Largest module accepted at upload. */
export const MAX_POLICY_BYTES = 16 * 1024 * 1024;

const MiB = 1024 * 1024;

/** What an uploader states about a module; limits fall back to SANDBOX_DEFAULTS. */
export const PolicyUploadSchema = z.object({
  kind: z.enum(POLICY_KIND_NAMES as [PolicyKindName, ...PolicyKindName[]], {
    error: `must be one of ${POLICY_KIND_NAMES.join(", ")}`,
  }),
  description: z.string().max(4096).optional(),
  fuel: z.coerce.number().int().min(1000).max(2_000_000_000).optional(),
  memory_bytes: z.coerce
    .number()
    .int()
    .min(MiB)
    .max(1024 * MiB)
    .optional(),
  output_bytes: z.coerce
    .number()
    .int()
    .min(1024)
    .max(64 * MiB)
    .optional(),
});
export type PolicyUpload = z.input<typeof PolicyUploadSchema>;

export interface PolicyDoc extends Doc {
  id: string;
  uri: string;
  name: string;
  version: string;
  kind: PolicyKindName;
  description: string;
  /** sha256 of the bytes as uploaded. */
  sha256: string;
  size: number;
  /** sha256 of the instrumented module, the key of its bytes in `policy_modules`. */
  module: string;
  module_size: number;
  exports: string[];
  imports: string[];
  limits: { fuel: number; memory_bytes: number; output_bytes: number };
  memory: { initial_pages: number; max_pages: number };
  created_at: string;
}

/** A stored policy's instrumented module compiled with its stored limits (from the store or the API). */
export const compileStoredPolicy = (
  doc: Pick<PolicyDoc, "uri" | "kind" | "module" | "limits">,
  instrumented: Uint8Array,
  cache: ModuleCache = processModuleCache,
): Promise<CompiledPolicy> =>
  compilePolicy(
    instrumented,
    {
      uri: doc.uri,
      kind: doc.kind,
      hash: doc.module,
      limits: {
        fuel: doc.limits.fuel,
        memoryBytes: doc.limits.memory_bytes,
        outputBytes: doc.limits.output_bytes,
      },
    },
    cache,
  );

export const parsePolicyUri = (uri: string): string => parseWith(PolicyUri, uri, ["uri"]);

const admissionFailure = (err: AdmissionError): ApiError =>
  new ApiError(422, err.code, err.message, err.details ?? null);

export class PolicyStore {
  constructor(
    private readonly store: Store,
    private readonly cache: ModuleCache = processModuleCache,
  ) {}

  private get docs() {
    return this.store.collection("policies");
  }

  /**
   * Admits and stores a module under `uri`. Returns the metadata and whether it was created (false
   * when the same bytes were already stored there).
   */
  async upload(
    uri: string,
    bytes: Uint8Array,
    meta: PolicyUpload,
  ): Promise<{ policy: PolicyDoc; created: boolean }> {
    const id = parsePolicyUri(uri);
    const upload = parseWith(PolicyUploadSchema, meta);
    if (bytes.byteLength === 0) throw badRequest("empty_module", "the request carries no WebAssembly module");
    if (bytes.byteLength > MAX_POLICY_BYTES) {
      throw new ApiError(
        413,
        "payload_too_large",
        `a policy module may be at most ${MAX_POLICY_BYTES} bytes`,
        {
          limit: MAX_POLICY_BYTES,
        },
      );
    }
    const sha256 = await sha256Hex(bytes);
    const existing = await this.find(id);
    if (existing) return { policy: this.sameOrConflict(existing, sha256, upload.kind), created: false };

    const limits = {
      fuel: upload.fuel ?? SANDBOX_DEFAULTS.fuel,
      memory_bytes: upload.memory_bytes ?? SANDBOX_DEFAULTS.memoryBytes,
      output_bytes: upload.output_bytes ?? SANDBOX_DEFAULTS.outputBytes,
    };
    let admitted: ReturnType<typeof admitPolicyModule>;
    try {
      admitted = admitPolicyModule(bytes, { fuel: limits.fuel, memoryBytes: limits.memory_bytes });
    } catch (err) {
      if (err instanceof AdmissionError) throw admissionFailure(err);
      throw err;
    }
    const moduleHash = await sha256Hex(admitted.instrumented);
    await this.store.policyModules.put({
      sha256: moduleHash,
      original: bytes,
      instrumented: admitted.instrumented,
    });
    const [name, version] = splitUri(id);
    const doc: PolicyDoc = {
      id,
      uri: id,
      name,
      version,
      kind: upload.kind,
      description: upload.description ?? "",
      sha256,
      size: bytes.byteLength,
      module: moduleHash,
      module_size: admitted.instrumented.byteLength,
      exports: admitted.exports,
      imports: admitted.imports.map((i) => `${i.module}.${i.name}`),
      limits,
      memory: { initial_pages: admitted.memory.initialPages, max_pages: admitted.memory.maxPages },
      created_at: new Date().toISOString(),
    };
    try {
      await this.docs.insert(doc);
    } catch (err) {
      // Lost a race with another upload of this URI: same answer as if it had come first.
      if (err instanceof StoreError && err.status === 409) {
        const winner = await this.find(id);
        if (winner) return { policy: this.sameOrConflict(winner, sha256, upload.kind), created: false };
      }
      throw err;
    }
    return { policy: doc, created: true };
  }

  async get(uri: string): Promise<PolicyDoc> {
    const id = parsePolicyUri(uri);
    const doc = await this.find(id);
    if (!doc) throw notFound(`no policy '${id}'`, { uri: id });
    return doc;
  }

  /** The module bytes as uploaded (`original`) or as run (`instrumented`). */
  async download(uri: string, form: "original" | "instrumented" = "original"): Promise<Uint8Array> {
    const doc = await this.get(uri);
    const bytes = await this.store.policyModules.get(doc.module, form);
    if (!bytes) throw notFound(`the module of policy '${doc.uri}' is missing`, { uri: doc.uri });
    return bytes;
  }

  async list(query: { kind?: string; limit?: number; skip?: number } = {}): Promise<PolicyDoc[]> {
    if (query.kind !== undefined && !isPolicyKindName(query.kind)) {
      throw badRequest("invalid_kind", `kind: must be one of ${POLICY_KIND_NAMES.join(", ")}`, {
        path: "kind",
      });
    }
    const filter = query.kind ? { kind: query.kind } : {};
    return (await this.docs.find(filter, {
      sort: { id: 1 },
      limit: query.limit ?? 1000,
      skip: query.skip,
    })) as PolicyDoc[];
  }

  async delete(uri: string): Promise<{ uri: string; deleted: true }> {
    const doc = await this.get(uri);
    await this.docs.delete(doc.id);
    await this.store.policyModules.deleteUnreferenced(doc.module);
    return { uri: doc.id, deleted: true };
  }

  /** The stored policy compiled for the runtime (compiled modules are cached by hash). */
  async compiled(uri: string): Promise<CompiledPolicy> {
    const doc = await this.find(parsePolicyUri(uri));
    if (!doc) throw new PolicyError("not_found", uri, "no policy is stored under this URI");
    const bytes = await this.store.policyModules.get(doc.module, "instrumented");
    if (!bytes) throw notFound(`the module of policy '${doc.uri}' is missing`, { uri: doc.uri });
    return compileStoredPolicy(doc, bytes, this.cache);
  }

  private async find(id: string): Promise<PolicyDoc | null> {
    return (await this.docs.get(id)) as PolicyDoc | null;
  }

  private sameOrConflict(existing: PolicyDoc, sha256: string, kind: PolicyKindName): PolicyDoc {
    if (existing.sha256 !== sha256) {
      throw new ApiError(
        409,
        "policy_exists",
        `policy '${existing.uri}' is stored with other bytes; versions are immutable, upload under a new version`,
        {
          uri: existing.uri,
          sha256: existing.sha256,
        },
      );
    }
    if (existing.kind !== kind) {
      throw new ApiError(
        409,
        "policy_exists",
        `policy '${existing.uri}' is stored as kind ${existing.kind}, not ${kind}`,
        {
          uri: existing.uri,
          kind: existing.kind,
        },
      );
    }
    return existing;
  }
}

const splitUri = (uri: string): [string, string] => {
  const at = uri.lastIndexOf(":");
  return [uri.slice(0, at), uri.slice(at + 1)];
};
