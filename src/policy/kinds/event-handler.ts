/** Block event handlers (cluster-controller.md): run for each event a block pushes. */
import { z } from "zod";
import { defineKind, HostActions, JsonObject } from "./contract.ts";

const Input = z.looseObject({
  block_id: z.string(),
  event_name: z.string(),
  event_data: JsonObject,
});

const Output = z.looseObject({ actions: HostActions.optional() });

export const eventHandler = defineKind({
  name: "eventHandler",
  description: "handles an event a block pushed, optionally asking for actions",
  input: Input,
  output: () => Output,
});
