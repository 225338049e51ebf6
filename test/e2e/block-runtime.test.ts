/**
 * A block as real processes: three instances of the sentiment example (examples/sentiment/instance.ts)
 * behind one `aios block-runtime`, called through four client stacks (Connect's gRPC, Connect and
 * gRPC-web transports over HTTP/2, and grpc-js). One instance is SIGKILLed in the middle of a stream of
 * requests: none may fail, the executor records the failure, the health checker sees it, the metrics
 * count what each instance served; then the mapper swaps it for a fresh instance without a restart.
 *
 * Every call presents the block's token (AIOS_TOKEN of the block runtime and of the instances, which
 * know it as their own): gRPC metadata, HTTP Authorization, the executor's task channel upgrade.
 *
 * The tests run in order and share the processes and a tally of which instance answered each request.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { type Client, createClient } from "@connectrpc/connect";
import {
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
  Http2SessionManager,
} from "@connectrpc/connect-node";
import { InferenceProxy, type InferenceResponse } from "../../src/gen/inference_pb.ts";
import { bearer, grpcJsInferenceClient } from "../support/grpc.ts";
import { blockRuntimeArgs, type Child, hostPort, Processes } from "../support/processes.ts";
import { HELD_OUT, textPacket } from "../support/sentiment.ts";

const BLOCK_ID = "sentiment-e2e";
const LISTENERS = ["grpc", "metrics", "executor", "mapper", "autoscaler", "health-checker"] as const;
/** The workloads' credential (what a controller gives them as AIOS_TOKEN). */
const TOKEN = "aios-e2e-block-runtime-token";
const AUTH = { authorization: `Bearer ${TOKEN}` };

const procs = new Processes();
const instances = new Map<string, { child: Child; url: string }>();
let block: Child;
let urls: Record<(typeof LISTENERS)[number], string>;

/** Instance id -> responses it gave (every response names its instance). */
const served = new Map<string, number>();
/** Requests sent through the block so far; also numbers their sessions. */
let session = 0;

type Infer = (rpcData: Uint8Array) => Promise<InferenceResponse>;
const clients: { name: string; infer: Infer }[] = [];
const closers: (() => void)[] = [];

const startInstance = async (id: string) => {
  const child = procs.bun(id, ["examples/sentiment/instance.ts"], {
    env: { AIOS_INSTANCE_ID: id, AIOS_BLOCK_ID: BLOCK_ID, AIOS_INSTANCE_PORT: "0", AIOS_TOKEN: TOKEN },
  });
  const { instance } = await child.listening(["instance"]);
  instances.set(id, { child, url: instance! });
  return instance!;
};

interface Answer {
  response: InferenceResponse;
  label: string | undefined;
  expected: string;
}

/** One request of HELD_OUT[n % length] through `infer`; tallies who answered. */
const classify = async (infer: Infer, n: number): Promise<Answer> => {
  const [text, expected] = HELD_OUT[n % HELD_OUT.length]!;
  const response = await infer(textPacket(text, `e2e-${++session}`));
  served.set(response.instanceId, (served.get(response.instanceId) ?? 0) + 1);
  const label = response.message ? (JSON.parse(response.result) as { label?: string }).label : undefined;
  return { response, label, expected };
};

/** `total` requests with `inFlight` at a time, request i through clients[i % clients.length]. */
const stream = async (total: number, inFlight: number, onDone?: (done: number) => void) => {
  const answers: Answer[] = [];
  const errors: unknown[] = [];
  let next = 0;
  const worker = async () => {
    while (next < total) {
      const i = next++;
      try {
        answers.push(await classify(clients[i % clients.length]!.infer, i));
      } catch (err) {
        errors.push(err);
      }
      onDone?.(answers.length + errors.length);
    }
  };
  await Promise.all(Array.from({ length: inFlight }, worker));
  return { answers, errors };
};

