/**
 * Reading a policy upload from a request: the module bytes as the whole body (`application/wasm` or
 * `application/octet-stream`, metadata in the query: `kind`, `description`, `fuel`, `memory_bytes`,
 * `output_bytes`), or a multipart form with the module in a file field (`module`, `wasm` or `file`)
 * and the same metadata as fields (and `uri` when the path does not give it).
 */
import { ApiError, badRequest, readBodyBytes } from "../http/errors.ts";
import { MAX_POLICY_BYTES, type PolicyUpload } from "../policy/store.ts";

export interface PolicyUploadRequest {
  uri: string;
  bytes: Uint8Array;
  meta: PolicyUpload;
}

const META_FIELDS = ["kind", "description", "fuel", "memory_bytes", "output_bytes"] as const;
const FILE_FIELDS = ["module", "wasm", "file"] as const;
/** Room for the form's boundaries and fields around the largest module. */
const FORM_OVERHEAD = 64 * 1024;

const pickMeta = (get: (name: string) => string | undefined): PolicyUpload => {
  const meta: Record<string, string> = {};
  for (const field of META_FIELDS) {
    const value = get(field);
    if (value !== undefined && value !== "") meta[field] = value;
  }
  return meta as unknown as PolicyUpload;
};

const fromForm = async (req: Request, pathUri?: string): Promise<PolicyUploadRequest> => {
  const body = await readBodyBytes(req, MAX_POLICY_BYTES + FORM_OVERHEAD);
  let form: FormData;
  try {
    form = await new Response(body as Uint8Array<ArrayBuffer>, {
      headers: { "content-type": req.headers.get("content-type") ?? "" },
    }).formData();
  } catch {
    throw badRequest("invalid_form", "the multipart form could not be parsed");
  }
  const field = (name: string) => {
    const value = form.get(name);
    return typeof value === "string" ? value : undefined;
  };
  const file = FILE_FIELDS.map((name) => form.get(name)).find((v) => v !== null && typeof v !== "string");
  if (!file || typeof file === "string") {
    throw badRequest(
      "missing_module",
      `the form needs the module as a file field (${FILE_FIELDS.join(", ")})`,
      {
        path: "module",
      },
    );
  }
  const uri = pathUri ?? field("uri");
  if (!uri) throw badRequest("missing_uri", "the form needs a 'uri' field (name:version)", { path: "uri" });
  return { uri, bytes: new Uint8Array(await file.arrayBuffer()), meta: pickMeta(field) };
};

export const readPolicyUpload = async (
  req: Request,
  query: Record<string, string>,
  pathUri?: string,
): Promise<PolicyUploadRequest> => {
  const type = (req.headers.get("content-type") ?? "").split(";")[0]?.trim().toLowerCase() ?? "";
  if (type === "multipart/form-data") return fromForm(req, pathUri);
  if (
    type === "application/json" ||
    type === "application/x-www-form-urlencoded" ||
    type.startsWith("text/")
  ) {
    throw new ApiError(
      415,
      "unsupported_media_type",
      `send the module as application/wasm (metadata in the query) or as a multipart form, not ${type}`,
    );
  }
  const uri = pathUri ?? query.uri;
  if (!uri) throw badRequest("missing_uri", "give the policy URI in the path: PUT /policies/{name:version}");
  const bytes = await readBodyBytes(req, MAX_POLICY_BYTES);
  return { uri, bytes, meta: pickMeta((name) => query[name]) };
};
