import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { json, STORE_KINDS, useRegistryApp } from "./stores.ts";

// PGlite starts in 2-5 s (more on a loaded machine); bun's default 5 s per test and hook is too short.
setDefaultTimeout(60_000);

const URI = "model.object-detector:2.0.0-stable";

const component = (uri: string, extra: Record<string, unknown> = {}) => ({
  componentURI: uri,
  componentInitData: { weights_path: "/models/yolov5s.pt", device: "cuda" },
  componentInitSettings: { batch_size: 4 },
  componentParameters: { confidence_threshold: 0.5 },
  componentMetadata: { description: "object detector" },
  tags: ["vision"],
  policies: [{ name: "loadBalancer", policyRuleURI: "policy.loadBalancer.roundrobin:v0.0.1" }],
  ...extra,
});

describe.each(STORE_KINDS)("component registry on %s", (_name, config) => {
  const registry = useRegistryApp(config, ["components"]);
  const req = (path: string, init?: RequestInit) => registry.app.request(path, init);
  const post = (path: string, body: unknown) => req(path, json("POST", body));
  const errorOf = async (res: Response) =>
    ((await res.json()) as { error: { code: string; message: string; details: unknown } }).error;

  test("POST with componentURI stores it as the id too; GET by URI, raw or percent-encoded", async () => {
    const res = await post("/components", component(URI));
    expect(res.status).toBe(201);
    const doc = (await res.json()) as Record<string, unknown>;
    expect(doc.id).toBe(URI);
    expect(doc.componentURI).toBe(URI);
    expect(doc.policies).toEqual(component(URI).policies);

    expect(await (await req(`/components/${URI}`)).json()).toEqual(doc);
    expect(await (await req(`/components/${encodeURIComponent(URI)}`)).json()).toEqual(doc);
  });

  test("POST with id instead of componentURI; a duplicate is a 409", async () => {
    const { componentURI: _, ...rest } = component("model.tagger:1.0.0");
    let res = await post("/components", { ...rest, id: "model.tagger:1.0.0" });
    expect(res.status).toBe(201);
    expect(((await res.json()) as Record<string, unknown>).componentURI).toBe("model.tagger:1.0.0");

    res = await post("/components", component("model.tagger:1.0.0"));
    expect(res.status).toBe(409);
    expect((await errorOf(res)).code).toBe("conflict");
  });

  test("URIs must be name:version; id and componentURI must agree; fields are type-checked", async () => {
    let res = await post("/components", component("no-version"));
    expect(res.status).toBe(400);
    expect((await errorOf(res)).message).toStartWith("componentURI:");

    res = await post("/components", component("a:b:c"));
    expect(res.status).toBe(400);

    res = await post("/components", { tags: [] });
    expect(res.status).toBe(400);
    expect((await errorOf(res)).message).toStartWith("componentURI:");

    res = await post("/components", { ...component("m.x:1"), id: "m.y:1" });
    expect(res.status).toBe(400);
    expect((await errorOf(res)).code).toBe("id_mismatch");

    res = await post("/components", component("m.x:1", { componentParameters: "fast" }));
    expect(res.status).toBe(400);
    expect((await errorOf(res)).message).toStartWith("componentParameters:");

    res = await req("/components/not-a-uri");
    expect(res.status).toBe(400);
    expect((await errorOf(res)).message).toStartWith("componentURI:");

    res = await req("/components/m.missing:1.0");
    expect(res.status).toBe(404);
  });

  test("PUT replaces, PATCH updates but never the URI, DELETE removes", async () => {
    const uri = "model.segmenter:0.1.0-beta+build.7";
    let res = await req(`/components/${encodeURIComponent(uri)}`, json("PUT", { tags: ["a"] }));
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ tags: ["a"], id: uri, componentURI: uri });

    res = await req(
      `/components/${uri}`,
      json("PATCH", { $addToSet: { tags: "b" }, $set: { "componentParameters.k": 3 } }),
    );
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({
      tags: ["a", "b"],
      id: uri,
      componentURI: uri,
      componentParameters: { k: 3 },
    });

    res = await req(`/components/${uri}`, json("PATCH", { $set: { componentURI: "other:1" } }));
    expect(res.status).toBe(400);
    expect((await errorOf(res)).code).toBe("immutable_field");

    res = await req(`/components/${uri}`, json("PUT", { componentURI: "other:1" }));
    expect(res.status).toBe(400);
    expect((await errorOf(res)).code).toBe("id_mismatch");

    res = await req(`/components/${uri}`, { method: "DELETE" });
    expect(await res.json()).toEqual({ id: uri, deleted: true });
    expect((await req(`/components/${uri}`)).status).toBe(404);
  });

  test("list and query", async () => {
    await post("/components", component("policy.like:1", { tags: ["x"] }));
    const list = (await (await req("/components")).json()) as { id: string }[];
    expect(list.map((d) => d.id)).toEqual([...list.map((d) => d.id)].sort());
    expect(list.length).toBeGreaterThanOrEqual(3);

    const res = await post("/components/query", { query: { tags: "vision" }, options: { sort: { id: -1 } } });
    expect(res.status).toBe(200);
    expect(((await res.json()) as { id: string }[]).map((d) => d.id)).toEqual(["model.tagger:1.0.0", URI]);
  });
});
