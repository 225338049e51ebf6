/** loadBalancer (block-runtime.md): the executor asks which instance takes this packet. */
import { z } from "zod";
import { defineKind, listHas } from "./contract.ts";

const Packet = z.looseObject({
  session_id: z.string(),
  seq_no: z.number().optional(),
  data: z.unknown().optional(),
  ts: z.number().optional(),
});

const Input = z.looseObject({ packet: Packet, instances: z.array(z.string()).min(1) });
const Output = z.looseObject({ instance_id: z.string().min(1) });

export const loadBalancer = defineKind({
  name: "loadBalancer",
  description: "picks the instance of a block that serves an inference packet",
  input: Input,
  output: () => Output,
  accepts: (input, output) =>
    typeof output.instance_id === "string" &&
    output.instance_id !== "" &&
    listHas(input, "instances", output.instance_id),
  check: (input, output) =>
    listHas(input, "instances", output.instance_id)
      ? []
      : [`instance_id: '${output.instance_id}' is not one of the instances offered`],
});
