/**
 * The resource allocator's WebSocket protocol, fuzzed (resource-allocator.md): `parseRequest` on
 * thousands of messages, `Allocator.handle` (the whole request: candidates from the store, the policy
 * run) on thousands more, then a real server (Bun, a loopback port) with messages through the wire:
 * mutated sample requests, random JSON, deep nesting, non-JSON text, binary frames that are not UTF-8,
 * many in flight on one socket. Every message gets exactly one answer, in order, that is the policy's
 * placement or `{"error": {"code", "message"}}` whose message starts with the field at fault; never an
 * internal error, and the socket stays open after a bad message (a message over the size limit
 * closes it with 1009, as the protocol says).
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import fc from "fast-check";
import { Allocator } from "../../src/allocator/allocator.ts";
import { InlineRunner } from "../../src/allocator/pool.ts";
import { parseRequest } from "../../src/allocator/protocol.ts";
import { MAX_MESSAGE_BYTES, type RunningAllocator, startAllocator } from "../../src/allocator/serve.ts";
import { ApiError } from "../../src/http/errors.ts";
import { installBuiltinPolicies } from "../../src/policy/builtins.ts";
import { PolicyStore } from "../../src/policy/store.ts";
import { QueryError, type Store } from "../../src/store/index.ts";
import { seedClusters } from "../allocator/fixtures.ts";
import { ALLOCATOR_SAMPLE_PAYLOAD, SPEC_FILTER } from "../support/spec-samples.ts";
import { openFuzzStore } from "./env.ts";
import {
  FUZZ_SEED,
  fuzz,
  HANG_MS,
  mutated,
  NASTY_KEYS,
  printSummary,
  runs,
  syncFuzz,
  tally,
  within,
  wrongValue,
} from "./support.ts";

const SUITE = "allocator websocket";
setDefaultTimeout(600_000);

const URI = "policy.allocator.most-free-gpu:v0.0.1";
const CLUSTERS = 12;

let store: Store;
let allocator: Allocator;
let server: RunningAllocator;
const began = performance.now();

const REQUESTS: Record<string, unknown>[] = [
  { ...ALLOCATOR_SAMPLE_PAYLOAD, policy_rule_uri: URI, inputs: { gpus: 1 } },
  { adhoc: true, policy_rule_uri: URI, clusters: ["cluster-00000", "cluster-00003"], inputs: { gpus: 2 } },
  {
    adhoc: true,
    policy_rule_uri: URI,
    filter: SPEC_FILTER,
    inputs: { gpus: 1 },
    parameters: {},
    settings: {},
  },
  {
    adhoc: true,
    policy_rule_uri: URI,
    search: { query: "vision models on A100", limit: 5 },
    inputs: { gpus: 1 },
  },
  {
    adhoc: true,
    policy_rule_uri: URI,
    filter: {
      clusterQuery: {
        logicalOperator: "OR",
        conditions: [{ variable: "tags", operator: "contains", value: "gpu" }],
      },
    },
    inputs: { gpus: 1, memory: 1000 },
    settings: { selection_mode: "greedy" },
  },
];

/** Messages: mostly mutated sample requests, then random JSON and text that is not JSON at all. */
const message: fc.Arbitrary<string> = fc.oneof(
  { weight: 10, arbitrary: mutated(REQUESTS).map((v) => JSON.stringify(v) ?? "undefined") },
  {
    weight: 2,
    arbitrary: fc
      .record({
        base: fc.constantFrom(...REQUESTS),
        key: fc.constantFrom(
          "clusters",
          "filter",
          "search",
          "inputs",
          "parameters",
          "settings",
          "policy_rule_uri",
          "adhoc",
          ...NASTY_KEYS,
        ),
        value: wrongValue,
      })
      .map(({ base, key, value }) => JSON.stringify({ ...base, [key]: value })),
  },
  { weight: 2, arbitrary: fc.jsonValue().map((v) => JSON.stringify(v)) },
  { weight: 1, arbitrary: fc.string() },
  {
    weight: 1,
    arbitrary: fc.constantFrom(
      "",
      "{",
      "null",
      "[]",
      '"adhoc"',
      `${"[".repeat(5000)}${"]".repeat(5000)}`,
      JSON.stringify({
        adhoc: true,
        policy_rule_uri: URI,
        inputs: { deep: JSON.parse(`${"[".repeat(80)}${"]".repeat(80)}`) },
      }),
      JSON.stringify({
        adhoc: true,
        policy_rule_uri: URI,
        clusters: Array.from({ length: 1500 }, (_, i) => `c${i}`),
        inputs: {},
      }),
      JSON.stringify({ adhoc: true, policy_rule_uri: URI, search: { query: "x".repeat(1001) }, inputs: {} }),
      JSON.stringify({ adhoc: true, policy_rule_uri: "policy.loadBalancer.roundrobin:v0.0.1", inputs: {} }),
      JSON.stringify({ adhoc: true, policy_rule_uri: "policy.none:v9", inputs: {} }),
    ),
  },
);

