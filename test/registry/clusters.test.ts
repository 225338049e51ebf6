import { beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { json, STORE_KINDS, useRegistryApp } from "./stores.ts";

// PGlite starts in 2-5 s (more on a loaded machine); bun's default 5 s per test and hook is too short.
setDefaultTimeout(60_000);

/** A cluster shaped like the cluster-controller specification's example, trimmed. */
const cluster = (id: string, extra: Record<string, unknown> = {}) => ({
  id,
  regionId: "us-west-2",
  status: "live",
  nodes: {
    count: 1,
    nodeData: [{ id: "node-1", gpus: { count: 2, memory: 32768 }, vcpus: { count: 32 }, memory: 131072 }],
  },
  gpus: { count: 2, memory: 32768 },
  vcpus: { count: 32 },
  memory: 131072,
  config: { publicHostname: `${id}.company.net`, useGateway: true, urlMap: {} },
  tags: ["gpu", "production"],
  clusterMetadata: { name: "Sample cluster", countries: ["USA"], additionalInfo: {} },
  reputation: 90,
  ...extra,
});

describe.each(STORE_KINDS)("cluster registry on %s", (_name, config) => {
  const registry = useRegistryApp(config, ["clusters"]);
  const req = (path: string, init?: RequestInit) => registry.app.request(path, init);
  const post = (path: string, body: unknown) => req(path, json("POST", body));
  const errorOf = async (res: Response) => {
    const body = (await res.json()) as { error: { code: string; message: string; details: unknown } };
    expect(Object.keys(body)).toEqual(["error"]);
    expect(Object.keys(body.error).sort()).toEqual(["code", "details", "message"]);
    return body.error;
  };

  test("POST creates (201) and keeps unknown fields; GET returns the document itself", async () => {
    const res = await post("/clusters", cluster("c-west", { custom: { anything: [1, "two"] } }));
    expect(res.status).toBe(201);
    const created = (await res.json()) as Record<string, unknown>;
    expect(created.id).toBe("c-west");
    expect(created.custom).toEqual({ anything: [1, "two"] });

    const got = await req("/clusters/c-west");
    expect(got.status).toBe(200);
    expect(await got.json()).toEqual(created);
  });

  test("a duplicate id is a 409", async () => {
    await post("/clusters", cluster("c-dup"));
    const res = await post("/clusters", cluster("c-dup"));
    expect(res.status).toBe(409);
    expect((await errorOf(res)).code).toBe("conflict");
  });

  test("a missing document is a 404 with the error contract", async () => {
    const res = await req("/clusters/nope");
    expect(res.status).toBe(404);
    const error = await errorOf(res);
    expect(error.code).toBe("not_found");
    expect(error.message).toContain("nope");
  });

  test("wrong types are 400s naming the JSON path", async () => {
    let res = await post("/clusters", { ...cluster("c-bad"), nodes: { count: "two" } });
    expect(res.status).toBe(400);
    let error = await errorOf(res);
    expect(error.code).toBe("invalid_input");
    expect(error.message).toStartWith("nodes.count:");

    res = await post("/clusters", {
      ...cluster("c-bad"),
      nodes: { nodeData: [{ id: "n1" }, { id: "n2", gpus: { count: "many" } }] },
    });
    error = await errorOf(res);
    expect(res.status).toBe(400);
    expect(error.message).toStartWith("nodes.nodeData.1.gpus.count:");

    res = await post("/clusters", { ...cluster("c-bad"), tags: ["ok", 3] });
    expect((await errorOf(res)).message).toStartWith("tags.1:");

    res = await post("/clusters", { regionId: "x" });
    expect(res.status).toBe(400);
    expect((await errorOf(res)).message).toStartWith("id:");

    res = await post("/clusters", [cluster("c-array")]);
    expect(res.status).toBe(400);
    expect((await errorOf(res)).message).toStartWith("body:");

    res = await post("/clusters", cluster("query"));
    expect(res.status).toBe(400);
    expect((await errorOf(res)).message).toContain("reserved");

    res = await post("/clusters", cluster("has/slash"));
    expect(res.status).toBe(400);

    res = await post("/clusters", { ...cluster("c-dollar"), config: { $where: "x" } });
    expect(res.status).toBe(400);
    error = await errorOf(res);
    expect(error.code).toBe("bad_field_name");
    expect(error.message).toContain("config.$where");
  });

  test("malformed JSON, an empty body, a huge body and a deep body are refused", async () => {
    let res = await post("/clusters", '{"id": "c-x",');
    expect(res.status).toBe(400);
    expect((await errorOf(res)).code).toBe("invalid_json");

    res = await req("/clusters", { method: "POST" });
    expect(res.status).toBe(400);
    expect((await errorOf(res)).code).toBe("invalid_json");

    res = await post("/clusters", cluster("c-huge", { blob: "x".repeat(2 * 1024 * 1024) }));
    expect(res.status).toBe(413);
    expect((await errorOf(res)).code).toBe("payload_too_large");

    // The same without a Content-Length (a stream): counted while reading.
    const stream = new ReadableStream({
      start(controller) {
        for (let i = 0; i < 40; i++) controller.enqueue(new TextEncoder().encode(" ".repeat(64 * 1024)));
        controller.close();
      },
    });
    res = await req("/clusters", {
      method: "POST",
      body: stream,
      headers: { "content-type": "application/json" },
    });
    expect(res.status).toBe(413);

    const deep = `{"id":"c-deep","x":${"[".repeat(5000)}${"]".repeat(5000)}}`;
    res = await post("/clusters", deep);
    expect(res.status).toBe(400);
    expect((await errorOf(res)).code).toBe("too_deep");
    expect((await req("/clusters/c-deep")).status).toBe(404);
  });

  test("PATCH applies a MongoDB update document", async () => {
    await post("/clusters", cluster("c-patch"));
    const res = await req(
      "/clusters/c-patch",
      json("PATCH", {
        $set: { status: "draining", "clusterMetadata.owner": "infra" },
        $inc: { "gpus.count": 2 },
        $push: { tags: "vision" },
        $unset: { swap: "" },
      }),
    );
    expect(res.status).toBe(200);
    const doc = (await res.json()) as ReturnType<typeof cluster> & { clusterMetadata: { owner: string } };
    expect(doc.status).toBe("draining");
    expect(doc.clusterMetadata.owner).toBe("infra");
    expect(doc.gpus.count).toBe(4);
    expect(doc.tags).toEqual(["gpu", "production", "vision"]);
    expect(await (await req("/clusters/c-patch")).json()).toEqual(doc);
  });

  test("PATCH refuses bad updates with a 400 naming the culprit", async () => {
    await post("/clusters", cluster("c-patch-bad"));
    const patch = async (update: unknown) => {
      const res = await req("/clusters/c-patch-bad", json("PATCH", update));
      expect(res.status).toBe(400);
      return errorOf(res);
    };
    let error = await patch({ reputation: 5 });
    expect(error.code).toBe("bad_update");
    expect(error.message).toContain("reputation");

    error = await patch({ $set: { id: "other" } });
    expect(error.code).toBe("immutable_field");
    error = await patch({ $rename: { status: "id" } });
    expect(error.code).toBe("immutable_field");
    error = await patch({ $unset: { id: "" } });
    expect(error.code).toBe("immutable_field");

    error = await patch({ $set: { reputation: "high" } });
    expect(error.message).toStartWith("$set.reputation:");
    error = await patch({ $set: { "nodes.nodeData.0.memory": "lots" } });
    expect(error.message).toStartWith("$set.nodes.nodeData.0.memory:");
    error = await patch({ $push: { tags: 7 } });
    expect(error.message).toStartWith("$push.tags:");

    error = await patch({ $frobnicate: { reputation: 1 } });
    expect(error.code).toBe("unknown_operator");
    expect(error.message).toContain("$frobnicate");

    error = await patch({});
    expect(error.code).toBe("bad_update");

    // Nothing above changed the document.
    expect(await (await req("/clusters/c-patch-bad")).json()).toEqual(cluster("c-patch-bad"));
  });

  test("PATCH of a missing document is a 404", async () => {
    const res = await req("/clusters/ghost", json("PATCH", { $set: { status: "x" } }));
    expect(res.status).toBe(404);
  });

  test("PUT replaces the whole document, or creates it; the body id must match", async () => {
    await post("/clusters", cluster("c-put"));
    let res = await req("/clusters/c-put", json("PUT", { status: "offline", reputation: 1 }));
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ id: "c-put", status: "offline", reputation: 1 });
    expect(await (await req("/clusters/c-put")).json()).toEqual({
      id: "c-put",
      status: "offline",
      reputation: 1,
    });

    res = await req("/clusters/c-put-new", json("PUT", cluster("c-put-new")));
    expect(res.status).toBe(200);
    expect((await req("/clusters/c-put-new")).status).toBe(200);

    res = await req("/clusters/c-put", json("PUT", cluster("someone-else")));
    expect(res.status).toBe(400);
    expect((await errorOf(res)).code).toBe("id_mismatch");

    res = await req("/clusters/c-put", json("PUT", { reputation: "great" }));
    expect(res.status).toBe(400);
    expect((await errorOf(res)).message).toStartWith("reputation:");
  });

  test("DELETE removes; deleting again is a 404", async () => {
    await post("/clusters", cluster("c-del"));
    let res = await req("/clusters/c-del", { method: "DELETE" });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ id: "c-del", deleted: true });
    expect((await req("/clusters/c-del")).status).toBe(404);
    res = await req("/clusters/c-del", { method: "DELETE" });
    expect(res.status).toBe(404);
  });

  describe("listing and querying", () => {
    beforeAll(async () => {
      for (const [id, gpus, reputation, region] of [
        ["q-a", 1, 50, "eu"],
        ["q-b", 4, 95, "us"],
        ["q-c", 8, 70, "us"],
        ["q-d", 6, 99, "eu"],
      ] as const) {
        const res = await post(
          "/clusters",
          cluster(id, {
            gpus: { count: gpus, memory: gpus * 16384 },
            reputation,
            regionId: region,
            tags: [region],
          }),
        );
        expect(res.status).toBe(201);
      }
    });

    const ids = async (res: Response) => ((await res.json()) as { id: string }[]).map((d) => d.id);

    test("GET /clusters lists in id order with limit and skip", async () => {
      const all = await ids(await req("/clusters"));
      expect(all).toEqual([...all].sort());
      expect(all).toContain("q-a");
      const qs = all.filter((id) => id.startsWith("q-"));
      expect(qs).toEqual(["q-a", "q-b", "q-c", "q-d"]);
      const start = all.indexOf("q-a");
      expect(await ids(await req(`/clusters?skip=${start + 1}&limit=2`))).toEqual(["q-b", "q-c"]);
      expect(await ids(await req("/clusters/?limit=1"))).toHaveLength(1);

      const res = await req("/clusters?limit=ten");
      expect(res.status).toBe(400);
      expect((await errorOf(res)).message).toContain("limit");
    });

    test("POST /clusters/query filters, sorts and limits", async () => {
      const res = await post("/clusters/query", {
        query: { "gpus.count": { $gte: 4 }, id: { $regex: "^q-" } },
        options: { sort: { reputation: -1 }, limit: 2 },
      });
      expect(res.status).toBe(200);
      expect(await ids(res)).toEqual(["q-d", "q-b"]);

      expect(await ids(await post("/clusters/query", { query: { regionId: "eu", tags: "eu" } }))).toEqual(
        expect.arrayContaining(["q-a", "q-d"]),
      );
      const projected = await post("/clusters/query", {
        query: {
          $or: [{ reputation: { $lt: 60 } }, { "gpus.count": 8 }],
          id: { $in: ["q-a", "q-b", "q-c"] },
        },
        options: { sort: { id: 1 }, projection: { reputation: 1 } },
      });
      expect(await projected.json()).toEqual([
        { id: "q-a", reputation: 50 },
        { id: "q-c", reputation: 70 },
      ]);
    });

    test("POST /clusters/query with only {query}, as the specification's ClusterClient sends it", async () => {
      const res = await post("/clusters/query", { query: { id: "q-c" } });
      const docs = (await res.json()) as { id: string; reputation: number }[];
      expect(docs).toHaveLength(1);
      expect(docs[0]?.reputation).toBe(70);
    });

    test("bad queries are 400s naming the operator or field", async () => {
      const bad = async (body: unknown) => {
        const res = await post("/clusters/query", body);
        expect(res.status).toBe(400);
        return errorOf(res);
      };
      let error = await bad({ query: { reputation: { $near: 3 } } });
      expect(error.code).toBe("unknown_operator");
      expect(error.message).toContain("$near");

      error = await bad({ query: { $where: "sleep(1000)" } });
      expect(error.message).toContain("$where");

      error = await bad({ query: { id: "q-a" }, options: { limit: -1 } });
      expect(error.message).toContain("limit");

      error = await bad({ filter: { id: "q-a" } });
      expect(error.message).toStartWith("filter:");

      error = await bad({ query: [] });
      expect(error.message).toStartWith("query:");

      error = await bad({ query: { reputation: { $regex: "(" } } });
      expect(error.message).toContain("$regex");

      // 40 nested $and: too deep for the body reader or the filter compiler, never a 5xx.
      let nested: unknown = { id: "q-a" };
      for (let i = 0; i < 40; i++) nested = { $and: [nested] };
      error = await bad({ query: nested });
      expect(error.code).toBe("too_deep");

      // 20 nested $and pass the body reader (depth 42 < 64) and are refused by the filter compiler.
      nested = { id: "q-a" };
      for (let i = 0; i < 20; i++) nested = { $and: [{ $or: [nested] }] };
      error = await bad({ query: nested });
      expect(error.code).toBe("too_deep");
    });
  });

  test("unknown routes and methods are 404s with the error contract", async () => {
    let res = await req("/nowhere");
    expect(res.status).toBe(404);
    expect((await errorOf(res)).code).toBe("not_found");
    res = await req("/clusters/x/y");
    expect(res.status).toBe(404);
    res = await req("/clusters/x", { method: "POST" });
    expect(res.status).toBe(404);
  });

  test("GET /health names the store", async () => {
    const res = await req("/health");
    expect(await res.json()).toEqual({ status: "ok", store: registry.store.kind });
  });
});
