/**
 * The cluster controller with tokens, on real servers and processes (ClusterHarness in token mode: a
 * registry guarding with its store, where the tokens are made, and the controller guarding with
 * controllerGuard over its own store, so it checks them at the registry as `aios controller` does):
 *
 * - every route of the table: 401 without a token, 403 with a token lacking the level (an `infer:*`
 *   one for the control plane), past the guard with one that has it; state-changing calls audited;
 * - `GET /auth/whoami`, where workloads check the tokens they are given;
 * - workloads (instances, block services, vDAG replicas) get the controller's token as AIOS_TOKEN and
 *   no AIOS_ANONYMOUS; the block still serves, to a user's token forwarded by the public gateway;
 * - on Kubernetes, the token is in one Secret per cluster that every workload reads by secretKeyRef.
 */
import { afterAll, afterEach, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { AuditLog } from "../../src/auth/audit.ts";
import { ROUTE_LEVELS, type RouteRule } from "../../src/auth/routes.ts";
import type { Level } from "../../src/auth/scopes.ts";
import { TokenStore } from "../../src/auth/tokens.ts";
import { KubernetesDriver } from "../../src/runtime/kubernetes/index.ts";
import {
  CLUSTER,
  type Harness as KubeHarness,
  kubeConfigFor,
  harness as kubeHarness,
  NS,
} from "../runtime/kubernetes/support.ts";
import {
  type BlockInstanceDoc,
  ClusterHarness,
  envOf,
  POLICY,
  SENTIMENT_COMMAND,
} from "../support/cluster-controller.ts";
import { childEnv, ROOT } from "../support/processes.ts";
import { HELD_OUT } from "../support/sentiment.ts";

setDefaultTimeout(90_000);

const cluster = new ClusterHarness({ name: "auth-ctl", auth: true });
const BLOCK = cluster.id("sentiment");
const tokens: Record<"operator" | "infer" | "internal" | "admin", { token: string; id: string }> = {
  operator: { token: "", id: "" },
  infer: { token: "", id: "" },
  internal: { token: "", id: "" },
  admin: { token: "", id: "" },
};

beforeAll(async () => {
  await cluster.start();
  // Made in the registry's store: the controller knows them only by asking the registry.
  const made = new TokenStore(cluster.registry.store);
  const make = async (name: string, scopes: string[]) => {
    const { token, info } = await made.create({ name, scopes }, "test");
    return { token, id: info.id };
  };
  tokens.operator = await make("alice (operator)", ["operator"]);
  tokens.infer = await make("bob (infer)", ["infer:*"]);
  tokens.internal = await make("a service", ["internal"]);
  tokens.admin = await make("root", ["admin"]);
});

afterAll(async () => {
  await cluster.close();
  expect(cluster.strays()).toEqual([]);
});

/** A token that lacks the level; null where every token has it. */
const LACKING: Record<Level, keyof typeof tokens | null> = {
  public: null,
  authenticated: null,
  read: "infer",
  infer: null,
  operator: "infer",
  internal: "operator",
  admin: "operator",
};
/** A token that has the level. */
const HAVING: Record<Level, keyof typeof tokens> = {
  public: "infer",
  authenticated: "infer",
  read: "operator",
  infer: "infer",
  operator: "operator",
  internal: "internal",
  admin: "admin",
};

const concrete = (path: string) => path.replace(/:[A-Za-z_]+/g, "no-such-thing").replace(/\*$/, "x");

describe("the controller's routes", () => {
  for (const rule of ROUTE_LEVELS.controller as readonly RouteRule[]) {
    test(`${rule.method} ${rule.path} (${rule.level})`, async () => {
      const path = concrete(rule.path);
      const body = rule.method === "GET" ? undefined : {};
      const none = await cluster.call(rule.method, path, body, cluster.url, null);
      if (rule.level === "public") expect(none.status).toBe(200);
      else expect([none.status, none.body?.error?.code]).toEqual([401, "unauthenticated"]);

      const lacking = LACKING[rule.level];
      if (lacking) {
        const refused = await cluster.call(rule.method, path, body, cluster.url, tokens[lacking].token);
        expect([refused.status, refused.body?.error?.code]).toEqual([403, "forbidden"]);
      }
      const allowed = await cluster.call(
        rule.method,
        path,
        body,
        cluster.url,
        tokens[HAVING[rule.level]].token,
      );
      expect([401, 403]).not.toContain(allowed.status);
      expect(allowed.body?.error?.code).not.toBe("auth_unavailable");
    });
  }

  test("the public gateway /block/{id}/... needs a valid token (the block's services check its level)", async () => {
    const none = await cluster.call("GET", `/block/${BLOCK}/metrics`, undefined, cluster.url, null);
    expect(none.status).toBe(401);
    const forged = await cluster.call("GET", `/block/${BLOCK}/metrics`, undefined, cluster.url, "aios_nope");
    expect(forged.status).toBe(401);
  });

  test("state-changing calls are audited in the controller's store, refused ones too", async () => {
    await cluster.call("POST", "/executeAction", { action: "nope" }, cluster.url, tokens.operator.token);
    await cluster.call("POST", "/executeAction", { action: "nope" }, cluster.url, tokens.infer.token);
    const audit = new AuditLog(cluster.controller.ctx.store);
    const mine = await audit.query({ actor: tokens.operator.id, service: "controller" });
    expect(mine[0]).toMatchObject({
      actor: { id: tokens.operator.id, name: "alice (operator)" },
      method: "POST",
      path: "/executeAction",
      status: 400,
      outcome: "refused",
    });
    // A refusal by the guard is recorded before the caller is known to have the scope.
    const refused = await audit.query({ service: "controller", outcome: "refused" });
    expect(refused.find((e) => e.status === 403)).toMatchObject({ method: "POST", path: "/executeAction" });
  });
});

describe("GET /auth/whoami", () => {
  test("answers the caller of a token the registry holds, and of one the controller holds", async () => {
    const me = await cluster.call("GET", "/auth/whoami", undefined, cluster.url, tokens.operator.token);
    expect(me.status).toBe(200);
    expect(me.body).toEqual({
      principal: { id: tokens.operator.id, name: "alice (operator)", scopes: ["operator"] },
    });
    const local = await new TokenStore(cluster.controller.ctx.store).create(
      { name: "local", scopes: ["infer:x"] },
      "test",
    );
    const other = await cluster.call("GET", "/auth/whoami", undefined, cluster.url, local.token);
    expect(other.body.principal).toEqual({ id: local.info.id, name: "local", scopes: ["infer:x"] });
  });

  test("401 without a token, with an unknown one, with a malformed header", async () => {
    expect((await cluster.call("GET", "/auth/whoami", undefined, cluster.url, null)).status).toBe(401);
    const unknown = `aios_${"a".repeat(12)}_${"b".repeat(43)}`;
    expect((await cluster.call("GET", "/auth/whoami", undefined, cluster.url, unknown)).status).toBe(401);
    const res = await fetch(`${cluster.url}/auth/whoami`, { headers: { authorization: "Basic eDp5" } });
    expect(res.status).toBe(401);
  });
});

describe("workloads of a controller with tokens", () => {
  test("instances and block services get AIOS_TOKEN, and the block serves users' tokens", async () => {
    const created = await cluster.call(
      "POST",
      "/executeAction",
      {
        action: "create_block",
        data: {
          id: BLOCK,
          minInstances: 2,
          maxInstances: 2,
          runtime: { command: SENTIMENT_COMMAND },
          parameters: { min_confidence: 0.6 },
          policies: {
            loadBalancer: { policyRuleURI: POLICY.roundrobin },
            resourceAllocator: {
              policyRuleURI: POLICY.gpuFreeMemory,
              parameters: { gpus: 0 },
              settings: { selection_mode: "spread" },
            },
          },
        },
      },
      cluster.url,
      tokens.operator.token,
    );
    expect(created.status).toBe(200);
    const instances = created.body.instances as BlockInstanceDoc[];
    expect(instances).toHaveLength(2);

    // The controller's credential, passed explicitly (the runtime does not inherit AIOS_*).
    const services = cluster.tokens!.services;
    const instancePids = [...(await cluster.pids(BLOCK)).values()];
    const pids = [...instancePids, (await cluster.servicesPid(BLOCK))!];
    expect(pids).toHaveLength(3);
    for (const pid of pids) {
      expect(envOf(pid, "AIOS_TOKEN")).toBe(services);
      expect(envOf(pid, "AIOS_ANONYMOUS")).toBeNull();
    }
    // Where instances check other tokens (the block services get it as --controller).
    for (const pid of instancePids) expect(envOf(pid, "AIOS_CONTROLLER_URL")).toBe(cluster.url);

    // A user's infer token through the public gateway, forwarded to the block's gRPC listener, which
    // checks it at this controller's /auth/whoami.
    cluster.callToken = tokens.infer.token;
    try {
      const [text, label] = HELD_OUT[0]!;
      const viaGateway = await cluster.gatewayClassify(BLOCK, text, "auth-1");
      expect({ message: viaGateway.message, label: viaGateway.result?.label }).toEqual({
        message: true,
        label,
      });
      const grpcUrl = created.body.services.urls.grpc as string;
      const viaGrpc = await cluster.grpcClient(grpcUrl).classify(text, "auth-2");
      expect(viaGrpc.result?.label).toBe(label);
    } finally {
      cluster.callToken = cluster.tokens!.admin;
    }
    // Management through the gateway needs the operator level at the block's services.
    const asInfer = await cluster.call(
      "POST",
      `/block/${BLOCK}/executor/mgmt`,
      { mgmt_action: "policy_info" },
      cluster.url,
      tokens.infer.token,
    );
    expect(asInfer.status).toBe(403);
    const asOperator = await cluster.call(
      "POST",
      `/block/${BLOCK}/executor/mgmt`,
      { mgmt_action: "policy_info" },
      cluster.url,
      tokens.operator.token,
    );
    expect(asOperator.status).toBe(200);
    expect(asOperator.body).toMatchObject({ block_id: BLOCK, policy: POLICY.roundrobin });

    // The controller's own calls to the instances (/mgmt) present its credential.
    const updated = await cluster.call(
      "POST",
      "/executeAction",
      { action: "parameter_update", data: { block_id: BLOCK, parameters: { min_confidence: 0.5 } } },
      cluster.url,
      tokens.operator.token,
    );
    expect(updated.status).toBe(200);
    for (const answer of Object.values(updated.body.instances as Record<string, { status: number }>)) {
      expect(answer.status).toBe(200);
    }
    const relayed = await cluster.call(
      "POST",
      "/mgmt",
      { block_id: BLOCK, service: "instances", mgmt_action: "get_parameters" },
      cluster.url,
      tokens.operator.token,
    );
    expect(relayed.status).toBe(200);
    for (const answer of Object.values(relayed.body.results as Record<string, unknown>)) {
      expect(answer).toEqual({ status: 200, body: { parameters: { min_confidence: 0.5 } } });
    }

    const removed = await cluster.call(
      "POST",
      "/executeAction",
      { action: "remove_block", data: { block_id: BLOCK } },
      cluster.url,
      tokens.operator.token,
    );
    expect(removed.status).toBe(200);
  });

  test("vDAG controller replicas get AIOS_TOKEN", async () => {
    const VDAG = cluster.id("vdag");
    const server = join(cluster.tmp, "vdag-server.ts");
    writeFileSync(
      server,
      `Bun.serve({ hostname: "127.0.0.1", port: Number(process.env.AIOS_PORT), fetch: () => new Response("ok") });\n`,
    );
    const vdag = (action: string, payload: unknown) =>
      cluster.call("POST", "/vdag-controller", { action, payload }, cluster.url, tokens.operator.token);
    const created = await vdag("create_controller", {
      vdag_controller_id: VDAG,
      vdag_uri: "vdag.auth:1.0.0",
      config: { replicas: 1, runtime: { command: ["bun", server] } },
    });
    expect(created.status).toBe(200);
    const handles = (await cluster.controller.ctx.runtime.listVdagControllers()).find(
      (v) => v.id === VDAG,
    )?.handles;
    expect(handles).toHaveLength(1);
    expect(envOf(Number(handles![0]), "AIOS_TOKEN")).toBe(cluster.tokens!.services);
    expect((await vdag("remove_controller", { vdag_controller_id: VDAG })).status).toBe(200);
  });
});

test("aios controller without a token or --anonymous stops at once, saying what it needs", () => {
  const run = Bun.spawnSync(
    [process.execPath, "run", "src/cli/main.ts", "controller", "--cluster-id", "c-none", "--port", "0"],
    { cwd: ROOT, env: childEnv(), stdout: "pipe", stderr: "pipe" },
  );
  expect(run.exitCode).toBe(2);
  const stderr = run.stderr.toString();
  expect(stderr).toContain("needs a credential");
  expect(stderr).toContain("--token");
  expect(stderr).toContain("--anonymous");
  const help = Bun.spawnSync([process.execPath, "run", "src/cli/main.ts", "controller", "--help"], {
    cwd: ROOT,
    env: childEnv(),
  });
  expect(help.exitCode).toBe(0);
  expect(help.stdout.toString()).toContain("--anonymous");
});

describe("Kubernetes: the workloads' token in the cluster's credential Secret", () => {
  let h: KubeHarness | null = null;
  afterEach(async () => {
    if (h) expect(h.fake.invalid).toEqual([]);
    await h?.close();
    h = null;
  });

  const TOKEN = `aios_${"t".repeat(12)}_${"s".repeat(43)}`;
  /** AIOS_TOKEN read from the Secret, and no variable holding the token itself. */
  const expectSecretEnv = (env: { name: string; value?: string; valueFrom?: unknown }[], secret: string) => {
    expect(env.find((e) => e.name === "AIOS_TOKEN")).toEqual({
      name: "AIOS_TOKEN",
      valueFrom: { secretKeyRef: { name: secret, key: "token" } },
    });
    expect(env.some((e) => e.value === TOKEN)).toBe(false);
    expect(env.find((e) => e.name === "AIOS_ANONYMOUS")).toBeUndefined();
  };

  test("the Secret is written at start; pods and Deployments read AIOS_TOKEN from it", async () => {
    h = await kubeHarness({ workloadAuth: { token: TOKEN } });
    const secrets = h.fake.list("secrets", NS);
    expect(secrets).toHaveLength(1);
    const secret = secrets[0]!;
    const name = secret.metadata.name as string;
    expect(Buffer.from(secret.data.token, "base64").toString()).toBe(TOKEN);
    expect(secret.metadata.labels["aios.dev/cluster-id"]).toBe("c1");

    await h.driver.startInstance({
      blockId: "b1",
      instanceId: "b1-0001",
      nodeId: "node-a",
      gpus: [],
      // A template's own AIOS_TOKEN does not win over the controller's.
      template: { image: "registry.example/sentiment:2", env: { AIOS_TOKEN: "mine" } },
    });
    const pod = h.fake.get("pods", NS, "aios-i-b1-0001");
    expectSecretEnv(pod?.spec.containers[0].env, name);
    expect(JSON.stringify(pod)).not.toContain("mine");

    await h.driver.startBlockServices({
      blockId: "b1",
      block: { id: "b1", minInstances: 1, policies: {} },
      instances: [],
      controllerUrl: "http://127.0.0.1:7000",
      registryUrl: "http://aios-registry.aios-test.svc:3000",
      clusterId: "c1",
    });
    const services = h.fake.get("deployments", NS, "aios-block-b1-services");
    expectSecretEnv(services?.spec.template.spec.containers[0].env, name);

    await h.driver.applyVdagController({
      id: "v1",
      replicas: 1,
      template: { image: "registry.example/v:1" },
    });
    const vdag = h.fake.get("deployments", NS, "aios-vdag-v1");
    expectSecretEnv(vdag?.spec.template.spec.containers[0].env, name);
  });

  test("a restart with another token updates the Secret; anonymous sets AIOS_ANONYMOUS", async () => {
    h = await kubeHarness({ workloadAuth: { token: "first" } });
    const fake = h.fake;
    expect(Buffer.from(fake.list("secrets", NS)[0]!.data.token, "base64").toString()).toBe("first");
    const again = await KubernetesDriver.open({
      kubeConfig: kubeConfigFor(fake),
      scope: CLUSTER,
      image: "registry.example/aios:1.0",
      controllerUrl: "http://127.0.0.1:7000",
      workloadAuth: { token: TOKEN, anonymous: true },
    });
    try {
      const secret = fake.list("secrets", NS)[0]!;
      expect(Buffer.from(secret.data.token, "base64").toString()).toBe(TOKEN);
      await again.applyVdagController({ id: "v2", replicas: 1, template: { image: "registry.example/v:1" } });
      const env = fake.get("deployments", NS, "aios-vdag-v2")?.spec.template.spec.containers[0].env;
      expect(env.find((e: { name: string }) => e.name === "AIOS_ANONYMOUS")).toEqual({
        name: "AIOS_ANONYMOUS",
        value: "1",
      });
    } finally {
      await again.close();
    }
  });

  test("no token: no Secret, no AIOS_TOKEN", async () => {
    h = await kubeHarness({ workloadAuth: { anonymous: true } });
    expect(h.fake.list("secrets", NS)).toEqual([]);
    await h.driver.applyVdagController({
      id: "v3",
      replicas: 1,
      template: { image: "registry.example/v:1" },
    });
    const env = h.fake.get("deployments", NS, "aios-vdag-v3")?.spec.template.spec.containers[0].env;
    expect(env.map((e: { name: string }) => e.name)).not.toContain("AIOS_TOKEN");
    expect(env).toContainEqual({ name: "AIOS_ANONYMOUS", value: "1" });
  });
});
