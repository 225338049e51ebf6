/**
 * Pre-checks see who asks: a real WebAssembly pre-check policy (AssemblyScript with the aios SDK,
 * compiled here) reads `context.caller` and refuses a caller by name, or one without a scope, and
 * allows the others; through the controller's HTTP API with real tokens, so governance depends on
 * the token that called (or on the user a trusted service named with x-aios-on-behalf-of).
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import type { Hono } from "hono";
import { onBehalfOfHeader } from "../../src/auth/guard.ts";
import { Guard, storeGuard } from "../../src/auth/index.ts";
import type { Principal } from "../../src/auth/scopes.ts";
import { TokenStore } from "../../src/auth/tokens.ts";
import { createControllerApp } from "../../src/controller/app.ts";
import { CONTROLLER_CALLER, callerOf, runPreCheck } from "../../src/controller/prechecks.ts";
import { ApiError } from "../../src/http/errors.ts";
import { PolicyError } from "../../src/policy/errors.ts";
import { PreCheckCaller } from "../../src/policy/kinds/pre-check.ts";
import { type CompiledPolicy, compilePolicy } from "../../src/policy/runtime.ts";
import { PolicySet } from "../../src/policy/set.ts";
import { admitPolicyModule } from "../../src/policy/wasm/admission.ts";
import { openStore, type Store } from "../../src/store/index.ts";
import { ROOT } from "../../wasm-policies/build.ts";
import { testContext } from "../support/controller-context.ts";

setDefaultTimeout(120_000);

const URI = "test.preCheck.by-caller:v1";

/**
 * The policy: refuses when `context.caller.name` is `parameters.deny_name`, or when the caller lacks
 * `parameters.require_scope`; otherwise allows the input unchanged. A refusal's reason names the
 * caller and the hook.
 */
const policySource = (sdk: string) => `
import { EvalCall, JSON, serveEval } from "${sdk}";

function refuse(call: EvalCall, why: string): JSON.Value {
  const caller = call.context.get("caller");
  return JSON.obj()
    .setBool("allowed", false)
    .set(
      "input_data",
      JSON.obj()
        .setString("reason", why)
        .setString("caller", caller.getString("name", "?"))
        .setString("caller_id", caller.getString("id", "?"))
        .setString("hook", call.context.getString("hook", "?")),
    );
}

function decide(call: EvalCall): JSON.Value | null {
  const caller = call.context.get("caller");
  const name = caller.getString("name", "");
  const denied = call.parameters.getString("deny_name", "");
  if (denied != "" && name == denied) return refuse(call, name + " may not do this");
  const need = call.parameters.getString("require_scope", "");
  if (need != "") {
    const scopes = caller.get("scopes");
    let found = false;
    for (let i = 0; i < scopes.length; i++) if (scopes.at(i).asString() == need) found = true;
    if (!found) return refuse(call, "the caller lacks " + need);
  }
  return JSON.obj().setBool("allowed", true).set("input_data", call.inputData);
}

function evaluate(): i32 {
  return serveEval(decide);
}

export { evaluate as eval };
`;

