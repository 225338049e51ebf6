/**
 * The SDK's JSON module (wasm-policies/sdk/json.ts) through the json-echo fixture: `eval` parses its
 * input from UTF-8 bytes and writes it back; `management` goes through `JSON.parse(string)` and
 * `JSON.stringify`. Answers are compared with JavaScript's own JSON, and malformed input must come
 * back as an error naming the position, never as a trap.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import fc from "fast-check";
import { ensureBuilt, openPolicy, PolicyCallError, type PolicyHandle } from "../../wasm-policies/harness.ts";

let echo: PolicyHandle;

beforeAll(async () => {
  await ensureBuilt();
  echo = await openPolicy("json-echo");
}, 180_000);

afterAll(() => echo?.close());

/** The fixture's re-serialization of `text`, as text. */
const roundTrip = (text: string, via: "eval" | "management" = "eval"): Promise<string> => echo.raw(via, text);

const errorOf = async (text: string): Promise<string> => {
  try {
    await echo.call("eval", text);
  } catch (err) {
    expect(err).toBeInstanceOf(PolicyCallError);
    return (err as Error).message;
  }
  throw new Error(`expected ${JSON.stringify(text)} to be refused`);
};

describe("JSON parse and stringify", () => {
  test("documents come back equal, in key order, compact", async () => {
    const doc = {
      b: 1,
      a: [true, false, null, "x", { z: [], y: {} }],
      nested: { list: [{ k: "v", n: -2.5 }, [1, [2, [3]]]], empty: "" },
      "": "empty key",
    };
    const out = await roundTrip(JSON.stringify(doc, null, 2));
    expect(out).toBe(JSON.stringify(doc));
  });

  test("objects inside arrays inside objects keep their own members", async () => {
    const doc = {
      parameters: { gpus: 1 },
      input_data: {
        action: "selection",
        filter_result: [
          { id: "c1", nodes: { nodeData: [{ id: "n1", gpus: { gpus: [{ memory: 1 }, { memory: 2 }] } }] } },
          { id: "c2", tags: ["a", "b"], nodes: { nodeData: [] } },
        ],
        after: "still here",
      },
    };
    expect(JSON.parse(await roundTrip(JSON.stringify(doc)))).toEqual(doc);
  });

  test("string escapes are decoded and re-escaped", async () => {
    const text = String.raw`["\"\\\/\b\f\n\r\t", "\u0041\u00e9\u4e2d", "tab\tnew\nline", "\u0000\u001f"]`;
    const out = await roundTrip(text);
    expect(JSON.parse(out)).toEqual(JSON.parse(text));
    // Control characters must be escaped on the way out; "/" need not be.
    // (Not String.raw: Bun's transpiler rewrites its non-ASCII characters as \u escapes.)
    expect(out).toBe('["\\"\\\\/\\b\\f\\n\\r\\t","Aé中","tab\\tnew\\nline","\\u0000\\u001f"]');
  });

  test("surrogate pairs join into one code point; lone surrogates stay escaped", async () => {
    expect(JSON.parse(await roundTrip(String.raw`"\ud83d\ude00 and \uD83D\uDE00"`))).toBe("😀 and 😀");
    expect(await roundTrip(String.raw`"\ud83d\ude00"`)).toBe('"😀"');
    expect(await roundTrip(String.raw`"\ud800"`)).toBe(String.raw`"\ud800"`);
    expect(await roundTrip(String.raw`"x\udc00y"`)).toBe(String.raw`"x\udc00y"`);
  });

  test("UTF-8 text passes through unchanged", async () => {
    const doc = { name: "Zürich – 東京 – 😀", ключ: "значение" };
    expect(await roundTrip(JSON.stringify(doc))).toBe(JSON.stringify(doc));
  });

  test("numbers: integers, fractions, exponents, extremes", async () => {
    const cases = [
      "0",
      "-0",
      "7",
      "-12",
      "255",
      "256",
      "1700000000123",
      "9007199254740993",
      "0.1",
      "-2.5",
      "1e3",
      "1E-3",
      "2.5e+2",
      "0.000001",
      "123456789.123456789",
      "1.7976931348623157e308",
      "5e-324",
      "1e400",
      "123456789012345678901234567890",
      "0.30000000000000004",
    ];
    const out = JSON.parse(await roundTrip(`[${cases.join(",")}]`)) as (number | null)[];
    cases.forEach((text, i) => {
      const value = Number(text);
      // JSON has no Infinity: it is written as null; -0 comes back as 0, as JavaScript writes it.
      expect([text, out[i]]).toEqual([text, Number.isFinite(value) ? value + 0 : null]);
    });
  });

  test("duplicate member names: the last value wins, as in JavaScript", async () => {
    const text = '{"a":1,"b":2,"a":3}';
    expect(await roundTrip(text)).toBe(JSON.stringify(JSON.parse(text)));
    const big = `{${Array.from({ length: 20 }, (_, i) => `"k${i % 12}":${i}`).join(",")}}`;
    expect(JSON.parse(await roundTrip(big))).toEqual(JSON.parse(big));
  });

  test("big objects (looked up through an index) keep order and values", async () => {
    const doc = Object.fromEntries(Array.from({ length: 300 }, (_, i) => [`instance-${i}`, i % 2 === 0]));
    expect(await roundTrip(JSON.stringify(doc))).toBe(JSON.stringify(doc));
  });

  test("deep nesting up to the limit parses; beyond it is an error, not a trap", async () => {
    const deep = (n: number) => "[".repeat(n) + "]".repeat(n);
    const deepObject = (n: number) => `${'{"a":'.repeat(n)}1${"}".repeat(n)}`;
    expect(await roundTrip(deep(128))).toBe(deep(128));
    expect(await roundTrip(deepObject(128))).toBe(deepObject(128));
    expect(await errorOf(deep(129))).toContain("nesting deeper than 128 levels");
    expect(await errorOf(deepObject(129))).toContain("nesting deeper than 128 levels");
    expect(await errorOf(deep(100_000))).toContain("nesting deeper than 128 levels");
    // The instance is intact afterwards.
    expect(await roundTrip("[1]")).toBe("[1]");
  });

  test("a large document", async () => {
    const doc = {
      instances: Array.from({ length: 5000 }, (_, i) => ({
        id: `instance-${i}`,
        load: i / 7,
        ok: i % 3 === 0,
      })),
    };
    expect(JSON.parse(await roundTrip(JSON.stringify(doc)))).toEqual(doc);
  });

  test("the string API (JSON.parse of a string, JSON.stringify) agrees", async () => {
    const doc = { a: [1, "é", { b: null }], c: "😀\n" };
    expect(await roundTrip(JSON.stringify(doc), "management")).toBe(JSON.stringify(doc));
  });

  const malformed: [string, string][] = [
    ["", "unexpected end of input"],
    ["   ", "unexpected end of input"],
    ["{", "unexpected end of input in an object"],
    ["[1,]", "at byte 3: unexpected ']'"],
    ["[1 2]", "expected ',' or ']'"],
    ['{"a" 1}', "expected ':'"],
    ['{"a":1,}', "expected a member name"],
    ["{a:1}", "expected a member name"],
    ["'x'", "unexpected '''"],
    ['"abc', "unterminated string"],
    ['"a\\x"', "invalid escape"],
    ['"\\u12G4"', "invalid \\u escape"],
    ['"\\u12"', "truncated \\u escape"],
    ['"tab\there"', "control character 0x9"],
    ["01", "leading zeros"],
    ["-", "digits after '-'"],
    ["1.", "digits after '.'"],
    ["1e", "digits in its exponent"],
    [".5", "unexpected '.'"],
    ["+1", "unexpected '+'"],
    ["NaN", "unexpected 'N'"],
    ["tru", "literal 'true'"],
    ["nul", "literal 'null'"],
    ["falsy", "expected 'false'"],
    ['{"a":1}x', "at byte 7: unexpected 'x' after the JSON value"],
    ["[1] [2]", "after the JSON value"],
  ];
  for (const [text, message] of malformed) {
    test(`malformed ${JSON.stringify(text)} is an error naming the problem`, async () => {
      expect(await errorOf(text)).toContain(message);
    });
  }

  test("invalid UTF-8 is refused", async () => {
    for (const bytes of [
      [0x22, 0xff, 0x22],
      [0x22, 0xc3, 0x22],
      [0x22, 0xed, 0xa0, 0x80, 0x22], // an encoded surrogate
      [0x22, 0xc0, 0xaf, 0x22], // an overlong "/"
    ]) {
      let message = "";
      try {
        await echo.raw("eval", new Uint8Array(bytes));
      } catch (err) {
        message = (err as Error).message;
      }
      expect(message).toMatch(/UTF-8/);
    }
  });

  test("any JSON value survives the round trip (property)", async () => {
    await fc.assert(
      fc.asyncProperty(fc.jsonValue({ maxDepth: 6 }), async (value) => {
        const text = JSON.stringify(value);
        const out = await roundTrip(text);
        expect(JSON.parse(out)).toEqual(JSON.parse(text));
      }),
      { numRuns: 300 },
    );
  });

  test("any string survives the round trip, including lone surrogates (property)", async () => {
    await fc.assert(
      fc.asyncProperty(fc.string({ unit: "binary", maxLength: 40 }), async (s) => {
        expect(JSON.parse(await roundTrip(JSON.stringify([s])))).toEqual([s]);
      }),
      { numRuns: 300 },
    );
  });

  test("any decimal text rounds to the nearest double, as JavaScript's does (property)", async () => {
    const decimal = fc
      .tuple(
        fc.stringMatching(/^(0|[1-9][0-9]{0,30})$/),
        fc.option(fc.stringMatching(/^[0-9]{1,30}$/), { nil: undefined }),
        fc.option(fc.integer({ min: -360, max: 330 }), { nil: undefined }),
      )
      .map(([int, frac, exp]) => `${int}${frac ? `.${frac}` : ""}${exp !== undefined ? `e${exp}` : ""}`);
    await fc.assert(
      fc.asyncProperty(decimal, async (text) => {
        const [back] = JSON.parse(await roundTrip(`[${text}]`)) as (number | null)[];
        const expected = Number(text);
        expect([text, back]).toEqual([text, Number.isFinite(expected) ? expected : null]);
      }),
      { numRuns: 1000 },
    );
  });

  test("halfway cases and the ends of the range round correctly", async () => {
    const cases = [
      "9007199254740993", // 2^53 + 1: halfway, ties to even (down)
      "9007199254740995", // 2^53 + 3: halfway, ties to even (up)
      "9007199254740993.0000000000000000001", // just above halfway: up
      "2.2250738585072011e-308", // the largest subnormal's neighbourhood
      "2.2250738585072012e-308",
      "4.9406564584124654e-324",
      "2.4703282292062327e-324", // half the smallest subnormal: ties to 0
      "2.4703282292062328e-324", // just above: the smallest subnormal
      "1.7976931348623158e308", // rounds down to the largest double
      "1.7976931348623159e308", // rounds up to Infinity (null in JSON)
      "179769313486231570000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
      "0.1000000000000000055511151231257827021181583404541015625",
      "1e-400",
      "1e400",
      "0e99999",
      "123e-99999",
    ];
    const back = JSON.parse(await roundTrip(`[${cases.join(",")}]`)) as (number | null)[];
    cases.forEach((text, i) => {
      const expected = Number(text);
      expect([text, back[i]]).toEqual([text, Number.isFinite(expected) ? expected : null]);
    });
  });

  test("any double survives the round trip exactly (property)", async () => {
    await fc.assert(
      fc.asyncProperty(fc.double({ noNaN: true, noDefaultInfinity: true }), async (d) => {
        const [back] = JSON.parse(await roundTrip(JSON.stringify([d]))) as number[];
        expect(back).toBe(d === 0 ? 0 : d);
      }),
      { numRuns: 500 },
    );
  });
});
