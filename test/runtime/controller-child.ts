/**
 * A short-lived "controller" for process.test.ts: opens the on-disk store, starts one sentiment
 * instance through the process runtime, prints its status as JSON and exits; the instance must live on.
 * Usage: bun test/runtime/controller-child.ts DATA_DIR RUN_DIR
 */
import { ProcessDriver } from "../../src/runtime/process.ts";
import { openStore } from "../../src/store/index.ts";
import { ROOT } from "../support/processes.ts";

const [dataDir, runDir] = process.argv.slice(2);
if (!dataDir || !runDir) throw new Error("usage: controller-child.ts DATA_DIR RUN_DIR");
const store = await openStore({ dataDir });
const driver = new ProcessDriver({ store, runDir, nodeId: "node-a", workloadAuth: { anonymous: true } });
const status = await driver.startInstance({
  blockId: "survivors",
  instanceId: "survivor",
  nodeId: "node-a",
  gpus: ["1"],
  template: { command: ["bun", "examples/sentiment/instance.ts"], cwd: ROOT },
});
await driver.close();
await store.close();
console.log(JSON.stringify(status));
// No process.exit: the unreferenced child must not keep this process alive.
