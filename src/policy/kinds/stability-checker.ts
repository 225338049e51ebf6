/**
 * stabilityChecker (block-runtime.md, the health checker's policy): sees each instance's health and
 * answers what to do. The specification's Python policy performs its side effects itself; ours
 * returns them as actions for the health checker to carry out.
 */
import { z } from "zod";
import { defineKind, HostActions } from "./contract.ts";

const Input = z.looseObject({
  health_check_data: z.record(z.string(), z.boolean()),
  instances: z.array(z.string()).optional(),
});

const Output = z.looseObject({
  actions: HostActions.optional(),
  unhealthy: z.array(z.string()).optional(),
});

export const stabilityChecker = defineKind({
  name: "stabilityChecker",
  description: "judges a block's instance health and names the instances to replace",
  input: Input,
  output: () => Output,
});
