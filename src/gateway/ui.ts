/**
 * The dashboard's static files, served by the gateway: `GET /` is `src/ui/index.html`, `GET /ui/*` a file
 * under `src/ui/`, and `GET /ui/vendor/*` the few files the page takes from node_modules (uPlot). No build
 * step: the page is plain HTML, CSS and ES modules. A path that leaves its folder (`..`, encoded or not)
 * is a 404, as is anything not in the vendor list.
 */
import { existsSync, statSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, extname, join, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";
import type { Context, Hono } from "hono";
import { notFound } from "../http/errors.ts";

/** `src/ui/`, next to this file's folder. */
export const UI_DIR = fileURLToPath(new URL("../ui/", import.meta.url));

const uplotDist = (): string | null => {
  try {
    const pkg = createRequire(import.meta.url).resolve("uplot/package.json");
    return join(dirname(pkg), "dist");
  } catch {
    return null;
  }
};

/** The files under `/ui/vendor/`, by name, to their place in node_modules. */
const vendorFiles = (): Map<string, string> => {
  const dist = uplotDist();
  const files = new Map<string, string>();
  if (dist) {
    for (const name of ["uPlot.iife.min.js", "uPlot.min.css", "uPlot.esm.js"]) {
      files.set(name, join(dist, name));
    }
  }
  return files;
};

const CONTENT_TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".json": "application/json; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".ico": "image/x-icon",
  ".wasm": "application/wasm",
  ".txt": "text/plain; charset=utf-8",
  ".map": "application/json; charset=utf-8",
};

export const contentTypeOf = (path: string): string =>
  CONTENT_TYPES[extname(path).toLowerCase()] ?? "application/octet-stream";

/**
 * `rel` (a URL path below `root`, still percent-encoded) as a file inside `root`, or null when it is not
 * one: a path that climbs out, names a folder, holds a NUL or a backslash, or does not exist.
 */
export const resolveInside = (root: string, rel: string): string | null => {
  let decoded: string;
  try {
    decoded = decodeURIComponent(rel);
  } catch {
    return null;
  }
  if (decoded.includes("\0") || decoded.includes("\\")) return null;
  const base = resolve(root);
  const full = resolve(base, `.${sep}${decoded}`);
  if (!full.startsWith(base + sep)) return null;
  try {
    return statSync(full).isFile() ? full : null;
  } catch {
    return null;
  }
};

const sendFile = (c: Context, path: string | null | undefined): Response => {
  if (!path || !existsSync(path)) {
    return c.json(notFound(`no file ${c.req.path}`).toBody(), 404);
  }
  const headers = { "content-type": contentTypeOf(path), "cache-control": "no-cache" };
  if (c.req.method === "HEAD") return new Response(null, { headers });
  return new Response(Bun.file(path), { headers });
};

export interface UiOptions {
  /** The folder served under `/ui/`; default `src/ui/`. */
  root?: string;
}

/** Adds `GET /`, `GET /ui/vendor/*` and `GET /ui/*` to `app`. */
export const mountUi = (app: Hono, options: UiOptions = {}): Hono => {
  const root = options.root ?? UI_DIR;
  const vendor = vendorFiles();
  app.get("/", (c) => sendFile(c, resolveInside(root, "index.html")));
  app.get("/ui", (c) => c.redirect("/", 302));
  app.get("/ui/vendor/:name", (c) => sendFile(c, vendor.get(c.req.param("name"))));
  app.get("/ui/*", (c) => {
    // The raw (still encoded) path, so `%2e%2e` is decoded once, here, and checked.
    const raw = new URL(c.req.url).pathname.slice("/ui/".length);
    return sendFile(c, raw === "" ? resolveInside(root, "index.html") : resolveInside(root, raw));
  });
  return app;
};
