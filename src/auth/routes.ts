/**
 * The one table of who may call what: every HTTP, WebSocket and gRPC entry point of every service,
 * with the level it requires (scopes.ts). The middleware (hono.ts), the gRPC check and the WebSocket
 * upgrades read it; test/auth/routes.test.ts holds it equal to the routes the apps register and calls
 * every row without a token (401) and with a token lacking the level (403).
 *
 * A row whose method changes state is written to the audit log unless it says `audit: false`: reads
 * sent as POST (queries), and telemetry services push every few seconds (metrics, events, the mapper's
 * instance list), whose record is the data itself.
 */
import type { Level } from "./scopes.ts";

export interface RouteRule {
  method: "GET" | "POST" | "PUT" | "PATCH" | "DELETE" | "WS" | "GRPC";
  /** Hono's pattern: `:name` is one segment, a trailing `*` anything. */
  path: string;
  level: Level;
  audit?: false;
  /** For `infer`: the path parameter naming the block (an `infer:<block>` token reaches that block's row). */
  block?: string;
}

export type ServiceName =
  | "registry"
  | "metrics"
  | "controller"
  | "gateway"
  | "allocator"
  | "executor"
  | "executor-metrics"
  | "executor-mgmt"
  | "mapper"
  | "sidecar-mgmt"
  | "instance";

const probes: RouteRule[] = [
  { method: "GET", path: "/health", level: "public" },
  { method: "GET", path: "/openapi.json", level: "public" },
];

/** The global metrics API, served by the registry and on its own port (8888). */
const clusterMetrics: RouteRule[] = [
  { method: "GET", path: "/cluster/query", level: "read" },
  { method: "POST", path: "/cluster/query", level: "read", audit: false },
  { method: "GET", path: "/cluster/:id", level: "read" },
  { method: "PUT", path: "/cluster/:id", level: "internal", audit: false },
  { method: "DELETE", path: "/cluster/:id", level: "internal" },
];

const documents = (name: string): RouteRule[] => [
  { method: "GET", path: `/${name}`, level: "read" },
  { method: "POST", path: `/${name}`, level: "operator" },
  { method: "POST", path: `/${name}/query`, level: "read", audit: false },
  { method: "GET", path: `/${name}/:id`, level: "read" },
  { method: "PUT", path: `/${name}/:id`, level: "operator" },
  { method: "PATCH", path: `/${name}/:id`, level: "operator" },
  { method: "DELETE", path: `/${name}/:id`, level: "operator" },
];

const whoami: RouteRule = { method: "GET", path: "/auth/whoami", level: "authenticated" };

