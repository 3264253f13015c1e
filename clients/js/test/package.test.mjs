// The package as an app gets it: `npm pack` gives a tarball that installs with no network in a
// fresh directory, imports, and type-checks; and the shop page's copy of the SDK is the build
// of this source, one file that exports what the package does.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { copyFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { after, describe, it } from "node:test";
import { fileURLToPath, pathToFileURL } from "node:url";
import { promisify } from "node:util";
import { bundle } from "../scripts/bundle.mjs";

const run = promisify(execFile);
const PKG = join(dirname(fileURLToPath(import.meta.url)), "..");
const ASSET = join(PKG, "../../services/control/assets/linkdrop-client.js");

describe("package", () => {
  const scratch = mkdtempSync(join(tmpdir(), "linkdrop-sdk-pack-"));
  after(() => rmSync(scratch, { recursive: true, force: true }));

  it("npm pack gives a tarball that installs offline in a fresh directory, imports and type-checks", async () => {
    // --ignore-scripts: the build before the tests made dist/ (prepack would make it again).
    const { stdout } = await run("npm", ["pack", "--json", "--ignore-scripts", "--pack-destination", scratch], { cwd: PKG });
    const [packed] = JSON.parse(stdout);
    assert.equal(packed.name, "@linkdrop/client");
    // Every module of src/, compiled, with its declarations; nothing else.
    const modules = readdirSync(join(PKG, "src")).filter((f) => f.endsWith(".ts")).map((f) => f.slice(0, -3));
    const expected = ["README.md", "package.json", ...modules.flatMap((m) => [`dist/${m}.d.ts`, `dist/${m}.js`])];
    assert.deepEqual(packed.files.map((f) => f.path).sort(), expected.sort());
    const tarball = join(scratch, packed.filename);

    const app = join(scratch, "app");
    await run("mkdir", ["-p", app]);
    writeFileSync(join(app, "package.json"), JSON.stringify({ name: "shop-app", private: true, type: "module" }));
    // --offline: the package has no dependencies, so nothing may be fetched.
    await run("npm", ["install", "--offline", "--no-audit", "--no-fund", "--ignore-scripts", tarball], { cwd: app });
    const installed = JSON.parse(readFileSync(join(app, "node_modules/@linkdrop/client/package.json"), "utf8"));
    assert.equal(installed.version, packed.version);
    assert.equal(Object.keys(installed.dependencies ?? {}).length, 0, "no runtime dependencies");

    writeFileSync(join(app, "main.mjs"), `
      import { LinkdropClient, ServerClock, LinkdropError, newIdempotencyKey } from "@linkdrop/client";
      const client = new LinkdropClient({ url: "http://127.0.0.1:1", token: "t" });
      let refused = "";
      try { client.join("room_x"); } catch (e) { refused = e.message; }
      console.log(JSON.stringify({ clock: client.clock instanceof ServerClock, error: typeof LinkdropError,
                                   key: newIdempotencyKey().length, refused }));
    `);
    const { stdout: out } = await run(process.execPath, ["main.mjs"], { cwd: app });
    const seen = JSON.parse(out);
    assert.deepEqual([seen.clock, seen.error, seen.key], [true, "function", 36]);
    assert.match(seen.refused, /no WebSocket here: pass \{ WebSocket \}/, "Node 20 without a WebSocket is told what to do");

    // The declarations ship and describe the events and results.
    writeFileSync(join(app, "consumer.ts"), `
      import { LinkdropClient, type OrderResult, type DropCountdownEvent } from "@linkdrop/client";
      const client = new LinkdropClient({ url: "https://live.example", token: async () => "jwt", WebSocket });
      const room = client.join("room_1", { since: 3 });
      room.on("drop.countdown", (e: DropCountdownEvent) => {
        const opens: number = e.opens_at_ms;
        room.revealAt(opens, () => undefined);
      });
      room.on("drop.stock", (e) => { const left: number = e.stock_left; void left; });
      async function buy(): Promise<string> {
        const r: OrderResult = await client.order("drp_1", 1);
        switch (r.outcome) {
          case "reserved": return r.order.order_id;
          case "not_open": return String(r.opensAtMs);
          default: return r.outcome;
        }
      }
      void buy;
      // @ts-expect-error: not an event type
      room.on("drop.nope", () => undefined);
    `);
    writeFileSync(join(app, "tsconfig.json"), JSON.stringify({
      compilerOptions: { target: "ES2022", module: "NodeNext", moduleResolution: "NodeNext", strict: true, noEmit: true,
                         lib: ["ES2022", "DOM"], types: [] },
      files: ["consumer.ts"],
    }));
    await run(process.execPath, [join(PKG, "node_modules/typescript/bin/tsc"), "-p", "tsconfig.json"], { cwd: app });
  });

  it("the shop page's copy of the SDK is the build of this source", () => {
    assert.ok(existsSync(ASSET), `${ASSET} exists`);
    assert.equal(
      readFileSync(ASSET, "utf8"),
      bundle(join(PKG, "dist")),
      "run `npm run build` in clients/js and commit services/control/assets/linkdrop-client.js",
    );
  });

  it("the shop page's copy is one module with no imports that exports what the package does", async () => {
    const code = readFileSync(ASSET, "utf8");
    assert.doesNotMatch(code, /^\s*import\b/m, "no import: the shop page loads this one file");
    const copy = join(scratch, "linkdrop-client.mjs");
    copyFileSync(ASSET, copy);
    const single = await import(pathToFileURL(copy).href);
    const pkg = await import(pathToFileURL(join(PKG, "dist/index.js")).href);
    assert.deepEqual(Object.keys(single).sort(), Object.keys(pkg).sort());
    for (const name of Object.keys(pkg)) assert.equal(typeof single[name], typeof pkg[name], name);
    const client = new single.LinkdropClient({ url: "http://127.0.0.1:1", token: "t" });
    assert.ok(client.clock instanceof single.ServerClock);
    assert.equal(single.newIdempotencyKey().length, 36);
    assert.equal(single.backoffWindow(3, { baseMs: 1000, maxMs: 30_000 }), 4000);
  });
});