/** Checks one answer: the placement, or an error naming the field at fault; never "internal". */
const checkAnswer = (answer: string, request: string): "ok" | "refused" => {
  let body: Record<string, unknown>;
  try {
    body = JSON.parse(answer) as Record<string, unknown>;
  } catch {
    throw new Error(`answer is not JSON: ${answer.slice(0, 200)} (to ${request.slice(0, 300)})`);
  }
  if ("error" in body) {
    const error = body.error as { code?: unknown; message?: unknown; details?: { path?: unknown } | null };
    if (typeof error.code !== "string" || typeof error.message !== "string")
      throw new Error(`error without code and message: ${answer.slice(0, 300)}`);
    if (error.code === "internal")
      throw new Error(`internal error for ${request.slice(0, 500)}: ${answer.slice(0, 300)}`);
    const path = error.details?.path;
    if (typeof path === "string" && path !== "" && !error.message.startsWith(path))
      throw new Error(`message does not start with the field at fault (${path}): ${error.message}`);
    return "refused";
  }
  if (typeof body.cluster_id !== "string")
    throw new Error(`an answer without cluster_id: ${answer.slice(0, 300)}`);
  return "ok";
};

beforeAll(async () => {
  store = await openFuzzStore();
  await installBuiltinPolicies(new PolicyStore(store));
  await seedClusters(store, CLUSTERS, { seed: 7 });
  allocator = new Allocator({ store, policies: new PolicyStore(store), runner: new InlineRunner() });
  server = await startAllocator({ store, port: 0, workers: 0 });
});

afterAll(async () => {
  printSummary(SUITE, began);
  await server?.stop();
  await store?.close();
});

