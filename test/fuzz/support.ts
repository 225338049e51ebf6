/**
 * What the fuzz suites (test/fuzz/*.fuzz.test.ts) share: the seed and run counts, generators of
 * malformed input (random JSON, mutations of real samples, deep nesting, huge and odd strings, bytes that
 * are not UTF-8, SQL-looking keys and values, garbage query parameters and path segments), the check
 * every HTTP answer must pass (below 500, a 4xx carries the error contract), and the tally printed at
 * the end of each suite ("entry point | runs | 2xx | 4xx ...").
 *
 *   FUZZ_SEED=<int>        the seed (default below); every suite prints it, so a failure reproduces
 *   FUZZ_RUNS=<int>        runs of each headline entry point (default 1000); the others scale with it
 *   FUZZ_ROUTE_RUNS=<int>  runs of each route in http.fuzz.test.ts's table (default 150, also scaled)
 *   FUZZ_DATABASE_URL=1    the suites' store on DATABASE_URL's PostgreSQL instead of PGlite
 */
import fc from "fast-check";

export const DEFAULT_SEED = 0x5eed_a105;
export const FUZZ_SEED = process.env.FUZZ_SEED ? Number.parseInt(process.env.FUZZ_SEED, 10) : DEFAULT_SEED;
const RUNS_OVERRIDE = process.env.FUZZ_RUNS ? Number.parseInt(process.env.FUZZ_RUNS, 10) : undefined;

/** Runs for an entry point whose default is `n` (out of 1000 for a headline entry point). */
export const runs = (n: number): number =>
  RUNS_OVERRIDE === undefined ? n : Math.max(1, Math.round((n * RUNS_OVERRIDE) / 1000));

/** fast-check parameters: the seed, the runs, and no shrinking past a few seconds. */
export const params = (numRuns: number, salt = 0): fc.Parameters<unknown> => ({
  seed: (FUZZ_SEED + salt) | 0,
  numRuns,
  endOnFailure: false,
  interruptAfterTimeLimit: undefined,
  markInterruptAsFailure: false,
});

/** A different seed for each entry point (from its name), the same on every run. */
export const saltOf = (name: string): number => {
  let h = 0;
  for (const ch of name) h = (Math.imul(h, 31) + ch.charCodeAt(0)) | 0;
  return h;
};

/** Runs an async property with the suite's seed; `name` also salts the seed. */
export const fuzz = async <T>(
  name: string,
  arb: fc.Arbitrary<T>,
  check: (value: T) => Promise<void>,
  numRuns: number,
): Promise<void> => {
  await fc.assert(fc.asyncProperty(arb, check), params(numRuns, saltOf(name)) as fc.Parameters<[T]>);
};

export const syncFuzz = <T>(
  name: string,
  arb: fc.Arbitrary<T>,
  check: (value: T) => void,
  numRuns: number,
) => {
  fc.assert(fc.property(arb, check), params(numRuns, saltOf(name)) as fc.Parameters<[T]>);
};

// ---------------------------------------------------------------------------------------------------
// The tally
// ---------------------------------------------------------------------------------------------------

export type Outcome = "2xx" | "3xx" | "4xx" | "ok" | "refused";

interface Row {
  suite: string;
  entry: string;
  runs: number;
  counts: Record<string, number>;
  ms: number;
}

const rows = new Map<string, Row>();

/** Counts one input at `entry` with its outcome: an HTTP status, or a protocol-level "ok"/"refused". */
export const tally = (suite: string, entry: string, outcome: number | string, ms = 0): void => {
  const key = `${suite}\u0000${entry}`;
  let row = rows.get(key);
  if (!row) {
    row = { suite, entry, runs: 0, counts: {}, ms: 0 };
    rows.set(key, row);
  }
  const bucket =
    typeof outcome === "number"
      ? outcome >= 400
        ? String(outcome)
        : `${Math.floor(outcome / 100)}xx`
      : outcome;
  row.runs += 1;
  row.ms += ms;
  row.counts[bucket] = (row.counts[bucket] ?? 0) + 1;
};

