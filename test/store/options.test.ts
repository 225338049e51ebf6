/**
 * Query options through `collection.find(filter, {sort, limit, skip, projection})` and `count`, on
 * every backend, against MongoDB's documented behaviour: sort order across types (null < numbers <
 * strings < objects < arrays < booleans), arrays by their smallest element ascending and largest
 * descending, strings by code point; paging; inclusion and exclusion projections with the `id` kept
 * unless projected out. Projection results are compared with mingo's too where mingo agrees with
 * MongoDB (it treats `_id`, not `id`, as the special field, so the id flag is translated for it).
 */
import { describe, expect, test } from "bun:test";
import { Query } from "mingo";
import { QueryError } from "../../src/store/index.ts";
import { backends, useCollection } from "../support/stores.ts";

type Obj = Record<string, unknown>;
type Projection = Record<string, 0 | 1 | boolean>;

/** The same projection for mingo, whose special field is `_id`: the `id` flag made explicit. */
const forMingo = (projection: Projection): Projection => {
  const { id, ...rest } = projection;
  const flags = Object.values(rest);
  const inclusion = flags.some(Boolean) || (flags.length === 0 && Boolean(id));
  const dropId = id === 0 || id === false;
  if (inclusion) return dropId ? rest : { ...rest, id: 1 };
  return dropId ? { ...rest, id: 0 } : rest;
};

const byMingo = (docs: Obj[], projection: Projection): Obj[] =>
  new Query({}, {}).find(structuredClone(docs), forMingo(projection)).all() as Obj[];

