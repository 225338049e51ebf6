/**
 * What the client verbs print, without a gateway: tables, ages, the allocation steps as lines, the
 * scale argument, and the log lines a follow poll has not printed yet.
 */
import { describe, expect, test } from "bun:test";
import { describeStep } from "../../src/cli/apply.ts";
import { blockDetail, blocksTable, clustersTable, instancesTable, policiesTable } from "../../src/cli/get.ts";
import { followLogs, newLines } from "../../src/cli/logs.ts";
import { age, cell, table } from "../../src/cli/output.ts";
import { parseScale } from "../../src/cli/scale.ts";
import type { GatewayClient } from "../../src/gateway/client.ts";
import type { BlockView, ClusterView } from "../../src/gateway/views.ts";

const NOW = Date.parse("2026-01-01T12:00:00Z");
const ago = (s: number) => new Date(NOW - s * 1000).toISOString();

const block = (over: Partial<BlockView> = {}): BlockView => ({
  id: "sentiment",
  cluster_id: "local",
  status: "running",
  component: "model.sentiment:1.0.0",
  created_at: ago(90),
  updated_at: null,
  error: null,
  instances: [
    { id: "sentiment-a", node_id: "n1", gpus: ["0", "1"], url: "http://127.0.0.1:4001", started_at: ago(80) },
    { id: "sentiment-b", node_id: "n2", gpus: [], url: null, started_at: null },
  ],
  min_instances: 1,
  max_instances: 4,
  grpc_url: "http://127.0.0.1:50051",
  live: true,
  ...over,
});

describe("table", () => {
  test("aligns columns on the widest cell, two spaces apart, without trailing blanks", () => {
    expect(
      table(
        ["ID", "STATUS", "NOTE"],
        [
          ["a", "running", ""],
          ["longer-id", "ok", "x"],
        ],
      ),
    ).toBe(["ID         STATUS   NOTE", "a          running", "longer-id  ok       x"].join("\n"));
  });

  test("a header alone is a table", () => {
    expect(table(["A", "B"], [])).toBe("A  B");
  });

  test("cells for missing values and ages like kubectl", () => {
    expect([cell(null), cell(undefined), cell(""), cell(0), cell("x")]).toEqual(["-", "-", "-", "0", "x"]);
    expect(age(ago(5), NOW)).toBe("5s");
    expect(age(ago(600), NOW)).toBe("10m");
    expect(age(ago(3 * 3600), NOW)).toBe("3h");
    expect(age(ago(5 * 86400), NOW)).toBe("5d");
    expect(age(null, NOW)).toBe("-");
    expect(age("not a date", NOW)).toBe("-");
    // A clock a little ahead of ours is not a negative age.
    expect(age(new Date(NOW + 3000).toISOString(), NOW)).toBe("0s");
  });
});

describe("the get tables", () => {
  test("blocks: one row each, instances with their bounds, notes for errors", () => {
    const out = blocksTable(
      [
        block(),
        block({
          id: "broken",
          status: "failed",
          cluster_id: null,
          instances: [],
          grpc_url: null,
          live: false,
          error: { code: "dry_run_failed", message: "no candidate cluster answered" },
        }),
        block({ id: "far", live: false, instances: [] }),
      ],
      NOW,
    );
    const lines = out.split("\n");
    expect(lines[0]).toMatch(/^BLOCK\s+STATUS\s+CLUSTER\s+INSTANCES\s+COMPONENT\s+GRPC\s+AGE$/);
    expect(lines[1]).toMatch(
      /^sentiment\s+running\s+local\s+2 \(1-4\)\s+model\.sentiment:1\.0\.0\s+http:\/\/127\.0\.0\.1:50051\s+90s$/,
    );
    expect(lines[2]).toMatch(/^broken\s+failed\s+-\s+- \(1-4\)/);
    // Running, but its controller did not answer: the count is unknown, not zero.
    expect(lines[3]).toMatch(/^far\s+running\s+local\s+\? \(1-4\)/);
    // Columns line up: every row's STATUS starts where the header's does.
    const at = lines[0]!.indexOf("STATUS");
    for (const l of lines.slice(1, 4)) expect(l.slice(at, at + 1)).not.toBe(" ");
    expect(out).toContain("block broken: no candidate cluster answered");
    expect(out).toContain("block far: its controller did not answer");
    expect(blocksTable([])).toContain("aios apply");
  });

  test("instances: flattened across blocks, GPUs joined", () => {
    const out = instancesTable([block(), block({ id: "other", instances: [] })], NOW).split("\n");
    expect(out).toHaveLength(3);
    expect(out[0]).toMatch(/^BLOCK\s+INSTANCE\s+NODE\s+GPUS\s+URL\s+STARTED$/);
    expect(out[1]).toMatch(/^sentiment\s+sentiment-a\s+n1\s+0,1\s+http:\/\/127\.0\.0\.1:4001\s+80s$/);
    expect(out[2]).toMatch(/^sentiment\s+sentiment-b\s+n2\s+-\s+-\s+-$/);
    expect(instancesTable([])).toBe("no instances running");
  });

  test("clusters: controller state, healthy nodes of all, GPUs, blocks; why one is unreachable", () => {
    const gpu = { id: "0", memory_total: 16384, memory_used: 0, utilization: 0 };
    const node = (id: string, healthy: boolean, gpus = 0) => ({
      id,
      healthy,
      reason: null,
      cpu_utilization_percent: null,
      memory: null,
      gpus: Array.from({ length: gpus }, () => gpu),
    });
    const clusters: ClusterView[] = [
      {
        id: "local",
        status: "live",
        controller_url: "http://c",
        reachable: true,
        error: null,
        nodes: [node("a", true, 2), node("b", false, 1)],
        block_count: 3,
      },
      {
        id: "far",
        status: null,
        controller_url: "http://d",
        reachable: false,
        error: "timed out",
        nodes: [],
        block_count: 0,
      },
    ];
    const lines = clustersTable(clusters).split("\n");
    expect(lines[0]).toMatch(/^CLUSTER\s+STATUS\s+CONTROLLER\s+NODES\s+GPUS\s+BLOCKS$/);
    expect(lines[1]).toMatch(/^local\s+live\s+reachable\s+1\/2\s+3\s+3$/);
    expect(lines[2]).toMatch(/^far\s+-\s+unreachable\s+0\/0\s+0\s+0$/);
    expect(lines.at(-1)).toBe("cluster far: timed out");
  });

  test("policies: the same table as aios policy list", () => {
    const out = policiesTable([
      {
        uri: "policy.loadBalancer.rr:v1",
        kind: "loadBalancer",
        size: 123,
        exports: ["init", "eval"],
        description: "rr",
      },
    ]);
    expect(out).toMatch(
      /^URI\s+KIND\s+BYTES\s+EXPORTS\s+DESCRIPTION\npolicy\.loadBalancer\.rr:v1\s+loadBalancer\s+123\s+init,eval\s+rr$/,
    );
    expect(policiesTable([])).toContain("aios policy upload");
  });
});

