/**
 * The block specification (block-spec-and-allocation.md): `{"head", "body": {"spec": {"values"}}}`.
 * `parseBlockSpec` checks it and answers its values; a 400 names the JSON path at fault
 * (`body.spec.values.minInstances`).
 */
import { z } from "zod";
import { parseWith } from "../http/errors.ts";
import { PolicyRuleListSchema } from "../policy/rules.ts";
import { versionedUri } from "../store/uri.ts";

const JsonObject = z.record(z.string(), z.unknown());

/** What the cluster controller accepts as a block id (and a Kubernetes name fragment would). */
export const BlockId = z
  .string()
  .regex(/^[a-zA-Z0-9][a-zA-Z0-9._-]{0,62}$/, "must be 1 to 63 letters, digits, '.', '_' or '-'");

export const BlockSpecValuesSchema = z
  .looseObject({
    blockComponentURI: versionedUri("model.object-detector:2.0.0-stable"),
    blockId: BlockId.optional(),
    minInstances: z.number().int().min(0).max(1000),
    maxInstances: z.number().int().min(1).max(1000),
    blockInitData: JsonObject.optional(),
    initSettings: JsonObject.optional(),
    parameters: JsonObject.optional(),
    policyRulesSpec: PolicyRuleListSchema.optional(),
  })
  .refine((v) => v.minInstances <= v.maxInstances, {
    path: ["minInstances"],
    message: "must not exceed maxInstances",
  });
export type BlockSpecValues = z.infer<typeof BlockSpecValuesSchema>;

export const BlockSpecSchema = z.looseObject({
  head: z.looseObject({ templateUri: z.string().optional(), parameters: JsonObject.optional() }).optional(),
  body: z.object({ spec: z.object({ values: BlockSpecValuesSchema }) }),
});

/** The specification's values, checked; a 400 ApiError naming the path at fault. */
export const parseBlockSpec = (body: unknown): BlockSpecValues =>
  parseWith(BlockSpecSchema, body).body.spec.values;
