/**
 * The mapper: the live instance list, pushed (set/upsert/remove and its HTTP API) or polled from a
 * source, reaching subscribers only when something changed.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { createMapperApp } from "../../src/block/app.ts";
import { httpInstanceSource, type InstanceChange, Mapper, readInstanceList } from "../../src/block/mapper.ts";
import { ApiError } from "../../src/http/errors.ts";

const a = { id: "i-a", url: "http://127.0.0.1:9001" };
const b = { id: "i-b", url: "http://127.0.0.1:9002" };
const c = { id: "i-c", url: "http://127.0.0.1:9003" };

const servers: ReturnType<typeof Bun.serve>[] = [];
afterAll(async () => {
  for (const s of servers) await s.stop(true);
});

describe("Mapper", () => {
  test("subscribers hear the current list at once, then each real change with what changed", () => {
    const mapper = new Mapper({ blockId: "b", instances: [a] });
    const heard: InstanceChange[] = [];
    mapper.subscribe((change) => heard.push(change));
    expect(heard[0]?.instances).toEqual([a]);

    expect(mapper.set([a, b])?.added).toEqual(["i-b"]);
    expect(mapper.set([a, b])).toBeNull(); // nothing changed: nobody hears
    expect(mapper.upsert({ id: "i-a", url: "http://127.0.0.1:9100" })?.moved).toEqual(["i-a"]);
    expect(mapper.remove("i-b")?.removed).toEqual(["i-b"]);
    expect(heard.map((h) => h.version)).toEqual([0, 1, 2, 3]);
    expect(mapper.instances).toEqual([{ id: "i-a", url: "http://127.0.0.1:9100" }]);
  });

  test("duplicate ids keep the last URL; a throwing subscriber does not stop the others", () => {
    const mapper = new Mapper({ blockId: "b" });
    const seen: string[][] = [];
    const error = console.error;
    console.error = () => {};
    try {
      mapper.subscribe(() => {
        throw new Error("faulty subscriber");
      });
      mapper.subscribe((change) => seen.push(change.instances.map((i) => i.url)));
      mapper.set([a, { id: "i-a", url: "http://127.0.0.1:9999" }]);
    } finally {
      console.error = error;
    }
    expect(seen.at(-1)).toEqual(["http://127.0.0.1:9999"]);
  });

  test("polls its source; an unreachable source keeps the last list and says why", async () => {
    let list: unknown = { instances: [a, b] };
    let status = 200;
    const server = Bun.serve({
      port: 0,
      hostname: "127.0.0.1",
      fetch: () => (status === 200 ? Response.json(list) : new Response("down", { status })),
    });
    servers.push(server);
    const mapper = new Mapper({
      blockId: "b",
      source: httpInstanceSource(`http://127.0.0.1:${server.port}/`),
      intervalMs: 20,
    });
    const changes: InstanceChange[] = [];
    mapper.subscribe((change) => changes.push(change));
    mapper.start();
    try {
      await waitFor(() => mapper.instances.length === 2);
      // The controller's shape: instance_id instead of id, inside data.
      list = { data: { instances: [{ instance_id: "i-c", url: c.url }, b] } };
      await waitFor(() => mapper.instances[0]?.id === "i-c");
      expect(changes.at(-1)).toMatchObject({ added: ["i-c"], removed: ["i-a"] });
      status = 503;
      await waitFor(() => mapper.lastPoll?.error !== null);
      expect(mapper.lastPoll?.error).toContain("HTTP 503");
      expect(mapper.instances.map((i) => i.id)).toEqual(["i-c", "i-b"]);
    } finally {
      mapper.stop();
    }
  });

  test("readInstanceList names the entry at fault", () => {
    expect(() => readInstanceList([a, { id: "", url: "x" }])).toThrow(ApiError);
    try {
      readInstanceList({ instances: [a, { id: "i-x", url: "ftp://host" }] });
    } catch (err) {
      expect((err as ApiError).status).toBe(400);
      expect((err as ApiError).message).toContain("instances.1.url");
    }
  });
});

describe("the mapper's HTTP API", () => {
  const mapper = new Mapper({ blockId: "blk", instances: [a] });
  const app = createMapperApp(mapper);
  const call = (method: string, path: string, body?: unknown) =>
    app.request(path, {
      method,
      ...(body === undefined
        ? {}
        : { body: JSON.stringify(body), headers: { "content-type": "application/json" } }),
    });

  test("PUT replaces, POST adds or moves, DELETE removes; each answers the new list", async () => {
    let res = await call("PUT", "/instances", { instances: [a, b] });
    expect(res.status).toBe(200);
    expect(((await res.json()) as { instances: unknown[] }).instances).toHaveLength(2);
    res = await call("POST", "/instances", c);
    expect(
      ((await res.json()) as { version: number; instances: { id: string }[] }).instances.map((i) => i.id),
    ).toEqual(["i-a", "i-b", "i-c"]);
    res = await call("DELETE", "/instances/i-b");
    expect(res.status).toBe(200);
    expect(mapper.instances.map((i) => i.id)).toEqual(["i-a", "i-c"]);
    res = await call("GET", "/instances");
    expect(await res.json()).toMatchObject({ block_id: "blk", instances: [a, c] });
  });

  test("bad input is a 400 naming the field, an unknown instance a 404; the list is untouched", async () => {
    const before = mapper.instances;
    let res = await call("PUT", "/instances", { instances: [{ id: "x", url: "not a url" }] });
    expect(res.status).toBe(400);
    expect(JSON.stringify(await res.json())).toContain("instances.0.url");
    res = await call("POST", "/instances", { url: "http://127.0.0.1:1" });
    expect(res.status).toBe(400);
    expect(JSON.stringify(await res.json())).toContain("instance.0.id");
    res = await call("DELETE", "/instances/nope");
    expect(res.status).toBe(404);
    res = await app.request("/instances", { method: "PUT", body: "{oops" });
    expect(res.status).toBe(400);
    expect(mapper.instances).toBe(before);
  });
});

const waitFor = async (check: () => boolean, timeoutMs = 3000): Promise<void> => {
  const end = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > end) throw new Error("condition not met in time");
    await Bun.sleep(10);
  }
};
