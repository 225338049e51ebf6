import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { createMetricsApp } from "../../src/registry/app.ts";
import { json, STORE_KINDS, useRegistryApp } from "./stores.ts";

// PGlite starts in 2-5 s (more on a loaded machine); bun's default 5 s per test and hook is too short.
setDefaultTimeout(60_000);

interface Envelope {
  success: boolean;
  data: unknown;
  error: string | null;
  code?: string;
}

const metrics = (load: number, freeMem: number, extra: Record<string, unknown> = {}) => ({
  cluster: { vcpu: { load_15m: load }, gpu: { totalFreeMem: freeMem } },
  region: "us",
  ...extra,
});

describe.each(STORE_KINDS)("global cluster metrics on %s", (_name, config) => {
  const registry = useRegistryApp(config, ["cluster_metrics"], async (app) => {
    for (const [id, load, mem, region] of [
      ["m-a", 3, 12000, "us"],
      ["m-b", 12, 20000, "us"],
      ["m-c", 5, 8000, "eu"],
      ["m-d", 1, 16000, "eu"],
    ] as const) {
      const res = await app.request(`/cluster/${id}`, json("PUT", metrics(load, mem, { region })));
      expect(res.status).toBe(200);
    }
  });

  const get = async (path: string, status = 200): Promise<Envelope> => {
    const res = await registry.app.request(path);
    expect(res.status).toBe(status);
    return (await res.json()) as Envelope;
  };
  const ids = (env: Envelope) => (env.data as { id: string }[]).map((d) => d.id);

  test("PUT then GET /cluster/{id} in the success envelope", async () => {
    const res = await registry.app.request("/cluster/m-new", json("PUT", metrics(2, 9000)));
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({
      success: true,
      data: { ...metrics(2, 9000), id: "m-new" },
      error: null,
    });
    expect(await get("/cluster/m-new")).toEqual({
      success: true,
      data: { ...metrics(2, 9000), id: "m-new" },
      error: null,
    });

    // PUT replaces the whole document.
    await registry.app.request("/cluster/m-new", json("PUT", { cluster: { vcpu: { load_15m: 7 } } }));
    expect((await get("/cluster/m-new")).data).toEqual({ cluster: { vcpu: { load_15m: 7 } }, id: "m-new" });
  });

  test("a missing cluster is a 404 with success false and an error message", async () => {
    const env = await get("/cluster/m-none", 404);
    expect(env.success).toBe(false);
    expect(env.data).toBeNull();
    expect(env.error).toContain("m-none");
    expect(env.code).toBe("not_found");
  });

  test("GET /cluster/query?query=<JSON filter> with sort and limit", async () => {
    const q = encodeURIComponent(
      JSON.stringify({ "cluster.gpu.totalFreeMem": { $gt: 9000 }, id: { $regex: "^m-[a-d]$" } }),
    );
    const sort = encodeURIComponent(JSON.stringify({ "cluster.vcpu.load_15m": 1 }));
    const env = await get(`/cluster/query?query=${q}&sort=${sort}`);
    expect(env.success).toBe(true);
    expect(ids(env)).toEqual(["m-d", "m-a", "m-b"]);
    expect(ids(await get(`/cluster/query?query=${q}&sort=${sort}&limit=1&skip=1`))).toEqual(["m-a"]);
  });

  test("GET /cluster/query with plain key=value pairs: equality, numbers as numbers", async () => {
    expect(ids(await get("/cluster/query?region=eu&sort=%7B%22id%22%3A1%7D"))).toEqual(["m-c", "m-d"]);
    expect(ids(await get("/cluster/query?cluster.vcpu.load_15m=12"))).toEqual(["m-b"]);
    expect(ids(await get("/cluster/query?cluster.gpu.totalFreeMem=8000&region=eu"))).toEqual(["m-c"]);
    const both = await get('/cluster/query?id=m-a&id=m-c&sort={"id":-1}');
    expect(ids(both)).toEqual(["m-c", "m-a"]);
    expect(ids(await get("/cluster/query?region=mars"))).toEqual([]);
  });

  test("POST /cluster/query {query, options}", async () => {
    const res = await registry.app.request(
      "/cluster/query",
      json("POST", {
        query: { "cluster.vcpu.load_15m": { $lt: 10 }, region: "us" },
        options: { sort: { id: 1 } },
      }),
    );
    expect(res.status).toBe(200);
    const env = (await res.json()) as Envelope;
    expect(env.success).toBe(true);
    expect(ids(env).filter((id) => id !== "m-new")).toEqual(["m-a"]);
  });

  test("bad input keeps the envelope, with a 4xx naming the problem", async () => {
    let env = await get("/cluster/query?query=%7Bnot-json", 400);
    expect(env.success).toBe(false);
    expect(env.error).toContain("query");

    env = await get(`/cluster/query?query=${encodeURIComponent('{"region": {"$bogus": 1}}')}`, 400);
    expect(env.error).toContain("$bogus");
    expect(env.code).toBe("unknown_operator");

    env = await get("/cluster/query?limit=-3", 400);
    expect(env.error).toContain("limit");

    env = await get("/cluster/query?sort=[1]", 400);
    expect(env.error).toContain("sort");

    env = await get(`/cluster/query?query=${encodeURIComponent("{}")}&region=eu`, 400);
    expect(env.error).toContain("region");

    let res = await registry.app.request("/cluster/m-a", json("PUT", "{oops"));
    expect(res.status).toBe(400);
    env = (await res.json()) as Envelope;
    expect(env).toMatchObject({ success: false, data: null, code: "invalid_json" });

    res = await registry.app.request("/cluster/m-a", json("PUT", { blob: "y".repeat(1_100_000) }));
    expect(res.status).toBe(413);
    expect(((await res.json()) as Envelope).success).toBe(false);

    res = await registry.app.request("/cluster/m-a", json("PUT", { id: "m-b" }));
    expect(res.status).toBe(400);
    expect(((await res.json()) as Envelope).code).toBe("id_mismatch");

    res = await registry.app.request("/cluster/m-a", json("PUT", [1, 2]));
    expect(res.status).toBe(400);
    expect(((await res.json()) as Envelope).error).toStartWith("body:");

    res = await registry.app.request("/cluster/query", json("POST", { query: { $where: "1" } }));
    expect(res.status).toBe(400);
    expect(((await res.json()) as Envelope).error).toContain("$where");

    res = await registry.app.request("/cluster/m-a", { method: "PATCH" });
    expect(res.status).toBe(404);
    expect(((await res.json()) as Envelope).success).toBe(false);

    // Nothing above changed m-a.
    expect((await get("/cluster/m-a")).data).toEqual({ ...metrics(3, 12000), id: "m-a" });
  });

  test("DELETE /cluster/{id}", async () => {
    await registry.app.request("/cluster/m-gone", json("PUT", metrics(1, 1)));
    const res = await registry.app.request("/cluster/m-gone", { method: "DELETE" });
    expect(await res.json()).toEqual({ success: true, data: { id: "m-gone", deleted: true }, error: null });
    await get("/cluster/m-gone", 404);
    const again = await registry.app.request("/cluster/m-gone", { method: "DELETE" });
    expect(again.status).toBe(404);
  });

  test("the metrics-only app serves /cluster and nothing of the registries", async () => {
    const metricsApp = createMetricsApp(registry.store);
    const res = await metricsApp.request("/cluster/m-a");
    expect(((await res.json()) as Envelope).data).toEqual({ ...metrics(3, 12000), id: "m-a" });
    const other = await metricsApp.request("/clusters");
    expect(other.status).toBe(404);
    expect(((await other.json()) as Envelope).success).toBe(false);
  });
});
