/**
 * The dashboard in Debian's chromium (`/usr/bin/chromium`, installed by `.ci/run`), driven by
 * playwright-core against the real system of `aios up` (test/support/aios-up.ts): the demo block with
 * its instances and their nodes, the allocation steps of its creation, a policy uploaded through the
 * form (and a refused one with the API's message), and load on the block raising the instance count the
 * chart shows. Screenshots go to test-artifacts/ui/. The browser signs in as a user does: by opening the
 * dashboard URL aios up printed, with the admin token in its fragment.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import type { Browser, Page } from "playwright-core";
import { BUILTIN_POLICIES } from "../../wasm-policies/catalog.ts";
import { type AiosUp, startAiosUp } from "../support/aios-up.ts";
import { grpcJsInferenceClient } from "../support/grpc.ts";
import { textPacket } from "../support/sentiment.ts";
import { hasChromium, launchChromium, shot } from "./browser.ts";

const ROOT = new URL("../../", import.meta.url);
const chromiumThere = hasChromium("test/ui/dashboard.test.ts");

/** A built-in policy's module (built when missing, as test/support/builtin-policies.ts does). */
const builtinModule = (uri: string): string => {
  const entry = BUILTIN_POLICIES.find((p) => p.uri === uri);
  if (!entry) throw new Error(`no built-in policy ${uri}`);
  const file = fileURLToPath(new URL(entry.file, ROOT));
  if (!existsSync(file)) {
    Bun.spawnSync([process.execPath, "run", "wasm-policies/build.ts", "--if-stale"], {
      cwd: fileURLToPath(ROOT),
    });
  }
  return file;
};

