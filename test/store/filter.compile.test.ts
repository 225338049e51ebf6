/**
 * The translation as a pure function: no user value ever reaches SQL text, bad filters are named,
 * and the same module runs unchanged under Deno (the design promises Deno compatibility).
 */
import { describe, expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { QueryError } from "../../src/store/mongo/errors.ts";
import { compileFilter, render } from "../../src/store/mongo/filter.ts";
import { parseOptions, sortSql } from "../../src/store/mongo/options.ts";
import { SqlParams } from "../../src/store/mongo/sql.ts";
import { compileUpdate } from "../../src/store/mongo/update.ts";

const HOSTILE = `x'); DROP TABLE clusters; --"\\`;

const sqlOf = (filter: unknown) => {
  const p = new SqlParams();
  return { text: render(compileFilter(filter), "doc", p), params: p.values };
};

const queryError = (fn: () => unknown): QueryError => {
  try {
    fn();
  } catch (e) {
    if (e instanceof QueryError) return e;
    throw e;
  }
  throw new Error("expected a QueryError");
};

describe("no user value in SQL text", () => {
  const filters: unknown[] = [
    { [HOSTILE]: HOSTILE },
    { a: { $in: [HOSTILE, { [HOSTILE]: 1 }] } },
    { a: { $regex: "x'; DROP TABLE clusters; --" } },
    { a: { $elemMatch: { [HOSTILE]: { $gt: HOSTILE } } } },
    { $or: [{ [`${HOSTILE}.b`]: [HOSTILE] }, { "a.0": { $all: [HOSTILE] } }] },
  ];
  test.each(filters)("filter %j", (f) => {
    const { text, params } = sqlOf(f);
    expect(text).not.toContain("DROP");
    expect(text).not.toContain("x';");
    expect(text).not.toContain("x')");
    expect(JSON.stringify(params)).toContain("DROP TABLE");
  });

  test("update and sort", () => {
    const p = new SqlParams();
    const text =
      compileUpdate({ $set: { [HOSTILE]: HOSTILE }, $pull: { b: { [HOSTILE]: HOSTILE } } }, "doc", p) +
      sortSql(parseOptions({ sort: { [HOSTILE]: 1 } }).sort, "doc", p);
    expect(text).not.toContain("DROP");
    expect(JSON.stringify(p.values)).toContain("DROP TABLE");
  });
});

describe("bad filters are named", () => {
  const cases: [unknown, string, string][] = [
    [{ a: { $foo: 1 } }, "unknown_operator", "a.$foo"],
    [{ $where: "1" }, "unknown_operator", "$where"],
    [{ a: { $gt: 1, b: 2 } }, "bad_value", "a"],
    [{ $and: [] }, "bad_value", "$and"],
    [{ $or: {} }, "bad_value", "$or"],
    [{ $or: [{ a: { $bad: 1 } }] }, "unknown_operator", "$or.0.a.$bad"],
    [{ a: { $in: 5 } }, "bad_value", "a.$in"],
    [{ a: { $size: -1 } }, "bad_value", "a.$size"],
    [{ a: { $regex: "(" } }, "bad_regex", "a.$regex"],
    [{ a: { $regex: "x", $options: "g" } }, "bad_value", "a.$regex"],
    [{ a: { $type: "nope" } }, "bad_type", "a.$type"],
    [{ a: { $not: 5 } }, "bad_value", "a.$not"],
    [{ "a..b": 1 }, "bad_path", "a..b"],
    [{ a: { $elemMatch: 3 } }, "bad_value", "a.$elemMatch"],
    [{ a: { $gt: [1] } }, "unsupported", "a.$gt"],
    [[1, 2], "bad_filter", ""],
  ];
  test.each(cases)("%j -> %s at %s", (filter, code, path) => {
    const e = queryError(() => compileFilter(filter));
    expect(e.code).toBe(code);
    expect(e.path ?? "").toBe(path);
    if (path) expect(e.message).toContain(path.split(".").pop()!);
  });

  test("deep nesting is refused, not recursed into", () => {
    let f: Record<string, unknown> = { a: 1 };
    for (let i = 0; i < 200; i++) f = { $and: [f] };
    expect(queryError(() => compileFilter(f)).code).toBe("too_deep");
    let g: Record<string, unknown> = { $gt: 1 };
    for (let i = 0; i < 200; i++) g = { $not: g };
    expect(queryError(() => compileFilter({ a: g })).code).toBe("too_deep");
  });

  test("bad options are named", () => {
    expect(queryError(() => parseOptions({ limit: -1 })).path).toBe("options.limit");
    expect(queryError(() => parseOptions({ sort: { a: 2 } })).path).toBe("options.sort.a");
    expect(queryError(() => parseOptions({ lmit: 1 })).path).toBe("options.lmit");
    expect(queryError(() => parseOptions({ projection: { a: 1, b: 0 } })).path).toBe("options.projection");
  });
});

describe("runs under Deno", () => {
  const deno = fileURLToPath(new URL("../../node_modules/.bin/deno", import.meta.url));
  const script = fileURLToPath(new URL("./deno-check.ts", import.meta.url));
  test("the pure translation gives the same SQL under Deno as under Bun", () => {
    const run = spawnSync(deno, ["run", "--no-prompt", "--no-config", script], {
      encoding: "utf8",
      timeout: 60_000,
    });
    expect(run.stderr).not.toContain("error");
    expect(run.status).toBe(0);
    const fromDeno = JSON.parse(run.stdout);
    const p = new SqlParams();
    const text = render(compileFilter(fromDeno.filter), "doc", p);
    expect(fromDeno.text).toBe(text);
    expect(fromDeno.params).toEqual(p.values);
    expect(fromDeno.error).toBe("unknown_operator");
  });
});
