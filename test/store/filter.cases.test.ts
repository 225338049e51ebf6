/**
 * MongoDB's filter semantics by hand: the classic hard cases (arrays of arrays, null vs missing,
 * $ne on arrays, $elemMatch with operators, mixed types in $in), including those where mingo departs
 * from MongoDB and the property test therefore stays away. Every case runs on every backend.
 */
import { describe, expect, test } from "bun:test";
import { backends, indexedBackends, useCollection } from "../support/stores.ts";

const DOCS: Record<string, Record<string, unknown>> = {
  scalar5: { a: 5 },
  str5: { a: "5" },
  arr: { a: [1, 5, 9] },
  nested: { a: [[5]] },
  pair: { a: [1, 2] },
  pairNested: { a: [[1, 2], 3] },
  nullA: { a: null },
  nullInArr: { a: [null, 1] },
  empty: {},
  emptyArr: { a: [] },
  obj: { a: { b: 1, c: "x" } },
  objArr: { a: [{ b: 1 }, { b: 7, c: "y" }] },
  objArrMissing: { a: [{ b: 2 }, { c: 3 }] },
  deep: { a: { b: [{ c: 4 }, { c: 8 }] } },
  bools: { a: [true, false] },
  strs: { a: ["apple", "Banana", "cherry\nline"] },
  gpus: {
    nodes: [
      {
        id: "n1",
        gpus: [
          { model: "A100", mem: 40 },
          { model: "H100", mem: 80 },
        ],
      },
    ],
  },
  gpus2: {
    nodes: [
      { id: "n2", gpus: [{ model: "A100", mem: 80 }] },
      { id: "n3", gpus: [{ model: "H100", mem: 40 }] },
    ],
  },
  idx: { a: [{ "0": "key" }, 6] },
  mixed: { a: [1, "1", { b: 1 }] },
};