export const ROUTE_LEVELS: Record<ServiceName, readonly RouteRule[]> = {
  registry: [
    ...probes,
    whoami,
    ...documents("clusters"),
    ...documents("components"),
    { method: "GET", path: "/policies", level: "read" },
    { method: "POST", path: "/policies", level: "operator" },
    { method: "PUT", path: "/policies/:uri", level: "operator" },
    { method: "GET", path: "/policies/:uri", level: "read" },
    { method: "GET", path: "/policies/:uri/wasm", level: "read" },
    { method: "DELETE", path: "/policies/:uri", level: "operator" },
    ...clusterMetrics,
  ],
  metrics: [...probes, ...clusterMetrics],
  controller: [
    ...probes,
    whoami,
    { method: "POST", path: "/executeAction", level: "operator" },
    { method: "POST", path: "/vdag-controller", level: "operator" },
    { method: "POST", path: "/cluster-actions/add-node", level: "operator" },
    { method: "DELETE", path: "/cluster-actions/remove-node/:id", level: "operator" },
    { method: "GET", path: "/cluster-actions/get-cluster", level: "read" },
    { method: "PATCH", path: "/cluster-actions/update-cluster", level: "operator" },
    { method: "GET", path: "/blocks", level: "read" },
    { method: "GET", path: "/blocks/:id", level: "read" },
    { method: "GET", path: "/blocks/:id/logs", level: "read" },
    { method: "POST", path: "/blocks/query", level: "read", audit: false },
    { method: "PUT", path: "/block/update/:id", level: "operator" },
    { method: "GET", path: "/healthy_nodes", level: "read" },
    { method: "GET", path: "/nodes_status", level: "read" },
    { method: "PUT", path: "/nodes_status/:id", level: "operator" },
    { method: "GET", path: "/check_stability", level: "read" },
    { method: "POST", path: "/mgmt", level: "operator" },
    { method: "POST", path: "/events", level: "internal", audit: false },
    { method: "GET", path: "/events", level: "read" },
  ],
  gateway: [
    ...probes,
    { method: "GET", path: "/", level: "public" },
    { method: "GET", path: "/ui", level: "public" },
    { method: "GET", path: "/ui/vendor/:name", level: "public" },
    { method: "GET", path: "/ui/*", level: "public" },
    { method: "GET", path: "/api/whoami", level: "authenticated" },
    { method: "POST", path: "/api/createBlock", level: "operator" },
    { method: "GET", path: "/api/clusters", level: "read" },
    { method: "GET", path: "/api/blocks", level: "read" },
    // An inference-only token may read its own block (where to send its calls, aios infer).
    { method: "GET", path: "/api/blocks/:id", level: "infer", block: "id" },
    { method: "DELETE", path: "/api/blocks/:id", level: "operator" },
    { method: "POST", path: "/api/blocks/:id/scale", level: "operator" },
    { method: "GET", path: "/api/blocks/:id/metrics", level: "read" },
    { method: "GET", path: "/api/blocks/:id/logs", level: "read" },
    { method: "GET", path: "/api/blocks/:id/events", level: "read" },
    { method: "GET", path: "/api/creations", level: "read" },
    { method: "GET", path: "/api/policies", level: "read" },
    { method: "POST", path: "/api/policies", level: "operator" },
    { method: "GET", path: "/api/tokens", level: "admin" },
    { method: "POST", path: "/api/tokens", level: "admin" },
    { method: "DELETE", path: "/api/tokens/:id", level: "admin" },
    { method: "GET", path: "/api/audit", level: "admin" },
  ],
  /** The specification's WebSocket protocol: placement questions, answered from the registries. */
  allocator: [
    { method: "GET", path: "/health", level: "public" },
    { method: "WS", path: "/", level: "read" },
  ],
  executor: [{ method: "GRPC", path: "/InferenceProxy/infer", level: "infer" }],
  "executor-metrics": [
    { method: "GET", path: "/openapi.json", level: "public" },
    { method: "GET", path: "/metrics", level: "read" },
    { method: "GET", path: "/metrics/json", level: "read" },
  ],
  "executor-mgmt": [
    { method: "GET", path: "/openapi.json", level: "public" },
    { method: "POST", path: "/mgmt", level: "operator" },
  ],
  mapper: [
    { method: "GET", path: "/openapi.json", level: "public" },
    { method: "GET", path: "/instances", level: "read" },
    { method: "PUT", path: "/instances", level: "internal", audit: false },
    { method: "POST", path: "/instances", level: "internal", audit: false },
    { method: "DELETE", path: "/instances/:id", level: "internal", audit: false },
  ],
  "sidecar-mgmt": [
    { method: "GET", path: "/openapi.json", level: "public" },
    { method: "POST", path: "/mgmt", level: "operator" },
  ],
  instance: [
    { method: "GET", path: "/health", level: "public" },
    { method: "GET", path: "/metrics", level: "read" },
    { method: "POST", path: "/task", level: "internal", audit: false },
    { method: "WS", path: "/task/ws", level: "internal" },
    { method: "POST", path: "/mgmt", level: "operator" },
  ],
};

interface CompiledRule extends RouteRule {
  regex: RegExp;
}

const compile = (rule: RouteRule): CompiledRule => {
  const pattern = rule.path
    .split("/")
    .map((seg) =>
      seg === "*"
        ? ".*"
        : seg === `:${rule.block}`
          ? "(?<block>[^/]+)"
          : seg.startsWith(":")
            ? "[^/]+"
            : seg.replace(/[.+?^${}()|[\]\\]/g, "\\$&"),
    )
    .join("/");
  return { ...rule, regex: new RegExp(`^${pattern === "" ? "/" : pattern}/?$`) };
};

const compiled = new Map<ServiceName, CompiledRule[]>();

/**
 * The rule for a call, or undefined when the table has none (the middleware then lets the app answer
 * its 404 or 405 to an authenticated caller only: an unknown path is not a way around the table).
 * Literal rows win over patterns (`/blocks/query` over `/blocks/:id`).
 */
export const ruleFor = (service: ServiceName, method: string, path: string): RouteRule | undefined => {
  let rules = compiled.get(service);
  if (!rules) {
    rules = ROUTE_LEVELS[service].map(compile);
    rules.sort(
      (a, b) =>
        Number(a.path.includes(":") || a.path.includes("*")) -
        Number(b.path.includes(":") || b.path.includes("*")),
    );
    compiled.set(service, rules);
  }
  const m = method === "HEAD" ? "GET" : method;
  return rules.find((r) => r.method === m && r.regex.test(path));
};

/** The block a call names, for a rule with `block`; the raw segment when it is not a valid escape. */
export const blockOf = (rule: RouteRule | undefined, path: string): string | undefined => {
  if (rule?.block === undefined) return undefined;
  const raw = "regex" in rule ? (rule as CompiledRule).regex.exec(path)?.groups?.block : undefined;
  // Fail closed: undefined would let any infer:<block> token through; "" matches none.
  if (raw === undefined) return "";
  try {
    return decodeURIComponent(raw);
  } catch {
    return raw;
  }
};

/** The level a call needs: its rule's; a call no row names needs a valid token (see ruleFor). */
export const levelOf = (rule: RouteRule | undefined): Level => rule?.level ?? "authenticated";

/** Whether a call changes state and is recorded (see the header). */
export const isAudited = (rule: RouteRule): boolean =>
  rule.audit !== false && rule.level !== "public" && rule.method !== "GET";
