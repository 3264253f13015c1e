// The package as an app gets it: `npm pack` gives a tarball that installs with no network in a
// fresh directory, imports, and type-checks; and the shop page's copy of the SDK is the build
// of this source.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { after, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

const run = promisify(execFile);
const PKG = join(dirname(fileURLToPath(import.meta.url)), "..");

describe("package", () => {
  const scratch = mkdtempSync(join(tmpdir(), "linkdrop-sdk-pack-"));
  after(() => rmSync(scratch, { recursive: true, force: true }));

  it("npm pack gives a tarball that installs offline in a fresh directory, imports and type-checks", async () => {
    // --ignore-scripts: the build before the tests made dist/ (prepack would make it again).
    const { stdout } = await run("npm", ["pack", "--json", "--ignore-scripts", "--pack-destination", scratch], { cwd: PKG });
    const [packed] = JSON.parse(stdout);
    assert.equal(packed.name, "@linkdrop/client");
    assert.deepEqual(packed.files.map((f) => f.path).sort(), ["README.md", "dist/index.d.ts", "dist/index.js", "package.json"]);
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
    const asset = join(PKG, "../../services/control/assets/linkdrop-client.js");
    assert.ok(existsSync(asset), `${asset} exists`);
    assert.equal(
      readFileSync(asset, "utf8"),
      readFileSync(join(PKG, "dist/index.js"), "utf8"),
      "run `npm run build` in clients/js and commit services/control/assets/linkdrop-client.js",
    );
  });
});