describe.skipIf(!chromiumThere)("dashboard (chromium, aios up)", () => {
  let up: AiosUp;
  let browser: Browser;
  let page: Page;
  const pageErrors: string[] = [];

  beforeAll(async () => {
    up = await startAiosUp();
    browser = await launchChromium();
    page = await browser.newPage({ viewport: { width: 1440, height: 900 } });
    page.setDefaultTimeout(20_000);
    page.on("pageerror", (err) => pageErrors.push(err.message));
    // The printed URL signs the browser in (the token goes to localStorage, out of the address bar).
    expect(up.dashboardUrl).toStartWith(`${up.gatewayUrl}/#token=aios_`);
    await page.goto(up.dashboardUrl);
    await page.waitForFunction(() => localStorage.getItem("aios.token")?.startsWith("aios_"));
    expect(page.url()).toBe(`${up.gatewayUrl}/`);
  }, 100_000);

  afterAll(async () => {
    await browser?.close().catch(() => {});
    await up?.stop();
  }, 60_000);

  const open = async (hash: string) => {
    await page.goto(`${up.gatewayUrl}/${hash}`);
  };

  test("the gateway serves the dashboard and its files without a token; the API wants one", async () => {
    expect((await fetch(`${up.gatewayUrl}/api/blocks`)).status).toBe(401);
    const res = await fetch(`${up.gatewayUrl}/`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toStartWith("text/html");
    expect(await res.text()).toContain("/ui/app.js");
    expect((await fetch(`${up.gatewayUrl}/ui/vendor/uPlot.iife.min.js`)).status).toBe(200);
  }, 10_000);

  test("the overview shows the demo block: id, running, its instances with their node", async () => {
    await open("#/");
    const card = page.locator(`[data-block-card="${up.demoBlockId}"]`);
    await card.waitFor();
    await expect(card.getAttribute("data-status")).resolves.toBe("running");
    await expect(card.locator(".block-id").textContent()).resolves.toBe(up.demoBlockId);
    await expect(card.locator(".badge").first().textContent()).resolves.toBe("running");
    // The instances the API lists, each shown with its node.
    const api = (await (
      await fetch(`${up.gatewayUrl}/api/blocks/${up.demoBlockId}`, { headers: up.auth })
    ).json()) as {
      instances: { id: string; node_id: string }[];
    };
    expect(api.instances.length).toBeGreaterThanOrEqual(1);
    for (const inst of api.instances) {
      const chip = card.locator(`[data-instance="${inst.id}"]`);
      await chip.waitFor();
      await expect(chip.getAttribute("data-node")).resolves.toBe(inst.node_id);
      await expect(chip.textContent()).resolves.toContain(inst.node_id);
    }
    // The charts get points every second: the instance count is on the chart once read.
    await page.waitForFunction(
      (id) => document.querySelector(`[data-block-card="${id}"]`)?.getAttribute("data-instances"),
      up.demoBlockId,
    );
    // The cluster of this machine with its node and health.
    const node = page.locator("#overview-clusters [data-node]").first();
    await node.waitFor();
    await expect(node.getAttribute("data-healthy")).resolves.toBe("true");
    await page.waitForTimeout(2500); // a few points on the charts for the screenshot
    await shot(page, "overview");
  }, 60_000);

  test("the block page shows the allocation steps of the demo block's creation", async () => {
    await open(`#/block/${up.demoBlockId}`);
    for (const step of ["filter", "selection", "dry_run", "post_dry_run", "allocation"]) {
      const row = page.locator(`#view-block .step[data-step="${step}"]`).last();
      await row.waitFor();
      await expect(row.getAttribute("data-ok")).resolves.toBe("true");
    }
    await expect(
      page.locator('#view-block .step[data-step="allocation"]').last().textContent(),
    ).resolves.toContain("local");
    // And the instances table names each instance's node.
    await page.locator("#view-block tr[data-instance]").first().waitFor();
    await shot(page, "block");

    await open("#/creations");
    const creation = page.locator(`details[data-creation="${up.demoBlockId}"]`);
    await creation.waitFor();
    await expect(creation.locator(".step-chip.ok").count()).resolves.toBe(5);
    await shot(page, "creations");
  }, 60_000);

  test("an API error is shown as the API answered it", async () => {
    await open("#/block/no-such-block");
    const error = page.locator("#view-block .error-row");
    await error.waitFor();
    await expect(error.textContent()).resolves.toMatch(/404 not_found: .*no-such-block/);
  }, 30_000);

  test("a policy uploaded through the form appears in the list; a bad one shows the refusal", async () => {
    await open("#/policies");
    await page.locator("#policy-table tbody tr[data-uri]").first().waitFor();
    const uri = `policy.loadBalancer.ui-test-${Date.now().toString(36)}:v1.0.0`;
    await page.fill("#policy-uri", uri);
    await page.selectOption("#policy-kind", "loadBalancer");
    await page.fill("#policy-description", "uploaded by the dashboard test");
    await page.setInputFiles("#policy-file", builtinModule("policy.loadBalancer.roundrobin:v0.0.1"));
    await page.click("#policy-submit");
    const result = page.locator("#policy-result.ok");
    await result.waitFor();
    await expect(result.textContent()).resolves.toContain(uri);
    const row = page.locator(`#policy-table tr[data-uri="${uri}"]`);
    await row.waitFor();
    await expect(row.textContent()).resolves.toContain("loadBalancer");
    const listed = (await (await fetch(`${up.gatewayUrl}/api/policies`, { headers: up.auth })).json()) as {
      uri: string;
    }[];
    expect(listed.map((p) => p.uri)).toContain(uri);
    await shot(page, "policy-uploaded");

    // A text file is no WebAssembly module: the API's 4xx message is shown, nothing is listed.
    const bad = `policy.loadBalancer.ui-test-bad-${Date.now().toString(36)}:v1.0.0`;
    await page.fill("#policy-uri", bad);
    await page.setInputFiles("#policy-file", {
      name: "notes.txt",
      mimeType: "text/plain",
      buffer: Buffer.from("this is not a policy\n"),
    });
    await page.click("#policy-submit");
    const refusal = page.locator("#policy-result.error");
    await refusal.waitFor();
    const text = (await refusal.textContent()) ?? "";
    expect(text).toMatch(/^4\d\d [a-z_]+: .+/);
    expect(await page.locator(`#policy-table tr[data-uri="${bad}"]`).count()).toBe(0);
    await shot(page, "policy-refused");

    // The upload was audited as the signed-in admin's.
    const audit = (await (
      await fetch(`${up.gatewayUrl}/api/audit?service=gateway&method=POST&limit=50`, { headers: up.auth })
    ).json()) as { path: string; actor: { name: string }; outcome: string }[];
    const uploads = audit.filter((e) => e.path === "/api/policies");
    expect(uploads.map((e) => e.outcome).sort()).toEqual(["refused", "success"]);
    expect(uploads.every((e) => e.actor.name === "aios up admin")).toBe(true);
  }, 60_000);

  test("load on the block raises the instance count on its chart", async () => {
    await open(`#/block/${up.demoBlockId}`);
    const chart = page.locator('#view-block [data-chart="instances"]');
    await page.waitForFunction(() =>
      document.querySelector('#view-block [data-chart="instances"]')?.getAttribute("data-instances"),
    );
    const before = Number(await chart.getAttribute("data-instances"));
    expect(before).toBeGreaterThanOrEqual(1);

    // Many concurrent requests over gRPC: in flight per instance well above the autoscaler's target.
    const client = grpcJsInferenceClient(up.grpcUrl.replace(/^https?:\/\//, ""), {
      token: up.adminToken!,
    });
    const text = "Great phone, I love the gorgeous screen but the battery is terrible. ".repeat(20);
    let stop = false;
    let answered = 0;
    const workers = Array.from({ length: 48 }, async (_, w) => {
      let seq = 0;
      while (!stop) {
        try {
          await client.infer(textPacket(text, `ui-load-${w}`, ++seq));
          answered++;
        } catch {
          if (!stop) await Bun.sleep(50);
        }
      }
    });
    try {
      await page.waitForFunction(
        (n) =>
          Number(
            document.querySelector('#view-block [data-chart="instances"]')?.getAttribute("data-instances"),
          ) > n,
        before,
        { timeout: 45_000, polling: 250 },
      );
      const after = Number(await chart.getAttribute("data-instances"));
      expect(after).toBeGreaterThan(before);
      // What the chart's header says is what the chart holds.
      await expect(chart.locator(".reading").textContent()).resolves.toStartWith(String(after));
      expect(answered).toBeGreaterThan(0);
      await page.waitForTimeout(1500);
      await shot(page, "block-under-load");
      await open("#/");
      await page.locator(`[data-block-card="${up.demoBlockId}"][data-instances]`).waitFor();
      await page.waitForTimeout(1500);
      await shot(page, "overview-under-load");
    } finally {
      stop = true;
      await Promise.all(workers);
      client.close();
    }
  }, 60_000);

  test("the page raised no script errors", () => {
    expect(pageErrors).toEqual([]);
  });
});
