/**
 * Result limits of the registry's list and query answers: at most MAX_LIMIT documents a call unless
 * fewer are asked for, and a larger limit is refused naming it.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { createRegistryApp } from "../../src/registry/app.ts";
import { capped } from "../../src/registry/documents.ts";
import { openStore, type Store } from "../../src/store/index.ts";
import { MAX_LIMIT } from "../../src/store/mongo/options.ts";

test("an answer without a limit is capped; one with a limit keeps it", () => {
  expect(capped(undefined)).toEqual({ limit: MAX_LIMIT });
  expect(capped({ sort: { id: 1 } })).toEqual({ sort: { id: 1 }, limit: MAX_LIMIT });
  expect(capped({ limit: 5 })).toEqual({ limit: 5 });
  // Not an object: left for the store to refuse with its own message.
  expect(capped("x")).toBe("x");
});

let store: Store;
beforeAll(async () => {
  store = await openStore({});
});
afterAll(() => store.close());

test("a limit above the cap is a 400 naming it, on lists and queries", async () => {
  const app = createRegistryApp(store);
  const list = await app.request(`/clusters?limit=${MAX_LIMIT + 1}`);
  expect(list.status).toBe(400);
  expect(((await list.json()) as { error: { message: string } }).error.message).toContain(`${MAX_LIMIT}`);
  const query = await app.request("/clusters/query", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ query: {}, options: { limit: MAX_LIMIT + 1 } }),
  });
  expect(query.status).toBe(400);
  const metrics = await app.request(`/cluster/query?limit=${MAX_LIMIT + 1}`);
  expect(metrics.status).toBe(400);
});
