/**
 * The built-in load balancers (roundrobin, least-outstanding, p2c) run through the plain Extism SDK:
 * what they choose, the session cache, their state and management, and the cost of one call.
 */
import { afterEach, beforeAll, describe, expect, test } from "bun:test";
import { ensureBuilt, type FakeHost, openPolicy, type PolicyHandle } from "../../wasm-policies/harness.ts";

const ids = (n: number) => Array.from({ length: n }, (_, i) => `instance-${i}`);
const packet = (session_id = "", seq_no = 1) => ({
  session_id,
  seq_no,
  data: '{"input":"Hello Block"}',
  ts: 1.7e9,
});
const metricsOf = (inFlight: Record<string, number>) => ({
  block_metrics: {
    instances: Object.fromEntries(
      Object.entries(inFlight).map(([id, n]) => [
        id,
        { in_flight: n, requests_total: 100, errors_total: 0, latency_ms: { p50: 5, p99: 20 } },
      ]),
    ),
  },
  cluster_metrics: {},
});

const open: PolicyHandle[] = [];
const start = async (name: string, host: FakeHost = {}) => {
  const p = await openPolicy(name, host);
  open.push(p);
  return p;
};

beforeAll(() => ensureBuilt(), 180_000);
afterEach(async () => {
  for (const p of open.splice(0)) await p.close();
});

describe("roundrobin", () => {
  test("rotates over the instances in order", async () => {
    const lb = await start("roundrobin");
    await lb.init();
    const chosen: string[] = [];
    for (let i = 0; i < 7; i++)
      chosen.push((await lb.eval({ packet: packet(), instances: ids(3) })).instance_id);
    expect(chosen).toEqual([
      "instance-0",
      "instance-1",
      "instance-2",
      "instance-0",
      "instance-1",
      "instance-2",
      "instance-0",
    ]);
  });

  test("a session keeps its instance while others rotate", async () => {
    const lb = await start("roundrobin");
    await lb.init({ settings: { session_cache_size: 100 } });
    const a1 = (await lb.eval({ packet: packet("A"), instances: ids(3) })).instance_id;
    const b1 = (await lb.eval({ packet: packet("B"), instances: ids(3) })).instance_id;
    const a2 = (await lb.eval({ packet: packet("A", 2), instances: ids(3) })).instance_id;
    const c1 = (await lb.eval({ packet: packet("C"), instances: ids(3) })).instance_id;
    const b2 = (await lb.eval({ packet: packet("B", 2), instances: ids(3) })).instance_id;
    expect([a1, b1, a2, c1, b2]).toEqual([
      "instance-0",
      "instance-1",
      "instance-0",
      "instance-2",
      "instance-1",
    ]);
  });

  test("cache_sessions false rotates every packet", async () => {
    const lb = await start("roundrobin");
    await lb.init();
    const chosen = [];
    for (let i = 0; i < 3; i++) {
      chosen.push(
        (await lb.eval({ packet: packet("A"), instances: ids(3) }, { cache_sessions: false })).instance_id,
      );
    }
    expect(chosen).toEqual(["instance-0", "instance-1", "instance-2"]);
  });

  test("a change of the instance list clears the cache; a reordering does not", async () => {
    const lb = await start("roundrobin");
    await lb.init();
    expect((await lb.eval({ packet: packet("A"), instances: ids(3) })).instance_id).toBe("instance-0");
    expect((await lb.eval({ packet: packet("B"), instances: ids(3) })).instance_id).toBe("instance-1");
    // Same members in another order: sessions stay where they are.
    const reordered = ["instance-2", "instance-0", "instance-1"];
    expect((await lb.eval({ packet: packet("B"), instances: reordered })).instance_id).toBe("instance-1");
    expect((await lb.management("get_state")).cached_sessions).toBe(2);
    // A new member: the cache starts over, and A is placed afresh.
    const grown = [...ids(3), "instance-3"];
    await lb.eval({ packet: packet("A"), instances: grown });
    expect((await lb.management("get_state")).cached_sessions).toBe(1);
  });

  test("a cached instance that left the list is never returned", async () => {
    const lb = await start("roundrobin");
    await lb.init();
    for (let i = 0; i < 2; i++) await lb.eval({ packet: packet(`s${i}`), instances: ids(2) });
    // s1 sat on instance-1, which is gone (same count, different member).
    const answer = await lb.eval({ packet: packet("s1"), instances: ["instance-0", "instance-9"] });
    expect(["instance-0", "instance-9"]).toContain(answer.instance_id);
  });

  test("the cache is bounded by session_cache_size, evicting the oldest session", async () => {
    const lb = await start("roundrobin");
    await lb.init({ settings: { session_cache_size: 3 } });
    const first: Record<string, string> = {};
    for (const s of ["s0", "s1", "s2", "s3"])
      first[s] = (await lb.eval({ packet: packet(s), instances: ids(4) })).instance_id;
    expect((await lb.management("get_state")).cached_sessions).toBe(3);
    // s1..s3 are cached; s0 was evicted and gets the next instance in the rotation.
    expect((await lb.eval({ packet: packet("s3"), instances: ids(4) })).instance_id).toBe(first.s3);
    expect((await lb.eval({ packet: packet("s1"), instances: ids(4) })).instance_id).toBe(first.s1);
    expect((await lb.eval({ packet: packet("s0"), instances: ids(4) })).instance_id).toBe("instance-0");
    expect(first.s0).toBe("instance-0");
    // s0 came back in as the newest: s1 is now the oldest and goes next.
    await lb.eval({ packet: packet("s4"), instances: ids(4) });
    expect((await lb.eval({ packet: packet("s2"), instances: ids(4) })).instance_id).toBe(first.s2);
    expect((await lb.management("get_state")).cached_sessions).toBe(3);
  });

  test("management: get_state, reset, unknown actions", async () => {
    const lb = await start("roundrobin");
    await lb.init({ settings: { session_cache_size: 10 } });
    await lb.eval({ packet: packet("A"), instances: ids(2) });
    expect(await lb.management("get_state")).toEqual({
      ok: true,
      cursor: 1,
      instances: ids(2),
      cached_sessions: 1,
      session_cache_size: 10,
    });
    expect(await lb.management("reset")).toEqual({ ok: true });
    expect((await lb.management("get_state")).cached_sessions).toBe(0);
    await expect(lb.management("explode")).rejects.toThrow("unknown management action 'explode'");
  });

  test("no instances is an error", async () => {
    const lb = await start("roundrobin");
    await expect(lb.eval({ packet: packet(), instances: [] })).rejects.toThrow("input_data.instances");
    await expect(lb.eval({ packet: packet() })).rejects.toThrow("input_data.instances");
  });

  test("works without init (defaults)", async () => {
    const lb = await start("roundrobin");
    expect((await lb.eval({ packet: packet("x"), instances: ids(2) })).instance_id).toBe("instance-0");
  });
});

