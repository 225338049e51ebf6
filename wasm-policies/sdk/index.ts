/**
 * The policy SDK in one import: `import { JSON, serveEval, EvalCall, getMetrics, ... } from "../../sdk"`.
 * Placement (GPU/node choice) is a separate module, `sdk/placement`, for the allocators.
 */
export * from "./policy";
export * from "./host";
