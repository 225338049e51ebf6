import { describe, expect, spyOn, test } from "bun:test";
import { Hono } from "hono";
import { z } from "zod";
import {
  ApiError,
  checkDepth,
  onError,
  onNotFound,
  parseWith,
  readJson,
  readJsonWith,
  toApiError,
} from "../../src/http/errors.ts";
import { PolicyError } from "../../src/policy/errors.ts";
import { QueryError, StoreError } from "../../src/store/index.ts";

const request = (body: BodyInit | null, headers: Record<string, string> = {}) =>
  new Request("http://x/", { method: "POST", body, headers });

const rejection = async (p: Promise<unknown>): Promise<ApiError> => {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(ApiError);
    return err as ApiError;
  }
  throw new Error("expected a rejection");
};

describe("readJson", () => {
  test("parses JSON within the limit", async () => {
    expect(await readJson(request('{"a": [1, {"b": null}]}'))).toEqual({ a: [1, { b: null }] });
  });

  test("malformed, empty and non-UTF-8 bodies are 400 invalid_json", async () => {
    for (const body of ['{"a":', "", "   ", new Uint8Array([0x7b, 0xff, 0x7d])]) {
      const err = await rejection(readJson(request(body)));
      expect(err.status).toBe(400);
      expect(err.code).toBe("invalid_json");
    }
    expect((await rejection(readJson(request(null)))).code).toBe("invalid_json");
  });

  test("a body over the limit is 413, by declared length or by counting", async () => {
    let err = await rejection(readJson(request("[1,2,3]", { "content-length": "9999999" }), { limit: 100 }));
    expect(err.status).toBe(413);
    err = await rejection(readJson(request(`"${"x".repeat(200)}"`), { limit: 100 }));
    expect(err.status).toBe(413);
    expect(err.code).toBe("payload_too_large");
    expect(await readJson(request(`"${"x".repeat(98)}"`), { limit: 100 })).toBe("x".repeat(98));
  });

  test("nesting deeper than maxDepth is 400 too_deep, without exhausting the stack", async () => {
    expect(() => checkDepth(JSON.parse(`${"[".repeat(10)}${"]".repeat(10)}`), 10)).not.toThrow();
    const err = await rejection(readJson(request(`${"[".repeat(11)}${"]".repeat(11)}`), { maxDepth: 10 }));
    expect(err.code).toBe("too_deep");
    const huge = `${"[".repeat(100_000)}${"]".repeat(100_000)}`;
    const deepErr = await rejection(readJson(request(huge)));
    expect(deepErr.status).toBe(400);
  });
});

describe("zod errors", () => {
  const schema = z.object({ a: z.object({ b: z.array(z.number()) }) });

  test("name the JSON path of the first issue, with every issue in details", () => {
    try {
      parseWith(schema, { a: { b: [1, "two", "three"] } });
      throw new Error("unreachable");
    } catch (err) {
      const e = err as ApiError;
      expect(e.status).toBe(400);
      expect(e.message).toStartWith("a.b.1: ");
      expect(e.message).toContain("(and 1 more)");
      expect((e.details as { issues: { path: string }[] }).issues.map((i) => i.path)).toEqual([
        "a.b.1",
        "a.b.2",
      ]);
    }
  });

  test("name an unknown key of a strict object, and the root as body", async () => {
    const strict = z.strictObject({ query: z.string().optional() });
    const err = await rejection(readJsonWith(request('{"filter": 1}'), strict));
    expect(err.message).toStartWith("filter: ");
    expect((await rejection(readJsonWith(request("[]"), strict))).message).toStartWith("body: ");
  });
});

describe("toApiError and the Hono handlers", () => {
  test("maps store errors and zod errors; anything else is a generic 500", () => {
    const q = toApiError(new QueryError("unknown_operator", "unknown operator $foo at a", "a.$foo"));
    expect([q.status, q.code, q.details]).toEqual([400, "unknown_operator", { path: "a.$foo" }]);
    const s = toApiError(new StoreError(409, "conflict", "taken"));
    expect([s.status, s.code, s.message]).toEqual([409, "conflict", "taken"]);
    const zerr = z.number().safeParse("x").error!;
    expect(toApiError(zerr).status).toBe(400);
    const boom = toApiError(new Error("secret connection string"));
    expect([boom.status, boom.code, boom.message]).toEqual([500, "internal", "internal error"]);
  });

  test("a failing policy is a 4xx naming its code and URI, never a 500", () => {
    const fuel = toApiError(
      new PolicyError("fuel_exhausted", "p.lb:v1", "eval ran out of fuel", { fuel: 10 }),
    );
    expect([fuel.status, fuel.code, fuel.details]).toEqual([
      422,
      "fuel_exhausted",
      { uri: "p.lb:v1", fuel: 10 },
    ]);
    expect(toApiError(new PolicyError("not_found", "p.x:v1", "no policy")).status).toBe(404);
    expect(toApiError(new PolicyError("bad_input", "p.x:v1", "input_data block_id")).status).toBe(400);
  });

  test("an app answers the error contract for thrown errors and unknown routes", async () => {
    const app = new Hono();
    app.onError(onError);
    app.notFound(onNotFound);
    app.get("/bad", () => {
      throw new QueryError("bad_value", "x: nope", "x");
    });
    app.get("/boom", () => {
      throw new TypeError("undefined is not a function");
    });
    let res = await app.request("/bad");
    expect(res.status).toBe(400);
    expect(await res.json()).toEqual({
      error: { code: "bad_value", message: "x: nope", details: { path: "x" } },
    });

    const quiet = spyOn(console, "error").mockImplementation(() => {});
    res = await app.request("/boom");
    quiet.mockRestore();
    expect(res.status).toBe(500);
    expect(await res.json()).toEqual({
      error: { code: "internal", message: "internal error", details: null },
    });

    res = await app.request("/missing");
    expect(res.status).toBe(404);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe("not_found");
  });
});