describe("allocation steps as lines", () => {
  const at = "2026-01-01T00:00:00Z";
  test("each step, a dry run per cluster: ok with its score, refused or timeout", () => {
    expect(describeStep({ step: "filter", ok: true, detail: { clusters: ["a", "b", "c"] }, at })).toEqual([
      "filter: 3 candidate clusters (a, b, c)",
    ]);
    expect(describeStep({ step: "filter", ok: false, detail: { clusters: [] }, at })).toEqual([
      "filter: no cluster matches the filter",
    ]);
    expect(describeStep({ step: "selection", ok: true, detail: { clusters: ["a"] }, at })).toEqual([
      "selection: 1 selected cluster (a)",
    ]);
    expect(
      describeStep({
        step: "dry_run",
        ok: true,
        detail: {
          a: { score: 0.756789, node_info: {} },
          b: { error: "no dry-run answer within 1500 ms" },
          c: { error: "pre-check add_block refused: quota" },
        },
        at,
      }),
    ).toEqual([
      "dry_run on cluster a: ok (score 0.757)",
      "dry_run on cluster b: timeout (no dry-run answer within 1500 ms)",
      "dry_run on cluster c: refused (pre-check add_block refused: quota)",
    ]);
    expect(
      describeStep({ step: "post_dry_run", ok: true, detail: { cluster_id: "a", score: 1 }, at }),
    ).toEqual(["post_dry_run: chose cluster a (score 1)"]);
    expect(describeStep({ step: "allocation", ok: true, detail: { cluster_id: "a" }, at })).toEqual([
      "allocation on cluster a: ok",
    ]);
    expect(
      describeStep({ step: "allocation", ok: false, detail: { cluster_id: "c", error: "no GPU left" }, at }),
    ).toEqual(["allocation on cluster c: failed (no GPU left)"]);
  });

  test("a block in full lists its steps and instances", () => {
    const out = blockDetail(
      { ...block(), steps: [{ step: "allocation", ok: true, detail: { cluster_id: "local" }, at }] },
      NOW,
    );
    expect(out).toContain("status:     running");
    expect(out).toContain("instances:  2 (1-4)");
    expect(out).toContain("allocation:\n  allocation on cluster local: ok");
    expect(out).toMatch(/sentiment\s+sentiment-a\s+n1/);
  });
});

describe("aios scale's count", () => {
  test("a number sets, a sign changes", () => {
    expect(parseScale("4")).toEqual({ instances: 4 });
    expect(parseScale("0")).toEqual({ instances: 0 });
    expect(parseScale("+2")).toEqual({ delta: 2 });
    expect(parseScale("-1")).toEqual({ delta: -1 });
    expect(() => parseScale("+0")).toThrow("does nothing");
    expect(() => parseScale("two")).toThrow("must be a number");
    expect(() => parseScale("1.5")).toThrow("must be a number");
  });
});

describe("following a log", () => {
  test("only the lines after the previous read's end are new", () => {
    expect(newLines(["a", "b", "c"], ["b", "c", "d", "e"])).toEqual(["d", "e"]);
    expect(newLines(["a", "b"], ["a", "b"])).toEqual([]);
    expect(newLines([], ["a"])).toEqual(["a"]);
    // The log moved on by more than a read: everything is new.
    expect(newLines(["a", "b"], ["x", "y"])).toEqual(["x", "y"]);
    // Repeated lines: the longest overlap wins, so nothing is printed twice.
    expect(newLines(["x", "x", "x"], ["x", "x", "x", "y"])).toEqual(["y"]);
  });

  test("followLogs polls and writes each new line once, until aborted", async () => {
    const log = ["one", "two"];
    const reads: { tail?: number; instance?: string }[] = [];
    const client = {
      async logs(_id: string, q: { tail?: number; instance?: string }) {
        reads.push(q);
        return { block_id: "b", instance_id: null, lines: log.slice(-(q.tail ?? 100)) };
      },
    } as unknown as GatewayClient;
    const written: string[] = [];
    const stop = new AbortController();
    const following = followLogs(
      client,
      "b",
      { instance: "i" },
      [...log],
      (l) => written.push(l),
      stop.signal,
    );
    log.push("three", "four");
    await Bun.sleep(1300);
    log.push("five");
    await Bun.sleep(1000);
    stop.abort();
    await following;
    expect(written).toEqual(["three", "four", "five"]);
    expect(reads[0]).toEqual({ instance: "i", tail: 1000 });
  });
});
