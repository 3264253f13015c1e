// One sale in a real browser (Debian's Chromium, driven by playwright-core): the host signs
// in to the panel, creates a room and a one-unit drop (a bad value first, to see the field's
// message), two shoppers join on phone-sized pages, the host launches with a 3 s countdown,
// both pages reveal the buy button at opens_at_ms, one buys (reserved), the other finds it
// sold out, and the dashboard shows the sale. Prints one JSON line of what it saw; exits
// non-zero with the reason when a step fails. Run by services/linkdrop/tests/browser.rs.
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";

const { LINKDROP_URL: base, ADMIN_KEY: adminKey, TOKEN_A: tokenA, TOKEN_B: tokenB,
        SCREENSHOTS: shots } = process.env;
const STEP_MS = 15_000;

mkdirSync(shots, { recursive: true });
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
try {
  const panel = await (await browser.newContext({ viewport: { width: 1280, height: 900 } })).newPage();
  panel.setDefaultTimeout(STEP_MS);
  const pageErrors = [];
  panel.on("pageerror", (e) => pageErrors.push(`panel: ${e.message}`));

  await panel.goto(`${base}/panel`);
  await panel.getByLabel("API key").fill("not-the-key-0123456789");
  await panel.getByRole("button", { name: "Sign in" }).click();
  await panel.getByText("That key was not accepted.").waitFor();
  await panel.getByLabel("API key").fill(adminKey);
  await panel.getByRole("button", { name: "Sign in" }).click();

  await panel.getByLabel("Title", { exact: true }).first().fill("Evening live");
  await panel.getByLabel("Merchant id (admin key only)").fill("m_browser");
  await panel.getByRole("button", { name: "Create room" }).click();
  await panel.locator("#room:not([hidden])").waitFor();
  const roomId = await panel.evaluate(() => document.body.dataset.roomId);
  assert.match(roomId, /^room_/);

  const drop = panel.locator("#drop-form");
  await drop.getByLabel("Title").fill("Silk scarf");
  await drop.getByLabel("Stock").fill("0");
  await drop.getByRole("button", { name: "Create drop" }).click();
  const stockError = panel.locator("#drop-stock-error");
  await stockError.filter({ hasText: "at least 1" }).waitFor();
  assert.equal(await drop.getByLabel("Stock").getAttribute("aria-invalid"), "true");
  await drop.getByLabel("Stock").fill("1");
  await drop.getByRole("button", { name: "Create drop" }).click();
  await panel.locator("#drop-list tr").first().waitFor();
  await panel.locator("#dashboard:not([hidden])").waitFor();

  // Two shoppers on phone-sized pages, joined before the launch.
  const shoppers = [];
  for (const [name, token] of [["a", tokenA], ["b", tokenB]]) {
    const context = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true,
                                               hasTouch: true });
    const page = await context.newPage();
    page.setDefaultTimeout(STEP_MS);
    page.on("pageerror", (e) => pageErrors.push(`shopper ${name}: ${e.message}`));
    await page.goto(`${base}/shop?room=${roomId}&token=${token}`);
    await page.getByText("Connected").waitFor();
    shoppers.push({ name, page });
  }

  await panel.locator("#drop-list select").first().selectOption("3");
  await panel.getByRole("button", { name: "3, 2, 1, 上链接" }).click();
  await panel.waitForFunction(() => document.body.dataset.opensAtMs);
  const opensAtMs = Number(await panel.evaluate(() => document.body.dataset.opensAtMs));
  await panel.getByText(/Opens in \d/).waitFor();
  await panel.screenshot({ path: join(shots, "panel-countdown.png") });

  // Before opens_at_ms no page shows the button; then both do.
  // The button's visibility and the clock are read together in the page, so that a slow
  // machine reaching the opening meanwhile is not taken for an early reveal.
  for (const { page } of shoppers) {
    await page.getByText(/^\d+\.\d s$/).waitFor();
    const [shown, atMs] = await page.evaluate(() => {
      const buy = [...document.querySelectorAll("button")]
        .find((b) => b.textContent.trim() === "Buy now");
      return [Boolean(buy && buy.checkVisibility()), Date.now()];
    });
    if (atMs < opensAtMs) assert.equal(shown, false, `Buy now shown at ${atMs}, before ${opensAtMs}`);
  }
  await shoppers[0].page.screenshot({ path: join(shots, "shop-countdown.png") });
  const revealed = [];
  for (const { page } of shoppers) {
    await page.getByRole("button", { name: "Buy now" }).waitFor({ state: "visible" });
    revealed.push(Number(await page.evaluate(() => document.body.dataset.revealedAtWallMs)));
  }
  for (const at of revealed) assert.ok(at >= opensAtMs, `revealed at ${at}, before opens_at_ms ${opensAtMs}`);
  const apart = Math.abs(revealed[0] - revealed[1]);
  assert.ok(apart <= 100, `the two pages revealed ${apart} ms apart`);

  const [a, b] = shoppers.map((s) => s.page);
  await a.getByRole("button", { name: "Buy now" }).click();
  await a.getByText(/^Reserved!/).waitFor();
  await a.screenshot({ path: join(shots, "shop-reserved.png") });
  await b.getByRole("button", { name: "Buy now" }).click();
  await b.getByText("Sold out.").waitFor();
  await b.screenshot({ path: join(shots, "shop-sold-out.png") });

  // The dashboard shows the sale.
  await panel.locator("#fig-stock-left", { hasText: /^0$/ }).waitFor();
  await panel.locator("#fig-reserved", { hasText: /^1$/ }).waitFor();
  await panel.locator("#fig-sellout", { hasText: / s$/ }).waitFor();
  await panel.screenshot({ path: join(shots, "panel-sold.png"), fullPage: true });

  // Keyboard only: the pay button is reachable and works.
  await a.getByRole("button", { name: "Pay" }).focus();
  await a.keyboard.press("Enter");
  await a.getByText("Paid. Thank you!").waitFor();
  await panel.locator("#fig-paid", { hasText: /^1$/ }).waitFor();

  assert.deepEqual(pageErrors, []);
  console.log(JSON.stringify({ room_id: roomId, opens_at_ms: opensAtMs, revealed_at_ms: revealed,
                               apart_ms: apart, screenshots: shots }));
} finally {
  await browser.close();
}
