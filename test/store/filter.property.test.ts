/**
 * MongoDB semantics, checked by generation: random documents and random filters, the SQL result
 * compared with mingo's (an in-memory MongoDB query engine) on every backend. Where mingo itself
 * departs from MongoDB (null through dotted paths, `$gte: null`, arrays nested in arrays, `$type` on
 * array elements), the generators stay away and the hand-written cases in filter.cases.test.ts pin
 * MongoDB's behaviour instead.
 */
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { Query } from "mingo";
import { backends, indexedBackends, useCollection } from "../support/stores.ts";

const KEYS = ["a", "b", "c"];
const scalar = fc.oneof(
  fc.integer({ min: -3, max: 3 }),
  fc.constantFrom(0.5, -1.5, 2.25),
  fc.constantFrom("x", "y", "ab", "Ba", ""),
  fc.boolean(),
  fc.constant(null),
);
// Arrays hold scalars or flat objects, never arrays, and are never empty: mingo's traversal departs
// from MongoDB's where a dotted path crosses two arrays, an array nested in an array, or an empty one.
const flatObject = fc.dictionary(fc.constantFrom(...KEYS), scalar, { maxKeys: 3, noNullPrototype: true });
const array = fc.array(fc.oneof(scalar, flatObject), { minLength: 1, maxLength: 3 });
const { value } = fc.letrec<{ value: unknown; object: Record<string, unknown> }>((tie) => ({
  value: fc.oneof({ depthSize: "small", withCrossShrink: true }, scalar, array, tie("object")),
  object: fc.dictionary(fc.constantFrom(...KEYS), tie("value"), { maxKeys: 3, noNullPrototype: true }),
}));
const doc = fc.dictionary(fc.constantFrom(...KEYS), value, { maxKeys: 3, noNullPrototype: true });
const docs = fc.array(doc, { minLength: 20, maxLength: 60 });

const path = fc.oneof(
  fc.constantFrom(...KEYS),
  fc.constantFrom("a.b", "b.a", "a.c", "c.b", "a.b.c", "b.c.a"),
  fc.constantFrom("a.0", "b.1", "a.0.b", "c.b.0", "a.1.0"),
);
const nonNullScalar = scalar.filter((v) => v !== null);

/**
 * A field condition. Dotted paths compare only with non-null scalars: mingo departs from MongoDB for
 * null and for arrays reached through an empty array (it sees `[]` where MongoDB sees no value).
 */
const fieldCondition = (p: string): fc.Arbitrary<unknown> => {
  const dotted = p.includes(".");
  const v = dotted ? nonNullScalar : value;
  const sv = dotted ? nonNullScalar : scalar;
  const ops: fc.Arbitrary<unknown>[] = [
    v,
    v.map((x) => ({ $eq: x })),
    v.map((x) => ({ $ne: x })),
    fc.tuple(fc.constantFrom("$gt", "$lt", "$gte", "$lte"), nonNullScalar).map(([op, x]) => ({ [op]: x })),
    fc.array(sv, { maxLength: 3 }).map((xs) => ({ $in: xs })),
    fc.array(sv, { maxLength: 3 }).map((xs) => ({ $nin: xs })),
    // mingo's $type never looks into arrays (MongoDB's does): only "array" is compared here, and
    // like $size and $exists only on top-level fields (mingo's traversal of a dotted path through an
    // array builds arrays that are not in the document).
    ...(dotted
      ? []
      : [
          fc.constant({ $type: "array" }),
          fc.integer({ min: 0, max: 3 }).map((n) => ({ $size: n })),
          fc.boolean().map((x) => ({ $exists: x })),
        ]),
    // $all is left to the hand cases: mingo refuses it on a non-array field, MongoDB treats it as equality.
    fc
      .tuple(fc.constantFrom("^a", "b$", "A", "^$", "x|y"), fc.constantFrom("", "i"))
      .map(([re, o]) => (o ? { $regex: re, $options: o } : { $regex: re })),
    fc.tuple(fc.constantFrom("$gt", "$lt", "$eq"), nonNullScalar).map(([op, x]) => ({ $not: { [op]: x } })),
    // $elemMatch only on top-level fields: mingo hands it the array its traversal builds on a dotted
    // path through arrays, where MongoDB looks at the arrays actually stored there.
    ...(dotted
      ? []
      : [
          fc
            .tuple(
              fc.constantFrom("$gt", "$lte"),
              fc.integer({ min: -3, max: 3 }),
              fc.constantFrom("$lt", "$gte"),
              fc.integer({ min: -3, max: 3 }),
            )
            .map(([o1, x1, o2, x2]) => ({ $elemMatch: { [o1]: x1, [o2]: x2 } })),
          fc.tuple(fc.constantFrom(...KEYS), nonNullScalar).map(([k, x]) => ({ $elemMatch: { [k]: x } })),
          fc
            .tuple(fc.constantFrom(...KEYS), fc.integer({ min: -3, max: 3 }), fc.constantFrom(...KEYS))
            .map(([k, x, k2]) => ({ $elemMatch: { [k]: { $gte: x }, [k2]: { $lte: 3 } } })),
        ]),
  ];
  return fc.oneof(...ops);
};