/** [filter, ids that MongoDB returns] */
const CASES: [Record<string, unknown>, string[]][] = [
  // implicit equality: scalar, element of an array, whole array, nested array only as a whole
  [{ a: 5 }, ["scalar5", "arr"]],
  [{ a: "5" }, ["str5"]],
  [{ a: [5] }, ["nested"]],
  [{ a: [1, 2] }, ["pair", "pairNested"]],
  [{ a: [2, 1] }, []],
  [{ a: { b: 1, c: "x" } }, ["obj"]],
  [{ a: { c: "x", b: 1 } }, ["obj"]],
  [{ a: { b: 1 } }, ["objArr", "mixed"]],
  [{ a: [] }, ["emptyArr"]],
  // null matches null, missing, and null elements, never an empty array
  [{ a: null }, ["nullA", "nullInArr", "empty", "gpus", "gpus2"]],
  [
    { a: { $ne: null } },
    Object.keys(DOCS).filter((k) => !["nullA", "nullInArr", "empty", "gpus", "gpus2"].includes(k)),
  ],
  [
    { "a.b": null },
    [
      "scalar5",
      "str5",
      "arr",
      "nested",
      "pair",
      "pairNested",
      "nullA",
      "nullInArr",
      "empty",
      "objArrMissing",
      "bools",
      "strs",
      "gpus",
      "gpus2",
      "idx",
      "mixed",
    ],
  ],
  [{ a: { $exists: false } }, ["empty", "gpus", "gpus2"]],
  [{ a: { $exists: true, $size: 0 } }, ["emptyArr"]],
  [{ "a.c": { $exists: true } }, ["obj", "objArr", "objArrMissing"]],
  // $ne / $nin on arrays: no element may equal
  [
    { a: { $ne: 1 }, "a.0": { $exists: true } },
    ["nested", "pairNested", "objArr", "objArrMissing", "bools", "strs", "idx"],
  ],
  [
    { a: { $nin: [1, 5, null] }, nodes: { $exists: false } },
    [
      "str5",
      "nested",
      "pairNested",
      "emptyArr",
      "obj",
      "objArr",
      "objArrMissing",
      "deep",
      "bools",
      "strs",
      "idx",
    ],
  ],
  // type bracketing: numbers never compare with strings
  [{ a: { $gt: 4 } }, ["scalar5", "arr", "idx"]],
  [{ a: { $gt: "4" } }, ["str5", "strs"]],
  [{ a: { $lt: "B" } }, ["str5", "mixed"]],
  [{ a: { $gte: "B", $lt: "a" } }, ["strs"]],
  [{ a: { $gt: false } }, ["bools"]],
  [{ a: { $gt: null } }, []],
  [{ a: { $gte: null } }, ["nullA", "nullInArr", "empty", "gpus", "gpus2"]],
  // $in with mixed types, null and arrays
  [{ a: { $in: ["5", 9] } }, ["str5", "arr"]],
  [{ a: { $in: [[5], "apple"] } }, ["nested", "strs"]],
  [{ a: { $in: [null] } }, ["nullA", "nullInArr", "empty", "gpus", "gpus2"]],
  [{ a: { $in: [] } }, []],
  // paths through arrays of objects, and array indexes
  [{ "a.b": 7 }, ["objArr"]],
  [{ "a.b.c": 8 }, ["deep"]],
  [{ "a.b": { $gt: 1 } }, ["objArr", "objArrMissing"]],
  [{ "a.1": 5 }, ["arr"]],
  [{ "a.0": 5 }, ["nested"]],
  [{ "a.0.1": 2 }, ["pairNested"]],
  [{ "a.1.b": 7 }, ["objArr"]],
  [{ "a.0": "key" }, []],
  [{ "a.1": { $gt: 5 } }, ["idx"]],
  // $elemMatch: one element satisfies everything; elements are taken as they are
  [{ a: { $elemMatch: { $gt: 1, $lt: 6 } } }, ["arr", "pair", "pairNested"]],
  [{ a: { $elemMatch: { $gt: 1, $lt: 3 } } }, ["pair"]],
  [{ a: { $gt: 1, $lt: 6 } }, ["arr", "pair", "pairNested", "scalar5"]],
  [{ a: { $gt: 6, $lt: 2 } }, ["arr"]],
  [{ a: { $elemMatch: { $gte: 5 } } }, ["arr", "idx"]],
  [{ a: { $elemMatch: { $size: 2 } } }, ["pairNested"]],
  [{ a: { $elemMatch: { b: 1 } } }, ["objArr", "mixed"]],
  [{ a: { $elemMatch: { b: { $gt: 1 }, c: "y" } } }, ["objArr"]],
  [{ "a.b": 7, "a.c": "x" }, []],
  [{ a: { $elemMatch: { b: 7, c: "x" } } }, []],
  [{ nodes: { $elemMatch: { gpus: { $elemMatch: { model: "H100", mem: { $gte: 80 } } } } } }, ["gpus"]],
  [{ "nodes.gpus": { $elemMatch: { model: "H100", mem: 40 } } }, ["gpus2"]],
  [{ "nodes.gpus.model": "H100", "nodes.gpus.mem": 40 }, ["gpus", "gpus2"]],
  [{ a: { $elemMatch: { c: { $exists: false } } } }, ["objArr", "objArrMissing", "mixed", "idx"]],
  // $all: equality with each, also on a scalar field; with $elemMatch
  [{ a: { $all: [1, 9] } }, ["arr"]],
  [{ a: { $all: [5] } }, ["scalar5", "arr"]],
  [{ a: { $all: [] } }, []],
  [{ a: { $all: [{ $elemMatch: { b: 7 } }, { $elemMatch: { b: 1 } }] } }, ["objArr"]],
  // $size, $type
  [{ a: { $size: 2 } }, ["pair", "pairNested", "nullInArr", "bools", "objArr", "objArrMissing", "idx"]],
  [
    { a: { $type: "array" } },
    [
      "arr",
      "nested",
      "pair",
      "pairNested",
      "nullInArr",
      "emptyArr",
      "objArr",
      "objArrMissing",
      "bools",
      "strs",
      "idx",
      "mixed",
    ],
  ],
  [{ a: { $type: "string" } }, ["str5", "strs", "mixed"]],
  [{ a: { $type: ["bool", "object"] } }, ["obj", "objArr", "objArrMissing", "deep", "bools", "idx", "mixed"]],
  [{ a: { $type: 10 } }, ["nullA", "nullInArr"]],
  [{ a: { $type: "int" } }, ["scalar5", "arr", "pair", "nullInArr", "idx", "mixed", "pairNested"]],
  [{ a: { $type: "date" } }, []],
  // $regex with options, on strings only, elements included
  [{ a: { $regex: "^b", $options: "i" } }, ["strs"]],
  [{ a: { $regex: "^line$", $options: "m" } }, ["strs"]],
  [{ a: { $regex: "^line$" } }, []],
  [{ a: { $regex: "5" } }, ["str5"]],
  // logical operators; $not matches missing fields; $nor
  [
    { a: { $not: { $gt: 4 } }, nodes: { $exists: false } },
    [
      "str5",
      "nested",
      "pair",
      "pairNested",
      "nullA",
      "nullInArr",
      "empty",
      "emptyArr",
      "obj",
      "objArr",
      "objArrMissing",
      "deep",
      "bools",
      "strs",
      "mixed",
    ],
  ],
  [{ $or: [{ a: 5 }, { "a.b": 7 }] }, ["scalar5", "arr", "objArr"]],
  [{ $and: [{ a: { $type: "array" } }, { a: 1 }] }, ["arr", "pair", "nullInArr", "mixed"]],
  [{ $nor: [{ a: { $exists: true } }, { nodes: { $exists: true } }] }, ["empty"]],
  [{ $comment: "ignored", "a.b": 1 }, ["obj", "objArr", "mixed"]],
];

const ALL_IDS = Object.keys(DOCS);

for (const backend of [...backends, ...indexedBackends]) {
  describe(`MongoDB hard cases on ${backend.name}`, () => {
    const db = useCollection(backend, "components", async (col) => {
      for (const [id, d] of Object.entries(DOCS)) await col.insert({ id, ...d });
    });

    test.each(CASES)("%j", async (filter, expected) => {
      for (const id of expected) expect(ALL_IDS).toContain(id);
      const ids = (await db.col.find(filter)).map((d) => d.id).sort();
      expect(ids).toEqual([...expected].sort());
      expect(await db.col.count(filter)).toBe(expected.length);
    });
  });
}
