/**
 * The dashboard's static files (src/gateway/ui.ts) on a bare Hono app: the page, its modules and styles
 * with their content types, uPlot from node_modules, 404s, and paths that try to leave src/ui/.
 */
import { describe, expect, test } from "bun:test";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Hono } from "hono";
import { contentTypeOf, mountUi, resolveInside, UI_DIR } from "../../src/gateway/ui.ts";

const app = mountUi(new Hono());
const get = (path: string) => app.request(`http://aios.test${path}`);

describe("dashboard static files", () => {
  test("GET / is the page, as HTML, not cached without a check", async () => {
    const res = await get("/");
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("text/html; charset=utf-8");
    expect(res.headers.get("cache-control")).toBe("no-cache");
    const html = await res.text();
    expect(html).toContain('<script type="module" src="/ui/app.js"></script>');
    expect(html).toContain("/ui/vendor/uPlot.iife.min.js");
  });

  test("modules, styles and the icon under /ui/ with their content types", async () => {
    const cases: [string, string][] = [
      ["/ui/app.js", "text/javascript; charset=utf-8"],
      ["/ui/views/overview.js", "text/javascript; charset=utf-8"],
      ["/ui/style.css", "text/css; charset=utf-8"],
      ["/ui/favicon.svg", "image/svg+xml"],
      ["/ui/index.html", "text/html; charset=utf-8"],
    ];
    for (const [path, type] of cases) {
      const res = await get(path);
      expect(res.status, path).toBe(200);
      expect(res.headers.get("content-type"), path).toBe(type);
      expect((await res.arrayBuffer()).byteLength, path).toBeGreaterThan(0);
    }
  });

  test("every module the page imports is served", async () => {
    // Follows the static imports from app.js, so a renamed file cannot leave the page broken.
    const seen = new Set<string>();
    const queue = ["/ui/app.js"];
    while (queue.length > 0) {
      const path = queue.pop()!;
      if (seen.has(path)) continue;
      seen.add(path);
      const res = await get(path);
      expect(res.status, path).toBe(200);
      const source = await res.text();
      for (const m of source.matchAll(/\bfrom "(\.{1,2}\/[^"]+)"/g)) {
        queue.push(new URL(m[1]!, `http://aios.test${path}`).pathname);
      }
    }
    expect(seen.size).toBeGreaterThan(10);
  });

  test("uPlot from node_modules under /ui/vendor/", async () => {
    const js = await get("/ui/vendor/uPlot.iife.min.js");
    expect(js.status).toBe(200);
    expect(js.headers.get("content-type")).toBe("text/javascript; charset=utf-8");
    expect(await js.text()).toContain("uPlot");
    const css = await get("/ui/vendor/uPlot.min.css");
    expect(css.status).toBe(200);
    expect(css.headers.get("content-type")).toBe("text/css; charset=utf-8");
    expect((await get("/ui/vendor/package.json")).status).toBe(404);
    expect((await get("/ui/vendor/..%2Fpackage.json")).status).toBe(404);
  });

  test("a missing file is a 404 in the API's error shape", async () => {
    const res = await get("/ui/nope.js");
    expect(res.status).toBe(404);
    const body = (await res.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe("not_found");
    expect((await get("/ui/views")).status).toBe(404); // a folder is not a file
  });

  test("paths that leave src/ui/ are refused", async () => {
    for (const path of [
      "/ui/../gateway/ui.ts",
      "/ui/%2e%2e/gateway/ui.ts",
      "/ui/..%2fgateway%2fui.ts",
      "/ui/..%2F..%2Fpackage.json",
      "/ui/%2e%2e%2f%2e%2e%2fpackage.json",
      "/ui/views/..%2f..%2fgateway%2fui.ts",
      "/ui/..%5cgateway%5cui.ts",
      "/ui/app.js%00.css",
      "/ui/%E0%A4%A",
    ]) {
      const res = await get(path);
      expect(res.status, path).toBe(404);
      expect(await res.text(), path).not.toContain("mountUi");
    }
  });

  test("resolveInside keeps to its root", () => {
    const root = mkdtempSync(join(tmpdir(), "aios-ui-"));
    writeFileSync(join(root, "a.js"), "export {};");
    expect(resolveInside(root, "a.js")).toBe(join(root, "a.js"));
    expect(resolveInside(root, "./a.js")).toBe(join(root, "a.js"));
    expect(resolveInside(root, "../a.js")).toBeNull();
    expect(resolveInside(root, "/etc/passwd")).toBeNull();
    expect(resolveInside(root, "%2Fetc%2Fpasswd")).toBeNull();
    expect(resolveInside(root, "")).toBeNull();
    expect(resolveInside(UI_DIR, "index.html")).toBe(join(UI_DIR, "index.html"));
  });

  test("content types by extension", () => {
    expect(contentTypeOf("x.mjs")).toBe("text/javascript; charset=utf-8");
    expect(contentTypeOf("x.JSON")).toBe("application/json; charset=utf-8");
    expect(contentTypeOf("x.bin")).toBe("application/octet-stream");
  });
});

test("the upload form offers exactly the policy kinds the registry knows", async () => {
  // A plain browser module without types: imported by a path the type checker does not follow.
  const uiKinds: string = "../../src/ui/kinds.js";
  const { POLICY_KINDS } = (await import(uiKinds)) as { POLICY_KINDS: string[] };
  const { POLICY_KIND_NAMES } = await import("../../src/policy/kinds/index.ts");
  expect([...POLICY_KINDS].sort()).toEqual([...POLICY_KIND_NAMES].sort());
});