/**
 * 2xx: an HTTP success or a protocol-level "ok"; 4xx: an HTTP 4xx, "refused", or a protocol-level refusal
 * named by its code ("grpc InvalidArgument"); other: 3xx and anything marked "(known)".
 */
const classify = (bucket: string): "2xx" | "4xx" | "other" => {
  if (bucket === "2xx" || bucket === "ok") return "2xx";
  if (/^4\d\d$/.test(bucket) || bucket === "refused" || bucket.startsWith("grpc ")) return "4xx";
  return "other";
};

/** The table of one suite's entry points (all suites when `suite` is undefined). */
export const summary = (suite?: string): string => {
  const selected = [...rows.values()].filter((r) => suite === undefined || r.suite === suite);
  const header = ["suite", "entry point", "runs", "2xx/ok", "4xx/refused", "other", "ms/run", "top refusals"];
  const lines = selected.map((r) => {
    let ok = 0;
    let refused = 0;
    let other = 0;
    for (const [bucket, n] of Object.entries(r.counts)) {
      const c = classify(bucket);
      if (c === "2xx") ok += n;
      else if (c === "4xx") refused += n;
      else other += n;
    }
    const top = Object.entries(r.counts)
      .filter(([b]) => b !== "refused" && b !== "ok" && !/^\dxx$/.test(b))
      .sort((a, b) => b[1] - a[1])
      .slice(0, 4)
      .map(([b, n]) => `${b}:${n}`)
      .join(" ");
    const msPerRun = r.runs > 0 && r.ms > 0 ? (r.ms / r.runs).toFixed(2) : "";
    return [r.suite, r.entry, String(r.runs), String(ok), String(refused), String(other), msPerRun, top];
  });
  const total = selected.reduce((n, r) => n + r.runs, 0);
  lines.push(["", "TOTAL", String(total), "", "", "", "", ""]);
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)));
  const fmt = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(" | ")} |`;
  return [fmt(header), `|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`, ...lines.map(fmt)].join("\n");
};

const processStart = performance.now();

/**
 * Prints one suite's table, with the seed; when suites before it ran in this process (bun test runs the
 * files one after another in one process), also the table of all of them so far, so the last suite of
 * a run prints the whole run's counts.
 */
export const printSummary = (suite: string, startedAt: number): void => {
  const seconds = ((performance.now() - startedAt) / 1000).toFixed(1);
  console.log(
    `\n[fuzz] ${suite}: seed ${FUZZ_SEED} (FUZZ_SEED to change), ${seconds} s\n${summary(suite)}\n`,
  );
  const suites = new Set([...rows.values()].map((r) => r.suite));
  if (suites.size > 1) {
    const total = ((performance.now() - processStart) / 1000).toFixed(1);
    console.log(`[fuzz] all suites so far (${suites.size}), ${total} s since the first\n${summary()}\n`);
  }
};

// ---------------------------------------------------------------------------------------------------
// Checks
// ---------------------------------------------------------------------------------------------------

/** Rejects when `p` takes longer than `ms`: a hang is a failure, not a slow test. */
export const within = async <T>(p: Promise<T>, ms: number, what: string): Promise<T> => {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`hang: ${what} gave no answer within ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
};

export const HANG_MS = 15_000;

export interface HttpCase {
  method: string;
  path: string;
  headers?: Record<string, string>;
  body?: string | Uint8Array;
}

const describeCase = (c: HttpCase): string => {
  const body =
    c.body === undefined
      ? ""
      : typeof c.body === "string"
        ? ` body ${JSON.stringify(c.body.length > 600 ? `${c.body.slice(0, 600)}...(${c.body.length})` : c.body)}`
        : ` body <${c.body.byteLength} bytes: ${Buffer.from(c.body.subarray(0, 64)).toString("hex")}>`;
  return `${c.method} ${c.path.length > 300 ? `${c.path.slice(0, 300)}...` : c.path} ${JSON.stringify(c.headers ?? {})}${body}`;
};

