#!/usr/bin/env bun
/**
 * The sentiment component as a running instance: `bun examples/sentiment/instance.ts`.
 *
 * Configuration comes from the environment through the instance SDK (src/instance/config.ts):
 * AIOS_INSTANCE_ID, AIOS_BLOCK_ID, AIOS_INSTANCE_PORT (0: any free port), AIOS_INIT_DATA
 * (blockInitData), AIOS_INIT_SETTINGS (initSettings), AIOS_PARAMETERS, CUDA_VISIBLE_DEVICES. Prints
 * `listening instance <url>` once the model is trained and tasks are taken; stops on SIGINT/SIGTERM.
 */
import { ConfigError, serveInstance, TaskError } from "../../src/instance/index.ts";
import { createSentimentHandlers } from "./handlers.ts";

let instance: Awaited<ReturnType<typeof serveInstance>>;
try {
  instance = await serveInstance(createSentimentHandlers());
} catch (err) {
  // A bad environment variable or init value: say which, without a stack trace.
  if (err instanceof ConfigError || err instanceof TaskError) {
    console.error(`sentiment instance: ${err.message}`);
    process.exit(2);
  }
  throw err;
}

const stop = async (signal: string) => {
  console.error(`sentiment instance ${instance.config.instanceId}: ${signal} received, stopping`);
  await instance.stop();
  process.exit(0);
};
process.once("SIGINT", () => void stop("SIGINT"));
process.once("SIGTERM", () => void stop("SIGTERM"));

console.log(`listening instance ${instance.url}`);
