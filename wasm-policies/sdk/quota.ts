/**
 * Finding the instance counts an action asks for, for the pre-check policies. Action payloads differ
 * (`scale` carries `instances_count`, a block spec `minInstances`/`maxInstances`, a vDAG controller
 * `replicas` or `config.replicas`), so objects are searched a few levels deep for these names.
 */
import * as JSON from "./json";

export const COUNT_FIELDS: StaticArray<string> = ["instances_count", "maxInstances", "minInstances", "replicas"];

/** Objects deeper than this are not searched (payloads nest their specs one or two levels). */
const MAX_SEARCH_DEPTH: i32 = 4;

export class CountField {
  constructor(
    /** The object holding the field, so a policy can rewrite it. */
    public owner: JSON.Value,
    public key: string,
    /** Dotted path from input_data, e.g. "config.replicas". */
    public path: string,
    public value: f64,
  ) {}
}

function search(v: JSON.Value, path: string, depth: i32, out: Array<CountField>): void {
  if (depth > MAX_SEARCH_DEPTH) return;
  if (v.isArray) {
    for (let i = 0; i < v.length; i++) search(v.at(i), path + "." + i.toString(), depth + 1, out);
    return;
  }
  if (!v.isObject) return;
  for (let i = 0; i < v.length; i++) {
    const key = v.keyAt(i);
    const child = v.valueAt(i);
    const where = path.length > 0 ? path + "." + key : key;
    if (child.isNumber && COUNT_FIELDS.includes(key)) out.push(new CountField(v, key, where, child.asNumber()));
    else search(child, where, depth + 1, out);
  }
}

/** Every instance count in `input`, in document order. */
export function findInstanceCounts(input: JSON.Value): Array<CountField> {
  const out = new Array<CountField>();
  search(input, "", 0, out);
  return out;
}
