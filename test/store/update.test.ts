/**
 * MongoDB update semantics through `collection.update` / `updateMany`, on every backend. Expected
 * documents are written by hand from MongoDB's documented behaviour; where mingo's updater agrees
 * with MongoDB it is asked too, as a second opinion on the expectation. mingo departs from MongoDB
 * where MongoDB raises an error (it silently skips $inc on a string, $push on a scalar, $set through
 * a scalar), in the cross-type order of objects and arrays, and when a $pull document condition meets
 * a scalar element: those cases are checked by hand only.
 *
 * THE measurement: 50 concurrent `$inc` on one document give exactly +50 (each update computes the
 * new document from the row it locks, not from a stale read).
 */
import { describe, expect, test } from "bun:test";
import { update as mingoUpdate } from "mingo/updater";
import { QueryError } from "../../src/store/index.ts";
import { backends, useCollection } from "../support/stores.ts";

type Obj = Record<string, unknown>;
type MingoModifier = Parameters<typeof mingoUpdate>[1];

/** mingo's result for the same update on a copy of the document, as JSON (its array holes are nulls). */
const byMingo = (doc: Obj, update: Obj): Obj => {
  const copy = structuredClone(doc);
  mingoUpdate(copy, update as MingoModifier);
  return JSON.parse(JSON.stringify(copy)) as Obj;
};

