/**
 * The sentiment component's instance handlers (the instance SDK's `serveInstance` runs them; see
 * instance.ts). Kept apart from instance.ts so that tests can serve them in-process.
 *
 * - `init`: trains the naive Bayes model on the embedded corpus plus `blockInitData.extra_examples`,
 *   with `blockInitData.alpha` as the smoothing; reads `initSettings.max_chars`; checks the initial
 *   parameters. A bad value aborts the start, naming it.
 * - task: `data.text` (or `data.input`, the field the specification's sample client sends) ->
 *   `{label, best_label, confidence, probabilities, tokens, unknown_tokens, evidence, instance_id, gpus}`;
 *   `label` is "uncertain" when the confidence is under `min_confidence`.
 * - parameters: `min_confidence` (0..1, default 0.6), `top_k` (evidence tokens, 0..20, default 3).
 * - metrics: counters `predictions_<label>` and `refused_tasks`, gauge `vocabulary_size`.
 * - management: `model_info`.
 */
import { z } from "zod";
import {
  type InstanceContext,
  type InstanceHandlers,
  type Task,
  TaskError,
} from "../../src/instance/index.ts";
import { TRAINING_SET } from "./corpus.ts";
import { NaiveBayes } from "./model.ts";

export const UNCERTAIN = "uncertain";

const Parameters = z.object({
  min_confidence: z.number().min(0).max(1).default(0.6),
  top_k: z.number().int().min(0).max(20).default(3),
});
type Parameters = z.infer<typeof Parameters>;

const InitData = z.object({
  alpha: z.number().positive().max(1000).default(1),
  extra_examples: z
    .array(z.object({ text: z.string().min(1), label: z.string().min(1).max(64) }))
    .max(10_000)
    .default([]),
});

const Settings = z.object({ max_chars: z.number().int().positive().max(1_000_000).default(2000) });

const isRecord = (v: unknown): v is Record<string, unknown> =>
  v !== null && typeof v === "object" && !Array.isArray(v);

/** Parses `value` (an object, or nothing) with `schema`; a TaskError naming `where.field` at fault. */
const read = <T>(schema: z.ZodType<T>, value: unknown, where: string): T => {
  const parsed = schema.safeParse(value ?? {});
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  const field = [where, ...(issue?.path ?? []).map(String)].join(".");
  throw new TaskError("invalid_input", `${field}: ${issue?.message ?? "invalid"}`, 400, { field });
};

/** The text to classify, or a TaskError naming the field at fault. */
const textOf = (data: unknown, maxChars: number): string => {
  if (!isRecord(data)) {
    throw new TaskError("invalid_input", "data must be a JSON object with a text field", 400, {
      field: "data",
    });
  }
  const field = "text" in data ? "text" : "input" in data ? "input" : null;
  if (field === null) {
    throw new TaskError("invalid_input", "data.text is required (the text to classify)", 400, {
      field: "data.text",
    });
  }
  const text = data[field];
  const at = `data.${field}`;
  if (typeof text !== "string") {
    const got = text === null ? "null" : Array.isArray(text) ? "array" : typeof text;
    throw new TaskError("invalid_input", `${at} must be a string, got ${got}`, 400, { field: at });
  }
  if (text.trim() === "") throw new TaskError("invalid_input", `${at} is empty`, 400, { field: at });
  if (text.length > maxChars) {
    throw new TaskError(
      "invalid_input",
      `${at} is too long: ${text.length} characters, at most ${maxChars}`,
      400,
      { field: at, max_chars: maxChars },
    );
  }
  return text;
};

const round = (v: number): number => Math.round(v * 1e6) / 1e6;

export const createSentimentHandlers = (): InstanceHandlers => {
  let model: NaiveBayes | null = null;
  let maxChars = 2000;
  let parameters: Parameters = Parameters.parse({});

  const refuse = (ctx: InstanceContext, err: unknown): never => {
    if (err instanceof TaskError) ctx.metrics.counter("refused_tasks").inc();
    throw err;
  };

  return {
    init(ctx) {
      const initData = read(InitData, ctx.initData, "blockInitData");
      maxChars = read(Settings, ctx.settings, "initSettings").max_chars;
      parameters = read(Parameters, ctx.parameters, "parameters");
      model = new NaiveBayes(initData.alpha).train(TRAINING_SET).train(initData.extra_examples);
      ctx.metrics.gauge("vocabulary_size").set(model.info().vocabularySize);
      // Registered up front so that /metrics lists every label from the start, at 0.
      for (const label of [...model.classes, UNCERTAIN]) ctx.metrics.counter(`predictions_${label}`);
      ctx.metrics.counter("refused_tasks");
    },

    onTask(task: Task, ctx: InstanceContext) {
      if (!model) throw new Error("the model is not trained (init has not run)");
      let text: string;
      try {
        text = textOf(task.data, maxChars);
      } catch (err) {
        return refuse(ctx, err);
      }
      const p = model.predict(text, parameters.top_k);
      const label = p.confidence < parameters.min_confidence ? UNCERTAIN : p.label;
      ctx.metrics.counter(`predictions_${label}`).inc();
      return {
        label,
        best_label: p.label,
        confidence: round(p.confidence),
        probabilities: Object.fromEntries(Object.entries(p.probabilities).map(([k, v]) => [k, round(v)])),
        tokens: p.tokens,
        unknown_tokens: p.unknownTokens,
        evidence: p.evidence.map((e) => ({ token: e.token, weight: round(e.weight) })),
        min_confidence: parameters.min_confidence,
        instance_id: ctx.instanceId,
        gpus: ctx.gpus,
      };
    },

    health: () => model !== null,

    onParameterUpdate(merged) {
      // Validated as a whole: a bad value is refused and the previous parameters stay in force.
      parameters = read(Parameters, merged, "mgmt_data");
    },

    management(action, _data, ctx) {
      if (action === "model_info") {
        if (!model) throw new TaskError("not_ready", "the model is not trained yet", 409);
        const info = model.info();
        return {
          classes: info.classes,
          documents: info.documents,
          vocabulary_size: info.vocabularySize,
          alpha: info.alpha,
          max_chars: maxChars,
          parameters,
          instance_id: ctx.instanceId,
        };
      }
      throw new TaskError("unknown_action", `unknown mgmt_action ${JSON.stringify(action)}`, 400, {
        known: ["get_parameters", "parameter_update", "model_info"],
      });
    },
  };
};
