/**
 * Every route of every HTTP service, fuzzed: the routes come from each Hono app's `app.routes` (the
 * registry, the global metrics API, the controller, the gateway, a block's executor metrics, executor,
 * mapper and sidecar management apps, an instance), each gets mutated samples of its real bodies, random
 * JSON, deep nesting, huge and non-UTF-8 bodies, wrong content types, garbage path segments and query
 * parameters. Every answer must be below 500 and every 4xx must be the error contract; nothing may throw
 * or hang. The services run in this process over one store (see env.ts).
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import type { Hono } from "hono";
import { createMetricsApp } from "../../src/registry/app.ts";
import {
  BLOCK_ID,
  CLUSTER_ID,
  clusterDocument,
  type Environment,
  instanceApp,
  startEnvironment,
} from "./env.ts";
import { BODY_SAMPLES, CLUSTER_SAMPLE, COMPONENT_SAMPLE, COMPONENT_URI, KNOWN_SEGMENTS } from "./samples.ts";
import {
  FUZZ_SEED,
  fuzz,
  type HttpCase,
  pathSegment,
  printSummary,
  rawBody,
  requestFor,
  routesOf,
  runs,
  sendAndCheck,
} from "./support.ts";

const SUITE = "http routes";
/** Runs per route (FUZZ_RUNS scales it: FUZZ_RUNS=1000 keeps it). */
const PER_ROUTE = runs(Number(process.env.FUZZ_ROUTE_RUNS ?? 150));

setDefaultTimeout(600_000);

let env: Environment;
const began = performance.now();

const json = (method: string, body: unknown): RequestInit => ({
  method,
  headers: { "content-type": "application/json" },
  body: JSON.stringify(body),
});

/** Puts back what the fuzzing of one service may have changed and the next one relies on. */
const reseed = async () => {
  const clusters = env.store.collection("clusters");
  // Clusters the registry's fuzzing made would each be a dry-run target of the gateway's creations.
  await clusters.clear();
  await env.store.collection("cluster_metrics").clear();
  await clusters.upsert(CLUSTER_ID, clusterDocument(env.controllerUrl));
  await clusters.upsert("c-1", { ...CLUSTER_SAMPLE, id: "c-1" });
  await env.store.collection("cluster_metrics").upsert("c-1", { id: "c-1", vcpu: { load_15m: 1 } });
  await env.store
    .collection("components")
    .upsert(COMPONENT_URI, { ...COMPONENT_SAMPLE, id: COMPONENT_URI, componentURI: COMPONENT_URI });
  const block = await env.controllerApp.request(`/blocks/${BLOCK_ID}`);
  if (block.status === 404) {
    const created = await env.controllerApp.request(
      "/executeAction",
      json("POST", {
        action: "create_block",
        data: {
          id: BLOCK_ID,
          minInstances: 1,
          maxInstances: 4,
          runtime: { command: ["bun", "instance.ts"] },
        },
      }),
    );
    expect(created.status).toBe(200);
  }
};

beforeAll(async () => {
  env = await startEnvironment();
  await reseed();
});

afterAll(async () => {
  printSummary(SUITE, began);
  await env?.stop();
});

interface Service {
  name: string;
  app: () => Hono;
}

const SERVICES: Service[] = [
  { name: "instance", app: () => instanceApp() },
  { name: "block executor metrics", app: () => env.block.apps["block executor metrics"] },
  { name: "block executor mgmt", app: () => env.block.apps["block executor mgmt"] },
  { name: "block mapper", app: () => env.block.apps["block mapper"] },
  { name: "block auto-scaler mgmt", app: () => env.block.apps["block auto-scaler mgmt"] },
  { name: "block health-checker mgmt", app: () => env.block.apps["block health-checker mgmt"] },
  { name: "registry", app: () => env.registryApp },
  { name: "global metrics", app: () => createMetricsApp(env.store) },
  { name: "controller", app: () => env.controllerApp },
  { name: "gateway", app: () => env.gatewayApp },
];

describe(`every route of every HTTP service (seed ${FUZZ_SEED}, ${PER_ROUTE} runs per route)`, () => {
  for (const service of SERVICES) {
    test(`${service.name}: no 5xx, no throw, no hang; 4xx is the error contract`, async () => {
      await reseed();
      const app = service.app();
      const routes = routesOf(app);
      expect(routes.length).toBeGreaterThan(0);
      const segment = pathSegment(KNOWN_SEGMENTS[service.name] ?? []);
      const fetcher = (path: string, init: RequestInit) => app.request(path, init);
      for (const route of routes) {
        const key = `${route.method} ${route.path}`;
        const samples = BODY_SAMPLES[service.name]?.[key] ?? [{}];
        const entry = `${service.name} ${key}`;
        const started = performance.now();
        await fuzz(
          entry,
          requestFor(route, segment, rawBody(samples)),
          async (c: HttpCase) => {
            await sendAndCheck(fetcher, SUITE, entry, c);
          },
          PER_ROUTE,
        );
        if (process.env.FUZZ_VERBOSE)
          console.log(`[fuzz] ${entry}: ${(performance.now() - started).toFixed(0)} ms`);
      }
    });
  }

  test("an unknown route is a 404 with the error contract, whatever the method", async () => {
    for (const service of SERVICES) {
      const app = service.app();
      for (const method of ["GET", "POST", "PUT", "PATCH", "DELETE"]) {
        const status = await sendAndCheck(
          (p, i) => app.request(p, i),
          SUITE,
          `${service.name} unknown route`,
          {
            method,
            path: "/no/such/route/%zz",
            headers: { "content-type": "application/json" },
            ...(method === "GET" ? {} : { body: "{}" }),
          },
        );
        expect(status).toBe(404);
      }
    }
  });
});
