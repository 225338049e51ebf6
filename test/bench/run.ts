/**
 * `npm run bench`: runs every bench script in this folder (all `*.ts` but this one) in name order,
 * each in its own `bun` process, and exits non-zero if any of them failed.
 */
import { readdirSync } from "node:fs";
import { basename, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = fileURLToPath(new URL(".", import.meta.url));
const self = basename(fileURLToPath(import.meta.url));
const scripts = readdirSync(here)
  .filter((f) => f.endsWith(".ts") && f !== self)
  .sort();

let failed = 0;
for (const script of scripts) {
  console.log(`\n=== bench ${script} ===`);
  const child = Bun.spawn([process.execPath, "run", join(here, script)], {
    stdin: "inherit",
    stdout: "inherit",
    stderr: "inherit",
  });
  const code = await child.exited;
  if (code !== 0) {
    console.error(`bench ${script} exited with ${code}`);
    failed++;
  }
}
if (failed > 0) process.exit(1);
