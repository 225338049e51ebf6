import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { constantPolicy, noEvalPolicy, wasiPolicy } from "../policy/watPolicies.ts";
import { compileWat } from "../support/wat.ts";
import { STORE_KINDS, useRegistryApp } from "./stores.ts";

setDefaultTimeout(60_000);

const URI = "policy.loadBalancer.first:v0.0.1";
const wasm = (wat: string) => compileWat(wat);
const firstInstance = () => wasm(constantPolicy('{"instance_id":"i-0"}'));
const otherBytes = () => wasm(constantPolicy('{"instance_id":"i-1"}'));

const putWasm = (bytes: Uint8Array): RequestInit => ({
  method: "PUT",
  headers: { "content-type": "application/wasm" },
  body: bytes as Uint8Array<ArrayBuffer>,
});

describe.each(STORE_KINDS)("policy store API on %s", (_name, config) => {
  const registry = useRegistryApp(config, ["policies"]);
  const req = (path: string, init?: RequestInit) => registry.app.request(path, init);
  const put = (uri: string, bytes: Uint8Array, query = "kind=loadBalancer") =>
    req(`/policies/${encodeURIComponent(uri)}?${query}`, putWasm(bytes));
  const errorOf = async (res: Response) =>
    ((await res.json()) as { error: { code: string; message: string; details: unknown } }).error;

  test("PUT stores the module with its metadata; the same bytes again are a no-op", async () => {
    const bytes = await firstInstance();
    const res = await put(URI, bytes, "kind=loadBalancer&description=always%20the%20first&fuel=50000");
    expect(res.status).toBe(201);
    const doc = (await res.json()) as Record<string, unknown>;
    expect(doc).toMatchObject({
      uri: URI,
      name: "policy.loadBalancer.first",
      version: "v0.0.1",
      kind: "loadBalancer",
      description: "always the first",
      size: bytes.byteLength,
      exports: ["eval"],
      limits: { fuel: 50000 },
    });
    expect(doc.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(doc.imports).toContain("extism:host/env.alloc");
    const again = await put(URI, bytes);
    expect(again.status).toBe(200);
    expect(((await again.json()) as Record<string, unknown>).sha256).toBe(doc.sha256);
  });

  test("other bytes under a stored URI are refused with 409 and change nothing", async () => {
    const res = await put(URI, await otherBytes());
    expect(res.status).toBe(409);
    expect((await errorOf(res)).code).toBe("policy_exists");
    const original = new Uint8Array(await (await req(`/policies/${URI}/wasm`)).arrayBuffer());
    expect(original).toEqual(new Uint8Array(await firstInstance()));
  });

  test("download gives the original bytes, or the instrumented module", async () => {
    const res = await req(`/policies/${URI}/wasm`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("application/wasm");
    const instrumented = await req(`/policies/${encodeURIComponent(URI)}/wasm?form=instrumented`);
    const module = new WebAssembly.Module(await instrumented.arrayBuffer());
    expect(WebAssembly.Module.exports(module).map((e) => e.name)).toContain("aios_fuel");
    expect((await req(`/policies/${URI}/wasm?form=source`)).status).toBe(400);
  });

  test("a multipart form uploads too, with the URI in the path or in the form", async () => {
    const form = new FormData();
    form.set("module", new Blob([(await otherBytes()) as Uint8Array<ArrayBuffer>]), "second.wasm");
    form.set("kind", "loadBalancer");
    form.set("uri", "policy.loadBalancer.second:v1");
    const res = await req("/policies", { method: "POST", body: form });
    expect(res.status).toBe(201);
    expect(((await res.json()) as Record<string, unknown>).uri).toBe("policy.loadBalancer.second:v1");
    const missingFile = new FormData();
    missingFile.set("kind", "loadBalancer");
    const bad = await req("/policies/policy.x:v1", { method: "PUT", body: missingFile });
    expect(bad.status).toBe(400);
    expect((await errorOf(bad)).code).toBe("missing_module");
  });

  test("list filters by kind; an unknown kind is a 400", async () => {
    await put(
      "policy.preCheck.allow:v1",
      await wasm(constantPolicy('{"allowed":true,"input_data":{}}')),
      "kind=preCheck",
    );
    const lbs = (await (await req("/policies?kind=loadBalancer")).json()) as { uri: string }[];
    expect(lbs.map((p) => p.uri)).toEqual([
      "policy.loadBalancer.first:v0.0.1",
      "policy.loadBalancer.second:v1",
    ]);
    const all = (await (await req("/policies")).json()) as { uri: string }[];
    expect(all).toHaveLength(3);
    expect((await req("/policies?kind=balancer")).status).toBe(400);
  });

  test("admission refusals are 422 naming the problem", async () => {
    const wasi = await put("policy.bad.wasi:v1", await wasm(wasiPolicy));
    expect(wasi.status).toBe(422);
    const wasiError = await errorOf(wasi);
    expect(wasiError.code).toBe("wasi_import");
    expect(wasiError.message).toContain("wasi_snapshot_preview1");
    const noEval = await put("policy.bad.noeval:v1", await wasm(noEvalPolicy));
    expect(noEval.status).toBe(422);
    expect((await errorOf(noEval)).code).toBe("missing_export");
    const garbage = await put("policy.bad.garbage:v1", new TextEncoder().encode("not wasm at all"));
    expect(garbage.status).toBe(422);
    expect((await errorOf(garbage)).code).toBe("invalid_module");
    expect((await req("/policies/policy.bad.wasi:v1")).status).toBe(404);
  });

  test("bad requests name what is wrong", async () => {
    const bytes = await firstInstance();
    const noKind = await put("policy.x:v1", bytes, "");
    expect(noKind.status).toBe(400);
    expect((await errorOf(noKind)).message).toContain("kind");
    const badUri = await put("no-version", bytes);
    expect(badUri.status).toBe(400);
    expect((await errorOf(badUri)).message).toContain("name:version");
    const tinyFuel = await put("policy.x:v1", bytes, "kind=loadBalancer&fuel=abc");
    expect(tinyFuel.status).toBe(400);
    const empty = await put("policy.x:v1", new Uint8Array(0));
    expect((await errorOf(empty)).code).toBe("empty_module");
    const asJson = await req("/policies/policy.x:v1?kind=loadBalancer", {
      method: "PUT",
      headers: { "content-type": "application/json" },
      body: "{}",
    });
    expect(asJson.status).toBe(415);
  });

  test("DELETE removes the policy; its URI can then be reused", async () => {
    const res = await req("/policies/policy.loadBalancer.second:v1", { method: "DELETE" });
    expect(await res.json()).toEqual({ uri: "policy.loadBalancer.second:v1", deleted: true });
    expect((await req("/policies/policy.loadBalancer.second:v1")).status).toBe(404);
    expect((await req("/policies/policy.loadBalancer.second:v1", { method: "DELETE" })).status).toBe(404);
    expect((await put("policy.loadBalancer.second:v1", await firstInstance())).status).toBe(201);
  });
});
