/**
 * The sentiment example (examples/sentiment): the naive Bayes model alone, its instance handlers
 * served in-process by the instance SDK with the configuration of its block.json, and block.json as a
 * specification the block runtime reads with built-in policies only.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { TRAINING_SET } from "../../examples/sentiment/corpus.ts";
import { createSentimentHandlers, UNCERTAIN } from "../../examples/sentiment/handlers.ts";
import { NaiveBayes, tokenize } from "../../examples/sentiment/model.ts";
import { readBlockConfig } from "../../src/block/config.ts";
import { type ServedInstance, serveInstance, TaskError } from "../../src/instance/index.ts";
import { BUILTIN_POLICIES } from "../../wasm-policies/catalog.ts";
import { HELD_OUT } from "../support/sentiment.ts";

const spec = JSON.parse(
  readFileSync(join(import.meta.dir, "../../examples/sentiment/block.json"), "utf8"),
) as {
  head: { templateUri: string };
  body: {
    spec: { values: Record<string, unknown> & { policyRulesSpec: { values: Record<string, unknown> }[] } };
  };
};
const values = spec.body.spec.values;

describe("the naive Bayes model", () => {
  const model = new NaiveBayes().train(TRAINING_SET);

  test("tokenize lower-cases, drops punctuation and marks negation scopes up to the next punctuation", () => {
    expect(tokenize("The food was NOT good, but the view was great!")).toEqual([
      "the",
      "food",
      "was",
      "not_good",
      "but",
      "the",
      "view",
      "was",
      "great",
    ]);
    // Contractions negate too, curly apostrophes included.
    expect(tokenize("I don’t like it. Fine")).toEqual(["i", "not_like", "not_it", "fine"]);
    expect(tokenize("  ...  ")).toEqual([]);
  });

  test("classifies sentences it was not trained on", () => {
    for (const [text, label] of HELD_OUT) {
      const p = model.predict(text);
      expect({ text, label: p.label }).toEqual({ text, label });
      expect(p.confidence).toBeGreaterThan(0.6);
    }
  });

  test("negation turns the polarity of a word around", () => {
    expect(model.predict("good quality").label).toBe("positive");
    const negated = model.predict("not good quality");
    expect(negated.tokens).toEqual(["not_good", "not_quality"]);
    expect(negated.label).toBe("negative");
    expect(model.predict("The coffee was great").label).toBe("positive");
    expect(model.predict("The coffee was not great").label).toBe("negative");
  });

  test("probabilities sum to 1; unknown words fall back to the even prior", () => {
    const p = model.predict("The staff were friendly and the coffee was amazing");
    const sum = Object.values(p.probabilities).reduce((a, b) => a + b, 0);
    expect(sum).toBeCloseTo(1, 12);
    expect(p.confidence).toBe(p.probabilities[p.label]!);

    const unknown = model.predict("Hello Block");
    expect(unknown.tokens).toEqual(["hello", "block"]);
    expect(unknown.unknownTokens).toEqual(["hello", "block"]);
    expect(unknown.probabilities).toEqual({ positive: 0.5, negative: 0.5 });
    expect(unknown.evidence).toEqual([]);
  });

  test("a very long text keeps finite probabilities (the softmax is shifted)", () => {
    const p = model.predict("awful terrible rude ".repeat(3000));
    expect(p.label).toBe("negative");
    expect(Number.isFinite(p.probabilities.positive)).toBe(true);
    expect(p.probabilities.negative).toBeCloseTo(1, 9);
  });

  test("evidence: the strongest tokens for the winner, best first, at most top_k", () => {
    const p = model.predict("Awful service, a dirty room and rude staff", 2);
    expect(p.evidence).toHaveLength(2);
    expect(p.evidence[0]!.weight).toBeGreaterThanOrEqual(p.evidence[1]!.weight);
    expect(p.evidence.every((e) => e.weight > 0)).toBe(true);
    expect(["awful", "dirty", "rude"]).toContain(p.evidence[0]!.token);
    expect(model.predict("Awful service", 0).evidence).toEqual([]);
  });

  test("more training adds classes; bad settings are refused", () => {
    const m = new NaiveBayes(0.5).train(TRAINING_SET).train([
      { text: "What time does the shop open?", label: "question" },
      { text: "How much does shipping cost?", label: "question" },
      { text: "Where can I find the manual?", label: "question" },
    ]);
    expect(m.classes).toEqual(["positive", "negative", "question"]);
    expect(m.predict("What does the shop cost?").label).toBe("question");
    expect(m.info()).toMatchObject({ documents: { question: 3 }, alpha: 0.5 });
    expect(() => new NaiveBayes(0)).toThrow(/alpha/);
    expect(() => new NaiveBayes().predict("x")).toThrow(/not been trained/);
    expect(() => new NaiveBayes().train([{ text: "x", label: "" }])).toThrow(/label/);
  });
});

describe("the sentiment instance (handlers in the instance SDK)", () => {
  let inst: ServedInstance;
  let seq = 0;

  const task = (data: unknown) =>
    fetch(`${inst.url}/task`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ session_id: "s", seq_no: ++seq, data, ts: 1_700_000_000 }),
    });
  const mgmt = (action: string, data?: unknown) =>
    fetch(`${inst.url}/mgmt`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ mgmt_action: action, mgmt_data: data }),
    });
  const result = async (data: unknown) => {
    const res = await task(data);
    expect(res.status).toBe(200);
    return ((await res.json()) as { result: Record<string, unknown> }).result;
  };
  const refusal = async (data: unknown) => {
    const res = await task(data);
    expect(res.status).toBe(400);
    return ((await res.json()) as { error: { code: string; message: string; details: { field: string } } })
      .error;
  };

  beforeAll(async () => {
    inst = await serveInstance(createSentimentHandlers(), {
      hostname: "127.0.0.1",
      port: 0,
      env: {
        AIOS_INSTANCE_ID: "sentiment-0",
        AIOS_BLOCK_ID: String(values.blockId),
        AIOS_INIT_DATA: JSON.stringify(values.blockInitData),
        AIOS_INIT_SETTINGS: JSON.stringify({ max_chars: 200 }),
        AIOS_PARAMETERS: JSON.stringify(values.parameters),
        CUDA_VISIBLE_DEVICES: "0,2",
      },
    });
  });
  afterAll(() => inst?.stop());

  test("answers label, probabilities, tokens and evidence, with its instance id and GPUs", async () => {
    const r = await result({ text: "Terrible app, it keeps crashing and support is useless" });
    expect(r).toMatchObject({
      label: "negative",
      best_label: "negative",
      min_confidence: 0.6,
      instance_id: "sentiment-0",
      gpus: ["0", "2"],
    });
    expect(r.tokens).toEqual(tokenize("Terrible app, it keeps crashing and support is useless"));
    const probs = r.probabilities as Record<string, number>;
    expect(probs.negative).toBeGreaterThan(0.9);
    expect(probs.negative! + probs.positive!).toBeCloseTo(1, 5);
    expect((r.evidence as unknown[]).length).toBe(3); // top_k from block.json
  });

  test("blockInitData.extra_examples are trained on", async () => {
    // "checkout" appears only in block.json's extra examples.
    const r = await result({ text: "checkout" });
    expect(r.unknown_tokens).toEqual([]);
    const info = (await (await mgmt("model_info")).json()) as { result: Record<string, unknown> };
    expect(info.result).toMatchObject({
      documents: { positive: 45, negative: 45 },
      max_chars: 200,
      parameters: { min_confidence: 0.6, top_k: 3 },
    });
  });

  test("the specification's sample input field `input` is read as the text", async () => {
    const r = await result({ input: "Hello Block" });
    // Neither word was trained on: an even split, under min_confidence.
    expect(r).toMatchObject({ label: UNCERTAIN, tokens: ["hello", "block"], confidence: 0.5 });
  });

  test("bad input is refused with a 400 naming the field", async () => {
    expect(await refusal({ txt: "hi" })).toMatchObject({
      code: "invalid_input",
      details: { field: "data.text" },
    });
    expect((await refusal({ text: 42 })).message).toBe("data.text must be a string, got number");
    expect((await refusal({ text: "   " })).message).toBe("data.text is empty");
    expect((await refusal({ text: "x".repeat(201) })).message).toBe(
      "data.text is too long: 201 characters, at most 200",
    );
    expect((await refusal("just a string")).details.field).toBe("data");
    expect((await refusal({ input: null })).message).toBe("data.input must be a string, got null");
  });

  test("parameter_update changes min_confidence and top_k; a bad value is refused and changes nothing", async () => {
    const text = "The staff were friendly and the coffee was amazing"; // about 0.72 positive
    expect(await result({ text })).toMatchObject({ label: "positive" });

    let res = await mgmt("parameter_update", { min_confidence: 0.9, top_k: 1 });
    expect(res.status).toBe(200);
    let r = await result({ text });
    expect(r).toMatchObject({ label: UNCERTAIN, best_label: "positive", min_confidence: 0.9 });
    expect(r.evidence as unknown[]).toHaveLength(1);

    res = await mgmt("parameter_update", { min_confidence: 1.5 });
    expect(res.status).toBe(400);
    const body = (await res.json()) as { error: { message: string } };
    expect(body.error.message).toContain("min_confidence");
    r = await result({ text });
    expect(r).toMatchObject({ label: UNCERTAIN, min_confidence: 0.9 });

    res = await mgmt("parameter_update", { min_confidence: 0.6, top_k: 3 });
    expect(res.status).toBe(200);
    expect(await result({ text })).toMatchObject({ label: "positive" });
  });

  test("custom metrics count predictions per label and refusals", async () => {
    const before = inst.metrics.custom();
    await result({ text: "Rude waiter, cold soup and a dirty table" });
    await result({ text: "A wonderful hotel with a stunning view" });
    await result({ text: "A wonderful hotel with a stunning view" });
    await refusal({});
    const res = await fetch(`${inst.url}/metrics`);
    const custom = ((await res.json()) as { custom: Record<string, number> }).custom;
    expect(custom.predictions_negative).toBe(before.predictions_negative! + 1);
    expect(custom.predictions_positive).toBe(before.predictions_positive! + 2);
    expect(custom.refused_tasks).toBe(before.refused_tasks! + 1);
    expect(custom.vocabulary_size).toBeGreaterThan(250);
    const prom = await (await fetch(`${inst.url}/metrics?format=prometheus`)).text();
    expect(prom).toContain(
      `aios_instance_custom_predictions_positive{block="sentiment-nb-01",instance="sentiment-0"} ${custom.predictions_positive}`,
    );
  });

  test("management: an unknown action is refused", async () => {
    const res = await mgmt("explode");
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe("unknown_action");
  });

  test("a bad blockInitData or parameter aborts the start, naming it", async () => {
    const start = (env: Record<string, string>) =>
      serveInstance(createSentimentHandlers(), { hostname: "127.0.0.1", port: 0, env });
    await expect(start({ AIOS_INIT_DATA: '{"alpha": -1}' })).rejects.toThrow(/blockInitData\.alpha/);
    await expect(start({ AIOS_PARAMETERS: '{"top_k": 2.5}' })).rejects.toBeInstanceOf(TaskError);
    await expect(start({ AIOS_INIT_SETTINGS: '{"max_chars": "many"}' })).rejects.toThrow(
      /initSettings\.max_chars/,
    );
  });
});

describe("examples/sentiment/block.json", () => {
  test("is a specification in the sample's shape that names only built-in policies of the right kind", () => {
    expect(spec.head.templateUri).toBe("Parser/V1");
    // Not toMatchObject with expect.any(): Bun 1.4.5 writes the matchers into the received object.
    expect([typeof values.blockId, typeof values.blockComponentURI]).toEqual(["string", "string"]);
    expect(values.minInstances as number).toBeLessThanOrEqual(values.maxInstances as number);
    const rules = values.policyRulesSpec.map((r) => r.values as { name: string; policyRuleURI: string });
    expect(rules.map((r) => r.name).sort()).toEqual([
      "autoscaler",
      "clusterAllocator",
      "loadBalancer",
      "resourceAllocator",
      "stabilityChecker",
    ]);
    for (const rule of rules) {
      const builtin = BUILTIN_POLICIES.find((p) => p.uri === rule.policyRuleURI);
      expect({ rule: rule.name, kind: builtin?.kind }).toEqual({ rule: rule.name, kind: rule.name as never });
    }
  });

  test("the block runtime reads its three runtime policies from the spec's values", () => {
    // The file as written: the runtime takes a spec's values, with blockId as the id.
    const block = readBlockConfig(spec);
    expect(block.blockId).toBe("sentiment-nb-01");
    expect({ min: block.minInstances, max: block.maxInstances }).toEqual({ min: 2, max: 6 });
    expect(block.policies.loadBalancer?.policyRuleURI).toBe("policy.loadBalancer.roundrobin:v0.0.1");
    expect(block.policies.autoscaler?.settings).toMatchObject({ interval_sec: 30 });
    expect(block.policies.stabilityChecker?.parameters).toEqual({ unhealthy_threshold: 3 });
  });
});
