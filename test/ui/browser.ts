/**
 * Debian's chromium for the dashboard tests (`/usr/bin/chromium`, installed by `.ci/run`), launched by
 * playwright-core with the flags this machine needs (no sandbox as root; no background networking,
 * whose connections a closed network refuses), and screenshots saved as test artifacts.
 */
import { existsSync, mkdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { type Browser, chromium, type Page } from "playwright-core";

export const CHROMIUM = "/usr/bin/chromium";
export const ARTIFACTS = fileURLToPath(new URL("../../test-artifacts/ui/", import.meta.url));

/** Whether chromium is there; warns (naming the test file) when it is not, so the skip is seen. */
export const hasChromium = (testFile: string): boolean => {
  const there = existsSync(CHROMIUM);
  if (!there) console.warn(`${testFile} skipped: no ${CHROMIUM} (.ci/run installs Debian's chromium)`);
  return there;
};

export const launchChromium = (): Promise<Browser> =>
  chromium.launch({
    executablePath: CHROMIUM,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });

/** A full-page screenshot to test-artifacts/ui/<name>.png. */
export const shot = async (page: Page, name: string): Promise<void> => {
  mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: `${ARTIFACTS}${name}.png`, fullPage: true });
};
