/**
 * deploy/kustomize: the base and every overlay render with `kubectl kustomize` (Debian's
 * kubernetes-client), and every rendered object validates against the Kubernetes OpenAPI schemas.
 * Skipped, saying so, where kubectl is not installed.
 */
import { describe, expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { loadAllYaml } from "@kubernetes/client-node";
import { parseToken } from "../../../src/auth/tokens.ts";
import { knownKind, validateObject } from "./validate.ts";

const ROOT = join(import.meta.dir, "../../..");
const KUSTOMIZE = join(ROOT, "deploy/kustomize");
const kubectl =
  ["/usr/bin/kubectl", "/usr/local/bin/kubectl"].find(existsSync) ??
  (spawnSync("sh", ["-c", "command -v kubectl"], { encoding: "utf8" }).stdout.trim() || null);
if (!kubectl)
  console.warn(
    "[skip] deploy/kustomize render tests: kubectl is not installed (apt install kubernetes-client)",
  );

const overlays = readdirSync(join(KUSTOMIZE, "overlays"));
const targets = ["base", ...overlays.map((o) => `overlays/${o}`)];

// biome-ignore lint/suspicious/noExplicitAny: rendered YAML is free-form.
type Obj = Record<string, any>;

const render = (target: string): Obj[] => {
  const out = spawnSync(kubectl as string, ["kustomize", join(KUSTOMIZE, target)], { encoding: "utf8" });
  if (out.status !== 0) throw new Error(`kubectl kustomize ${target} failed:\n${out.stderr}`);
  return loadAllYaml(out.stdout) as Obj[];
};

const find = (objs: Obj[], kind: string, name: string) =>
  objs.find(
    (o) => o.kind === kind && (o.metadata?.name === name || o.metadata?.name?.startsWith(`${name}-`)),
  );

describe.skipIf(!kubectl)("deploy/kustomize", () => {
  test("there are the overlays the README describes", () => {
    expect(overlays.sort()).toEqual(["dev", "production"]);
  });

  for (const target of targets) {
    test(`${target} renders and every object validates`, async () => {
      const objs = render(target);
      expect(objs.length).toBeGreaterThan(10);
      for (const o of objs) {
        expect(knownKind(o)).toBe(true);
        await validateObject(o);
      }
      for (const name of ["aios-registry", "aios-gateway", "aios-allocator", "aios-controller"]) {
        const d = find(objs, "Deployment", name);
        expect(d).toBeDefined();
        const c = d?.spec.template.spec.containers[0];
        expect(c.readinessProbe).toBeDefined();
        expect(c.livenessProbe).toBeDefined();
        expect(c.resources.requests).toBeDefined();
        expect(c.resources.limits.memory).toBeDefined();
        expect(find(objs, "Service", name)).toBeDefined();
        // Every Deployment's connection settings come from the one Secret.
        const secretRefs = (c.envFrom ?? []).map((e: Obj) => e.secretRef?.name).filter(Boolean);
        expect(secretRefs[0]).toMatch(/^aios-connections/);
        // ... and its credentials (AIOS_TOKEN, AIOS_ADMIN_TOKEN) from the tokens Secret.
        expect(secretRefs[1]).toMatch(/^aios-tokens/);
        // The pod's namespace is everything's namespace.
        expect(d?.metadata.namespace).toBe("aios");
      }
      const controller = find(objs, "Deployment", "aios-controller");
      expect(controller?.spec.template.spec.serviceAccountName).toBe("aios-controller");
      expect(controller?.spec.template.spec.containers[0].args).toEqual(
        expect.arrayContaining(["controller", "--cluster-id", "$(AIOS_CLUSTER_ID)", "--in-cluster"]),
      );
      const config = find(objs, "ConfigMap", "aios-config");
      expect(config?.data.AIOS_RUNTIME).toBe("kubernetes");
      // The image handed to block services is the controller's own.
      expect(config?.data.AIOS_IMAGE).toBe(controller?.spec.template.spec.containers[0].image);
      // RBAC: namespaced for the workloads, cluster-wide only for nodes and draining; no wildcard.
      const role = find(objs, "Role", "aios-controller") ?? {};
      const clusterRole = find(objs, "ClusterRole", "aios-controller") ?? {};
      for (const r of [...role.rules, ...clusterRole.rules]) {
        expect(r.verbs).not.toContain("*");
        expect(r.resources).not.toContain("*");
        expect(r.verbs).not.toContain("update");
      }
      expect(clusterRole.rules.flatMap((r: Obj) => r.resources).sort()).toEqual([
        "nodes",
        "nodes",
        "pods",
        "pods/eviction",
      ]);
      const binding = find(objs, "ClusterRoleBinding", "aios-controller");
      expect(binding?.subjects).toEqual([
        { kind: "ServiceAccount", name: "aios-controller", namespace: "aios" },
      ]);
    });
  }

  test("dev runs Postgres and Redis in the cluster; production expects their URLs in a Secret", () => {
    const dev = render("overlays/dev");
    expect(find(dev, "StatefulSet", "aios-postgres")).toBeDefined();
    expect(find(dev, "Deployment", "aios-redis")).toBeDefined();
    const secret = find(dev, "Secret", "aios-connections");
    const url = Buffer.from(secret?.data.DATABASE_URL, "base64").toString();
    expect(url).toMatch(/@aios-postgres:5432\//);
    expect(
      find(dev, "Deployment", "aios-controller")?.spec.template.spec.containers[0].envFrom,
    ).toContainEqual({
      secretRef: { name: secret?.metadata.name },
    });
    // The dev tokens are well-formed, so the services can store them at start.
    const tokens = find(dev, "Secret", "aios-tokens");
    for (const key of ["AIOS_TOKEN", "AIOS_ADMIN_TOKEN"]) {
      expect(parseToken(Buffer.from(tokens?.data[key], "base64").toString())).not.toBeNull();
    }
    const prod = render("overlays/production");
    expect(find(prod, "StatefulSet", "aios-postgres")).toBeUndefined();
    expect(find(prod, "Secret", "aios-tokens")).toBeUndefined();
    expect(find(prod, "Secret", "aios-connections")).toBeUndefined();
    expect(find(prod, "Deployment", "aios-gateway")?.spec.replicas).toBe(2);
    expect(find(prod, "PodDisruptionBudget", "aios-gateway")).toBeDefined();
    expect(find(prod, "Deployment", "aios-controller")?.spec.template.spec.containers[0].image).not.toMatch(
      /:latest$/,
    );
  });
});
