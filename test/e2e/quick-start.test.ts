/**
 * The README's quick start, as a new user runs it: `aios up` on a fresh data directory, printing the
 * admin token once (saved, mode 0600, where the CLI finds it), the `aios infer` command it prints
 * pasted into a shell, Ctrl-C leaving no process behind, and a second `aios up` on the same directory
 * finding the same blocks and serving them again, without printing the token again.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, statSync } from "node:fs";
import { join } from "node:path";
import { type AiosUp, ROOT, startAiosUp, workloadPids } from "../support/aios-up.ts";

/** The command after "try" in what `aios up` printed. */
const printedCommand = (output: readonly string[]): string => {
  const line = output.find((l) => l.trim().startsWith("try "));
  if (!line) throw new Error(`aios up printed no command to try:\n${output.join("\n")}`);
  return line.trim().slice("try ".length).trim();
};

/** Runs a pasted command line in a shell from the repository, as a user would. */
const paste = async (command: string) => {
  const proc = Bun.spawn(["sh", "-c", command], { cwd: ROOT, stdout: "pipe", stderr: "pipe" });
  const [stdout, stderr, code] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ]);
  return { stdout, stderr, code };
};

const gone = async (pids: readonly number[], withinMs: number) => {
  const until = Date.now() + withinMs;
  while (Date.now() < until && pids.some((p) => existsSync(`/proc/${p}`))) await Bun.sleep(100);
  return pids.filter((p) => existsSync(`/proc/${p}`));
};

describe("the README quick start", () => {
  let up: AiosUp | null = null;
  afterAll(async () => {
    await up?.stop();
  });

  test("aios up, infer with the printed command, Ctrl-C leaves nothing, the next aios up resumes", async () => {
    up = await startAiosUp();
    const first = up;
    // The admin token: printed once, saved for the CLI of this user alone; the dashboard URL carries it.
    const token = first.adminToken!;
    expect(token).toMatch(/^aios_[a-z0-9]{12}_[A-Za-z0-9_-]{43}$/);
    const tokenFile = join(first.dataDir, "admin-token");
    expect(statSync(tokenFile).mode & 0o777).toBe(0o600);
    expect(first.output.some((l) => l.includes(`admin token ${token}`) && l.includes("shown once"))).toBe(
      true,
    );
    expect(first.dashboardUrl).toBe(`${first.gatewayUrl}/#token=${token}`);
    // Without the token the API refuses.
    expect((await fetch(`${first.gatewayUrl}/api/blocks/demo`)).status).toBe(401);

    // The command works as pasted: it names the data directory, where the CLI finds the token.
    const command = printedCommand(first.output);
    expect(command).toContain("infer demo");
    expect(command).toStartWith(`AIOS_DATA_DIR=${first.dataDir} npm run aios -- `);
    const answer = await paste(command);
    expect(answer.code, answer.stderr).toBe(0);
    expect(answer.stdout).toContain('"label": "positive"');

    const before = (await (
      await fetch(`${first.gatewayUrl}/api/blocks/demo`, { headers: first.auth })
    ).json()) as {
      created_at: string;
      instances: { id: string }[];
    };
    const pids = workloadPids(first);
    // At least the demo's instance and its block services.
    expect(pids.length).toBeGreaterThanOrEqual(2);

    expect(await first.stop()).toBe(0);
    up = null;
    expect(await gone(pids, 5000)).toEqual([]);
    expect(workloadPids(first)).toEqual([]);

    up = await startAiosUp({ dataDir: first.dataDir });
    const second = up;
    expect(second.output.some((l) => l.includes("block demo resumed"))).toBe(true);
    // The same token, not printed again: where it is saved instead.
    expect(second.adminToken).toBe(token);
    expect(second.output.join("\n")).not.toContain(token);
    expect(second.output.some((l) => l.includes(`admin token saved in ${tokenFile}`))).toBe(true);
    expect(second.dashboardUrl).toBe(`${second.gatewayUrl}/`);
    const blocks = (await (
      await fetch(`${second.gatewayUrl}/api/blocks`, { headers: second.auth })
    ).json()) as {
      id: string;
      created_at: string;
      status: string;
      instances: { id: string }[];
    }[];
    expect(blocks.map((b) => b.id)).toEqual(["demo"]);
    expect(blocks[0]).toMatchObject({ status: "running", created_at: before.created_at });
    expect(blocks[0]!.instances.map((i) => i.id)).toEqual(before.instances.map((i) => i.id));
    const again = await paste(printedCommand(second.output));
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toContain('"label": "positive"');
  }, 120_000);
});
