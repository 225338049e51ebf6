/**
 * The dashboard in chromium against a stand-in API (test/ui/fake-console.ts), for what the real system
 * seldom shows on demand: a failed creation and its steps, an unreachable cluster and an unhealthy node,
 * a refused scale, a list the API fails to give (shown, then cleared when it answers again), and the
 * sign-in form when the API wants a token.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { Browser, Page } from "playwright-core";
import { hasChromium, launchChromium, shot } from "./browser.ts";
import { createFakeConsole, type FakeConsole } from "./fake-console.ts";

const chromiumThere = hasChromium("test/ui/dashboard-states.test.ts");

describe.skipIf(!chromiumThere)("dashboard states (chromium, stand-in API)", () => {
  let fake: FakeConsole;
  let server: ReturnType<typeof Bun.serve>;
  let browser: Browser;
  let page: Page;
  let base: string;
  const pageErrors: string[] = [];

  beforeAll(async () => {
    fake = createFakeConsole();
    server = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: fake.app.fetch });
    base = `http://127.0.0.1:${server.port}`;
    browser = await launchChromium();
    page = await browser.newPage({ viewport: { width: 1440, height: 900 } });
    page.setDefaultTimeout(15_000);
    page.on("pageerror", (err) => pageErrors.push(err.message));
  }, 60_000);

  afterAll(async () => {
    await browser?.close().catch(() => {});
    server?.stop(true);
  });

  test("a failed creation: its badge, its error and the step that failed", async () => {
    await page.goto(`${base}/#/`);
    const card = page.locator('[data-block-card="detector-eu"]');
    await card.waitFor();
    await expect(card.getAttribute("data-status")).resolves.toBe("failed");
    await expect(card.locator(".block-error").textContent()).resolves.toContain("no_candidate");
    await page.goto(`${base}/#/creations`);
    const creation = page.locator('details[data-creation="detector-eu"]');
    await creation.waitFor();
    await expect(creation.locator('[data-step-chip="dry_run"]').getAttribute("class")).resolves.toContain(
      "fail",
    );
    await expect(creation.locator('[data-step-chip="allocation"]').getAttribute("class")).resolves.toContain(
      "missing",
    );
    // The newest creation is unfolded: the failed step with its detail.
    const step = creation.locator('.step[data-step="dry_run"]');
    await step.waitFor();
    await expect(step.getAttribute("data-ok")).resolves.toBe("false");
    await expect(step.textContent()).resolves.toContain("service_unreachable");
  }, 30_000);

  test("an unreachable cluster and an unhealthy node are shown with their reasons", async () => {
    await page.goto(`${base}/#/clusters`);
    const edge = page.locator('#cluster-list [data-cluster="edge"]');
    await edge.waitFor();
    await expect(edge.locator(".cluster-error").textContent()).resolves.toContain("ECONNREFUSED");
    const node = edge.locator('[data-node="edge-node-2"]');
    await expect(node.getAttribute("data-healthy")).resolves.toBe("false");
    await expect(node.textContent()).resolves.toContain("probe failed 3 times");
    await shot(page, "clusters-states");
  }, 30_000);

  test("a refused scale shows the API's message", async () => {
    await page.goto(`${base}/#/block/demo`);
    const input = page.locator("#view-block .actions input[type=number]");
    await input.waitFor();
    await input.fill("9");
    await page.getByRole("button", { name: "Scale to" }).click();
    const result = page.locator("#view-block .actions .result.error");
    await result.waitFor();
    await expect(result.textContent()).resolves.toBe(
      "409 out_of_bounds: instances must be within 1 and 4, got 9",
    );
  }, 30_000);

  test("a list the API fails to give is shown until it answers again", async () => {
    await page.goto(`${base}/#/clusters`);
    fake.failClusters(true);
    const row = page.locator('#errors .error-row[data-source="GET /api/clusters"]');
    await row.waitFor();
    await expect(row.textContent()).resolves.toContain(
      "503 service_unreachable: the registry did not answer",
    );
    await expect(page.locator("#conn").getAttribute("data-state")).resolves.toBe("error");
    // The last clusters read stay on the page meanwhile.
    expect(await page.locator('#cluster-list [data-cluster="local"]').count()).toBe(1);
    await shot(page, "api-error");
    fake.failClusters(false);
    await row.waitFor({ state: "detached" });
    await page.waitForFunction(() => document.querySelector("#conn")?.getAttribute("data-state") === "ok");
  }, 30_000);

  test("on a 401 the sign-in form asks for a token; a #token= URL signs in and leaves the address bar", async () => {
    const TOKEN = "aios_fakefakefake_0123456789abcdefghijklmnopqrstuvwxyzABCDEFG";
    fake.requireToken(TOKEN);
    // A browser of its own: nothing kept from the other tests.
    const context = await browser.newContext({ viewport: { width: 1440, height: 900 } });
    const p = await context.newPage();
    p.setDefaultTimeout(15_000);
    p.on("pageerror", (err) => pageErrors.push(err.message));
    const form = p.locator("#signin");
    try {
      await p.goto(`${base}/#/clusters`);
      await form.waitFor({ state: "visible" });
      await expect(p.locator("#signin-result").textContent()).resolves.toBe("this gateway needs a token");
      // No error row per list: the form says what is wrong.
      expect(await p.locator("#errors .error-row").count()).toBe(0);
      await shot(p, "sign-in");

      await p.fill("#signin-token", "aios_wrong");
      await p.click("#signin-submit");
      await p.locator("#signin-result.error", { hasText: "the token was refused" }).waitFor();
      await expect(form.isVisible()).resolves.toBe(true);

      await p.fill("#signin-token", TOKEN);
      await p.click("#signin-submit");
      await form.waitFor({ state: "hidden" });
      await p.locator('#cluster-list [data-cluster="local"]').waitFor();
      await expect(p.locator("#whoami").textContent()).resolves.toBe("fake admin");
      expect(await p.evaluate(() => localStorage.getItem("aios.token"))).toBe(TOKEN);

      await p.click("#signout");
      await form.waitFor({ state: "visible" });
      expect(await p.evaluate(() => localStorage.getItem("aios.token"))).toBeNull();

      // The URL aios up prints: the token is kept, and the fragment leaves the address bar and history.
      await p.goto("about:blank");
      await p.goto(`${base}/#token=${TOKEN}`);
      await p.locator('[data-block-card="demo"]').waitFor();
      expect(p.url()).toBe(`${base}/`);
      await expect(form.isVisible()).resolves.toBe(false);
      expect(await p.evaluate(() => localStorage.getItem("aios.token"))).toBe(TOKEN);

      // A revoked token: the next answer is a 401, and the form comes back with the reason.
      fake.requireToken("aios_another");
      await form.waitFor({ state: "visible" });
      await expect(p.locator("#signin-result").textContent()).resolves.toContain("the token was refused");
    } finally {
      fake.requireToken(null);
      await context.close();
    }
  }, 60_000);

  test("the page raised no script errors", () => {
    expect(pageErrors).toEqual([]);
  });
});
