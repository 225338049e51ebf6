/**
 * `aios up` as a user runs it, for end-to-end tests: a real child process (`bun src/cli/main.ts up`) on
 * free ports and a data directory of the test's (a fresh temporary one unless given), resolved once it
 * has printed its `listening` lines, that is once the demo block serves. Every call needs a token: the
 * admin token it printed (and saved in <dataDir>/admin-token) is `adminToken`, `auth` the headers.
 *
 * ```ts
 * const up = await startAiosUp();
 * afterAll(() => up.stop());
 * await fetch(`${up.gatewayUrl}/api/blocks/${up.demoBlockId}`, { headers: up.auth });
 * ```
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Child, Processes, ROOT } from "./processes.ts";

export interface AiosUp {
  gatewayUrl: string;
  registryUrl: string;
  controllerUrl: string;
  allocatorUrl: string;
  /** The demo block's gRPC address (`http://host:port`), from the gateway. */
  grpcUrl: string;
  demoBlockId: string;
  dataDir: string;
  /** The admin token (from <dataDir>/admin-token); null when it runs with AIOS_ANONYMOUS=1. */
  adminToken: string | null;
  /** `{authorization: "Bearer <admin token>"}` (empty when anonymous), for fetch. */
  auth: Record<string, string>;
  /** The dashboard URL it printed (with `#token=...` on a first start). */
  dashboardUrl: string;
  /** What `aios up` printed on stdout so far. */
  output: string[];
  child: Child;
  /** Ctrl-C (SIGINT), then its exit status (SIGKILL after 30 s, as a failure would need). */
  stop(): Promise<number>;
}

export interface AiosUpOptions {
  /** Reuse a data directory (a second `aios up`); default a fresh temporary one. */
  dataDir?: string;
  env?: Record<string, string>;
  /** Longest wait for the listening lines; default 60 s. */
  timeoutMs?: number;
}

export const freshDataDir = (): string => mkdtempSync(join(tmpdir(), "aios-up-"));

const PORT_FLAGS = [
  "--registry-port",
  "--metrics-port",
  "--allocator-port",
  "--controller-port",
  "--gateway-port",
];

export const startAiosUp = async (options: AiosUpOptions = {}): Promise<AiosUp> => {
  const dataDir = options.dataDir ?? freshDataDir();
  const procs = new Processes();
  const child = procs.spawn(
    "aios up",
    [
      process.execPath,
      "run",
      "src/cli/main.ts",
      "up",
      "--data-dir",
      dataDir,
      ...PORT_FLAGS.flatMap((f) => [f, "0"]),
    ],
    options.env ? { env: options.env } : {},
  );
  const stop = async (): Promise<number> => {
    if (child.alive) child.kill("SIGINT");
    const late = new Promise<"late">((r) => setTimeout(() => r("late"), 30_000).unref());
    if ((await Promise.race([child.exited, late])) === "late") {
      child.kill("SIGKILL");
      await child.exited;
      return -1;
    }
    return child.exited;
  };
  try {
    const urls = await child.listening(
      ["registry", "allocator", "controller", "gateway"],
      options.timeoutMs ?? 60_000,
    );
    // The welcome (dashboard, gRPC, the command to try) follows the listening lines; its last line is "stop".
    const until = Date.now() + 10_000;
    while (!child.stdoutLines.some((l) => l.trim().startsWith("stop "))) {
      if (Date.now() > until || !child.alive) {
        throw new Error(`aios up printed no welcome:\n${child.stdoutLines.join("\n")}`);
      }
      await Bun.sleep(20);
    }
    const tokenFile = join(dataDir, "admin-token");
    const adminToken = existsSync(tokenFile) ? readFileSync(tokenFile, "utf8").trim() : null;
    const auth: Record<string, string> = adminToken ? { authorization: `Bearer ${adminToken}` } : {};
    const dashboard = child.stdoutLines.find((l) => l.trim().startsWith("dashboard "));
    const demo = (await (await fetch(`${urls.gateway}/api/blocks/demo`, { headers: auth })).json()) as {
      grpc_url: string | null;
    };
    if (!demo.grpc_url) throw new Error(`the demo block has no gRPC address: ${JSON.stringify(demo)}`);
    return {
      gatewayUrl: urls.gateway!,
      registryUrl: urls.registry!,
      controllerUrl: urls.controller!,
      allocatorUrl: urls.allocator!,
      grpcUrl: demo.grpc_url,
      demoBlockId: "demo",
      dataDir,
      adminToken,
      auth,
      dashboardUrl: dashboard?.trim().slice("dashboard ".length).trim() ?? `${urls.gateway}/`,
      output: child.stdoutLines,
      child,
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
};

/**
 * The pids of the processes an `aios up` started (instances and block services), found by what they
 * carry: the controller's URL in their environment or the runtime directory in their command line.
 */
export const workloadPids = (up: Pick<AiosUp, "controllerUrl" | "dataDir">): number[] => {
  const pids: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, "utf8");
      const environ = readFileSync(`/proc/${entry}/environ`, "utf8");
      const runtimeDir = join(up.dataDir, "runtime");
      if (cmdline.includes(runtimeDir) || environ.includes(`AIOS_CONTROLLER_URL=${up.controllerUrl}\0`)) {
        pids.push(Number(entry));
      }
    } catch {
      // Gone meanwhile, or not ours to read.
    }
  }
  return pids.filter((p) => p !== process.pid);
};

export { ROOT };
