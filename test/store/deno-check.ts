// Run by filter.compile.test.ts under Deno: the pure translation imports nothing but itself.
import { QueryError } from "../../src/store/mongo/errors.ts";
import { compileFilter, render } from "../../src/store/mongo/filter.ts";
import { SqlParams } from "../../src/store/mongo/sql.ts";

const filter = {
  "gpus.count": { $gte: 4 },
  tags: { $in: ["gpu", "edge"] },
  nodes: { $elemMatch: { "gpus.modelName": "H100" } },
  $or: [{ "clusterMetadata.vendor": "dma" }, { reputation: { $gt: 90 } }],
};
const p = new SqlParams();
const text = render(compileFilter(filter), "doc", p);
let error = "";
try {
  compileFilter({ a: { $nope: 1 } });
} catch (e) {
  if (e instanceof QueryError) error = e.code;
}
console.log(JSON.stringify({ filter, text, params: p.values, error }));