for (const backend of backends) {
  describe(`MongoDB update operators on ${backend.name}`, () => {
    const db = useCollection(backend, "vdag_controllers");
    let seq = 0;

    const fresh = async (doc: Obj): Promise<string> => {
      const id = `u${++seq}`;
      await db.col.insert({ ...structuredClone(doc), id });
      return id;
    };

    /**
     * Stores `doc`, applies `update`, and checks the returned and the stored document against
     * `expected` (and mingo's result against `expected` too unless `mingo` is false).
     */
    const expectUpdate = async (doc: Obj, update: Obj, expected: Obj, mingo = true): Promise<void> => {
      const id = await fresh(doc);
      const out = await db.col.update(id, update);
      expect(out).toEqual({ ...expected, id });
      expect(await db.col.get(id)).toEqual({ ...expected, id });
      if (mingo) expect(byMingo({ ...doc, id }, update)).toEqual({ ...expected, id });
    };

    /** The update is refused with a QueryError (matching `like`), and the stored document is unchanged. */
    const expectRefused = async (
      doc: Obj,
      update: unknown,
      like: { code?: string; path?: string; message?: RegExp },
    ): Promise<QueryError> => {
      const id = await fresh(doc);
      let error: unknown;
      try {
        await db.col.update(id, update);
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(QueryError);
      const q = error as QueryError;
      if (like.code !== undefined) expect(q.code).toBe(like.code);
      if (like.path !== undefined) expect(q.path).toBe(like.path);
      if (like.message !== undefined) expect(q.message).toMatch(like.message);
      expect(await db.col.get(id)).toEqual({ ...doc, id });
      return q;
    };

    describe("$set", () => {
      test("top-level field, replacing and adding", async () => {
        await expectUpdate(
          { a: 1, b: "x" },
          { $set: { a: { z: [1] }, c: null } },
          { a: { z: [1] }, b: "x", c: null },
        );
      });

      test("dot paths create the intermediate objects", async () => {
        await expectUpdate({ x: 1 }, { $set: { "a.b.c": 1 } }, { x: 1, a: { b: { c: 1 } } });
        await expectUpdate({ a: { k: 1 } }, { $set: { "a.b.c": 2 } }, { a: { k: 1, b: { c: 2 } } });
        await expectUpdate(
          { a: { b: { c: 1, d: 2 } } },
          { $set: { "a.b.c": 9 } },
          { a: { b: { c: 9, d: 2 } } },
        );
      });

      test("numeric segments index arrays, padding with nulls past the end", async () => {
        await expectUpdate({ arr: [1, 2, 3] }, { $set: { "arr.1": "two" } }, { arr: [1, "two", 3] });
        await expectUpdate({ arr: [1] }, { $set: { "arr.3": 5 } }, { arr: [1, null, null, 5] });
        await expectUpdate({ arr: [] }, { $set: { "arr.0": "a" } }, { arr: ["a"] });
        await expectUpdate(
          { arr: [{ x: 1 }, { x: 2 }] },
          { $set: { "arr.1.x": 20, "arr.0.y": 1 } },
          { arr: [{ x: 1, y: 1 }, { x: 20 }] },
        );
        // Padding then a new object at the new position (mingo pads the same way).
        await expectUpdate({ arr: [1] }, { $set: { "arr.2.x": 5 } }, { arr: [1, null, { x: 5 }] });
      });

      test("a numeric segment on an object or a missing field is a field name", async () => {
        await expectUpdate({ o: { k: 1 } }, { $set: { "o.0": "zero" } }, { o: { k: 1, "0": "zero" } });
        await expectUpdate({}, { $set: { "m.0": 1 } }, { m: { "0": 1 } });
      });

      test("a path through a scalar, null, or a non-numeric segment on an array: 'Cannot create field'", async () => {
        await expectRefused({ a: 1 }, { $set: { "a.b": 1 } }, { message: /Cannot create field 'b'/ });
        await expectRefused(
          { a: { b: "s" } },
          { $set: { "a.b.c": 1 } },
          { message: /Cannot create field 'c'/ },
        );
        await expectRefused({ a: null }, { $set: { "a.b": 1 } }, { message: /Cannot create field 'b'/ });
        await expectRefused(
          { arr: [1, 2] },
          { $set: { "arr.x": 1 } },
          { message: /Cannot create field 'x'/ },
        );
      });
    });

    describe("$unset", () => {
      test("removes an object field, top-level and nested", async () => {
        await expectUpdate({ a: 1, b: 2 }, { $unset: { a: "" } }, { b: 2 });
        await expectUpdate({ a: { b: 1, c: 2 } }, { $unset: { "a.b": "" } }, { a: { c: 2 } });
        await expectUpdate({ a: { b: 1 } }, { $unset: { "a.b": 1 } }, { a: {} });
      });

      test("an array element becomes null (positions are kept)", async () => {
        await expectUpdate({ arr: [1, 2, 3] }, { $unset: { "arr.1": "" } }, { arr: [1, null, 3] });
        await expectUpdate({ arr: [{ x: 1, y: 2 }] }, { $unset: { "arr.0.x": "" } }, { arr: [{ y: 2 }] });
      });

      test("a missing field, index past the end or path through a scalar changes nothing", async () => {
        await expectUpdate({ a: 1 }, { $unset: { zz: "" } }, { a: 1 });
        await expectUpdate({ a: { b: 1 } }, { $unset: { "a.zz.q": "" } }, { a: { b: 1 } });
        await expectUpdate({ arr: [1] }, { $unset: { "arr.5": "" } }, { arr: [1] });
        await expectUpdate({ a: 1 }, { $unset: { "a.b": "" } }, { a: 1 });
      });
    });

    describe("$inc and $mul", () => {
      test("on numbers, nested, negative and fractional", async () => {
        await expectUpdate({ n: 1 }, { $inc: { n: 5 } }, { n: 6 });
        await expectUpdate({ n: 1 }, { $inc: { n: -3 } }, { n: -2 });
        await expectUpdate({ n: 1 }, { $inc: { n: 0.5 } }, { n: 1.5 });
        await expectUpdate({ o: { n: 10 } }, { $inc: { "o.n": 2 } }, { o: { n: 12 } });
        await expectUpdate({ arr: [1, 2] }, { $inc: { "arr.1": 10 } }, { arr: [1, 12] });
        await expectUpdate({ n: 4 }, { $mul: { n: 2.5 } }, { n: 10 });
        await expectUpdate({ n: -3 }, { $mul: { n: -2 } }, { n: 6 });
      });

      test("a missing field: $inc sets the increment, $mul sets 0", async () => {
        await expectUpdate({ a: 1 }, { $inc: { n: 5 } }, { a: 1, n: 5 });
        await expectUpdate({ a: 1 }, { $mul: { m: 3 } }, { a: 1, m: 0 });
        await expectUpdate({}, { $inc: { "c.d": 2 } }, { c: { d: 2 } });
        await expectUpdate({}, { $mul: { "c.d": 2 } }, { c: { d: 0 } });
      });

      test("a non-numeric existing value is refused", async () => {
        for (const v of ["1", null, true, [1], { n: 1 }]) {
          await expectRefused({ n: v }, { $inc: { n: 1 } }, { message: /non-numeric/ });
          await expectRefused({ n: v }, { $mul: { n: 2 } }, { message: /non-numeric/ });
        }
      });

      test("an operand that is not a number is refused, naming the operator and field", async () => {
        for (const v of ["1", null, true, [1], { a: 1 }]) {
          await expectRefused({ n: 1 }, { $inc: { n: v } }, { code: "bad_value", path: "$inc.n" });
          await expectRefused({ n: 1 }, { $mul: { n: v } }, { code: "bad_value", path: "$mul.n" });
        }
      });
    });

    describe("$min and $max", () => {
      test("numbers", async () => {
        await expectUpdate({ n: 5 }, { $min: { n: 3 } }, { n: 3 });
        await expectUpdate({ n: 5 }, { $min: { n: 7 } }, { n: 5 });
        await expectUpdate({ n: 5 }, { $max: { n: 7 } }, { n: 7 });
        await expectUpdate({ n: 5 }, { $max: { n: -1 } }, { n: 5 });
        await expectUpdate({ n: 2.5 }, { $max: { n: 10 } }, { n: 10 });
        await expectUpdate({ o: { n: 1 } }, { $max: { "o.n": 2 } }, { o: { n: 2 } });
      });

      test("a missing field takes the value", async () => {
        await expectUpdate({}, { $min: { x: 4 } }, { x: 4 });
        await expectUpdate({}, { $max: { "o.x": "s" } }, { o: { x: "s" } });
      });

      test("strings compare by code point", async () => {
        await expectUpdate({ s: "a" }, { $min: { s: "B" } }, { s: "B" });
        await expectUpdate({ s: "a" }, { $max: { s: "B" } }, { s: "a" });
        await expectUpdate({ s: "z" }, { $max: { s: "é" } }, { s: "é" });
        await expectUpdate({ s: "ab" }, { $min: { s: "abc" } }, { s: "ab" });
      });

      test("across types: null < numbers < strings < objects < arrays < booleans", async () => {
        await expectUpdate({ v: 5 }, { $min: { v: null } }, { v: null });
        await expectUpdate({ v: null }, { $max: { v: 0 } }, { v: 0 });
        await expectUpdate({ v: 5 }, { $max: { v: "a" } }, { v: "a" });
        await expectUpdate({ v: "9" }, { $min: { v: 100 } }, { v: 100 });
        await expectUpdate({ v: "z" }, { $max: { v: { a: 1 } } }, { v: { a: 1 } });
        await expectUpdate({ v: true }, { $min: { v: "x" } }, { v: "x" });
        await expectUpdate({ v: false }, { $max: { v: 1000 } }, { v: false });
        // mingo orders objects and arrays otherwise; MongoDB's BSON order puts arrays above objects.
        await expectUpdate({ v: { a: 1 } }, { $max: { v: [1] } }, { v: [1] }, false);
        await expectUpdate({ v: [1] }, { $min: { v: { a: 1 } } }, { v: { a: 1 } }, false);
        await expectUpdate({ v: [1] }, { $max: { v: false } }, { v: false }, false);
        await expectUpdate({ v: true }, { $min: { v: [9] } }, { v: [9] }, false);
        await expectUpdate({ v: false }, { $max: { v: true } }, { v: true });
      });
    });

    describe("$push", () => {
      test("appends; a missing field becomes a new array; an array value is one element", async () => {
        await expectUpdate({ arr: [1] }, { $push: { arr: 2 } }, { arr: [1, 2] });
        await expectUpdate({}, { $push: { arr: "a" } }, { arr: ["a"] });
        await expectUpdate({ o: {} }, { $push: { "o.arr": { k: 1 } } }, { o: { arr: [{ k: 1 }] } });
        await expectUpdate({ arr: [1] }, { $push: { arr: [2, 3] } }, { arr: [1, [2, 3]] });
      });

      test("$each", async () => {
        await expectUpdate({ arr: [1, 2] }, { $push: { arr: { $each: [3, 4] } } }, { arr: [1, 2, 3, 4] });
        await expectUpdate({}, { $push: { arr: { $each: ["x", "y"] } } }, { arr: ["x", "y"] });
        await expectUpdate({ arr: [1] }, { $push: { arr: { $each: [] } } }, { arr: [1] });
      });

      test("$position: from the start, past the end, negative from the end", async () => {
        await expectUpdate(
          { arr: [1, 2] },
          { $push: { arr: { $each: [3, 4], $position: 0 } } },
          { arr: [3, 4, 1, 2] },
        );
        await expectUpdate(
          { arr: [1, 2] },
          { $push: { arr: { $each: [3, 4], $position: 1 } } },
          { arr: [1, 3, 4, 2] },
        );
        await expectUpdate(
          { arr: [1, 2] },
          { $push: { arr: { $each: [3], $position: 10 } } },
          { arr: [1, 2, 3] },
        );
        await expectUpdate(
          { arr: [1, 2] },
          { $push: { arr: { $each: [3, 4], $position: -1 } } },
          { arr: [1, 3, 4, 2] },
        );
        await expectUpdate(
          { arr: [1, 2] },
          { $push: { arr: { $each: [3], $position: -10 } } },
          { arr: [3, 1, 2] },
          false, // mingo does not clamp a negative position past the start
        );
      });

      test("$slice: keep the first n, the last n, or none", async () => {
        await expectUpdate(
          { arr: [1, 2] },
          { $push: { arr: { $each: [3, 4], $slice: 3 } } },
          { arr: [1, 2, 3] },
        );
        await expectUpdate(
          { arr: [1, 2] },
          { $push: { arr: { $each: [3, 4], $slice: -2 } } },
          { arr: [3, 4] },
        );
        await expectUpdate({ arr: [1, 2] }, { $push: { arr: { $each: [3], $slice: 0 } } }, { arr: [] });
        await expectUpdate(
          { arr: [1, 2] },
          { $push: { arr: { $each: [3], $slice: 10 } } },
          { arr: [1, 2, 3] },
        );
        await expectUpdate(
          { arr: [1, 2, 3] },
          { $push: { arr: { $each: [9], $position: 0, $slice: -2 } } },
          { arr: [2, 3] },
        );
      });

      test("onto a non-array is refused", async () => {
        await expectRefused({ arr: "x" }, { $push: { arr: 1 } }, { message: /must be an array/ });
        await expectRefused(
          { arr: { a: 1 } },
          { $push: { arr: { $each: [1] } } },
          { message: /must be an array/ },
        );
        await expectRefused({ arr: null }, { $push: { arr: 1 } }, { message: /must be an array/ });
      });

      test("bad modifiers are refused", async () => {
        await expectRefused(
          { arr: [] },
          { $push: { arr: { $each: 1 } } },
          { code: "bad_value", path: "$push.arr.$each" },
        );
        await expectRefused(
          { arr: [] },
          { $push: { arr: { $each: [1], $position: 1.5 } } },
          { code: "bad_value", path: "$push.arr.$position" },
        );
        await expectRefused(
          { arr: [] },
          { $push: { arr: { $each: [1], $bogus: 1 } } },
          { code: "unknown_operator", path: "$push.arr.$bogus" },
        );
      });
    });

    describe("$pull", () => {
      test("a scalar value removes every equal element", async () => {
        await expectUpdate({ arr: [1, 2, 3, 2] }, { $pull: { arr: 2 } }, { arr: [1, 3] });
        await expectUpdate({ arr: ["a", "b"] }, { $pull: { arr: "c" } }, { arr: ["a", "b"] });
        await expectUpdate({ arr: [1, "1", null] }, { $pull: { arr: "1" } }, { arr: [1, null] });
      });

      test("an operator condition applies to each element, with type bracketing", async () => {
        await expectUpdate({ arr: [3, 6, 7, 1] }, { $pull: { arr: { $gte: 6 } } }, { arr: [3, 1] });
        await expectUpdate({ arr: [3, "7", 8] }, { $pull: { arr: { $gt: 5 } } }, { arr: [3, "7"] });
        await expectUpdate({ arr: [1, 2, 3, 4] }, { $pull: { arr: { $in: [2, 4] } } }, { arr: [1, 3] });
      });

      test("a document condition applies to object elements", async () => {
        await expectUpdate(
          { arr: [{ score: 3 }, { score: 8, x: 1 }, { score: 1, name: "n" }] },
          { $pull: { arr: { score: { $lt: 5 } } } },
          { arr: [{ score: 8, x: 1 }] },
        );
        await expectUpdate(
          {
            arr: [
              { k: "a", v: 1 },
              { k: "b", v: 1 },
              { k: "a", v: 2 },
            ],
          },
          { $pull: { arr: { k: "a", v: 1 } } },
          {
            arr: [
              { k: "b", v: 1 },
              { k: "a", v: 2 },
            ],
          },
        );
        // MongoDB's document condition never matches a scalar element (mingo removes the 4).
        await expectUpdate(
          { arr: [{ score: 3 }, 4, { score: 8 }] },
          { $pull: { arr: { score: { $lt: 5 } } } },
          { arr: [4, { score: 8 }] },
          false,
        );
      });

      test("a missing field changes nothing", async () => {
        await expectUpdate({ a: 1 }, { $pull: { arr: 1 } }, { a: 1 });
        await expectUpdate({ a: 1 }, { $pull: { "o.arr": { $gt: 1 } } }, { a: 1 });
      });

      test("on a non-array is refused", async () => {
        await expectRefused({ arr: 5 }, { $pull: { arr: 5 } }, { message: /non-array/ });
        await expectRefused({ arr: { a: 1 } }, { $pull: { arr: { a: 1 } } }, { message: /non-array/ });
      });
    });

    describe("$addToSet", () => {
      test("adds a value only when absent; a missing field becomes a new array", async () => {
        await expectUpdate({ tags: ["a"] }, { $addToSet: { tags: "a" } }, { tags: ["a"] });
        await expectUpdate({ tags: ["a"] }, { $addToSet: { tags: "b" } }, { tags: ["a", "b"] });
        await expectUpdate({}, { $addToSet: { tags: "a" } }, { tags: ["a"] });
        await expectUpdate({ tags: [1] }, { $addToSet: { tags: "1" } }, { tags: [1, "1"] });
        await expectUpdate({ tags: ["a"] }, { $addToSet: { tags: ["a", "b"] } }, { tags: ["a", ["a", "b"]] });
      });

      test("$each adds each absent value once", async () => {
        await expectUpdate(
          { tags: ["a", "b"] },
          { $addToSet: { tags: { $each: ["a", "c", "c", "d"] } } },
          { tags: ["a", "b", "c", "d"] },
        );
        // MongoDB removes repeats from $each on a missing field too (mingo copies the list as it is).
        await expectUpdate({}, { $addToSet: { tags: { $each: [1, 1, 2] } } }, { tags: [1, 2] }, false);
      });

      test("object elements are compared by value", async () => {
        await expectUpdate(
          { arr: [{ x: 1, y: 2 }] },
          { $addToSet: { arr: { x: 1, y: 2 } } },
          { arr: [{ x: 1, y: 2 }] },
        );
        await expectUpdate(
          { arr: [{ x: 1, y: 2 }] },
          { $addToSet: { arr: { x: 1, y: 3 } } },
          {
            arr: [
              { x: 1, y: 2 },
              { x: 1, y: 3 },
            ],
          },
        );
        await expectUpdate(
          { arr: [{ x: 1, y: 2 }] },
          { $addToSet: { arr: { $each: [{ x: 1, y: 2 }, { x: 2 }] } } },
          { arr: [{ x: 1, y: 2 }, { x: 2 }] },
        );
      });

      test("on a non-array is refused", async () => {
        await expectRefused({ tags: "a" }, { $addToSet: { tags: "b" } }, { message: /non-array/ });
        await expectRefused(
          { tags: [] },
          { $addToSet: { tags: { $each: [1], $slice: 1 } } },
          { code: "unknown_operator", path: "$addToSet.tags.$slice" },
        );
      });
    });

    describe("$rename", () => {
      test("moves a field, overwriting the target", async () => {
        await expectUpdate({ a: 1, k: 0 }, { $rename: { a: "b" } }, { b: 1, k: 0 });
        await expectUpdate({ a: 1, b: 2 }, { $rename: { a: "b" } }, { b: 1 });
        await expectUpdate({ a: { x: [1] } }, { $rename: { a: "c" } }, { c: { x: [1] } });
      });

      test("a missing source changes nothing", async () => {
        await expectUpdate({ a: 1 }, { $rename: { z: "b.c" } }, { a: 1 });
        await expectUpdate({ a: 1 }, { $rename: { "o.p": "q" } }, { a: 1 });
      });

      test("nested source and target, creating intermediate objects", async () => {
        await expectUpdate({ a: 1, o: { p: 1 } }, { $rename: { a: "o.q" } }, { o: { p: 1, q: 1 } });
        await expectUpdate({ a: 1 }, { $rename: { a: "n.m" } }, { n: { m: 1 } });
        await expectUpdate({ o: { p: 1, q: 2 } }, { $rename: { "o.p": "r" } }, { o: { q: 2 }, r: 1 });
      });

      test("a target that is not a path, or one overlapping the source, is refused", async () => {
        await expectRefused({ a: 1 }, { $rename: { a: 5 } }, { code: "bad_value", path: "$rename.a" });
        await expectRefused({ a: { b: 1 } }, { $rename: { a: "a.b" } }, { path: "$rename.a" });
      });
    });

    describe("whole updates", () => {
      test("several operators in one update apply together", async () => {
        await expectUpdate(
          { a: 0, n: 1, arr: [1], gone: true, tags: ["x"], old: "v" },
          {
            $set: { a: 1, "o.p": "q" },
            $inc: { n: 2 },
            $push: { arr: 3 },
            $unset: { gone: "" },
            $addToSet: { tags: "y" },
            $rename: { old: "renamed" },
            $max: { hi: 7 },
          },
          { a: 1, o: { p: "q" }, n: 3, arr: [1, 3], tags: ["x", "y"], renamed: "v", hi: 7 },
        );
      });

      test("sibling paths do not conflict", async () => {
        await expectUpdate(
          { a: { b: 0, c: 0 } },
          { $set: { "a.b": 1 }, $inc: { "a.c": 1 } },
          { a: { b: 1, c: 1 } },
        );
      });

      test("conflicting paths in one update are refused, naming both", async () => {
        const cases: [Obj, string[]][] = [
          [{ $set: { "a.b": 1 }, $inc: { a: 1 } }, ["$inc.a", "$set.a.b", "'a'"]],
          [{ $set: { a: 1 }, $unset: { a: "" } }, ["$unset.a", "$set.a"]],
          [{ $set: { a: 1, "a.b": 2 } }, ["$set.a.b", "$set.a"]],
          [{ $rename: { a: "b" }, $set: { b: 1 } }, ["$set.b", "$rename.a"]],
          [{ $push: { "arr.0": 1 }, $pull: { arr: 1 } }, ["$pull.arr", "$push.arr.0"]],
        ];
        for (const [update, names] of cases) {
          const e = await expectRefused({ a: { b: 0 }, arr: [[0]] }, update, { code: "conflict" });
          for (const n of names) expect(e.message).toContain(n);
          expect(e.path).toBe(names[0]!);
        }
      });

      test("the id is immutable", async () => {
        await expectRefused(
          { a: 1 },
          { $set: { id: "other" } },
          { code: "immutable_field", path: "$set.id" },
        );
        await expectRefused({ a: 1 }, { $unset: { id: "" } }, { code: "immutable_field", path: "$unset.id" });
        await expectRefused(
          { a: 1 },
          { $set: { "id.x": 1 } },
          { code: "immutable_field", path: "$set.id.x" },
        );
        await expectRefused(
          { a: 1 },
          { $rename: { id: "k" } },
          { code: "immutable_field", path: "$rename.id" },
        );
        await expectRefused(
          { a: 1 },
          { $rename: { a: "id" } },
          { code: "immutable_field", path: "$rename.a" },
        );
      });

      test("an unknown operator is refused with code unknown_operator", async () => {
        const e = await expectRefused(
          { a: 1 },
          { $foo: { a: 1 } },
          { code: "unknown_operator", path: "$foo" },
        );
        expect(e.message).toContain("$foo");
        await expectRefused(
          { a: 1 },
          { $set: { b: 1 }, $pop: { a: 1 } },
          { code: "unknown_operator", path: "$pop" },
        );
      });

      test("a replacement document, an empty update or a non-object is refused", async () => {
        await expectRefused({ a: 1 }, { a: 2 }, { code: "bad_update", path: "a" });
        await expectRefused({ a: 1 }, { $set: { b: 1 }, a: 2 }, { code: "bad_update", path: "a" });
        await expectRefused({ a: 1 }, {}, { code: "bad_update" });
        await expectRefused({ a: 1 }, [{ $set: { a: 2 } }], { code: "bad_update" });
        await expectRefused({ a: 1 }, null, { code: "bad_update" });
        await expectRefused({ a: 1 }, { $set: 5 }, { code: "bad_update", path: "$set" });
      });

      test("bad field paths are refused", async () => {
        await expectRefused({ a: 1 }, { $set: { "a..b": 1 } }, { code: "bad_path", path: "$set.a..b" });
        await expectRefused({ a: 1 }, { $set: { "a.$x": 1 } }, { code: "bad_path", path: "$set.a.$x" });
        await expectRefused({ a: 1 }, { $set: { "": 1 } }, { code: "bad_path" });
      });

      test("a refused update leaves the whole document unchanged (atomic)", async () => {
        await expectRefused(
          { n: 1, s: "x" },
          { $inc: { n: 1 }, $push: { s: 1 } },
          { message: /must be an array/ },
        );
        await expectRefused(
          { n: 1, s: "x" },
          { $set: { ok: true }, $mul: { s: 2 } },
          { message: /non-numeric/ },
        );
      });

      test("updating a missing id gives null and creates nothing", async () => {
        expect(await db.col.update("no-such-id", { $set: { a: 1 } })).toBeNull();
        expect(await db.col.get("no-such-id")).toBeNull();
        // Even an update that would fail on a document: there is none to fail on.
        expect(await db.col.update("no-such-id", { $inc: { a: 1 } })).toBeNull();
      });
    });

    describe("updateMany", () => {
      test("applies the update to every match and returns how many changed", async () => {
        const docs = [
          { id: "m1", group: "g", n: 1 },
          { id: "m2", group: "g", n: 2, tags: ["t"] },
          { id: "m3", group: "g", n: 3 },
          { id: "m4", group: "h", n: 4 },
        ];
        for (const d of docs) await db.col.insert(d);
        expect(await db.col.updateMany({ group: "g" }, { $inc: { n: 10 }, $addToSet: { tags: "u" } })).toBe(
          3,
        );
        expect(await db.col.get("m1")).toEqual({ id: "m1", group: "g", n: 11, tags: ["u"] });
        expect(await db.col.get("m2")).toEqual({ id: "m2", group: "g", n: 12, tags: ["t", "u"] });
        expect(await db.col.get("m3")).toEqual({ id: "m3", group: "g", n: 13, tags: ["u"] });
        expect(await db.col.get("m4")).toEqual({ id: "m4", group: "h", n: 4 });

        expect(await db.col.updateMany({ group: "h", n: { $gt: 3 } }, { $set: { seen: true } })).toBe(1);
        expect((await db.col.get("m4"))?.seen).toBe(true);
        expect(await db.col.updateMany({ group: "nobody" }, { $set: { seen: true } })).toBe(0);
        expect(
          await db.col.updateMany({ group: { $in: ["g", "h"] }, n: { $gte: 12 } }, { $unset: { tags: "" } }),
        ).toBe(2);
        expect(await db.col.get("m2")).toEqual({ id: "m2", group: "g", n: 12 });
      });

      test("refuses bad updates and bad filters before touching anything", async () => {
        await db.col.insert({ id: "m5", group: "k", n: 1, s: "x" });
        await expect(db.col.updateMany({ group: "k" }, { $set: { id: "x" } })).rejects.toBeInstanceOf(
          QueryError,
        );
        await expect(db.col.updateMany({ group: { $bogus: 1 } }, { $set: { a: 1 } })).rejects.toBeInstanceOf(
          QueryError,
        );
        // A failure on one matching document leaves every document unchanged.
        await db.col.insert({ id: "m6", group: "k", n: 2, s: [] });
        await expect(
          db.col.updateMany({ group: "k" }, { $inc: { n: 1 }, $push: { s: 1 } }),
        ).rejects.toBeInstanceOf(QueryError);
        expect(await db.col.get("m5")).toEqual({ id: "m5", group: "k", n: 1, s: "x" });
        expect(await db.col.get("m6")).toEqual({ id: "m6", group: "k", n: 2, s: [] });
      });
    });

    describe("concurrency", () => {
      test("50 concurrent $inc on one document give exactly +50", async () => {
        await db.col.insert({ id: "counter", n: 100 });
        const results = await Promise.all(
          Array.from({ length: 50 }, () => db.col.update("counter", { $inc: { n: 1 } })),
        );
        expect((await db.col.get("counter"))?.n).toBe(150);
        // Every update saw its own state: the returned values are exactly 101..150.
        const seen = results.map((d) => d?.n as number).sort((a, b) => a - b);
        expect(seen).toEqual(Array.from({ length: 50 }, (_, i) => 101 + i));
      });

      test("20 concurrent $push of distinct values lose none", async () => {
        await db.col.insert({ id: "pushes", arr: [] });
        await Promise.all(
          Array.from({ length: 20 }, (_, i) => db.col.update("pushes", { $push: { arr: i } })),
        );
        const arr = (await db.col.get("pushes"))?.arr as number[];
        expect(arr).toHaveLength(20);
        expect([...arr].sort((a, b) => a - b)).toEqual(Array.from({ length: 20 }, (_, i) => i));
      });

      test("concurrent $addToSet of overlapping values keep one of each", async () => {
        await db.col.insert({ id: "sets", tags: [] });
        await Promise.all(
          Array.from({ length: 30 }, (_, i) => db.col.update("sets", { $addToSet: { tags: `t${i % 10}` } })),
        );
        const tags = (await db.col.get("sets"))?.tags as string[];
        expect([...tags].sort()).toEqual(Array.from({ length: 10 }, (_, i) => `t${i}`).sort());
      });

      // Concurrent updateMany over the same rows can deadlock on Postgres; the store runs the loser again.
      test("concurrent updateMany and single-document $inc on the same documents add up", async () => {
        for (let i = 0; i < 5; i++) await db.col.insert({ id: `cm${i}`, kind: "cm", n: 0 });
        await Promise.all([
          ...Array.from({ length: 10 }, async () =>
            expect(await db.col.updateMany({ kind: "cm" }, { $inc: { n: 1 } })).toBe(5),
          ),
          ...Array.from({ length: 20 }, (_, i) => db.col.update(`cm${i % 5}`, { $inc: { n: 100 } })),
        ]);
        const ns = (await db.col.find({ kind: "cm" }, { sort: { id: 1 } })).map((d) => d.n);
        expect(ns).toEqual([410, 410, 410, 410, 410]);
      });
    });
  });
}
