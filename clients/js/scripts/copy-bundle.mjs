// `npm run build`: joins the compiled SDK (dist/*.js, one module per file of src/) into one ES
// module with no imports (scripts/bundle.mjs) and writes it to the shop page's assets, where
// the linkdrop binary embeds it (include_str! in services/control/src/panel.rs) and serves it
// at /assets/linkdrop-client.js. Commit it: the Rust build needs no Node.
// test/package.test.mjs fails while it is stale.
import { writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { bundle } from "./bundle.mjs";

const dist = fileURLToPath(new URL("../dist", import.meta.url));
const asset = fileURLToPath(new URL("../../../services/control/assets/linkdrop-client.js", import.meta.url));
const code = bundle(dist);
writeFileSync(asset, code);
console.log(`wrote ${asset} (${code.length} bytes)`);