/**
 * Whether a body is the error contract (`{"error": {"code", "message", ...}}`) or, under the global
 * metrics API, its envelope (`{"success": false, "error": "<message>", "code"}`).
 */
export const isErrorBody = (body: unknown): boolean => {
  if (body === null || typeof body !== "object") return false;
  const b = body as { error?: unknown; success?: unknown; code?: unknown };
  if (b.success === false) return typeof b.error === "string" && typeof b.code === "string";
  const e = b.error as { code?: unknown; message?: unknown } | undefined;
  return typeof e === "object" && e !== null && typeof e.code === "string" && typeof e.message === "string";
};

/**
 * Sends one request to an app (`app.request`-like) and checks the answer: not 5xx, not thrown, within
 * the hang limit, and a 4xx carries the error contract. Counts it. Returns the status.
 */
export const sendAndCheck = async (
  fetcher: (path: string, init: RequestInit) => Response | Promise<Response>,
  suite: string,
  entry: string,
  c: HttpCase,
): Promise<number> => {
  const init: RequestInit = { method: c.method, headers: c.headers ?? {} };
  if (c.body !== undefined) init.body = c.body as BodyInit;
  const began = performance.now();
  let res: Response;
  try {
    res = await within(Promise.resolve(fetcher(c.path, init)), HANG_MS, describeCase(c));
  } catch (err) {
    throw new Error(`${entry}: ${describeCase(c)} threw ${err instanceof Error ? err.stack : String(err)}`);
  }
  const text = await within(res.text(), HANG_MS, `${describeCase(c)} (reading the answer)`);
  const ms = performance.now() - began;
  tally(suite, entry, res.status, ms);
  if (process.env.FUZZ_VERBOSE && ms > 1000)
    console.log(`[fuzz] slow (${ms.toFixed(0)} ms): ${describeCase(c)}`);
  if (res.status >= 500) {
    throw new Error(`${entry}: ${describeCase(c)} answered ${res.status}: ${text.slice(0, 1000)}`);
  }
  if (res.status >= 400 && c.method !== "HEAD") {
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      throw new Error(
        `${entry}: ${describeCase(c)} answered ${res.status} without JSON: ${text.slice(0, 300)}`,
      );
    }
    if (!isErrorBody(body)) {
      throw new Error(`${entry}: ${describeCase(c)} answered ${res.status} with ${text.slice(0, 300)}`);
    }
  }
  return res.status;
};

// ---------------------------------------------------------------------------------------------------
// Generators
// ---------------------------------------------------------------------------------------------------

/** Strings an SQL translation must treat as data. */
export const SQL_INJECTION = [
  "'; DROP TABLE clusters; --",
  "x'); DROP TABLE clusters; --",
  '" OR 1=1 --',
  "' OR '1'='1",
  "1; SELECT pg_sleep(30); --",
  "$1",
  "$$; DROP TABLE clusters; $$",
  "doc->>'id'",
  "doc #> '{a}'",
  "') OR ('1'='1",
  "\\'",
  "%' OR id LIKE '%",
  "*/ DROP TABLE clusters /*",
  "E'\\x27'",
  "clusters; TRUNCATE clusters",
  "$.** ? (@ == 1)",
  '" || true || "',
  '@ like_regex ".*"',
  "exists($.a)",
  "lax $.a",
];

