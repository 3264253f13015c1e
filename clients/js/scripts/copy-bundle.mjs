// Copies the compiled SDK (dist/index.js, one ES module with no imports) to the shop page's
// assets, where the linkdrop binary embeds it (services/control/src/panel.rs, include_str!)
// and serves it at /assets/linkdrop-client.js. With --check, only compares: exits 1 when the
// committed copy is not the build of the current source (run `npm run build` and commit).
import { readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

const built = fileURLToPath(new URL("../dist/index.js", import.meta.url));
const asset = fileURLToPath(new URL("../../../services/control/assets/linkdrop-client.js", import.meta.url));
const code = readFileSync(built, "utf8");
if (process.argv.includes("--check")) {
  let committed = "";
  try {
    committed = readFileSync(asset, "utf8");
  } catch {}
  if (committed !== code) {
    console.error(`${asset} is not the build of clients/js/src: run \`npm run build\` in clients/js and commit it`);
    process.exit(1);
  }
  console.log(`${asset} is up to date`);
} else {
  writeFileSync(asset, code);
  console.log(`wrote ${asset} (${code.length} bytes)`);
}
