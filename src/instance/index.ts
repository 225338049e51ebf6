/** The instance SDK: `serveInstance`, `TaskError` and their types. */
export type { InstanceAppOptions, InstanceContext, InstanceHandlers, Task, TaskErrorStatus } from "./app.ts";
export { createInstanceApp, TaskError } from "./app.ts";
export type { Env, InstanceConfig } from "./config.ts";
export { ConfigError, readInstanceConfig } from "./config.ts";
export { BlockEvents, type BlockEventsOptions } from "./events.ts";
export type { Counter, Gauge, InstanceMetricsJson } from "./metrics.ts";
export { InstanceMetrics } from "./metrics.ts";
export type { ServedInstance, ServeInstanceOptions } from "./serve.ts";
export { instanceGuardFromEnv, serveInstance } from "./serve.ts";