const leaf = path.chain((p) => fieldCondition(p).map((c) => ({ [p]: c })));
const { filter } = fc.letrec<{ filter: Record<string, unknown> }>((tie) => ({
  filter: fc.oneof(
    { depthSize: "small", withCrossShrink: true },
    leaf,
    leaf,
    fc.tuple(leaf, leaf).map(([x, y]) => ({ ...x, ...y })),
    fc.array(tie("filter"), { minLength: 1, maxLength: 3 }).map((fs) => ({ $and: fs })),
    fc.array(tie("filter"), { minLength: 1, maxLength: 3 }).map((fs) => ({ $or: fs })),
    fc.array(tie("filter"), { minLength: 1, maxLength: 2 }).map((fs) => ({ $nor: fs })),
  ),
}));

/** mingo lets a document-form $elemMatch match a scalar element; MongoDB needs a document. */
const docFormElemMatch = (f: unknown): boolean => /"\$elemMatch":\{"[a-z]/.test(JSON.stringify(f));
const hasScalarInArray = (v: unknown): boolean =>
  Array.isArray(v)
    ? v.some((x) => x === null || typeof x !== "object" || hasScalarInArray(x))
    : typeof v === "object" && v !== null && Object.values(v).some(hasScalarInArray);

const RUNS = Number(process.env.PROPERTY_RUNS ?? 1500);

for (const backend of [...backends, ...indexedBackends]) {
  describe(`filter semantics match mingo on ${backend.name}`, () => {
    const db = useCollection(backend, "blocks");

    test(`${RUNS} random filters over random documents`, async () => {
      let cases = 0;
      await fc.assert(
        fc.asyncProperty(docs, fc.array(filter, { minLength: 10, maxLength: 10 }), async (ds, filters) => {
          await db.col.clear();
          const stored = ds.map((d, i) => ({ ...d, id: `d${i}` }));
          for (const d of stored) await db.col.insert(d);
          for (const f of filters) {
            const comparable = docFormElemMatch(f) ? stored.filter((d) => !hasScalarInArray(d)) : stored;
            const expected = comparable
              .filter((d) => new Query(f).test(d))
              .map((d) => d.id)
              .sort();
            const ids = new Set(comparable.map((d) => d.id));
            const actual = (await db.col.find(f))
              .map((d) => d.id)
              .filter((id) => ids.has(id))
              .sort();
            if (JSON.stringify(actual) !== JSON.stringify(expected)) {
              const differing = stored.filter((d) => expected.includes(d.id) !== actual.includes(d.id));
              throw new Error(
                `filter ${JSON.stringify(f)}\nexpected ${expected}\nactual   ${actual}\ndiffering docs ${JSON.stringify(differing)}`,
              );
            }
            cases++;
          }
        }),
        { numRuns: Math.ceil(RUNS / 10) },
      );
      expect(cases).toBeGreaterThanOrEqual(RUNS);
    }, 300_000);
  });
}