/** Compiled with the policies' compiler options, in a subprocess (the compiler is big). */
const compilePolicySource = async (): Promise<Uint8Array> => {
  const dir = await mkdtemp(join(tmpdir(), "precheck-caller-"));
  try {
    const entry = join(dir, "policy.ts");
    const out = join(dir, "policy.wasm");
    await writeFile(entry, policySource(relative(dir, join(ROOT, "wasm-policies/sdk"))));
    const asc = join(ROOT, "node_modules/assemblyscript/bin/asc.js");
    const args = [entry, "--outFile", out, "--config", "wasm-policies/asconfig.json", "--noColors"];
    const child = Bun.spawn([process.execPath, asc, ...args], { cwd: ROOT, stdout: "pipe", stderr: "pipe" });
    const [code, stderr] = await Promise.all([child.exited, new Response(child.stderr).text()]);
    if (code !== 0) throw new Error(`compiling the policy failed: ${stderr}`);
    return new Uint8Array(await readFile(out));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
};

let compiled: CompiledPolicy;
let store: Store;
const policySets: PolicySet[] = [];
const tokens = { alice: "", intern: "", reader: "", gateway: "" };
const ids = { alice: "", intern: "" };

beforeAll(async () => {
  const admitted = admitPolicyModule(await compilePolicySource());
  compiled = await compilePolicy(admitted.instrumented, { uri: URI, kind: "preCheck" });
  store = await openStore({});
  const made = new TokenStore(store);
  const alice = await made.create({ name: "alice", scopes: ["operator"] }, "test");
  const intern = await made.create({ name: "intern", scopes: ["operator"] }, "test");
  tokens.alice = alice.token;
  ids.alice = alice.info.id;
  tokens.intern = intern.token;
  ids.intern = intern.info.id;
  tokens.reader = (await made.create({ name: "carol", scopes: ["admin"] }, "test")).token;
  tokens.gateway = (await made.create({ name: "gateway", scopes: ["internal"] }, "test")).token;
});

afterAll(async () => {
  await Promise.all(policySets.map((p) => p.close()));
  await store?.close();
});

/** A context whose cluster configures the policy for `scale_block` (and `block_mgmt`) with `parameters`. */
const contextWith = (parameters: Record<string, unknown>) => {
  const policies = new PolicySet(async (uri) => {
    if (uri === URI) return compiled;
    throw new PolicyError("not_found", uri, "no policy is stored under this URI");
  });
  policySets.push(policies);
  const rule = { policyRuleURI: URI, parameters };
  return testContext({
    policies,
    store,
    cluster: async () => ({
      id: "cluster-1",
      config: { preCheckPolicies: { scale_block: rule, block_mgmt: rule } },
    }),
  });
};

const refusal = async (promise: Promise<unknown>): Promise<ApiError> => {
  try {
    await promise;
  } catch (err) {
    if (err instanceof ApiError) return err;
    throw err;
  }
  throw new Error("expected a refusal");
};

const SCALE = { block_id: "no-such-block", operation: "upscale", instances_count: 1 };
const principal = (name: string, scopes: Principal["scopes"]): Principal => ({
  id: `tok_${name.padEnd(12, "0").slice(0, 12)}`,
  name,
  scopes,
});

describe("runPreCheck with a caller", () => {
  test("the same input is allowed to one caller and refused to another", async () => {
    const ctx = contextWith({ deny_name: "intern" });
    expect(await runPreCheck(ctx, "scale_block", SCALE, callerOf(principal("alice", ["operator"])))).toEqual(
      SCALE,
    );
    const err = await refusal(
      runPreCheck(ctx, "scale_block", SCALE, callerOf(principal("intern", ["operator"]))),
    );
    expect([err.status, err.code]).toEqual([403, "precheck_refused"]);
    expect(err.message).toContain("intern may not do this");
    expect(err.details).toMatchObject({
      hook: "scale_block",
      policy: URI,
      reason: { caller: "intern", hook: "scale_block" },
      caller: { id: "tok_intern000000", name: "intern" },
    });
  });

  test("by scope: a caller without the required scope is refused", async () => {
    const ctx = contextWith({ require_scope: "admin" });
    expect(await runPreCheck(ctx, "scale_block", SCALE, callerOf(principal("carol", ["admin"])))).toEqual(
      SCALE,
    );
    const err = await refusal(
      runPreCheck(ctx, "scale_block", SCALE, callerOf(principal("alice", ["operator"]))),
    );
    expect(err.message).toContain("the caller lacks admin");
  });

  test("the caller as the policy sees it: the user a service acted for, the service as `via`", () => {
    const viaGateway: Principal = {
      ...principal("gateway", ["internal"]),
      onBehalfOf: { id: "tok_intern000000", name: "intern", scopes: ["operator"] },
    };
    const caller = callerOf(viaGateway);
    expect(caller).toEqual({
      id: "tok_intern000000",
      name: "intern",
      scopes: ["operator"],
      via: { id: "tok_gateway00000", name: "gateway" },
    });
    expect(PreCheckCaller.parse(caller)).toEqual(caller);
    expect(callerOf(undefined)).toEqual(CONTROLLER_CALLER);
    expect(callerOf({ id: "anonymous", name: "anonymous", scopes: ["admin"], anonymous: true })).toEqual({
      id: "anonymous",
      name: "anonymous",
      scopes: ["admin"],
      anonymous: true,
    });
  });

  test("without a caller the controller acts on its own (an event policy's action)", async () => {
    const ctx = contextWith({ require_scope: "internal" });
    expect(await runPreCheck(ctx, "scale_block", SCALE)).toEqual(SCALE);
    const other = contextWith({ deny_name: "controller" });
    expect((await refusal(runPreCheck(other, "scale_block", SCALE))).message).toContain("controller may not");
  });
});

describe("through the controller's API, with tokens", () => {
  let app: Hono;
  beforeAll(() => {
    app = createControllerApp({
      ctx: contextWith({ deny_name: "intern" }),
      registry: null as never,
      scanner: null as never,
      stability: null as never,
      events: null as never,
      guard: storeGuard(store),
    });
  });
  const call = (path: string, body: unknown, headers: Record<string, string>) =>
    app.request(path, {
      method: "POST",
      headers: { "content-type": "application/json", ...headers },
      body: JSON.stringify(body),
    });
  const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

  test("scale: alice passes the pre-check (then finds no block), the intern is refused by it", async () => {
    const asAlice = await call("/executeAction", { action: "scale", data: SCALE }, bearer(tokens.alice));
    // Past the pre-check: the action itself answers (the block does not exist).
    expect(asAlice.status).toBe(404);
    const asIntern = await call("/executeAction", { action: "scale", data: SCALE }, bearer(tokens.intern));
    expect(asIntern.status).toBe(403);
    const body = (await asIntern.json()) as { error: { code: string; details: Record<string, unknown> } };
    expect(body.error.code).toBe("precheck_refused");
    expect(body.error.details.caller).toEqual({ id: ids.intern, name: "intern" });
  });

  test("the management API's pre-check sees the caller too", async () => {
    const command = { block_id: "no-such-block", service: "executor", mgmt_action: "policy_info" };
    expect((await call("/mgmt", command, bearer(tokens.alice))).status).toBe(404);
    expect((await call("/mgmt", command, bearer(tokens.intern))).status).toBe(403);
  });

  test("a service forwarding for the intern is refused as the intern; its own calls are not", async () => {
    const forIntern = {
      ...bearer(tokens.gateway),
      ...onBehalfOfHeader({ id: ids.intern, name: "intern", scopes: ["operator"] }),
    };
    const refused = await call("/executeAction", { action: "scale", data: SCALE }, forIntern);
    expect(refused.status).toBe(403);
    expect(((await refused.json()) as { error: { code: string } }).error.code).toBe("precheck_refused");
    const own = await call("/executeAction", { action: "scale", data: SCALE }, bearer(tokens.gateway));
    expect(own.status).toBe(404);
    // Only internal callers may name a user: alice naming the intern is still alice.
    const asAliceNamingIntern = await call(
      "/executeAction",
      { action: "scale", data: SCALE },
      {
        ...bearer(tokens.alice),
        ...onBehalfOfHeader({ id: ids.intern, name: "intern", scopes: ["operator"] }),
      },
    );
    expect(asAliceNamingIntern.status).toBe(404);
  });

  test("anonymous access (local development): the caller is `anonymous`", async () => {
    const open = createControllerApp({
      ctx: contextWith({ deny_name: "anonymous" }),
      registry: null as never,
      scanner: null as never,
      stability: null as never,
      events: null as never,
      guard: Guard.open(),
    });
    const res = await open.request("/executeAction", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ action: "scale", data: SCALE }),
    });
    expect(res.status).toBe(403);
    const body = (await res.json()) as { error: { details: { caller: unknown } } };
    expect(body.error.details.caller).toEqual({ id: "anonymous", name: "anonymous" });
  });
});
