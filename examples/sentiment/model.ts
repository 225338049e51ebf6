/**
 * A multinomial naive Bayes text classifier: the pure algorithm, with no I/O and no SDK, so it can be
 * trained and tested alone. The instance (handlers.ts) trains one at `init` on corpus.ts.
 *
 * - Tokens: lower-cased words; a negation ("not", "never", "don't", ...) marks the words after it as
 *   `not_<word>` up to the next punctuation, so "not good" counts against "good" instead of for it.
 * - Training counts each token per class; prediction scores log P(c) + sum of log P(w|c) with additive
 *   (Laplace) smoothing `alpha`, ignoring tokens never seen in training (they say nothing about any
 *   class), and turns the scores into probabilities with a numerically stable softmax.
 * - Evidence: the tokens that pushed the winning class furthest above the runner-up,
 *   log P(w|best) - log P(w|second) per occurrence.
 */

export interface Example {
  text: string;
  label: string;
}

export interface Evidence {
  token: string;
  /** Log-likelihood ratio of the winning class over the runner-up contributed by this token. */
  weight: number;
}

export interface Prediction {
  /** The most probable class. */
  label: string;
  /** Its probability. */
  confidence: number;
  /** Every class's probability, summing to 1. */
  probabilities: Record<string, number>;
  /** The tokens the text was read as, in order (negated ones prefixed `not_`). */
  tokens: string[];
  /** Tokens absent from the training vocabulary, which did not count. */
  unknownTokens: string[];
  /** The strongest evidence for `label`, best first. */
  evidence: Evidence[];
}

export interface ModelInfo {
  classes: string[];
  documents: Record<string, number>;
  vocabularySize: number;
  alpha: number;
}

const NEGATIONS = new Set([
  "not",
  "no",
  "never",
  "nothing",
  "nobody",
  "neither",
  "nor",
  "hardly",
  "cannot",
  "without",
]);
const CLAUSE_END = /^[.,!?;:]$/;
// Words, contractions kept whole ("don't"), and clause-ending punctuation as its own token.
const TOKEN = /[a-z0-9]+(?:'[a-z]+)?|[.,!?;:]/g;

/** Lower-cased word tokens with negation scopes marked; punctuation ends a scope and is dropped. */
export const tokenize = (text: string): string[] => {
  const out: string[] = [];
  let negated = false;
  const raws =
    text
      .toLowerCase()
      .replace(/[\u2018\u2019]/g, "'")
      .match(TOKEN) ?? [];
  for (const raw of raws) {
    if (CLAUSE_END.test(raw)) {
      negated = false;
      continue;
    }
    if (NEGATIONS.has(raw) || raw.endsWith("n't")) {
      // The negation word itself carries no polarity; what follows it does, reversed.
      negated = true;
      continue;
    }
    out.push(negated ? `not_${raw}` : raw);
  }
  return out;
};

export class NaiveBayes {
  readonly alpha: number;
  readonly #classes: string[] = [];
  readonly #docs = new Map<string, number>();
  /** class -> token -> count */
  readonly #counts = new Map<string, Map<string, number>>();
  /** class -> total token count */
  readonly #totals = new Map<string, number>();
  readonly #vocabulary = new Set<string>();

  constructor(alpha = 1) {
    if (!(alpha > 0) || !Number.isFinite(alpha)) {
      throw new RangeError(`alpha must be a positive finite number, got ${alpha}`);
    }
    this.alpha = alpha;
  }

  /** Adds examples to the model; it can be trained more at any time. */
  train(examples: readonly Example[]): this {
    for (const { text, label } of examples) {
      if (label === "") throw new RangeError("an example needs a non-empty label");
      if (!this.#docs.has(label)) {
        this.#classes.push(label);
        this.#counts.set(label, new Map());
        this.#totals.set(label, 0);
      }
      this.#docs.set(label, (this.#docs.get(label) ?? 0) + 1);
      const counts = this.#counts.get(label)!;
      const tokens = tokenize(text);
      for (const t of tokens) {
        counts.set(t, (counts.get(t) ?? 0) + 1);
        this.#vocabulary.add(t);
      }
      this.#totals.set(label, (this.#totals.get(label) ?? 0) + tokens.length);
    }
    return this;
  }

  get classes(): readonly string[] {
    return this.#classes;
  }

  info(): ModelInfo {
    return {
      classes: [...this.#classes],
      documents: Object.fromEntries(this.#docs),
      vocabularySize: this.#vocabulary.size,
      alpha: this.alpha,
    };
  }

  #logLikelihood(label: string, token: string): number {
    const count = this.#counts.get(label)?.get(token) ?? 0;
    const total = this.#totals.get(label) ?? 0;
    return Math.log((count + this.alpha) / (total + this.alpha * this.#vocabulary.size));
  }

  /** Classifies `text`; `topK` bounds the evidence list (0 for none). */
  predict(text: string, topK = 3): Prediction {
    if (this.#classes.length === 0) throw new Error("the model has not been trained");
    const tokens = tokenize(text);
    const known = tokens.filter((t) => this.#vocabulary.has(t));
    const documents = [...this.#docs.values()].reduce((a, b) => a + b, 0);
    const scores = this.#classes.map((label) => {
      let score = Math.log((this.#docs.get(label) ?? 0) / documents);
      for (const t of known) score += this.#logLikelihood(label, t);
      return score;
    });
    // Softmax over log scores, shifted by the maximum so that exp() cannot underflow to all zeros.
    const max = Math.max(...scores);
    const exps = scores.map((s) => Math.exp(s - max));
    const sum = exps.reduce((a, b) => a + b, 0);
    const probabilities: Record<string, number> = {};
    this.#classes.forEach((label, i) => {
      probabilities[label] = exps[i]! / sum;
    });
    const ranked = this.#classes
      .map((label, i) => ({ label, score: scores[i]! }))
      .sort((a, b) => b.score - a.score);
    const best = ranked[0]!;
    const second = ranked[1];
    const evidence: Evidence[] = [];
    if (second && topK > 0) {
      const weights = new Map<string, number>();
      for (const t of known) {
        const w = this.#logLikelihood(best.label, t) - this.#logLikelihood(second.label, t);
        weights.set(t, (weights.get(t) ?? 0) + w);
      }
      for (const [token, weight] of weights) if (weight > 0) evidence.push({ token, weight });
      evidence.sort((a, b) => b.weight - a.weight || a.token.localeCompare(b.token));
      evidence.splice(topK);
    }
    return {
      label: best.label,
      confidence: probabilities[best.label]!,
      probabilities,
      tokens,
      unknownTokens: tokens.filter((t) => !this.#vocabulary.has(t)),
      evidence,
    };
  }
}