/** Keys that mean something to an engine, a prototype, or a path syntax. */
export const NASTY_KEYS = [
  "__proto__",
  "constructor",
  "prototype",
  "toString",
  "hasOwnProperty",
  "$where",
  "$function",
  "$expr",
  "$accumulator",
  "$jsonSchema",
  "$regex",
  "$options",
  "$",
  "$$",
  "",
  ".",
  "..",
  "a..b",
  "a.",
  ".a",
  "a.$",
  "a.$[]",
  "0",
  "-1",
  "a.0.b",
  "\u0000",
  "a\u0000b",
  "id",
  "💥",
  "a'b",
  'a"b',
  "a\\b",
  "{a}",
  "a[0]",
  ...SQL_INJECTION,
];

const loneSurrogate = fc.integer({ min: 0xd800, max: 0xdfff }).map((c) => String.fromCharCode(c));

const HUGE = {
  k10: "x".repeat(10_000),
  k100: "é".repeat(100_000),
  m2: "y".repeat(2 * 1024 * 1024),
};

/** Strings that break naive code: SQL, unicode of every kind, NUL, lone surrogates, huge ones. */
export const nastyString: fc.Arbitrary<string> = fc.oneof(
  { weight: 3, arbitrary: fc.string() },
  { weight: 2, arbitrary: fc.string({ unit: "binary", maxLength: 40 }) },
  { weight: 2, arbitrary: fc.constantFrom(...SQL_INJECTION) },
  { weight: 1, arbitrary: fc.constantFrom(...NASTY_KEYS) },
  { weight: 1, arbitrary: fc.tuple(fc.string(), loneSurrogate, fc.string()).map((p) => p.join("")) },
  {
    weight: 1,
    arbitrary: fc.constantFrom(
      "\u0000",
      "a\u0000",
      "\u2028\u2029",
      "\ufeff",
      "\uffff",
      "\r\n",
      "𝕏".repeat(50),
    ),
  },
  { weight: 1, arbitrary: fc.constantFrom(HUGE.k10, HUGE.k100) },
);

/** Values of the wrong type for about any field. */
export const wrongValue: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 4, arbitrary: fc.jsonValue({ maxDepth: 3 }) },
  { weight: 3, arbitrary: nastyString },
  {
    weight: 3,
    arbitrary: fc.constantFrom<unknown>(
      null,
      true,
      false,
      0,
      -0,
      -1,
      0.5,
      1e308,
      -1e308,
      2 ** 53 + 2,
      Number.MAX_SAFE_INTEGER,
      "",
      "1",
      "true",
      "null",
      [],
      {},
      [null],
      [[]],
      { "": null },
      { $gt: 1 },
      { $where: "sleep(1000)" },
      JSON.parse('{"__proto__": {"polluted": true}}'),
    ),
  },
  { weight: 1, arbitrary: fc.integer({ min: 1, max: 200 }).map((n) => nest(n)) },
);

/** `n` levels of nesting, alternating arrays and objects. */
export const nest = (n: number, leaf: unknown = 1): unknown => {
  let v = leaf;
  for (let i = 0; i < n; i++) v = i % 2 === 0 ? [v] : { a: v };
  return v;
};

type Path = (string | number)[];

const pathsOf = (value: unknown, at: Path = [], out: Path[] = []): Path[] => {
  out.push(at);
  if (Array.isArray(value)) {
    for (const [i, v] of value.entries()) pathsOf(v, [...at, i], out);
  } else if (value !== null && typeof value === "object")
    for (const [k, v] of Object.entries(value)) pathsOf(v, [...at, k], out);
  return out;
};

interface Mutation {
  pick: number;
  op: "replace" | "delete" | "addKey" | "wrapArray" | "stringify";
  value: unknown;
  key: string;
}

const mutation: fc.Arbitrary<Mutation> = fc.record({
  pick: fc.nat(),
  op: fc.constantFrom("replace", "replace", "replace", "delete", "addKey", "wrapArray", "stringify"),
  value: wrongValue,
  key: fc.oneof(fc.constantFrom(...NASTY_KEYS), fc.string({ maxLength: 8 })),
});

