// `npm run build`: copies the compiled SDK (dist/index.js, one ES module with no imports) to
// the shop page's assets, where the linkdrop binary embeds it (include_str! in
// services/control/src/panel.rs) and serves it at /assets/linkdrop-client.js. Commit the copy:
// the Rust build needs no Node. test/package.test.mjs fails while the copy is stale.
import { readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

const built = fileURLToPath(new URL("../dist/index.js", import.meta.url));
const asset = fileURLToPath(new URL("../../../services/control/assets/linkdrop-client.js", import.meta.url));
const code = readFileSync(built, "utf8");
writeFileSync(asset, code);
console.log(`wrote ${asset} (${code.length} bytes)`);