describe("least-outstanding", () => {
  test("picks the instance with the fewest requests in flight", async () => {
    const host: FakeHost = { metrics: metricsOf({ "instance-0": 5, "instance-1": 0, "instance-2": 3 }) };
    const lb = await start("least-outstanding", host);
    expect((await lb.eval({ packet: packet(), instances: ids(3) })).instance_id).toBe("instance-1");
    host.metrics = metricsOf({ "instance-0": 5, "instance-1": 9, "instance-2": 3 });
    expect((await lb.eval({ packet: packet(), instances: ids(3) })).instance_id).toBe("instance-2");
    expect(host.calls?.get("aios_get_metrics")).toBe(2);
  });

  test("instances without metrics count as idle", async () => {
    const lb = await start("least-outstanding", { metrics: metricsOf({ "instance-0": 2, "instance-1": 1 }) });
    expect((await lb.eval({ packet: packet(), instances: [...ids(2), "instance-new"] })).instance_id).toBe(
      "instance-new",
    );
  });

  test("ties rotate instead of piling onto the first", async () => {
    const lb = await start("least-outstanding", {
      metrics: metricsOf({ "instance-0": 1, "instance-1": 1, "instance-2": 4 }),
    });
    const chosen = [];
    for (let i = 0; i < 4; i++)
      chosen.push((await lb.eval({ packet: packet(), instances: ids(3) })).instance_id);
    expect(chosen).toEqual(["instance-0", "instance-1", "instance-0", "instance-1"]);
  });

  test("no metrics at all: plain rotation", async () => {
    const lb = await start("least-outstanding");
    const chosen = [];
    for (let i = 0; i < 3; i++)
      chosen.push((await lb.eval({ packet: packet(), instances: ids(3) })).instance_id);
    expect(chosen).toEqual(ids(3));
  });
});

