import { describe, expect, test } from "bun:test";
import createPlugin, { type CallContext } from "@extism/extism";
import { SANDBOX_MODULE, TRAP_REASON } from "../../../src/policy/abi.ts";
import { admitPolicyModule } from "../../../src/policy/wasm/admission.ts";
import { compileWat } from "../../support/wat.ts";

const source = Bun.file(new URL("../fixtures/roundrobin-lb.wat", import.meta.url)).text();

const input = (instances: string[]) =>
  JSON.stringify({
    parameters: { weights: [1, 2] },
    input_data: { packet: { model: "llama", tokens: 12 }, instances },
    context: { rule_id: "r1" },
  });

const loadPlugin = async () => {
  const admitted = admitPolicyModule(await compileWat(await source));
  expect(admitted.exports).toEqual(["eval"]);
  return createPlugin(
    { wasm: [{ data: admitted.instrumented }] },
    {
      useWasi: false,
      runInWorker: false,
      // The sandbox's alloc: the real host meters kernel memory here; the test passes it through.
      functions: { [SANDBOX_MODULE]: { alloc: (cx: CallContext, n: bigint) => cx.alloc(n) } },
    },
  );
};

describe("the round-robin load balancer, admitted and run by Extism", () => {
  test("rotates over the instances call by call", async () => {
    const plugin = await loadPlugin();
    try {
      const picks: unknown[] = [];
      for (let i = 0; i < 7; i++) {
        picks.push((await plugin.call("eval", input(["pod-a", "pod-b", "pod-c"])))?.json());
      }
      expect(picks).toEqual(
        ["pod-a", "pod-b", "pod-c", "pod-a", "pod-b", "pod-c", "pod-a"].map((id) => ({ instance_id: id })),
      );
    } finally {
      await plugin.close();
    }
  });

  test("reads ids across whitespace and inputs larger than its first memory page", async () => {
    const plugin = await loadPlugin();
    try {
      const big = JSON.stringify({ parameters: { pad: "x".repeat(100_000) } }).slice(0, -1);
      const text = `${big},"input_data":{"instances" : [ "only-one" ]}}`;
      // The key is searched verbatim, so this one has no array after it: an error, not a crash.
      await expect(plugin.call("eval", text)).rejects.toThrow("no instances");
      const spaced = `${big},"input_data":{"instances":[ "first" ,\n "second" ]}}`;
      expect((await plugin.call("eval", spaced))?.text()).toBe('{"instance_id":"first"}');
      expect((await plugin.call("eval", spaced))?.text()).toBe('{"instance_id":"second"}');
    } finally {
      await plugin.close();
    }
  });

  test("no instances: the policy's own error through error_set", async () => {
    const plugin = await loadPlugin();
    try {
      await expect(plugin.call("eval", input([]))).rejects.toThrow("no instances");
      await expect(plugin.call("eval", '{"input_data":{}}')).rejects.toThrow("no instances");
    } finally {
      await plugin.close();
    }
  });

  test("the sandbox globals are reachable through the plugin's instance", async () => {
    const plugin = await loadPlugin();
    try {
      const instance = await (
        plugin as unknown as { getInstance(): Promise<WebAssembly.Instance> }
      ).getInstance();
      const fuel = instance.exports.aios_fuel as WebAssembly.Global;
      const trap = instance.exports.aios_trap as WebAssembly.Global;
      const before = fuel.value as number;
      await plugin.call("eval", input(["a", "b"]));
      expect(fuel.value).toBeLessThan(before);
      expect(trap.value).toBe(TRAP_REASON.none);
    } finally {
      await plugin.close();
    }
  });
});