describe(`allocator messages (seed ${FUZZ_SEED})`, () => {
  test(`parseRequest: ${runs(5000)} messages, a request or an error naming the field`, () => {
    const entry = "parseRequest";
    syncFuzz(
      entry,
      message,
      (text) => {
        const t = performance.now();
        try {
          parseRequest(text);
          tally(SUITE, entry, "ok", performance.now() - t);
        } catch (err) {
          if (!(err instanceof ApiError) && !(err instanceof QueryError)) throw err;
          if (err instanceof ApiError) expect(err.status).toBeLessThan(500);
          tally(SUITE, entry, "refused", performance.now() - t);
        }
      },
      runs(5000),
    );
  });

  test(`Allocator.handle: ${runs(1000)} messages, each answered with a placement or a field's error`, async () => {
    const entry = "Allocator.handle";
    await fuzz(
      entry,
      message,
      async (text) => {
        const t = performance.now();
        const answer = await within(allocator.handle(text), HANG_MS, `handle ${text.slice(0, 200)}`);
        tally(SUITE, entry, checkAnswer(answer, text), performance.now() - t);
      },
      runs(1000),
    );
  });

  test(`the server: ${runs(400)} messages over one socket, pipelined, answered in order, socket open`, async () => {
    const entry = "WebSocket messages (wire)";
    const messages = fc.sample(
      fc.oneof(
        { weight: 9, arbitrary: message.map((m) => ({ text: m as string | Uint8Array })) },
        {
          weight: 1,
          arbitrary: fc
            .uint8Array({ minLength: 1, maxLength: 64 })
            .map((b) => ({ text: b as string | Uint8Array })),
        },
      ),
      { numRuns: runs(400), seed: FUZZ_SEED },
    );
    const ws = new WebSocket(server.url);
    await new Promise<void>((resolve, reject) => {
      ws.onopen = () => resolve();
      ws.onerror = () => reject(new Error("cannot connect"));
    });
    const answers: string[] = [];
    let closed: CloseEvent | null = null;
    ws.onmessage = (e) => answers.push(String(e.data));
    ws.onclose = (e) => {
      closed = e;
    };
    // In batches of 50 in flight: the order of answers is the order of requests.
    for (let i = 0; i < messages.length; i += 50) {
      const batch = messages.slice(i, i + 50);
      const before = answers.length;
      const t = performance.now();
      for (const m of batch) ws.send(m.text as string | ArrayBufferView<ArrayBuffer>);
      await within(
        (async () => {
          while (answers.length < before + batch.length && closed === null) await Bun.sleep(2);
        })(),
        HANG_MS,
        "answers to a batch of 50 messages",
      );
      expect(closed).toBeNull();
      for (const [j, m] of batch.entries()) {
        const text = typeof m.text === "string" ? m.text : `<binary ${Buffer.from(m.text).toString("hex")}>`;
        const answer = answers[before + j]!;
        const outcome = checkAnswer(answer, text);
        tally(SUITE, entry, outcome, (performance.now() - t) / batch.length);
        // Bytes that are not UTF-8 are refused as such; text that is UTF-8 is a request like any other.
        if (typeof m.text !== "string") {
          let utf8 = true;
          try {
            new TextDecoder("utf-8", { fatal: true }).decode(m.text);
          } catch {
            utf8 = false;
          }
          if (!utf8) expect(JSON.parse(answer).error.code).toBe("invalid_json");
        }
      }
    }
    expect(ws.readyState).toBe(WebSocket.OPEN);
    // The same request twice gives the same answer: the socket is still in a good state.
    const good = JSON.stringify(REQUESTS[1]);
    ws.send(good);
    ws.send(good);
    await within(
      (async () => {
        while (answers.length < messages.length + 2) await Bun.sleep(2);
      })(),
      HANG_MS,
      "the last two answers",
    );
    expect(answers.at(-1)).toBe(answers.at(-2)!);
    expect(checkAnswer(answers.at(-1)!, good)).toBe("ok");
    ws.close();
  });

  test("a message over the size limit closes the socket with 1009; the server serves the next client", async () => {
    const entry = "WebSocket oversized message";
    const ws = new WebSocket(server.url);
    await new Promise<void>((resolve) => {
      ws.onopen = () => resolve();
    });
    const closed = new Promise<CloseEvent>((resolve) => {
      ws.onclose = resolve;
    });
    ws.send("x".repeat(MAX_MESSAGE_BYTES + 1));
    const event = await within(closed, HANG_MS, "the close of an oversized message");
    expect(event.code).toBe(1009);
    tally(SUITE, entry, "refused");
    const again = new WebSocket(server.url);
    const answer = await within(
      new Promise<string>((resolve) => {
        again.onopen = () => again.send(JSON.stringify(REQUESTS[1]));
        again.onmessage = (e) => resolve(String(e.data));
      }),
      HANG_MS,
      "an answer after an oversized message",
    );
    expect(checkAnswer(answer, "sample")).toBe("ok");
    again.close();
  });

  test(`plain HTTP to the allocator: ${runs(200)} requests, JSON errors, no 5xx`, async () => {
    const entry = "allocator HTTP (no upgrade)";
    const http = server.url.replace(/^ws/, "http");
    await fuzz(
      entry,
      fc.record({
        method: fc.constantFrom("GET", "POST", "PUT", "DELETE", "HEAD"),
        path: fc.constantFrom("/", "/health", "/x", "/%zz", "/?q=1"),
        upgrade: fc.constantFrom(undefined, "websocket", "WebSocket", "h2c", ""),
      }),
      async ({ method, path, upgrade }) => {
        const res = await within(
          fetch(`${http}${path}`, { method, headers: upgrade === undefined ? {} : { upgrade } }),
          HANG_MS,
          `${method} ${path}`,
        );
        const text = await res.text();
        tally(SUITE, entry, res.status);
        expect(res.status).toBeLessThan(500);
        if (res.status >= 400 && method !== "HEAD") expect(JSON.parse(text).error.code).toBeString();
      },
      runs(200),
    );
  });
});
