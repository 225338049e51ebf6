/**
 * The round-robin load balancer keeps a session cache across calls, so its memory must be reclaimed
 * as sessions come and go: over many calls with ever-new session ids and changing instance lists,
 * its linear memory stops growing once warm.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { ensureBuilt, openPolicy, type PolicyHandle } from "../../wasm-policies/harness.ts";

let lb: PolicyHandle;

beforeAll(async () => {
  await ensureBuilt();
  lb = await openPolicy("roundrobin");
  await lb.init({ settings: { session_cache_size: 1000 } });
}, 180_000);

afterAll(() => lb?.close());

const ids = (n: number) => Array.from({ length: n }, (_, i) => `instance-${i}`);

/** The eval input of call `i`: a new session every call; the instance list changes every 5,000. */
const input = (i: number) => {
  const instances = JSON.stringify(ids(7 + (Math.floor(i / 5000) % 3)));
  return (
    `{"parameters":{"cache_sessions":true},"input_data":{"packet":{"session_id":"session-${i}","seq_no":${i},` +
    `"data":"{\\"image\\":\\"frame-0001.jpg\\"}","ts":${1_700_000_000 + i},"output_ptr":"","files":[]},` +
    `"instances":${instances}},"context":{"rule_id":"rule-1","kind":"loadBalancer","now_ms":${1_700_000_000_000 + i}}}`
  );
};

test("memory stays bounded over 60,000 calls with new sessions and changing instance lists", async () => {
  const memory = () => lb.io.memory?.buffer.byteLength ?? 0;
  let warm = 0;
  for (let i = 0; i < 60_000; i++) {
    const out = JSON.parse(await lb.raw("eval", input(i))) as { instance_id: string };
    if (i % 10_000 === 0) expect(out.instance_id).toStartWith("instance-");
    if (i === 20_000) warm = memory();
  }
  const state = await lb.management("get_state");
  expect(state.cached_sessions).toBe(1000);
  expect(memory()).toBe(warm);
  expect(memory()).toBeLessThanOrEqual(1 << 20);
}, 120_000);