describe("p2c", () => {
  test("of two draws the less loaded wins; an idle instance attracts most work", async () => {
    const load = { "instance-0": 50, "instance-1": 50, "instance-2": 0, "instance-3": 50 };
    const lb = await start("p2c", { metrics: metricsOf(load) });
    const counts: Record<string, number> = {};
    for (let i = 0; i < 200; i++) {
      const id = (await lb.eval({ packet: packet(), instances: ids(4) }, { seed: 7 })).instance_id as string;
      counts[id] = (counts[id] ?? 0) + 1;
    }
    // instance-2 wins whenever it is drawn: about half of all draws of two among four.
    expect(counts["instance-2"]).toBeGreaterThan(70);
    expect(Object.keys(counts).sort()).toEqual(ids(4));
  });

  test("the same seed gives the same sequence; another seed another", async () => {
    const run = async (seed: number) => {
      const lb = await start("p2c");
      const out = [];
      for (let i = 0; i < 30; i++)
        out.push((await lb.eval({ packet: packet(), instances: ids(8) }, { seed })).instance_id);
      return out.join(",");
    };
    expect(await run(42)).toBe(await run(42));
    expect(await run(42)).not.toBe(await run(43));
  });

  test("without a seed it seeds from context.now_ms", async () => {
    const run = async (now_ms: number) => {
      const lb = await start("p2c");
      const out = [];
      for (let i = 0; i < 20; i++)
        out.push((await lb.eval({ packet: packet(), instances: ids(8) }, {}, { now_ms })).instance_id);
      return out.join(",");
    };
    expect(await run(1000)).toBe(await run(1000));
    expect(await run(1000)).not.toBe(await run(2000));
  });

  test("one instance: that one, without asking for metrics", async () => {
    const host: FakeHost = {};
    const lb = await start("p2c", host);
    expect((await lb.eval({ packet: packet(), instances: ["only"] })).instance_id).toBe("only");
    expect(host.calls?.get("aios_get_metrics")).toBeUndefined();
  });

  test("management: reset re-seeds", async () => {
    const lb = await start("p2c");
    const seq = async () => {
      const out = [];
      for (let i = 0; i < 10; i++)
        out.push((await lb.eval({ packet: packet(), instances: ids(8) }, { seed: 5 })).instance_id);
      return out.join(",");
    };
    const first = await seq();
    expect(await lb.management("reset")).toEqual({ ok: true });
    expect(await seq()).toBe(first);
    expect((await lb.management("get_state")).seeded).toBe(true);
  });
});

describe("cost of a load-balancing call", () => {
  test("roundrobin: a packet and 8 instances, whole host call (p50 reported)", async () => {
    const lb = await start("roundrobin");
    await lb.init();
    const input = JSON.stringify({
      parameters: { cache_sessions: true },
      input_data: { packet: packet("sess-1234"), instances: ids(8) },
      context: { rule_id: "r", policy_uri: lb.uri, kind: "loadBalancer", now_ms: Date.now() },
    });
    // Warm up (the engine tiers the module up), then the best p50 of a few rounds: the machine is shared.
    const measure = async (n: number) => {
      const times = new Float64Array(n);
      for (let i = 0; i < n; i++) {
        const t = performance.now();
        JSON.parse(await lb.raw("eval", input));
        times[i] = performance.now() - t;
      }
      times.sort();
      return { p50: (times[n >> 1] ?? 0) * 1000, p99: (times[Math.floor(n * 0.99)] ?? 0) * 1000 };
    };
    await measure(3000);
    let best = { p50: Number.POSITIVE_INFINITY, p99: 0 };
    for (let round = 0; round < 5; round++) {
      const r = await measure(4000);
      if (r.p50 < best.p50) best = r;
    }
    const { p50, p99 } = best;
    console.log(
      `roundrobin eval, ${input.length}-byte input: p50 ${p50.toFixed(1)} µs, p99 ${p99.toFixed(1)} µs`,
    );
    // Generous: the target is 15 µs on an idle machine; shared CI machines are noisier.
    expect(p50).toBeLessThan(60);
  }, 60_000);
});
