/**
 * A FAKE Kubernetes API server, for tests only. It stands in for a real API server, which cannot run
 * here: a real HTTP server answering the real API paths of the resources the Kubernetes driver uses
 * (pods and their logs and evictions, nodes, ConfigMaps, Secrets, Services, Deployments and their scale,
 * Ingresses), with the verbs create, get, list, watch (`?watch=true`, JSON lines), merge patch and
 * delete, `Status` objects with the real codes (401, 404, 409, 410, 415, 422, 429), resource versions,
 * label and field selectors, and owner-reference garbage collection.
 *
 * Every object created or patched is validated against the Kubernetes OpenAPI schemas
 * (`kubernetes-models`, validate.ts) and refused with a 422 when it does not validate, so every call
 * the driver makes is checked.
 *
 * What a cluster would do by itself is played by small stand-ins the tests drive:
 * - the Deployment controller creates a Deployment's pods directly (no ReplicaSet) and keeps its status;
 * - the scheduler and kubelet (`kubelet` mode "ready") bind a pod to the node its affinity names, give it
 *   an IP and make it Running and Ready; in "manual" mode the test sets pod statuses itself.
 */
import { randomUUID } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { knownKind, validateObject } from "./validate.ts";

// biome-ignore lint/suspicious/noExplicitAny: Kubernetes objects are free-form JSON here.
export type Obj = Record<string, any>;

interface ResourceType {
  group: string;
  version: string;
  kind: string;
  namespaced: boolean;
}

const RESOURCES: Record<string, ResourceType> = {
  pods: { group: "", version: "v1", kind: "Pod", namespaced: true },
  nodes: { group: "", version: "v1", kind: "Node", namespaced: false },
  configmaps: { group: "", version: "v1", kind: "ConfigMap", namespaced: true },
  secrets: { group: "", version: "v1", kind: "Secret", namespaced: true },
  services: { group: "", version: "v1", kind: "Service", namespaced: true },
  deployments: { group: "apps", version: "v1", kind: "Deployment", namespaced: true },
  ingresses: { group: "networking.k8s.io", version: "v1", kind: "Ingress", namespaced: true },
};

const apiVersionOf = (r: ResourceType) => (r.group ? `${r.group}/${r.version}` : r.version);

export interface WatchEvent {
  type: "ADDED" | "MODIFIED" | "DELETED";
  plural: string;
  object: Obj;
  rv: number;
}

interface Watcher {
  plural: string;
  namespace: string | null;
  labelSelector: string | null;
  fieldSelector: string | null;
  res: ServerResponse;
}

export interface RecordedRequest {
  method: string;
  path: string;
  query: Record<string, string>;
  contentType: string | undefined;
  body: unknown;
}

/** `a=b,c!=d,e,!f` (equality, inequality, existence); set-based selectors are not used by the driver. */
export const matchesLabels = (labels: Record<string, string> | undefined, sel: string | null): boolean => {
  if (!sel) return true;
  const l = labels ?? {};
  return sel
    .split(",")
    .map((t) => t.trim())
    .filter(Boolean)
    .every((term) => {
      const ne = term.indexOf("!=");
      if (ne > 0) return l[term.slice(0, ne)] !== term.slice(ne + 2);
      const eq = term.indexOf("=");
      if (eq > 0) return l[term.slice(0, eq)] === term.slice(eq + (term[eq + 1] === "=" ? 2 : 1));
      if (term.startsWith("!")) return !(term.slice(1) in l);
      return term in l;
    });
};

const fieldValue = (obj: Obj, path: string): unknown =>
  path.split(".").reduce<unknown>((o, k) => (o && typeof o === "object" ? (o as Obj)[k] : undefined), obj);

const matchesFields = (obj: Obj, sel: string | null): boolean =>
  !sel ||
  sel.split(",").every((term) => {
    const [k = "", v = ""] = term.split("=");
    return String(fieldValue(obj, k) ?? "") === v;
  });

