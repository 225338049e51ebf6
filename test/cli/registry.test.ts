/** The `aios` command as a real process: start the registry, talk to it over HTTP, stop it. */
import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { join } from "node:path";

// The child process opens PGlite (2-5 s, more on a loaded machine) before it listens.
setDefaultTimeout(90_000);

const ROOT = join(import.meta.dir, "../..");
const MAIN = "src/cli/main.ts";

/** The environment of a child: in-memory PGlite (no DATABASE_URL), whatever the parent runs on. */
const childEnv = (): Record<string, string> => {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && k !== "DATABASE_URL") env[k] = v;
  return env;
};

const aios = (...args: string[]) =>
  Bun.spawn([process.execPath, "run", MAIN, ...args], {
    cwd: ROOT,
    env: childEnv(),
    stdout: "pipe",
    stderr: "pipe",
  });

/** Reads stdout lines until every `listening <name>` line has come; returns name -> url. */
const waitForListening = async (
  stdout: ReadableStream<Uint8Array>,
  names: string[],
  timeoutMs: number,
): Promise<{ urls: Map<string, string>; lines: string[] }> => {
  const urls = new Map<string, string>();
  const lines: string[] = [];
  const reader = stdout.getReader();
  const decoder = new TextDecoder();
  let buffered = "";
  const timedOut = Bun.sleep(timeoutMs).then(() => "timeout" as const);
  try {
    while (names.some((n) => !urls.has(n))) {
      const chunk = await Promise.race([reader.read(), timedOut]);
      if (chunk === "timeout")
        throw new Error(`no listening lines within ${timeoutMs} ms; got ${JSON.stringify(lines)}`);
      if (chunk.done)
        throw new Error(`stdout closed before the listening lines; got ${JSON.stringify(lines)}`);
      buffered += decoder.decode(chunk.value, { stream: true });
      let nl = buffered.indexOf("\n");
      while (nl >= 0) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        lines.push(line);
        const m = /^listening (\S+) (http:\/\/127\.0\.0\.1:\d+)$/.exec(line);
        if (m) {
          expect(urls.has(m[1]!)).toBe(false); // exactly one line per listener
          urls.set(m[1]!, m[2]!);
        }
        nl = buffered.indexOf("\n");
      }
    }
  } finally {
    reader.releaseLock();
  }
  return { urls, lines };
};

describe("aios registry", () => {
  test("serves clusters and metrics over real HTTP and stops on SIGTERM", async () => {
    // Without tokens (test/auth/registry.test.ts runs the verb with them).
    const child = aios("registry", "--port", "0", "--metrics-port", "0", "--anonymous");
    try {
      const { urls } = await waitForListening(child.stdout, ["registry", "metrics"], 45_000);
      const registry = urls.get("registry")!;
      const metrics = urls.get("metrics")!;
      expect(registry).not.toBe(metrics);

      const cluster = { id: "cli-cluster", regionId: "us-west-2", gpus: { count: 2 }, tags: ["gpu"] };
      let res = await fetch(`${registry}/clusters`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(cluster),
      });
      expect(res.status).toBe(201);
      res = await fetch(`${registry}/clusters/cli-cluster`);
      expect(await res.json()).toEqual(cluster);

      const body = { cluster: { vcpu: { load_15m: 3 }, gpu: { totalFreeMem: 12000 } } };
      res = await fetch(`${metrics}/cluster/cli-cluster`, {
        method: "PUT",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
      });
      expect(res.status).toBe(200);
      res = await fetch(`${metrics}/cluster/cli-cluster`);
      expect(await res.json()).toEqual({ success: true, data: { ...body, id: "cli-cluster" }, error: null });
      // The metrics API is reachable on the registry port too; the registries only on theirs.
      res = await fetch(`${registry}/cluster/query?cluster.gpu.totalFreeMem=12000`);
      expect(((await res.json()) as { data: { id: string }[] }).data.map((d) => d.id)).toEqual([
        "cli-cluster",
      ]);
      expect((await fetch(`${metrics}/clusters/cli-cluster`)).status).toBe(404);

      child.kill("SIGTERM");
      const code = await Promise.race([child.exited, Bun.sleep(15_000).then(() => "timeout" as const)]);
      expect(code).toBe(0);
    } finally {
      if (child.exitCode === null) child.kill("SIGKILL");
    }
  });

  test("--help answers for the command and every verb; an unknown verb exits 2 with the usage", async () => {
    for (const args of [["--help"], ["registry", "--help"], ["up", "--help"]]) {
      const child = aios(...args);
      expect(await child.exited).toBe(0);
      expect(await new Response(child.stdout).text()).toContain("usage: aios");
    }
    let child = aios("frobnicate");
    expect(await child.exited).toBe(2);
    expect(await new Response(child.stderr).text()).toContain("usage: aios <verb>");

    child = aios("registry", "--port", "http");
    expect(await child.exited).toBe(2);
    expect(await new Response(child.stderr).text()).toContain("--port");

    child = aios("registry", "--bogus");
    expect(await child.exited).toBe(2);

    child = aios();
    expect(await child.exited).toBe(2);
  });
});