for (const backend of backends) {
  describe(`query options on ${backend.name}`, () => {
    const db = useCollection(backend, "vdag_controllers");

    /** Stores `docs` under the tag `t` (ids `t-<key>`), returning a function that sorts them. */
    const dataset = async (t: string, docs: Record<string, Obj>) => {
      for (const [key, d] of Object.entries(docs)) await db.col.insert({ ...d, id: `${t}-${key}`, t });
      return async (options: Obj): Promise<string[]> =>
        (await db.col.find({ t }, options)).map((d) => d.id.slice(t.length + 1));
    };

    const refused = async (options: unknown, path: string, code = "bad_option"): Promise<void> => {
      let error: unknown;
      try {
        await db.col.find({}, options);
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(QueryError);
      expect((error as QueryError).code).toBe(code);
      expect((error as QueryError).path).toBe(path);
      // A bad path inside an option is named by the error's path; its message speaks of the field path.
      if (code === "bad_option")
        expect((error as QueryError).message).toContain(path.split(".")[1] ?? "options");
    };

    describe("sort", () => {
      test("one key ascending and descending, numbers compared as numbers", async () => {
        const sorted = await dataset("one", {
          a: { n: 3 },
          b: { n: 1 },
          c: { n: 10 },
          d: { n: -5 },
          e: { n: 2.5 },
          f: { n: 9 },
        });
        expect(await sorted({ sort: { n: 1 } })).toEqual(["d", "b", "e", "a", "f", "c"]);
        expect(await sorted({ sort: { n: -1 } })).toEqual(["c", "f", "a", "e", "b", "d"]);
      });

      test("several keys, each with its own direction", async () => {
        const sorted = await dataset("many", {
          a: { g: "x", n: 1 },
          b: { g: "y", n: 5 },
          c: { g: "x", n: 3 },
          d: { g: "y", n: 2 },
          e: { g: "x", n: 2 },
        });
        expect(await sorted({ sort: { g: 1, n: -1 } })).toEqual(["c", "e", "a", "b", "d"]);
        expect(await sorted({ sort: { g: -1, n: 1 } })).toEqual(["d", "b", "a", "e", "c"]);
        // Key order matters: n first.
        expect(await sorted({ sort: { n: 1, g: -1 } })).toEqual(["a", "d", "e", "c", "b"]);
      });

      test("dot paths through objects and through arrays of objects", async () => {
        const sorted = await dataset("dot", {
          a: { o: { n: 3 }, items: [{ p: 5 }, { p: 1 }] },
          b: { o: { n: 1 }, items: [{ p: 3 }] },
          c: { o: { n: 2 }, items: { p: 2 } },
        });
        expect(await sorted({ sort: { "o.n": 1 } })).toEqual(["b", "c", "a"]);
        expect(await sorted({ sort: { "o.n": -1 } })).toEqual(["a", "c", "b"]);
        // Ascending by the smallest p reached (a: 1), descending by the largest (a: 5).
        expect(await sorted({ sort: { "items.p": 1 } })).toEqual(["a", "c", "b"]);
        expect(await sorted({ sort: { "items.p": -1 } })).toEqual(["a", "b", "c"]);
      });

      test("missing and null sort first ascending, last descending", async () => {
        const sorted = await dataset("nulls", {
          one: { n: 1 },
          nul: { n: null },
          missing: {},
          zero: { n: 0 },
          str: { n: "s" },
        });
        const asc = await sorted({ sort: { n: 1 } });
        expect(asc.slice(0, 2).sort()).toEqual(["missing", "nul"]);
        expect(asc.slice(2)).toEqual(["zero", "one", "str"]);
        const desc = await sorted({ sort: { n: -1 } });
        expect(desc.slice(0, 3)).toEqual(["str", "one", "zero"]);
        expect(desc.slice(3).sort()).toEqual(["missing", "nul"]);
      });

      test("missing and null tie (the next key decides); an empty array comes before both", async () => {
        const sorted = await dataset("ties", { m: {}, n: { a: null }, e: { a: [] }, one: { a: 1 } });
        expect(await sorted({ sort: { a: 1, id: 1 } })).toEqual(["e", "m", "n", "one"]);
        expect(await sorted({ sort: { a: -1, id: 1 } })).toEqual(["one", "m", "n", "e"]);
      });

      test("mixed types in MongoDB's order: null < numbers < strings < objects < arrays < booleans", async () => {
        // An array sorts by its elements, so [[1]] stands for "an array": its smallest element is [1].
        const sorted = await dataset("types", {
          t: { v: true },
          o: { v: { x: 1 } },
          s1: { v: "a" },
          f: { v: false },
          n1: { v: 5 },
          z: { v: null },
          s2: { v: "B" },
          n2: { v: -1 },
          arr: { v: [[1]] },
        });
        const order = ["z", "n2", "n1", "s2", "s1", "o", "arr", "f", "t"];
        expect(await sorted({ sort: { v: 1 } })).toEqual(order);
        expect(await sorted({ sort: { v: -1 } })).toEqual([...order].reverse());
      });

      test("arrays sort by their smallest element ascending and largest descending", async () => {
        const sorted = await dataset("arrays", {
          a: { v: [5, 1] },
          b: { v: [3] },
          c: { v: 2 },
          d: { v: [4, 9] },
          e: { v: ["x", 0] },
        });
        // Keys ascending: a 1, b 3, c 2, d 4, e 0. Descending: a 5, b 3, c 2, d 9, e "x".
        expect(await sorted({ sort: { v: 1 } })).toEqual(["e", "a", "c", "b", "d"]);
        expect(await sorted({ sort: { v: -1 } })).toEqual(["e", "d", "a", "b", "c"]);
      });

      test("strings by code point", async () => {
        const strings = ["b", "B", "a", "A", "é", "Z", "aa", "", "10", "9"];
        const sorted = await dataset("strings", Object.fromEntries(strings.map((s, i) => [`k${i}`, { s }])));
        const byCodePoint = [...strings].sort();
        expect(byCodePoint).toEqual(["", "10", "9", "A", "B", "Z", "a", "aa", "b", "é"]);
        const asc = (await sorted({ sort: { s: 1 } })).map((k) => strings[Number(k.slice(1))]);
        expect(asc).toEqual(byCodePoint);
        const desc = (await sorted({ sort: { s: -1 } })).map((k) => strings[Number(k.slice(1))]);
        expect(desc).toEqual([...byCodePoint].reverse());
      });

      test("booleans: false before true", async () => {
        const sorted = await dataset("bools", { t: { b: true }, f: { b: false } });
        expect(await sorted({ sort: { b: 1 } })).toEqual(["f", "t"]);
        expect(await sorted({ sort: { b: -1 } })).toEqual(["t", "f"]);
      });
    });

    describe("limit and skip", () => {
      test("limit 0 means no limit, as in MongoDB", async () => {
        const sorted = await dataset("limit0", { a: { k: 1 }, b: { k: 2 }, c: { k: 3 } });
        expect(await sorted({ limit: 0, sort: { k: 1 } })).toEqual(["a", "b", "c"]);
      });

      test("page through a sorted result", async () => {
        const docs = Object.fromEntries(Array.from({ length: 10 }, (_, i) => [`d${i}`, { n: (i * 7) % 10 }]));
        const sorted = await dataset("paging", docs);
        const all = await sorted({ sort: { n: 1 } });
        expect(all).toHaveLength(10);
        const pages: string[] = [];
        for (let skip = 0; skip < 12; skip += 3) {
          const page = await sorted({ sort: { n: 1 }, limit: 3, skip });
          expect(page.length).toBe(Math.max(0, Math.min(3, 10 - skip)));
          pages.push(...page);
        }
        expect(pages).toEqual(all);
        expect(await sorted({ sort: { n: -1 }, limit: 2 })).toEqual(all.slice(-2).reverse());
        expect(await sorted({ sort: { n: 1 }, skip: 8 })).toEqual(all.slice(8));
        expect(await sorted({ sort: { n: 1 }, skip: 50 })).toEqual([]);
        expect(await sorted({ limit: 4 })).toHaveLength(4);
        expect(await sorted({ sort: { n: 1 }, limit: 10_000 })).toEqual(all);
      });
    });

    describe("projection", () => {
      const doc = {
        id: "proj-1",
        t: "proj",
        a: 1,
        b: "two",
        o: { p: 1, q: { r: 2, s: 3 }, u: [1, 2] },
        items: [
          { p: 1, q: 2 },
          { p: 3, q: 4 },
        ],
        mixed: [{ p: 1, q: 2 }, 5, "s", { p: 3 }],
      };
      let stored = false;
      const project = async (projection: Projection): Promise<Obj> => {
        if (!stored) {
          await db.col.insert(doc);
          stored = true;
        }
        const found = await db.col.find({ id: doc.id }, { projection });
        expect(found).toHaveLength(1);
        return found[0]!;
      };
      /** Checks the projection against the expected document and against mingo's result. */
      const expectProjection = async (projection: Projection, expected: Obj, mingo = true) => {
        expect(await project(projection)).toEqual(expected);
        if (mingo) expect(byMingo([doc], projection)).toEqual([expected]);
      };

      test("inclusion keeps the listed fields and the id", async () => {
        await expectProjection({ a: 1 }, { id: "proj-1", a: 1 });
        await expectProjection({ a: 1, b: true }, { id: "proj-1", a: 1, b: "two" });
        await expectProjection({ a: 1, nothere: 1 }, { id: "proj-1", a: 1 });
        await expectProjection({ o: 1 }, { id: "proj-1", o: doc.o });
      });

      test("inclusion through objects by dot paths", async () => {
        await expectProjection({ "o.p": 1 }, { id: "proj-1", o: { p: 1 } });
        await expectProjection({ "o.q.r": 1, "o.u": 1 }, { id: "proj-1", o: { q: { r: 2 }, u: [1, 2] } });
        await expectProjection({ "o.p": 1, "o.q": 1 }, { id: "proj-1", o: { p: 1, q: { r: 2, s: 3 } } });
      });

      test("inclusion through arrays of objects keeps the field of each object, drops scalars", async () => {
        await expectProjection({ "items.p": 1 }, { id: "proj-1", items: [{ p: 1 }, { p: 3 }] });
        await expectProjection({ "mixed.p": 1 }, { id: "proj-1", mixed: [{ p: 1 }, { p: 3 }] });
        await expectProjection(
          { "items.q": 1, "o.p": 1, a: 1 },
          { id: "proj-1", a: 1, o: { p: 1 }, items: [{ q: 2 }, { q: 4 }] },
        );
      });

      test("the id is kept unless projected out; {id: 1} alone gives only the id", async () => {
        await expectProjection({ a: 1, id: 0 }, { a: 1 });
        await expectProjection({ a: 1, id: false }, { a: 1 });
        await expectProjection({ a: 1, id: 1 }, { id: "proj-1", a: 1 });
        await expectProjection({ id: 1 }, { id: "proj-1" });
        await expectProjection({ id: true }, { id: "proj-1" });
        const { id: _id, ...withoutId } = doc;
        await expectProjection({ id: 0 }, withoutId);
      });

      test("exclusion removes the listed fields, through objects and arrays of objects", async () => {
        const { a: _a, b: _b, ...rest } = doc;
        await expectProjection({ a: 0, b: false }, rest);
        await expectProjection({ "o.q.r": 0, "o.p": 0 }, { ...doc, o: { q: { s: 3 }, u: [1, 2] } });
        await expectProjection({ "items.q": 0 }, { ...doc, items: [{ p: 1 }, { p: 3 }] });
        // Scalars in the array stay (exclusion only touches objects).
        await expectProjection({ "mixed.p": 0 }, { ...doc, mixed: [{ q: 2 }, 5, "s", {}] });
        await expectProjection({ nothere: 0 }, doc);
        const { id: _id, a: _a2, ...noIdNoA } = doc;
        await expectProjection({ a: 0, id: 0 }, noIdNoA);
      });

      test("projection applies to every result, after sort, limit and skip", async () => {
        const sorted = await dataset("projsort", {
          x: { n: 2, k: "x" },
          y: { n: 1, k: "y" },
          z: { n: 3, k: "z" },
        });
        expect(await sorted({})).toHaveLength(3);
        const found = await db.col.find(
          { t: "projsort" },
          { sort: { n: -1 }, skip: 1, limit: 1, projection: { k: 1, id: 0 } },
        );
        expect(found).toEqual([{ k: "x" }] as unknown as typeof found);
      });

      // MongoDB's jstests/core/projection_semantics.js: a parent stays (maybe empty) where the
      // projected sub-field is missing; scalars in arrays go.
      test.each([
        [{ a: [{ b: 1, c: 1 }, { c: 2 }] }, { "a.b": 1 }, { a: [{ b: 1 }, {}] }],
        [{ a: {} }, { "a.b": 1 }, { a: {} }],
        [{ a: ["s", {}, "s", { c: 1 }] }, { "a.b": 1 }, { a: [{}, {}] }],
        [{ a: { d: "x" } }, { "a.b": 1, "a.c": 1 }, { a: {} }],
        [{ a: { b: "s" } }, { "a.b.c": 1 }, { a: {} }],
        [{ a: { b: { x: 1 } } }, { "a.b.c": 1 }, { a: { b: {} } }],
        [{ a: [{ b: { x: 1 } }] }, { "a.b.c": 1 }, { a: [{ b: {} }] }],
      ])("inclusion of %j by %j gives %j", async (doc, projection, expected) => {
        await db.col.insert({ ...doc, id: "ps", t: "ps" });
        const [found] = await db.col.find({ id: "ps" }, { projection: { ...projection, id: 0 } });
        await db.col.delete("ps");
        expect(found as Obj).toEqual(expected);
      });

      test("{a: 0, id: 1} excludes a and keeps the id", async () => {
        await db.col.insert({ id: "ex1", t: 2, a: { b: 1 } });
        expect(await db.col.find({ id: "ex1" }, { projection: { a: 0, id: 1 } })).toEqual([
          { id: "ex1", t: 2 },
        ]);
        await db.col.delete("ex1");
      });

      test("mixing inclusion and exclusion is refused", async () => {
        await refused({ projection: { a: 1, b: 0 } }, "options.projection");
        await refused({ projection: { "o.p": 0, a: true } }, "options.projection");
        await refused({ projection: { a: 2 } }, "options.projection.a");
        await refused({ projection: { a: "yes" } }, "options.projection.a");
        await refused({ projection: [] }, "options.projection");
        await refused({ projection: { "a..b": 1 } }, "options.projection.a..b", "bad_path");
      });
    });

    describe("bad options are refused, naming options.<key>", () => {
      test("unknown key", async () => {
        await refused({ sortt: { a: 1 } }, "options.sortt");
        await refused({ limit: 1, fields: { a: 1 } }, "options.fields");
      });
      test("limit", async () => {
        await refused({ limit: -1 }, "options.limit");
        await refused({ limit: 10_001 }, "options.limit");
        await refused({ limit: 1.5 }, "options.limit");
        await refused({ limit: "5" }, "options.limit");
        await refused({ limit: null }, "options.limit");
      });
      test("skip", async () => {
        await refused({ skip: -1 }, "options.skip");
        await refused({ skip: 0.5 }, "options.skip");
        await refused({ skip: "1" }, "options.skip");
      });
      test("sort", async () => {
        await refused({ sort: { n: 2 } }, "options.sort.n");
        await refused({ sort: { n: 0 } }, "options.sort.n");
        await refused({ sort: { n: "asc" } }, "options.sort.n");
        await refused({ sort: { a: 1, "b.": -1 } }, "options.sort.b.", "bad_path");
        await refused({ sort: [["n", 1]] }, "options.sort");
        await refused({ sort: "n" }, "options.sort");
      });
      test("options that are not an object", async () => {
        await refused("limit=5", "options");
        await refused([1], "options");
      });
      test("empty and absent options are fine", async () => {
        await db.col.insert({ id: "opt-ok", t: "optok" });
        expect(await db.col.find({ t: "optok" }, {})).toHaveLength(1);
        expect(await db.col.find({ t: "optok" }, undefined)).toHaveLength(1);
        expect(await db.col.find({ t: "optok" }, null)).toHaveLength(1);
        expect(await db.col.find({ t: "optok" }, { sort: {}, projection: {} })).toEqual([
          { id: "opt-ok", t: "optok" },
        ]);
      });
    });

    describe("count", () => {
      test("counts the documents a filter matches", async () => {
        await dataset("count", {
          a: { n: 1, tags: ["x"] },
          b: { n: 2, tags: ["x", "y"] },
          c: { n: 3 },
          d: { n: "3" },
        });
        expect(await db.col.count({ t: "count" })).toBe(4);
        expect(await db.col.count({ t: "count", n: { $gte: 2 } })).toBe(2);
        expect(await db.col.count({ t: "count", tags: "x" })).toBe(2);
        expect(await db.col.count({ t: "count", tags: { $exists: false } })).toBe(2);
        expect(await db.col.count({ t: "count", $or: [{ n: 1 }, { n: "3" }] })).toBe(2);
        expect(await db.col.count({ t: "nothing" })).toBe(0);
        expect(await db.col.count({ t: "count" })).toBe((await db.col.find({ t: "count" })).length);
      });

      test("a bad filter is refused", async () => {
        await expect(db.col.count({ n: { $bogus: 1 } })).rejects.toBeInstanceOf(QueryError);
        await expect(db.col.count("n = 1")).rejects.toBeInstanceOf(QueryError);
      });
    });
  });
}