/** RFC 7386 JSON merge patch. */
export const mergePatch = (target: unknown, patch: unknown): unknown => {
  if (patch === null || typeof patch !== "object" || Array.isArray(patch)) return patch;
  const out: Obj =
    target && typeof target === "object" && !Array.isArray(target) ? { ...(target as Obj) } : {};
  for (const [k, v] of Object.entries(patch as Obj)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
};

const clone = <T>(v: T): T => JSON.parse(JSON.stringify(v)) as T;

const REASONS: Record<number, string> = {
  400: "BadRequest",
  401: "Unauthorized",
  404: "NotFound",
  405: "MethodNotAllowed",
  409: "AlreadyExists",
  410: "Expired",
  415: "UnsupportedMediaType",
  422: "Invalid",
  429: "TooManyRequests",
};

export const statusObject = (code: number, message: string, details: Obj = {}): Obj => ({
  kind: "Status",
  apiVersion: "v1",
  metadata: {},
  status: "Failure",
  message,
  reason: REASONS[code] ?? "InternalError",
  details,
  code,
});

class HttpError extends Error {
  constructor(
    readonly code: number,
    message: string,
    readonly details: Obj = {},
  ) {
    super(message);
  }
}

export interface FakeApiServerOptions {
  /** The bearer token a request must carry; default "fake-token". */
  token?: string;
  /** "ready" (default): pods become Running and Ready on their node; "manual": the test decides. */
  kubelet?: "ready" | "manual";
  /** Delay before the kubelet stand-in starts a pod; default 20 ms. */
  kubeletDelayMs?: number;
}

export class FakeApiServer {
  readonly token: string;
  kubelet: "ready" | "manual";
  kubeletDelayMs: number;
  readonly requests: RecordedRequest[] = [];
  /** Pod logs by `namespace/name`. */
  readonly logs = new Map<string, string[]>();
  /** Evictions refused with 429 (a PodDisruptionBudget), per `namespace/name`: how many more times. */
  readonly refuseEvictions = new Map<string, number>();
  /** Node usage served at metrics.k8s.io; null: the API is absent (404). */
  nodeMetrics: Obj[] | null = null;
  /** Validation failures of requests (also answered 422), for assertions. */
  readonly invalid: string[] = [];
  #server: Server | null = null;
  #rv = 1;
  readonly #objects = new Map<string, Obj>();
  readonly #history: WatchEvent[] = [];
  readonly #watchers = new Set<Watcher>();
  #ipCounter = 10;
  url = "";

  constructor(options: FakeApiServerOptions = {}) {
    this.token = options.token ?? "fake-token";
    this.kubelet = options.kubelet ?? "ready";
    this.kubeletDelayMs = options.kubeletDelayMs ?? 20;
  }

  async start(): Promise<this> {
    this.#server = createServer((req, res) => {
      void this.#handle(req, res);
    });
    await new Promise<void>((resolve) => this.#server?.listen(0, "127.0.0.1", resolve));
    const addr = this.#server.address();
    if (!addr || typeof addr === "string") throw new Error("no address");
    this.url = `http://127.0.0.1:${addr.port}`;
    return this;
  }

  async stop(): Promise<void> {
    this.closeWatches();
    this.#server?.closeAllConnections?.();
    await new Promise<void>((resolve) => this.#server?.close(() => resolve()) ?? resolve());
  }

  /** Ends every open watch, as an API server restart or a network cut would. */
  closeWatches(): void {
    for (const w of this.#watchers) w.res.end();
    this.#watchers.clear();
  }

  /** Forgets the watch history: a watch resuming from an older resource version gets 410 Gone. */
  compactHistory(): void {
    this.#history.length = 0;
  }

  get watcherCount(): number {
    return this.#watchers.size;
  }

  // ------------------------------------------------------------ direct access for tests

  #key(plural: string, namespace: string | null, name: string) {
    return `${plural}/${namespace ?? ""}/${name}`;
  }

  get(plural: string, namespace: string | null, name: string): Obj | undefined {
    const o = this.#objects.get(this.#key(plural, namespace, name));
    return o ? clone(o) : undefined;
  }

  /** Stored objects of a resource, in one namespace when given. */
  list(plural: string, namespace?: string | null): Obj[] {
    return [...this.#objects.entries()]
      .filter(([k]) => k.startsWith(`${plural}/`))
      .map(([, o]) => o)
      .filter((o) => namespace === undefined || namespace === null || o.metadata.namespace === namespace)
      .map((o) => clone(o));
  }

  /** Adds (or replaces) an object as the cluster would, e.g. a node. */
  put(plural: string, obj: Obj): Obj {
    const r = RESOURCES[plural];
    if (!r) throw new Error(`unknown resource ${plural}`);
    const ns = r.namespaced ? (obj.metadata?.namespace ?? "default") : null;
    const key = this.#key(plural, ns, obj.metadata.name);
    const existed = this.#objects.has(key);
    const stored = this.#stamp(plural, clone(obj), this.#objects.get(key));
    this.#objects.set(key, stored);
    this.#event(existed ? "MODIFIED" : "ADDED", plural, stored);
    return clone(stored);
  }

  /** Changes a stored object's fields (a kubelet reporting status, a node turning NotReady). */
  update(plural: string, namespace: string | null, name: string, patch: Obj): Obj {
    const key = this.#key(plural, namespace, name);
    const before = this.#objects.get(key);
    if (!before) throw new Error(`no ${plural} ${namespace}/${name}`);
    const after = this.#stamp(plural, mergePatch(before, patch) as Obj, before);
    this.#objects.set(key, after);
    this.#event("MODIFIED", plural, after);
    this.#afterChange(plural, after);
    return clone(after);
  }

  /** Removes an object as something other than the driver would (a user, the node controller). */
  remove(plural: string, namespace: string | null, name: string): void {
    this.#delete(plural, namespace, name);
  }

  addNode(
    name: string,
    options: { ready?: boolean; gpus?: number; unschedulable?: boolean; labels?: Obj } = {},
  ) {
    return this.put("nodes", {
      apiVersion: "v1",
      kind: "Node",
      metadata: { name, labels: { "kubernetes.io/hostname": name, ...(options.labels ?? {}) } },
      spec: options.unschedulable ? { unschedulable: true } : {},
      status: {
        capacity: {
          cpu: "8",
          memory: "32Gi",
          "ephemeral-storage": "100Gi",
          ...(options.gpus ? { "nvidia.com/gpu": String(options.gpus) } : {}),
        },
        allocatable: {
          cpu: "7800m",
          memory: "31Gi",
          ...(options.gpus ? { "nvidia.com/gpu": String(options.gpus) } : {}),
        },
        conditions: [
          { type: "Ready", status: options.ready === false ? "False" : "True", reason: "KubeletReady" },
          { type: "MemoryPressure", status: "False" },
        ],
      },
    });
  }

  setNodeReady(name: string, ready: boolean) {
    const node = this.get("nodes", null, name);
    if (!node) throw new Error(`no node ${name}`);
    const conditions = (node.status.conditions as Obj[]).map((c) =>
      c.type === "Ready"
        ? { ...c, status: ready ? "True" : "False", reason: ready ? "KubeletReady" : "NodeStatusUnknown" }
        : c,
    );
    return this.update("nodes", null, name, { status: { conditions } });
  }

  /** The kubelet stand-in: the pod's main container ended with `exitCode`. */
  terminatePod(
    namespace: string,
    name: string,
    exitCode: number,
    reason = exitCode === 0 ? "Completed" : "Error",
  ) {
    const pod = this.get("pods", namespace, name);
    if (!pod) throw new Error(`no pod ${namespace}/${name}`);
    const cname = pod.spec.containers[0].name;
    return this.update("pods", namespace, name, {
      status: {
        phase: exitCode === 0 ? "Succeeded" : "Failed",
        conditions: [{ type: "Ready", status: "False", reason: "PodCompleted" }],
        containerStatuses: [
          {
            name: cname,
            image: pod.spec.containers[0].image,
            imageID: "",
            ready: false,
            restartCount: 0,
            started: false,
            state: {
              terminated: {
                exitCode,
                reason,
                startedAt: pod.status?.startTime,
                finishedAt: new Date().toISOString(),
              },
            },
          },
        ],
      },
    });
  }

  /** The kubelet stand-in: the container waits for a reason (ImagePullBackOff, ...). */
  setWaiting(namespace: string, name: string, reason: string, message = "") {
    const pod = this.get("pods", namespace, name);
    if (!pod) throw new Error(`no pod ${namespace}/${name}`);
    return this.update("pods", namespace, name, {
      status: {
        phase: "Pending",
        containerStatuses: [
          {
            name: pod.spec.containers[0].name,
            image: pod.spec.containers[0].image,
            imageID: "",
            ready: false,
            restartCount: 0,
            state: { waiting: { reason, message } },
          },
        ],
      },
    });
  }

  /** Requests whose path and method match (for assertions on the calls the driver made). */
  calls(method: string, pathPrefix: string): RecordedRequest[] {
    return this.requests.filter((r) => r.method === method && r.path.startsWith(pathPrefix));
  }

  // ------------------------------------------------------------ internals

  #stamp(plural: string, obj: Obj, before: Obj | undefined): Obj {
    const r = RESOURCES[plural] as ResourceType;
    obj.apiVersion = apiVersionOf(r);
    obj.kind = r.kind;
    obj.metadata ??= {};
    obj.metadata.uid = before?.metadata?.uid ?? obj.metadata.uid ?? randomUUID();
    obj.metadata.creationTimestamp = before?.metadata?.creationTimestamp ?? new Date().toISOString();
    obj.metadata.resourceVersion = String(++this.#rv);
    obj.metadata.generation = (before?.metadata?.generation ?? 0) + (before ? 0 : 1);
    return obj;
  }

  #event(type: WatchEvent["type"], plural: string, obj: Obj): void {
    const ev: WatchEvent = { type, plural, object: clone(obj), rv: Number(obj.metadata.resourceVersion) };
    this.#history.push(ev);
    for (const w of this.#watchers) this.#send(w, ev);
  }

  #send(w: Watcher, ev: WatchEvent): void {
    if (w.plural !== ev.plural) return;
    const o = ev.object;
    if (w.namespace !== null && o.metadata.namespace !== w.namespace) return;
    if (!matchesLabels(o.metadata.labels, w.labelSelector) || !matchesFields(o, w.fieldSelector)) return;
    w.res.write(`${JSON.stringify({ type: ev.type, object: o })}\n`);
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://fake");
    const query = Object.fromEntries(url.searchParams);
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const text = Buffer.concat(chunks).toString("utf8");
    let body: unknown = null;
    const contentType = req.headers["content-type"]?.split(";")[0];
    try {
      body = text ? JSON.parse(text) : null;
    } catch {
      body = text;
    }
    this.requests.push({ method: req.method ?? "GET", path: url.pathname, query, contentType, body });
    try {
      if (req.headers.authorization !== `Bearer ${this.token}`) throw new HttpError(401, "Unauthorized");
      await this.#route(req.method ?? "GET", url.pathname, query, contentType, body, res);
    } catch (err) {
      const e =
        err instanceof HttpError ? err : new HttpError(500, err instanceof Error ? err.message : String(err));
      if (res.headersSent) {
        res.end();
        return;
      }
      res.writeHead(e.code, { "content-type": "application/json" });
      res.end(JSON.stringify(statusObject(e.code, e.message, e.details)));
    }
  }

  #json(res: ServerResponse, code: number, obj: unknown): void {
    res.writeHead(code, { "content-type": "application/json" });
    res.end(JSON.stringify(obj));
  }

  async #route(
    method: string,
    path: string,
    query: Record<string, string>,
    contentType: string | undefined,
    body: unknown,
    res: ServerResponse,
  ): Promise<void> {
    if (path === "/apis/metrics.k8s.io/v1beta1/nodes") {
      if (!this.nodeMetrics) throw new HttpError(404, "the server could not find the requested resource");
      return this.#json(res, 200, {
        apiVersion: "metrics.k8s.io/v1beta1",
        kind: "NodeMetricsList",
        metadata: {},
        items: this.nodeMetrics,
      });
    }
    const m =
      /^\/(?:api\/v1|apis\/([^/]+)\/([^/]+))(?:\/namespaces\/([^/]+))?\/([^/]+)(?:\/([^/]+))?(?:\/([^/]+))?$/.exec(
        path,
      );
    if (!m) throw new HttpError(404, `the server could not find the requested resource (${path})`);
    const [, group = "", version = "v1", namespace = null, plural = "", name, sub] = m;
    const r = RESOURCES[plural];
    if (!r || r.group !== group || r.version !== version) {
      throw new HttpError(404, `the server could not find the requested resource (${path})`);
    }
    if (r.namespaced === false && namespace !== null)
      throw new HttpError(404, `${plural} are not namespaced`);
    const ns = r.namespaced ? namespace : null;
    if (!name) {
      if (method === "GET" && query.watch === "true") return this.#watch(plural, ns, query, res);
      if (method === "GET") return this.#json(res, 200, this.#listBody(plural, r, ns, query));
      if (method === "POST") {
        if (ns === null && r.namespaced) throw new HttpError(405, "create needs a namespace");
        return this.#json(res, 201, await this.#create(plural, ns, body));
      }
      throw new HttpError(405, `${method} is not allowed on ${path}`);
    }
    if (sub === "log" && plural === "pods" && method === "GET") return this.#log(ns, name, query, res);
    if (sub === "eviction" && plural === "pods" && method === "POST") return this.#evict(ns, name, body, res);
    if (sub === "scale" && plural === "deployments")
      return this.#scale(method, ns, name, contentType, body, res);
    if (sub) throw new HttpError(404, `no subresource ${sub} of ${plural}`);
    const key = this.#key(plural, ns, name);
    const current = this.#objects.get(key);
    switch (method) {
      case "GET":
        if (!current) throw this.#notFound(r, name);
        return this.#json(res, 200, current);
      case "PATCH": {
        if (!current) throw this.#notFound(r, name);
        if (
          contentType !== "application/merge-patch+json" &&
          contentType !== "application/strategic-merge-patch+json"
        ) {
          throw new HttpError(
            415,
            `the body of the request was in an unknown format - accepted media types include: application/merge-patch+json (got ${contentType})`,
          );
        }
        const patched = mergePatch(clone(current), body) as Obj;
        patched.metadata.name = name;
        await this.#validate(patched);
        if (plural === "deployments" && JSON.stringify(patched.spec) !== JSON.stringify(current.spec)) {
          patched.metadata.generation = (current.metadata.generation ?? 1) + 1;
        }
        const stored = this.#stamp(plural, patched, current);
        stored.metadata.generation = patched.metadata.generation;
        this.#objects.set(key, stored);
        this.#event("MODIFIED", plural, stored);
        this.#afterChange(plural, stored);
        return this.#json(res, 200, stored);
      }
      case "DELETE": {
        if (!current) throw this.#notFound(r, name);
        const deleted = this.#delete(plural, ns, name);
        return this.#json(res, 200, deleted);
      }
      default:
        throw new HttpError(405, `${method} is not allowed on ${path}`);
    }
  }

  #notFound(r: ResourceType, name: string): HttpError {
    return new HttpError(404, `${r.kind.toLowerCase()}s "${name}" not found`, {
      name,
      kind: `${r.kind.toLowerCase()}s`,
    });
  }

  #listBody(plural: string, r: ResourceType, ns: string | null, query: Record<string, string>) {
    const items = [...this.#objects.entries()]
      .filter(([k]) => k.startsWith(`${plural}/`))
      .map(([, o]) => o)
      .filter((o) => ns === null || o.metadata.namespace === ns)
      .filter((o) => matchesLabels(o.metadata.labels, query.labelSelector ?? null))
      .filter((o) => matchesFields(o, query.fieldSelector ?? null));
    return {
      apiVersion: apiVersionOf(r),
      kind: `${r.kind}List`,
      metadata: { resourceVersion: String(this.#rv) },
      items,
    };
  }

  #watch(plural: string, ns: string | null, query: Record<string, string>, res: ServerResponse): void {
    const w: Watcher = {
      plural,
      namespace: ns,
      labelSelector: query.labelSelector ?? null,
      fieldSelector: query.fieldSelector ?? null,
      res,
    };
    res.writeHead(200, { "content-type": "application/json", "transfer-encoding": "chunked" });
    res.flushHeaders();
    const from = query.resourceVersion ? Number(query.resourceVersion) : null;
    if (from !== null && from > 0) {
      const oldest = this.#history[0]?.rv ?? this.#rv + 1;
      if (from < oldest - 1 && from < this.#rv) {
        // Too old: what a compacted etcd answers; the client must list again.
        res.write(
          `${JSON.stringify({ type: "ERROR", object: statusObject(410, `too old resource version: ${from} (${oldest - 1})`) })}\n`,
        );
        res.end();
        return;
      }
      for (const ev of this.#history) if (ev.rv > from) this.#send(w, ev);
    }
    this.#watchers.add(w);
    res.on("close", () => this.#watchers.delete(w));
  }

  async #validate(obj: Obj): Promise<void> {
    if (!knownKind(obj)) return;
    try {
      await validateObject(obj);
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      this.invalid.push(message);
      throw new HttpError(422, message, { name: obj.metadata?.name, kind: obj.kind });
    }
  }

  async #create(plural: string, ns: string | null, body: unknown): Promise<Obj> {
    const r = RESOURCES[plural] as ResourceType;
    if (!body || typeof body !== "object") throw new HttpError(400, "the body must be an object");
    const obj = clone(body as Obj);
    const name = obj.metadata?.name;
    if (typeof name !== "string" || !/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(name) || name.length > 253) {
      throw new HttpError(
        422,
        `${r.kind} "${name}" is invalid: metadata.name: Invalid value: a lowercase RFC 1123 subdomain is required`,
        {
          name,
          kind: r.kind,
        },
      );
    }
    if (obj.apiVersion !== apiVersionOf(r) || obj.kind !== r.kind) {
      throw new HttpError(
        400,
        `the object is ${obj.apiVersion}/${obj.kind}, not ${apiVersionOf(r)}/${r.kind}`,
      );
    }
    if (r.namespaced) {
      if (obj.metadata.namespace && obj.metadata.namespace !== ns) {
        throw new HttpError(
          400,
          "the namespace of the provided object does not match the namespace sent on the request",
        );
      }
      obj.metadata.namespace = ns;
    }
    await this.#validate(obj);
    for (const ref of (obj.metadata.ownerReferences ?? []) as Obj[]) {
      const owner = [...this.#objects.values()].find((o) => o.metadata.uid === ref.uid);
      if (!owner)
        throw new HttpError(422, `ownerReferences: no object with uid ${ref.uid} (${ref.kind} ${ref.name})`);
    }
    const key = this.#key(plural, ns, name);
    if (this.#objects.has(key)) {
      throw new HttpError(409, `${plural} "${name}" already exists`, { name, kind: plural });
    }
    const stored = this.#stamp(plural, obj, undefined);
    if (plural === "pods") stored.status = { phase: "Pending", conditions: [] };
    if (plural === "services" && stored.spec?.type !== "ExternalName")
      stored.spec.clusterIP = `10.96.0.${this.#ipCounter++ % 250}`;
    this.#objects.set(key, stored);
    this.#event("ADDED", plural, stored);
    this.#afterChange(plural, stored);
    return clone(stored);
  }

  /** Deletes an object and (background garbage collection) everything it owns. */
  #delete(plural: string, ns: string | null, name: string): Obj {
    const key = this.#key(plural, ns, name);
    const obj = this.#objects.get(key);
    if (!obj) throw new HttpError(404, `${plural} "${name}" not found`);
    this.#objects.delete(key);
    const gone = { ...obj, metadata: { ...obj.metadata, resourceVersion: String(++this.#rv) } };
    this.#event("DELETED", plural, gone);
    for (const [k, o] of [...this.#objects.entries()]) {
      if (((o.metadata.ownerReferences ?? []) as Obj[]).some((ref) => ref.uid === obj.metadata.uid)) {
        const [p = "", n = "", nm = ""] = k.split("/");
        if (this.#objects.has(k)) this.#delete(p, n || null, nm);
      }
    }
    if (plural === "pods") this.#syncOwners(gone);
    return gone;
  }

  #afterChange(plural: string, obj: Obj): void {
    if (plural === "deployments") this.#reconcileDeployment(obj);
    if (plural === "pods") {
      if (obj.status?.phase === "Pending" && !obj.spec.nodeName && this.kubelet === "ready")
        this.#schedule(obj);
      this.#syncOwners(obj);
    }
  }

  /** The Deployment controller stand-in: as many pods as replicas, owned by the Deployment itself. */
  #reconcileDeployment(d: Obj): void {
    const ns = d.metadata.namespace;
    const pods = this.list("pods", ns).filter((p) =>
      ((p.metadata.ownerReferences ?? []) as Obj[]).some((r) => r.uid === d.metadata.uid),
    );
    const want = d.spec.replicas ?? 1;
    for (let i = pods.length; i < want; i++) {
      const tpl = clone(d.spec.template);
      const pod: Obj = {
        apiVersion: "v1",
        kind: "Pod",
        metadata: {
          name: `${d.metadata.name}-${randomUUID().slice(0, 5)}`,
          namespace: ns,
          labels: tpl.metadata?.labels ?? {},
          annotations: tpl.metadata?.annotations ?? {},
          ownerReferences: [
            {
              apiVersion: "apps/v1",
              kind: "Deployment",
              name: d.metadata.name,
              uid: d.metadata.uid,
              controller: true,
            },
          ],
        },
        spec: tpl.spec,
      };
      void this.#create("pods", ns, pod).catch((err: unknown) => this.invalid.push(String(err)));
    }
    for (const extra of pods.slice(want)) this.#delete("pods", ns, extra.metadata.name);
  }

  /** Keeps a Deployment's status counts in step with its pods. */
  #syncOwners(pod: Obj): void {
    for (const ref of (pod.metadata.ownerReferences ?? []) as Obj[]) {
      if (ref.kind !== "Deployment") continue;
      const d = [...this.#objects.values()].find((o) => o.metadata.uid === ref.uid);
      if (!d) continue;
      const pods = this.list("pods", d.metadata.namespace).filter((p) =>
        ((p.metadata.ownerReferences ?? []) as Obj[]).some((r) => r.uid === d.metadata.uid),
      );
      const ready = pods.filter((p) =>
        (p.status?.conditions ?? []).some((c: Obj) => c.type === "Ready" && c.status === "True"),
      ).length;
      const status = {
        replicas: pods.length,
        readyReplicas: ready,
        availableReplicas: ready,
        observedGeneration: d.metadata.generation,
      };
      if (JSON.stringify(d.status ?? {}) === JSON.stringify(status)) continue;
      const key = this.#key("deployments", d.metadata.namespace, d.metadata.name);
      const next = this.#stamp("deployments", { ...clone(d), status }, d);
      this.#objects.set(key, next);
      this.#event("MODIFIED", "deployments", next);
    }
  }

  /** The scheduler and kubelet stand-ins: bind to the node the affinity names (or any), then run. */
  #schedule(pod: Obj): void {
    const ns = pod.metadata.namespace;
    const name = pod.metadata.name;
    const terms =
      pod.spec.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms ??
      [];
    const wanted: string | undefined = terms[0]?.matchFields?.find((f: Obj) => f.key === "metadata.name")
      ?.values?.[0];
    const nodes = this.list("nodes", null);
    const node = wanted ? nodes.find((n) => n.metadata.name === wanted) : nodes[0];
    setTimeout(() => {
      if (!this.#objects.has(this.#key("pods", ns, name)) || this.kubelet !== "ready") return;
      if (!node) {
        this.update("pods", ns, name, {
          status: {
            conditions: [
              {
                type: "PodScheduled",
                status: "False",
                reason: "Unschedulable",
                message: "0/0 nodes are available",
              },
            ],
          },
        });
        return;
      }
      const c = pod.spec.containers[0];
      this.update("pods", ns, name, {
        spec: { nodeName: node.metadata.name },
        status: {
          phase: "Running",
          podIP: `10.244.0.${this.#ipCounter++ % 250}`,
          startTime: new Date().toISOString(),
          conditions: [
            { type: "PodScheduled", status: "True" },
            { type: "Ready", status: "True" },
          ],
          containerStatuses: [
            {
              name: c.name,
              image: c.image,
              imageID: "",
              ready: true,
              started: true,
              restartCount: 0,
              state: { running: { startedAt: new Date().toISOString() } },
            },
          ],
        },
      });
      this.logs.set(`${ns}/${name}`, [
        `started ${name}`,
        `listening on ${c.ports?.[0]?.containerPort ?? "?"}`,
      ]);
    }, this.kubeletDelayMs);
  }

  #log(ns: string | null, name: string, query: Record<string, string>, res: ServerResponse): void {
    const pod = this.#objects.get(this.#key("pods", ns, name));
    if (!pod) throw new HttpError(404, `pods "${name}" not found`);
    if (pod.status?.phase === "Pending" && !pod.status?.containerStatuses) {
      throw new HttpError(
        400,
        `container "${pod.spec.containers[0].name}" in pod "${name}" is waiting to start: ContainerCreating`,
      );
    }
    const lines = this.logs.get(`${ns}/${name}`) ?? [];
    const tail = query.tailLines ? lines.slice(-Number(query.tailLines)) : lines;
    res.writeHead(200, { "content-type": "text/plain" });
    res.end(tail.map((l) => `${l}\n`).join(""));
  }

  async #evict(ns: string | null, name: string, body: unknown, res: ServerResponse): Promise<void> {
    await this.#validate(body as Obj);
    const key = `${ns}/${name}`;
    if (!this.#objects.has(this.#key("pods", ns, name))) throw new HttpError(404, `pods "${name}" not found`);
    const refusals = this.refuseEvictions.get(key) ?? 0;
    if (refusals > 0) {
      this.refuseEvictions.set(key, refusals - 1);
      throw new HttpError(429, "Cannot evict pod as it would violate the pod's disruption budget.");
    }
    this.#delete("pods", ns, name);
    this.#json(res, 201, { kind: "Status", apiVersion: "v1", metadata: {}, status: "Success", code: 201 });
  }

  async #scale(
    method: string,
    ns: string | null,
    name: string,
    contentType: string | undefined,
    body: unknown,
    res: ServerResponse,
  ) {
    const key = this.#key("deployments", ns, name);
    const d = this.#objects.get(key);
    if (!d) throw new HttpError(404, `deployments.apps "${name}" not found`);
    if (method === "PATCH") {
      if (contentType !== "application/merge-patch+json")
        throw new HttpError(415, `unsupported patch type ${contentType}`);
      const replicas = (body as Obj)?.spec?.replicas;
      if (!Number.isInteger(replicas) || replicas < 0)
        throw new HttpError(422, "spec.replicas must be a whole number >= 0");
      const next = this.#stamp("deployments", { ...clone(d), spec: { ...d.spec, replicas } }, d);
      this.#objects.set(key, next);
      this.#event("MODIFIED", "deployments", next);
      this.#reconcileDeployment(next);
    } else if (method !== "GET") {
      throw new HttpError(405, `${method} is not allowed on the scale subresource`);
    }
    const cur = this.#objects.get(key) as Obj;
    const scale = {
      apiVersion: "autoscaling/v1",
      kind: "Scale",
      metadata: { name, namespace: ns, resourceVersion: cur.metadata.resourceVersion, uid: cur.metadata.uid },
      spec: { replicas: cur.spec.replicas },
      status: { replicas: cur.status?.replicas ?? 0 },
    };
    await this.#validate(scale);
    this.#json(res, 200, scale);
  }
}
