/**
 * The `aios` command with tokens, as a user runs it against `aios up` (a real child): without a token
 * a verb says how to give one; the admin token aios up saved is found through AIOS_DATA_DIR; `aios token
 * create|list|revoke` (the token shown once, a revoked one refused within seconds); `aios infer` with
 * the token file (the gateway lookup and the gRPC call both carry it); `aios audit` with its filters,
 * showing the user the gateway acted for at the controller.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseToken } from "../../src/auth/tokens.ts";
import { type AiosUp, startAiosUp } from "../support/aios-up.ts";
import { aiosProcess } from "../support/processes.ts";

setDefaultTimeout(120_000);

const aios = aiosProcess;

describe("aios with tokens, against aios up", () => {
  let up: AiosUp;
  /** No token anywhere: an empty data directory, so no admin-token file is found. */
  let bare: Record<string, string>;
  /** The admin token, found as a user finds it: the file in aios up's data directory. */
  let admin: Record<string, string>;
  const empty = mkdtempSync(join(tmpdir(), "aios-cli-auth-"));

  beforeAll(async () => {
    up = await startAiosUp();
    bare = { AIOS_GATEWAY_URL: up.gatewayUrl, AIOS_DATA_DIR: empty };
    admin = { AIOS_GATEWAY_URL: up.gatewayUrl, AIOS_DATA_DIR: up.dataDir };
  });
  afterAll(async () => {
    if (up) expect(await up.stop()).toBe(0);
    rmSync(empty, { recursive: true, force: true });
  });

  test("without a token a verb is refused and says how to give one", async () => {
    const res = await aios(bare, "get", "blocks");
    expect(res.status).toBe(1);
    expect(res.stderr).toContain("aios get: this endpoint needs a token");
    expect(res.stderr).toContain("pass --token T, set AIOS_TOKEN");
    expect(res.stderr).toContain(join(empty, "admin-token"));

    const wrong = await aios(bare, "get", "blocks", "--token", "aios_nope");
    expect(wrong.status).toBe(1);
    expect(wrong.stderr).toContain("the token is not valid");
    expect(wrong.stderr).toContain("the token from --token was refused");
  });

  test("the admin token from the file aios up saved; --token and AIOS_TOKEN too", async () => {
    const viaFile = await aios(admin, "get", "blocks");
    expect(viaFile.status, viaFile.stderr).toBe(0);
    expect(viaFile.stdout).toMatch(/\ndemo\s+running\s+local/);
    const viaEnv = await aios({ ...bare, AIOS_TOKEN: up.adminToken! }, "get", "clusters");
    expect(viaEnv.status, viaEnv.stderr).toBe(0);
    // --token before the verb reads as after it.
    const viaFlag = await aios(bare, "--token", up.adminToken!, "get", "blocks", "--json");
    expect(viaFlag.status, viaFlag.stderr).toBe(0);
    expect(JSON.parse(viaFlag.stdout).map((b: { id: string }) => b.id)).toContain("demo");
  });

  test("aios infer with the token file: the gateway lookup and the gRPC call carry it", async () => {
    const res = await aios(admin, "infer", "demo", "--data", '{"text":"I love this phone"}');
    expect(res.status, res.stderr).toBe(0);
    expect(JSON.parse(res.stdout)).toMatchObject({ label: "positive" });
    const refused = await aios(bare, "infer", "demo", "--data", '{"text":"hi"}');
    expect(refused.status).toBe(1);
    expect(refused.stderr).toContain("needs a token");
  });

  test("an inference-only token: the gateway tells it where its own block is, and no other; --grpc too", async () => {
    const make = async (scope: string) => {
      const out = await aios(admin, "token", "create", "--name", `app ${scope}`, "--scope", scope, "--json");
      expect(out.status, out.stderr).toBe(0);
      return (JSON.parse(out.stdout) as { token: string }).token;
    };
    const demoOnly = { ...bare, AIOS_TOKEN: await make("infer:demo") };
    const otherOnly = { ...bare, AIOS_TOKEN: await make("infer:other") };
    const data = ["--data", '{"text":"what a lovely day"}'];

    // The gateway tells an infer:demo token where demo is, and nothing else.
    const lookup = await aios(demoOnly, "infer", "demo", ...data);
    expect(lookup.status, lookup.stderr).toBe(0);
    expect(JSON.parse(lookup.stdout)).toMatchObject({ label: "positive" });
    const notItsBlock = await aios(otherOnly, "infer", "demo", ...data);
    expect(notItsBlock.status).toBe(1);
    expect(notItsBlock.stderr).toContain("lacks the scope");
    expect(notItsBlock.stderr).toContain("infer:demo");
    expect(notItsBlock.stderr).toContain("--grpc host:port");
    expect((await aios(demoOnly, "get", "blocks")).stderr).toContain("lacks the scope");
    const direct = await aios(demoOnly, "infer", "demo", ...data, "--grpc", up.grpcUrl);
    expect(direct.status, direct.stderr).toBe(0);
    expect(JSON.parse(direct.stdout)).toMatchObject({ label: "positive" });
    // Another block's token is refused by the block itself.
    const other = await aios(
      otherOnly,
      "infer",
      "demo",
      ...data,
      "--grpc",
      up.grpcUrl.replace(/^http:\/\//, ""),
    );
    expect(other.status).toBe(1);
    expect(other.stderr).toMatch(/permission|forbidden|lacks/i);
  });

  test("token create prints the token once; list shows it without the secret; revoke stops it", async () => {
    const created = await aios(
      admin,
      "token",
      "create",
      "--name",
      "ci",
      "--scope",
      "operator",
      "--scope",
      "infer:*",
    );
    expect(created.status, created.stderr).toBe(0);
    const token = /\n {2}(aios_\S+)\n/.exec(created.stdout)?.[1];
    expect(token).toMatch(/^aios_[a-z0-9]{12}_[A-Za-z0-9_-]{43}$/);
    expect(created.stdout).toMatch(/^created token tok_[a-z0-9]{12} \(ci, scopes operator,infer:\*\)/);
    expect(created.stdout).toContain("This is the only time the token is shown");
    // The secret is base64url, so it may itself hold "_": split by the token's own parser.
    const { id, secret } = parseToken(token!)!;

    const list = await aios(admin, "token", "list");
    expect(list.status).toBe(0);
    expect(list.stdout.split("\n")[0]).toMatch(/^ID\s+NAME\s+SCOPES\s+STATE\s+EXPIRES\s+AGE\s+CREATED BY$/);
    expect(list.stdout).toMatch(/\ntok_\S+\s+aios up admin\s+admin\s+active\s+never\s+\S+\s+aios up/);
    expect(list.stdout).toMatch(/\ntok_\S+\s+aios up services\s+internal\s+active/);
    expect(list.stdout).toMatch(new RegExp(`\\n${id}\\s+ci\\s+operator,infer:\\*\\s+active\\s+never`));
    expect(list.stdout).not.toContain(secret);
    const json = JSON.parse((await aios(admin, "token", "list", "--json")).stdout) as Record<
      string,
      unknown
    >[];
    expect(json.find((t) => t.id === id)).toMatchObject({ name: "ci", revoked_at: null });
    expect(JSON.stringify(json)).not.toContain(secret);

    // The new token works, and is no admin: it may not list tokens.
    const asCi = { ...bare, AIOS_TOKEN: token! };
    expect((await aios(asCi, "get", "blocks")).status).toBe(0);
    const notAdmin = await aios(asCi, "token", "list");
    expect(notAdmin.status).toBe(1);
    expect(notAdmin.stderr).toContain("lacks the scope");

    const revoked = await aios(admin, "token", "revoke", id);
    expect(revoked.status, revoked.stderr).toBe(0);
    expect(revoked.stdout.trim()).toBe(`revoked token ${id} (ci); it stops working within 5 s`);
    const until = Date.now() + 8000;
    let after = await aios(asCi, "get", "blocks");
    while (after.status === 0 && Date.now() < until) {
      await Bun.sleep(500);
      after = await aios(asCi, "get", "blocks");
    }
    expect(after.status).toBe(1);
    expect(after.stderr).toContain("the token is not valid");
    expect(after.stderr).toContain("the token from $AIOS_TOKEN was refused");
    expect((await aios(admin, "token", "list")).stdout).toMatch(
      new RegExp(`\\n${id}\\s+ci\\s+\\S+\\s+revoked`),
    );

    // Mistakes are usage errors.
    expect((await aios(admin, "token", "create", "--name", "x")).status).toBe(2);
    const badScope = await aios(admin, "token", "create", "--name", "x", "--scope", "root");
    expect(badScope.status).toBe(1);
    expect(badScope.stderr).toContain("'root' is not a scope");
    expect((await aios(admin, "token", "frobnicate")).status).toBe(2);
  }, 60_000);

  test("aios audit: the calls, their actor and outcome, the user a service acted for", async () => {
    const since = new Date().toISOString();
    const scaled = await aios(admin, "scale", "demo", "2");
    expect(scaled.status, scaled.stderr).toBe(0);
    const refused = await aios(bare, "scale", "demo", "3");
    expect(refused.status).toBe(1);

    const table = await aios(admin, "audit", "--since", since);
    expect(table.status, table.stderr).toBe(0);
    expect(table.stdout.split("\n")[0]).toMatch(
      /^AT \(UTC\)\s+ACTOR\s+FOR\s+SERVICE\s+CALL\s+TARGET\s+OUTCOME$/,
    );
    expect(table.stdout).toMatch(
      /aios up admin \(tok_\S+\)\s+-\s+gateway\s+POST \/api\/blocks\/demo\/scale\s+demo\s+success 200/,
    );
    expect(table.stdout).toMatch(
      /unauthenticated\s+-\s+gateway\s+POST \/api\/blocks\/demo\/scale\s+demo\s+refused 401/,
    );
    // At the controller: the services' token, acting for the admin.
    expect(table.stdout).toMatch(
      /aios up services \(tok_\S+\)\s+aios up admin\s+controller\s+POST \/executeAction/,
    );

    const json = JSON.parse(
      (
        await aios(
          admin,
          "audit",
          "--since",
          since,
          "--service",
          "controller",
          "--actor",
          "aios up admin",
          "--json",
        )
      ).stdout,
    ) as { actor: { name: string }; on_behalf_of: { name: string } | null; outcome: string }[];
    expect(json.length).toBeGreaterThanOrEqual(1);
    for (const e of json) {
      expect(e.actor.name).toBe("aios up services");
      expect(e.on_behalf_of?.name).toBe("aios up admin");
    }
    const limited = JSON.parse((await aios(admin, "audit", "--limit", "1", "--json")).stdout);
    expect(limited).toHaveLength(1);
    const onlyRefused = JSON.parse(
      (await aios(admin, "audit", "--outcome", "refused", "--since", since, "--json")).stdout,
    ) as { outcome: string }[];
    expect(onlyRefused.length).toBeGreaterThanOrEqual(1);
    expect(onlyRefused.every((e) => e.outcome === "refused")).toBe(true);

    expect((await aios(admin, "audit", "--since", "yesterday")).status).toBe(2);
    expect((await aios(admin, "audit", "--outcome", "maybe")).status).toBe(2);
    await aios(admin, "scale", "demo", "1");
  }, 60_000);
});
