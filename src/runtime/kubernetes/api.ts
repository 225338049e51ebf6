/**
 * The Kubernetes API clients the driver uses and helpers around their errors. Every call goes through
 * `@kubernetes/client-node`'s generated clients, so paths, verbs and content types are the real API's.
 */
import {
  ApiException,
  AppsV1Api,
  CoreV1Api,
  CustomObjectsApi,
  type KubeConfig,
  NetworkingV1Api,
  PatchStrategy,
  setHeaderOptions,
} from "@kubernetes/client-node";

export class KubeApi {
  readonly core: CoreV1Api;
  readonly apps: AppsV1Api;
  readonly networking: NetworkingV1Api;
  readonly custom: CustomObjectsApi;

  constructor(readonly kubeConfig: KubeConfig) {
    this.core = kubeConfig.makeApiClient(CoreV1Api);
    this.apps = kubeConfig.makeApiClient(AppsV1Api);
    this.networking = kubeConfig.makeApiClient(NetworkingV1Api);
    this.custom = kubeConfig.makeApiClient(CustomObjectsApi);
  }
}

/** Options of a patch call sent as a JSON merge patch (the client defaults to JSON Patch). */
export const mergePatch = setHeaderOptions("Content-Type", PatchStrategy.MergePatch);

/** The HTTP status of a failed API call, null for other errors (no answer at all). */
export const statusCode = (err: unknown): number | null => {
  if (err instanceof ApiException) return err.code;
  if (err instanceof KubernetesApiError) return err.status;
  const code = (err as { code?: unknown; statusCode?: unknown } | null)?.statusCode;
  return typeof code === "number" ? code : null;
};

export const isNotFound = (err: unknown): boolean => statusCode(err) === 404;
export const isConflict = (err: unknown): boolean => statusCode(err) === 409;

/** The API server's own words from a failed call (its Status object's message) where there are some. */
export const apiMessage = (err: unknown): string => {
  if (err instanceof ApiException) {
    let body: unknown = err.body;
    const raw = body;
    if (typeof raw === "string") {
      try {
        body = JSON.parse(raw);
      } catch {
        return `HTTP ${err.code}: ${raw.slice(0, 300)}`;
      }
    }
    const message = (body as { message?: unknown } | null)?.message;
    return `HTTP ${err.code}: ${typeof message === "string" ? message : JSON.stringify(body)?.slice(0, 300)}`;
  }
  return err instanceof Error ? err.message : String(err);
};

/** An API call failed: says what the driver was doing and the API server's answer. */
export class KubernetesApiError extends Error {
  override readonly name = "KubernetesApiError";
  readonly status: number | null;

  constructor(action: string, cause: unknown) {
    super(`${action}: ${apiMessage(cause)}`, { cause });
    this.status = statusCode(cause);
  }
}

/** Runs an API call, wrapping failures in a KubernetesApiError naming `action`. */
export const call = async <T>(action: string, fn: () => Promise<T>): Promise<T> => {
  try {
    return await fn();
  } catch (err) {
    throw new KubernetesApiError(action, err);
  }
};

/** Like `call`, but a 404 is null (the object is gone, which is what a delete or a get may find). */
export const callOrNull = async <T>(action: string, fn: () => Promise<T>): Promise<T | null> => {
  try {
    return await fn();
  } catch (err) {
    if (isNotFound(err)) return null;
    throw new KubernetesApiError(action, err);
  }
};