const setAt = (root: unknown, path: Path, value: unknown, del = false): unknown => {
  if (path.length === 0) return del ? undefined : value;
  let parent = root as Record<string | number, unknown>;
  for (const step of path.slice(0, -1)) parent = parent[step] as Record<string | number, unknown>;
  const last = path[path.length - 1]!;
  if (del) {
    if (Array.isArray(parent)) parent.splice(last as number, 1);
    else delete parent[last];
  } else if (last === "__proto__") {
    Object.defineProperty(parent, last, { value, enumerable: true, writable: true, configurable: true });
  } else parent[last] = value;
  return root;
};

const getAt = (root: unknown, path: Path): unknown =>
  path.reduce<unknown>((v, k) => (v as Record<string | number, unknown>)[k], root);

/**
 * A deep copy through JSON: generated constants are shared between runs and must not be changed in
 * place, and an own `__proto__` key stays a key (structuredClone would set the prototype).
 */
const copy = (v: unknown): unknown => (v === undefined ? undefined : JSON.parse(JSON.stringify(v)));

/** Applies mutations to a deep copy of `sample`: a structurally valid, wrongly typed variation. */
export const applyMutations = (sample: unknown, ms: readonly Mutation[]): unknown => {
  let doc: unknown = copy(sample);
  for (const raw of ms) {
    if (doc === undefined) break;
    const m = { ...raw, value: copy(raw.value) };
    const paths = pathsOf(doc);
    const path = paths[m.pick % paths.length]!;
    const current = getAt(doc, path);
    switch (m.op) {
      case "replace":
        doc = setAt(doc, path, m.value);
        break;
      case "delete":
        doc = setAt(doc, path, undefined, true);
        break;
      case "addKey":
        if (current !== null && typeof current === "object" && !Array.isArray(current)) {
          const v = current as Record<string, unknown>;
          if (m.key === "__proto__")
            Object.defineProperty(v, m.key, {
              value: m.value,
              enumerable: true,
              writable: true,
              configurable: true,
            });
          else v[m.key] = m.value;
        } else doc = setAt(doc, path, { [m.key]: m.value });
        break;
      case "wrapArray":
        doc = setAt(doc, path, [current]);
        break;
      case "stringify":
        doc = setAt(doc, path, JSON.stringify(current) ?? "undefined");
        break;
    }
  }
  return doc;
};

/** Variations of one of `samples`: 1 to 3 mutations each (and now and then the sample as it is). */
export const mutated = (samples: readonly unknown[]): fc.Arbitrary<unknown> =>
  fc.oneof(
    { weight: 1, arbitrary: fc.constantFrom(...samples) },
    {
      weight: 9,
      arbitrary: fc
        .tuple(fc.constantFrom(...samples), fc.array(mutation, { minLength: 1, maxLength: 3 }))
        .map(([s, ms]) => applyMutations(s, ms)),
    },
  );

/** JSON text that nests `n` levels (arrays or objects), beyond any depth limit. */
const deepText = fc
  .tuple(fc.integer({ min: 60, max: 20_000 }), fc.boolean())
  .map(([n, arrays]) =>
    arrays ? `${"[".repeat(n)}1${"]".repeat(n)}` : `${'{"a":'.repeat(n)}1${"}".repeat(n)}`,
  );

/** Bytes that are not UTF-8 (or are, by chance), and UTF-8 with an invalid sequence spliced in. */
const badBytes = fc.oneof(
  fc.uint8Array({ minLength: 1, maxLength: 200 }),
  fc
    .tuple(
      fc.jsonValue({ maxDepth: 2 }),
      fc.constantFrom([0xff], [0xc0, 0xaf], [0xed, 0xa0, 0x80], [0xe0, 0x80], [0xf8]),
    )
    .map(([v, bad]) => {
      const text = new TextEncoder().encode(JSON.stringify({ v }));
      const out = new Uint8Array(text.length + bad.length);
      out.set(text.subarray(0, 5));
      out.set(bad, 5);
      out.set(text.subarray(5), 5 + bad.length);
      return out;
    }),
);