const postJson = async (url: string, body: unknown, method = "POST") => {
  const res = await fetch(url, {
    method,
    headers: { "content-type": "application/json", ...AUTH },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
};

interface MgmtInstance {
  id: string;
  url: string;
  metrics: { requests_total: number; errors_total: number; in_flight: number } | null;
  last_failure: { reason: string; at: number } | null;
}
const executorInstances = async (): Promise<MgmtInstance[]> =>
  (await postJson(`${urls.executor}/mgmt`, { mgmt_action: "get_instances" })).body
    .instances as MgmtInstance[];

/** `aios_executor_<family>{block=..,instance="id"} N` lines -> id -> N. */
const promCounters = (text: string, family: string): Map<string, number> => {
  const out = new Map<string, number>();
  const re = new RegExp(`^aios_executor_${family}\\{block="${BLOCK_ID}",instance="([^"]+)"\\} (\\d+)$`, "gm");
  for (const m of text.matchAll(re)) out.set(m[1]!, Number(m[2]));
  return out;
};

beforeAll(async () => {
  const started = await Promise.all(
    ["inst-0", "inst-1", "inst-2"].map(async (id) => [id, await startInstance(id)]),
  );
  block = procs.bun("block-runtime", ["run", "src/cli/main.ts", ...blockRuntimeArgs(BLOCK_ID, started)], {
    env: { AIOS_TOKEN: TOKEN },
  });
  urls = (await block.listening(LISTENERS)) as typeof urls;

  const grpcUrl = urls.grpc;
  const h2 = () => {
    const manager = new Http2SessionManager(grpcUrl);
    closers.push(() => manager.abort());
    return manager;
  };
  const connectClient =
    (c: Client<typeof InferenceProxy>): Infer =>
    (rpcData) =>
      c.infer({ rpcData });
  clients.push(
    {
      name: "connect gRPC",
      infer: connectClient(
        createClient(
          InferenceProxy,
          createGrpcTransport({ baseUrl: grpcUrl, sessionManager: h2(), interceptors: [bearer(TOKEN)] }),
        ),
      ),
    },
    {
      name: "connect protocol",
      infer: connectClient(
        createClient(
          InferenceProxy,
          createConnectTransport({
            baseUrl: grpcUrl,
            httpVersion: "2",
            sessionManager: h2(),
            interceptors: [bearer(TOKEN)],
          }),
        ),
      ),
    },
    {
      name: "gRPC-web",
      infer: connectClient(
        createClient(
          InferenceProxy,
          createGrpcWebTransport({
            baseUrl: grpcUrl,
            httpVersion: "2",
            sessionManager: h2(),
            interceptors: [bearer(TOKEN)],
          }),
        ),
      ),
    },
  );
  const grpcJs = grpcJsInferenceClient(hostPort(grpcUrl), { token: TOKEN });
  closers.push(() => grpcJs.close());
  clients.push({ name: "grpc-js", infer: grpcJs.infer });
});

afterAll(async () => {
  for (const close of closers) close();
  await procs.stopAll();
  // Every child has exited: none is left to outlive the test run.
  expect(procs.running.map((c) => c.name)).toEqual([]);
});

describe("aios block-runtime with three sentiment instances (processes)", () => {
  test("every client stack gets a correct classification", async () => {
    expect(clients.map((c) => c.name)).toEqual(["connect gRPC", "connect protocol", "gRPC-web", "grpc-js"]);
    for (const client of clients) {
      for (let n = 0; n < 4; n++) {
        // Both labels through each stack: HELD_OUT starts with positives and ends with negatives.
        const { response, label, expected } = await classify(client.infer, n * 3);
        expect({ client: client.name, message: response.message, label }).toEqual({
          client: client.name,
          message: true,
          label: expected,
        });
        expect(instances.has(response.instanceId)).toBe(true);
        expect(response.seqNo).toBe(1n);
      }
    }
  });

  test("the example's grpcurl-like client (classify.ts) prints one answer per text", async () => {
    const texts = [HELD_OUT[0]!, HELD_OUT[HELD_OUT.length - 1]!];
    for (const protocol of ["grpc", "connect", "grpc-web"]) {
      const cli = procs.bun(`classify ${protocol}`, [
        "examples/sentiment/classify.ts",
        "--target",
        urls.grpc,
        "--protocol",
        protocol,
        "--token",
        TOKEN,
        ...texts.map(([text]) => text),
      ]);
      expect(await cli.exited).toBe(0);
      const lines = cli.stdoutLines.map(
        (l) =>
          JSON.parse(l) as { text: string; message: boolean; instance_id: string; result: { label: string } },
      );
      expect(lines.map((l) => [l.text, l.message, l.result.label])).toEqual(
        texts.map(([text, label]) => [text, true, label]),
      );
      for (const l of lines) {
        served.set(l.instance_id, (served.get(l.instance_id) ?? 0) + 1);
        session += 1;
      }
    }
    const bad = procs.bun("classify bad", [
      "examples/sentiment/classify.ts",
      "--protocol",
      "carrier-pigeon",
      "x",
    ]);
    expect(await bad.exited).toBe(2);
    expect(bad.stderr).toContain("--protocol must be grpc, connect or grpc-web");
  });

  test("a call without the block's token is refused (UNAUTHENTICATED), as is one with a wrong token", async () => {
    const anonymous = grpcJsInferenceClient(hostPort(urls.grpc));
    const wrong = grpcJsInferenceClient(hostPort(urls.grpc), { token: "not-the-token" });
    try {
      const packet = textPacket(HELD_OUT[0]![0], `e2e-refused-${session}`);
      await expect(anonymous.infer(packet)).rejects.toMatchObject({ code: 16 });
      await expect(wrong.infer(packet)).rejects.toMatchObject({ code: 16 });
      const res = await fetch(`${urls.metrics}/metrics/json`);
      expect(res.status).toBe(401);
    } finally {
      anonymous.close();
      wrong.close();
    }
  });

  test("a refusal by the instance comes back as message false with the instance's reason", async () => {
    const response = await clients[0]!.infer(textPacket("   ", `e2e-${++session}`));
    served.set(response.instanceId, (served.get(response.instanceId) ?? 0) + 1);
    expect(response.message).toBe(false);
    expect(response.error).toBe("invalid_input: data.text is empty");
  });

  test("SIGKILL of an instance mid-stream: all 300 requests succeed and the executor records the failure", async () => {
    const victim = instances.get("inst-1")!.child;
    const servedBefore = new Map(served);
    let killedAt = -1;
    const { answers, errors } = await stream(300, 16, (done) => {
      if (done === 100 && killedAt < 0) {
        killedAt = done;
        victim.kill("SIGKILL");
      }
    });
    expect(killedAt).toBe(100);
    expect(await victim.exited).not.toBe(0);
    expect(errors).toEqual([]);
    expect(answers).toHaveLength(300);
    const wrong = answers.filter((a) => !a.response.message || a.label !== a.expected);
    expect(wrong.map((a) => a.response.error)).toEqual([]);
    // Each instance took part, the victim before it was killed.
    for (const id of ["inst-0", "inst-1", "inst-2"]) {
      expect((served.get(id) ?? 0) - (servedBefore.get(id) ?? 0)).toBeGreaterThan(0);
    }

    const listed = await executorInstances();
    const failure = (id: string) => listed.find((i) => i.id === id)?.last_failure ?? null;
    expect(failure("inst-1")?.reason).toMatch(/unreachable|cut short/);
    expect(failure("inst-0")).toBeNull();
    expect(failure("inst-2")).toBeNull();
  });

  test("the health checker's run_now reports the killed instance unhealthy", async () => {
    const { status, body } = await postJson(`${urls["health-checker"]}/mgmt`, { mgmt_action: "run_now" });
    expect(status).toBe(200);
    expect(body.health_check_data).toEqual({ "inst-0": true, "inst-1": false, "inst-2": true });
    const probes = body.probes as Record<string, { healthy: boolean; reason?: string }>;
    expect(probes["inst-1"]?.reason).toMatch(/^unreachable/);
  });

  test("executor metrics (Prometheus and JSON) count what each instance served", async () => {
    const text = await (await fetch(`${urls.metrics}/metrics`, { headers: AUTH })).text();
    const requests = promCounters(text, "requests_total");
    const errors = promCounters(text, "errors_total");
    const json = (await (await fetch(`${urls.metrics}/metrics/json`, { headers: AUTH })).json()) as {
      instances: Record<string, { requests_total: number; errors_total: number; in_flight: number }>;
      requests_total: number;
    };
    expect([...requests.keys()].sort()).toEqual(["inst-0", "inst-1", "inst-2"]);
    let total = 0;
    for (const id of ["inst-0", "inst-1", "inst-2"]) {
      // A request that failed on an instance was answered by another: served = requests - errors.
      const answered = served.get(id) ?? 0;
      total += answered;
      expect({ id, answered: requests.get(id)! - errors.get(id)! }).toEqual({ id, answered });
      expect(json.instances[id]).toMatchObject({
        requests_total: requests.get(id)!,
        errors_total: errors.get(id)!,
        in_flight: 0,
      });
    }
    expect(errors.get("inst-1")).toBeGreaterThan(0);
    expect(errors.get("inst-0")).toBe(0);
    expect(errors.get("inst-2")).toBe(0);
    expect(total).toBe(session);
    expect(json.requests_total).toBe(total + errors.get("inst-1")!);

    // The live instances' own counts agree: each ran exactly the tasks it answered.
    for (const id of ["inst-0", "inst-2"]) {
      const own = (await (await fetch(`${instances.get(id)!.url}/metrics`, { headers: AUTH })).json()) as {
        tasks_total: number;
        custom: Record<string, number>;
      };
      expect({ id, tasks: own.tasks_total }).toEqual({ id, tasks: served.get(id)! });
      const c = own.custom;
      expect(
        c.predictions_positive! + c.predictions_negative! + c.predictions_uncertain! + c.refused_tasks!,
      ).toBe(own.tasks_total);
    }
  });

  test("the mapper swaps the dead instance for a fresh one without a restart", async () => {
    const removed = await postJson(`${urls.mapper}/instances/inst-1`, {}, "DELETE");
    expect(removed.status).toBe(200);
    expect((removed.body.instances as { id: string }[]).map((i) => i.id)).toEqual(["inst-0", "inst-2"]);
    expect((await postJson(`${urls.mapper}/instances/inst-1`, {}, "DELETE")).status).toBe(404);

    const url = await startInstance("inst-3");
    const added = await postJson(`${urls.mapper}/instances`, { id: "inst-3", url });
    expect(added.status).toBe(200);
    expect((added.body.instances as { id: string }[]).map((i) => i.id)).toEqual([
      "inst-0",
      "inst-2",
      "inst-3",
    ]);
    expect((await executorInstances()).map((i) => i.id)).toEqual(["inst-0", "inst-2", "inst-3"]);

    const before = new Map(served);
    const { answers, errors } = await stream(60, 8);
    expect(errors).toEqual([]);
    expect(answers.filter((a) => !a.response.message || a.label !== a.expected)).toEqual([]);
    const delta = (id: string) => (served.get(id) ?? 0) - (before.get(id) ?? 0);
    expect(delta("inst-1")).toBe(0);
    expect(delta("inst-3")).toBeGreaterThan(0);
    expect(delta("inst-0") + delta("inst-2") + delta("inst-3")).toBe(60);

    const json = (await (await fetch(`${urls.metrics}/metrics/json`, { headers: AUTH })).json()) as {
      instances: Record<string, { requests_total: number; errors_total: number }>;
    };
    expect(Object.keys(json.instances).sort()).toEqual(["inst-0", "inst-2", "inst-3"]);
    expect(json.instances["inst-3"]).toMatchObject({ requests_total: delta("inst-3"), errors_total: 0 });

    // Still the same block runtime process, listening where it started.
    expect(block.alive).toBe(true);
    expect(block.stdoutLines.filter((l) => l.startsWith("listening "))).toHaveLength(LISTENERS.length);
  });
});
