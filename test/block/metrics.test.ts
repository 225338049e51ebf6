/** The executor's metrics: histogram quantiles, the JSON policies read, and the Prometheus text. */
import { describe, expect, test } from "bun:test";
import { BlockMetrics, LatencyHistogram } from "../../src/block/metrics.ts";

describe("LatencyHistogram", () => {
  test("no observation: no quantile", () => {
    expect(new LatencyHistogram().quantile(0.5)).toBeNull();
  });

  test("estimates p50 and p99 inside the bucket that holds them", () => {
    const h = new LatencyHistogram();
    for (let i = 0; i < 98; i++) h.observe(3); // bucket (2, 5]
    h.observe(400); // (250, 500]
    h.observe(9000); // +Inf, bounded by the largest value seen
    const p50 = h.quantile(0.5)!;
    expect(p50).toBeGreaterThan(2);
    expect(p50).toBeLessThanOrEqual(5);
    const p99 = h.quantile(0.99)!;
    expect(p99).toBeGreaterThan(250);
    expect(p99).toBeLessThanOrEqual(500);
    expect(h.quantile(1)).toBe(9000);
    expect(h.count).toBe(100);
    expect(h.sum).toBe(98 * 3 + 400 + 9000);
  });

  test("a quantile never exceeds the largest value seen", () => {
    const h = new LatencyHistogram();
    h.observe(0.2);
    expect(h.quantile(0.99)!).toBeLessThanOrEqual(0.2);
  });
});

describe("BlockMetrics", () => {
  test("the JSON shape the load balancer policies read", () => {
    const m = new BlockMetrics("block-1");
    m.retain(["i-0", "i-1"]);
    const end = m.start("i-0");
    const inFlight = m.start("i-1");
    expect(m.blockMetrics().instances["i-1"]?.in_flight).toBe(1);
    end({ ok: true });
    end({ ok: false }); // a second call is ignored
    m.start("i-0")({ ok: false });
    m.policyFallback("trap");
    m.policyFallback("bad_output");
    const json = m.blockMetrics();
    expect(json).toEqual({
      block_id: "block-1",
      instances: {
        "i-0": {
          in_flight: 0,
          requests_total: 2,
          errors_total: 1,
          latency_ms: { p50: expect.any(Number), p99: expect.any(Number) },
        },
        "i-1": { in_flight: 1, requests_total: 0, errors_total: 0, latency_ms: { p50: null, p99: null } },
      },
      requests_total: 2,
      errors_total: 1,
      in_flight: 1,
      policy_fallbacks_total: 2,
      recent_latency_ms: { p50: expect.any(Number), p99: expect.any(Number) },
    });
    inFlight({ ok: true });
    // Instances leaving the block leave the metrics; the block's totals keep counting their requests.
    m.retain(["i-1", "i-2"]);
    expect(Object.keys(m.blockMetrics().instances).sort()).toEqual(["i-1", "i-2"]);
    expect(m.blockMetrics()).toMatchObject({ requests_total: 3, errors_total: 1 });
  });

  test("Prometheus text exposition", () => {
    const m = new BlockMetrics('b"1');
    m.start("i-0")({ ok: true });
    m.policyFallback("trap");
    const text = m.prometheus();
    const labels = 'block="b\\"1",instance="i-0"';
    expect(text).toContain("# HELP aios_executor_requests_total ");
    expect(text).toContain("# TYPE aios_executor_requests_total counter");
    expect(text).toContain(`aios_executor_requests_total{${labels}} 1\n`);
    expect(text).toContain(`aios_executor_errors_total{${labels}} 0\n`);
    expect(text).toContain(`aios_executor_in_flight{${labels}} 0\n`);
    expect(text).toContain("# TYPE aios_executor_request_duration_ms histogram");
    expect(text).toContain(`aios_executor_request_duration_ms_bucket{${labels},le="5000"} 1\n`);
    expect(text).toContain(`aios_executor_request_duration_ms_bucket{${labels},le="+Inf"} 1\n`);
    expect(text).toMatch(/aios_executor_request_duration_ms_sum\{block="b\\"1",instance="i-0"\} [\d.e-]+\n/);
    expect(text).toContain(`aios_executor_request_duration_ms_count{${labels}} 1\n`);
    expect(text).toContain('aios_executor_policy_fallbacks_total{block="b\\"1",code="trap"} 1\n');
    // Buckets are cumulative, so they never decrease.
    const buckets = [...text.matchAll(/_bucket\{[^}]*\} (\d+)/g)].map((x) => Number(x[1]));
    expect(buckets).toEqual([...buckets].sort((a, b) => a - b));
    expect(text.endsWith("\n")).toBe(true);
  });
});