/** Text that is not JSON, or almost. */
const notJson = fc.oneof(
  fc.string(),
  fc.constantFrom(
    "",
    " ",
    "{",
    "}",
    "[",
    '{"a":}',
    "{'a': 1}",
    "NaN",
    "Infinity",
    "undefined",
    '{"a":1,}',
    "[1,]",
    '{"a":1}{"b":2}',
    "\ufeff{}",
    "/* */ {}",
    '{"a":1e999999}',
    '"\\ud800"',
    '{"\\u0000":"\\u0000"}',
    "nul",
    "0x10",
    "--1",
  ),
);

export interface RawBody {
  body: string | Uint8Array | undefined;
  contentType: string | undefined;
}

const CONTENT_TYPES = [
  "application/json",
  "application/json",
  "application/json",
  "application/json; charset=utf-8",
  "application/json; charset=latin1",
  "text/plain",
  "application/x-www-form-urlencoded",
  "multipart/form-data; boundary=xyz",
  "multipart/form-data",
  "application/wasm",
  "application/octet-stream",
  "application/grpc",
  "*/*",
  "garbage/;;;",
];

const contentType = fc.option(fc.constantFrom(...CONTENT_TYPES), { freq: 8, nil: undefined });

/**
 * Request bodies for a JSON endpoint whose valid bodies look like `samples`: mostly mutated samples
 * (valid structure, wrong values), then random JSON, deep nesting, huge bodies, non-JSON text, bytes
 * that are not UTF-8, no body at all; with a content type that is usually, not always, JSON.
 */
export const rawBody = (samples: readonly unknown[]): fc.Arbitrary<RawBody> =>
  fc
    .tuple(
      fc.oneof(
        { weight: 10, arbitrary: mutated(samples).map((v) => JSON.stringify(v) as string | undefined) },
        { weight: 4, arbitrary: fc.jsonValue().map((v) => JSON.stringify(v)) },
        { weight: 1, arbitrary: deepText },
        { weight: 2, arbitrary: notJson },
        { weight: 1, arbitrary: badBytes },
        {
          weight: 1,
          arbitrary: fc.constantFrom(JSON.stringify({ a: HUGE.m2 }), JSON.stringify([HUGE.k100])),
        },
        { weight: 1, arbitrary: fc.constant(undefined) },
      ),
      contentType,
    )
    .map(([body, type]) => ({ body: body as string | Uint8Array | undefined, contentType: type }));

/** A path segment: an id that might exist, garbage, SQL, unicode, percent-encoding that decodes to junk. */
export const pathSegment = (known: readonly string[] = []): fc.Arbitrary<string> =>
  fc.oneof(
    { weight: known.length > 0 ? 3 : 0, arbitrary: fc.constantFrom(...(known.length > 0 ? known : ["x"])) },
    { weight: 3, arbitrary: fc.stringMatching(/^[a-zA-Z0-9._:-]{1,20}$/) },
    {
      weight: 3,
      arbitrary: nastyString.filter((s) => s.length < 5000).map((s) => encodeURIComponent(toWellFormed(s))),
    },
    {
      weight: 2,
      arbitrary: fc.constantFrom(
        "%",
        "%zz",
        "%00",
        "%C0%AF",
        "%ED%A0%80",
        "%FF",
        "..",
        ".",
        "%2e%2e",
        "a%2Fb",
        "%2F",
        "%3A",
        "query",
        "a:1",
        "model.x:1.0.0",
        "~",
        "%20",
        "+",
        encodeURIComponent("model.fuzz:1.0.0"),
        "x".repeat(5000),
      ),
    },
  );

/** A string with every lone surrogate replaced, so it can go into a URL. */
export const toWellFormed = (s: string): string => s.replace(/[\ud800-\udfff]/gu, "\ufffd");

const QUERY_NAMES = [
  "limit",
  "skip",
  "sort",
  "projection",
  "query",
  "kind",
  "status",
  "form",
  "tail",
  "instance",
  "format",
  "uri",
  "description",
  "fuel",
  "memory_bytes",
  "output_bytes",
  "id",
  "__proto__",
  "$where",
];

const queryValue = fc.oneof(
  fc.constantFrom(
    "",
    "0",
    "1",
    "-1",
    "1.5",
    "1e3",
    "0x10",
    " 1",
    "1 ",
    "999999999999999999999",
    "NaN",
    "Infinity",
    "null",
    "true",
    "[]",
    "{}",
    '{"id":1}',
    '{"$where":"1"}',
    '{"id":{"$regex":"("}}',
    "{",
    "original",
    "instrumented",
    "prometheus",
    "json",
    "allocatorServer",
  ),
  fc.jsonValue({ maxDepth: 2 }).map((v) => JSON.stringify(v)),
  nastyString.filter((s) => s.length < 2000).map(toWellFormed),
);

/** A query string of garbage parameters (`?limit=-1&sort={&...`), sometimes repeated, sometimes none. */
export const queryString: fc.Arbitrary<string> = fc
  .array(fc.tuple(fc.oneof(fc.constantFrom(...QUERY_NAMES), fc.string({ maxLength: 6 })), queryValue), {
    maxLength: 4,
  })
  .map((pairs) => {
    if (pairs.length === 0) return "";
    const q = new URLSearchParams();
    for (const [k, v] of pairs) q.append(toWellFormed(k), v);
    return `?${q}`;
  });

// ---------------------------------------------------------------------------------------------------
// Route tables
// ---------------------------------------------------------------------------------------------------

export interface Route {
  method: string;
  path: string;
}

/** The (method, path) pairs an app serves, from `app.routes`, without its global middleware. */
export const routesOf = (app: { routes: { method: string; path: string }[] }): Route[] => {
  const seen = new Set<string>();
  const out: Route[] = [];
  for (const r of app.routes) {
    if (r.method === "ALL" && (r.path === "*" || r.path === "/*")) continue;
    const key = `${r.method} ${r.path}`;
    if (seen.has(key)) continue;
    seen.add(key);
    out.push({ method: r.method, path: r.path });
  }
  return out;
};

const METHODS_WITH_BODY = new Set(["POST", "PUT", "PATCH", "DELETE"]);

/** A request to `route` with its path parameters and wildcard filled by `segment`. */
export const requestFor = (
  route: Route,
  segment: fc.Arbitrary<string>,
  bodies: fc.Arbitrary<RawBody>,
): fc.Arbitrary<HttpCase> =>
  fc
    .record({
      segs: fc.array(segment, { minLength: 4, maxLength: 4 }),
      tail: fc.array(
        fc.oneof(
          segment,
          fc.constantFrom("rpc", "metrics", "executor", "autoscaler", "health-checker", "mgmt"),
        ),
        {
          maxLength: 3,
        },
      ),
      query: queryString,
      body: bodies,
      anyMethod: fc.constantFrom("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"),
      trailingSlash: fc.boolean(),
    })
    .map(({ segs, tail, query, body, anyMethod, trailingSlash }) => {
      let i = 0;
      let path = route.path.replace(/:([A-Za-z0-9_]+)(\{[^}]*\})?/g, () => segs[i++ % segs.length]!);
      if (path.endsWith("/*")) path = `${path.slice(0, -2)}/${tail.join("/")}`;
      if (trailingSlash && !path.endsWith("/")) path += "/";
      const method = route.method === "ALL" ? anyMethod : route.method;
      const headers: Record<string, string> = {};
      if (body.contentType !== undefined) headers["content-type"] = body.contentType;
      const withBody = METHODS_WITH_BODY.has(method) && body.body !== undefined;
      return { method, path: `${path}${query}`, headers, ...(withBody ? { body: body.body } : {}) };
    });
