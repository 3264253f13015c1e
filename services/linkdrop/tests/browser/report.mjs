// A room's analytics in a real browser (Debian's Chromium, driven by playwright-core),
// against a linkdrop whose room ROOM_ID already holds a whole session (viewers, drops,
// orders, payments): the host signs in to the panel with ADMIN_KEY, opens the room, and
// the Analytics section must show what `GET /v1/rooms/{id}/report` says (fetched here
// through the page with the same key): the headline figures, each drop's funnel figures and
// the advice. Then: hovering (and the arrow keys on) the audience chart shows the value of
// the point under the pointer; both CSV downloads carry the report's CSV header; the
// printable report page shows a table per drop with the same figures and prints without its
// buttons; on a 390×844 phone nothing scrolls sideways and a tap on the chart shows a value.
// Nothing is intercepted: every answer is the server's.
//
// Env: LINKDROP_URL, ADMIN_KEY, ROOM_ID, SCREENSHOTS (a folder; report-panel.png,
// report-phone.png, report-print.png are written there). Prints one JSON line last
// ({"ok":true,"checked":[…]}); on a failed check prints {"ok":false,"error":…} and exits 1.
import assert from "node:assert/strict";
import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";

const env = process.env;
const { LINKDROP_URL: base, ADMIN_KEY: adminKey, ROOM_ID: roomId, SCREENSHOTS: shots } = env;
const STEP_MS = 15_000;
/** The panel reloads its report every 5 s; a figure may take two reloads to show. */
const REFRESH_WAIT_MS = 20_000;
const checked = [];
const pageErrors = [];

/** Figures compared between the report's JSON and the page. */
const HEADLINE = {
  peak_viewers: (r) => r.audience.peak_viewers, unique_viewers: (r) => r.audience.unique_viewers,
  new_viewers: (r) => r.audience.new_viewers, returning_viewers: (r) => r.audience.returning_viewers,
  buyers: (r) => r.buyers.unique, repeat_buyers: (r) => r.buyers.repeat,
};
const PANEL_DROP_FIELDS = ["taps", "reserved", "paid", "expired"];
const REPORT_DROP_FIELDS = ["viewers_at_launch", "countdown_reached", "taps", "reserved", "paid",
                            "expired", "stock", "buyers", "repeat_buyers"];

/** What the page should show, from the report's JSON (numbers as digits). */
function expected(report, dropFields) {
  return {
    headline: Object.fromEntries(Object.entries(HEADLINE).map(([k, f]) => [k, String(f(report))])),
    drops: report.drops.map((d) => ({ drop_id: d.drop_id,
      ...Object.fromEntries(dropFields.map((k) => [k, String(d[k])])) })),
    advice: report.advice.map((a) => a.text),
  };
}

/** What the page shows under `scope` (runs in the page). */
function shown({ scope, dropFields, dropIds }) {
  const root = document.querySelector(scope);
  const digits = (node) => (node ? node.textContent.replace(/[,\s]/g, "") : null);
  return {
    headline: Object.fromEntries([...root.querySelectorAll("[data-figure]")]
      .filter((n) => n.classList.contains("figure"))
      .map((n) => [n.dataset.figure, digits(n.querySelector("b"))])),
    drops: dropIds.map((id) => {
      const card = root.querySelector(`.drop-card[data-drop-id="${CSS.escape(id)}"]`);
      return { drop_id: card ? id : `missing ${id}`, ...Object.fromEntries(dropFields.map((k) =>
        [k, digits(card && card.querySelector(`[data-field="${k}"]`))])) };
    }),
    advice: [...root.querySelectorAll(".advice-text")].map((n) => n.textContent),
  };
}

/** `GET /v1/rooms/{ROOM_ID}/report[query]` from inside the page, with the panel's key. */
async function fetchReport(page, query = "") {
  const answer = await page.evaluate(async ({ roomId, query }) => {
    const key = sessionStorage.getItem("linkdrop-key");
    const r = await fetch(`/v1/rooms/${encodeURIComponent(roomId)}/report${query}`,
                          { headers: { authorization: `Bearer ${key}` } });
    return { status: r.status, type: r.headers.get("content-type") || "", text: await r.text() };
  }, { roomId, query });
  assert.equal(answer.status, 200, `GET /v1/rooms/${roomId}/report${query} answered `
    + `${answer.status}: ${answer.text.slice(0, 300)}`);
  return answer;
}

async function reportJson(page) {
  const answer = await fetchReport(page);
  assert.match(answer.type, /json/, "the report is JSON");
  return JSON.parse(answer.text);
}

/**
 * Checks that what `scope` shows matches the report, fetched now. The page may be showing
 * an older report whose figures have moved since, so on a difference `again()` (the next
 * refresh, or a reload) is awaited and both are compared afresh; three tries.
 */
async function sameFigures(page, scope, dropFields, label, again) {
  let last = null;
  for (let attempt = 0; attempt < 3; attempt++) {
    if (attempt) await again();
    const report = await reportJson(page);
    const want = expected(report, dropFields);
    const got = await page.evaluate(shown, { scope, dropFields, dropIds: report.drops.map((d) => d.drop_id) });
    if (JSON.stringify(got) === JSON.stringify(want)) return report;
    last = { want, got };
  }
  assert.deepEqual(last.got, last.want, `${label} does not show the report's figures`);
  return null;
}

/** Waits for the panel's next reload of the report. */
function nextRefresh(page) {
  return async () => {
    const seen = await page.locator("#analytics").getAttribute("data-generated-at-ms");
    await page.waitForFunction((seen) => document.querySelector("#analytics").dataset.generatedAtMs !== seen,
                               seen, { timeout: REFRESH_WAIT_MS })
      .catch(() => { throw new Error(`the panel did not reload the report within ${REFRESH_WAIT_MS} ms`); });
  };
}

/** Reloads the printable report. */
function reloadReport(page) {
  return async () => {
    await page.reload();
    await reportReady(page);
  };
}

async function reportReady(page) {
  await page.locator('#report[data-state="ready"]').waitFor({ timeout: REFRESH_WAIT_MS })
    .catch(async () => {
      const error = await page.locator("#report-error").textContent().catch(() => "");
      throw new Error(`the printable report did not show within ${REFRESH_WAIT_MS} ms: ${error}`);
    });
}

/** The page is no wider than its viewport (nothing scrolls sideways). */
async function noSideways(page, label) {
  const { scroll, inner } = await page.evaluate(() => ({
    scroll: document.documentElement.scrollWidth, inner: window.innerWidth }));
  assert.ok(scroll <= inner, `${label} scrolls sideways: ${scroll} px wide in a ${inner} px viewport`);
}

async function newPage(browser, options, name) {
  const context = await browser.newContext({ acceptDownloads: true, ...options });
  const page = await context.newPage();
  page.setDefaultTimeout(STEP_MS);
  page.on("pageerror", (e) => pageErrors.push(`${name}: ${e.message}`));
  page.on("console", (m) => {
    if (m.type() === "error" && /Content.Security.Policy/i.test(m.text())) pageErrors.push(`${name}: ${m.text()}`);
  });
  return page;
}

async function signInAndOpenRoom(page) {
  await page.goto(`${base}/panel`);
  await page.getByLabel("API key").fill(adminKey);
  await page.getByRole("button", { name: "Sign in" }).click();
  const row = page.locator("#room-list tr", { hasText: roomId });
  await row.waitFor();
  await row.getByRole("button", { name: "Open" }).click();
  await page.locator("#analytics:not([hidden])").waitFor();
  await page.locator('#analytics[data-state="ready"]').waitFor({ timeout: REFRESH_WAIT_MS })
    .catch(async () => {
      const error = await page.locator("#analytics-error").textContent().catch(() => "");
      throw new Error(`the Analytics section did not show a report within ${REFRESH_WAIT_MS} ms: ${error}`);
    });
}

/** The tooltip's lines, once it shows. */
async function tooltipLines(page, chart) {
  const tip = page.locator(`${chart} .chart-tooltip`);
  await tip.waitFor({ state: "visible" });
  return tip.locator("tspan").allTextContents();
}

/** Checks the tooltip shows the time and the viewers of the point it says it is at. */
async function tooltipMatches(page, chart, label) {
  const lines = await tooltipLines(page, chart);
  const at = Number(await page.locator(chart).getAttribute("data-hover-x"));
  const report = await reportJson(page);
  const point = report.audience.points.find((p) => p.at_ms === at);
  assert.ok(point, `${label}: the tooltip is at ${at}, which is no point of the audience curve`);
  assert.match(lines[0], /^\d\d:\d\d:\d\d$/, `${label}: the tooltip's first line is a time: ${lines}`);
  const value = /^viewers: ([\d,]+)/.exec(lines[1] || "");
  assert.ok(value, `${label}: the tooltip shows a number of viewers: ${JSON.stringify(lines)}`);
  assert.equal(Number(value[1].replace(/,/g, "")), point.viewers,
               `${label}: the tooltip shows the viewers of the point at ${at}`);
  return { at, viewers: point.viewers };
}

async function downloadFirstLine(page, button) {
  const [download] = await Promise.all([page.waitForEvent("download"),
                                        page.getByRole("button", { name: button }).first().click()]);
  assert.equal(await download.failure(), null, `${button}: the download failed`);
  const text = readFileSync(await download.path(), "utf8");
  return { name: download.suggestedFilename(), text,
           first: text.replace(/^\uFEFF/, "").split(/\r?\n/)[0] };
}

async function run() {
  for (const [name, value] of Object.entries({ LINKDROP_URL: base, ADMIN_KEY: adminKey,
                                               ROOM_ID: roomId, SCREENSHOTS: shots })) {
    assert.ok(value, `${name} is not set`);
  }
  mkdirSync(shots, { recursive: true });
  const browser = await chromium.launch({
    executablePath: env.CHROMIUM || "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  try {
    // --- the panel, on a desktop -----------------------------------------------------------
    const panel = await newPage(browser, { viewport: { width: 1280, height: 900 } }, "panel");
    await signInAndOpenRoom(panel);
    const report = await sameFigures(panel, "#analytics", PANEL_DROP_FIELDS, "the panel's Analytics section",
                                     nextRefresh(panel));
    checked.push("panel: peak, unique, new, returning viewers, buyers, repeat buyers",
                 `panel: taps, reserved, paid, expired of ${report.drops.length} drop(s)`,
                 `panel: ${report.advice.length} advice text(s)`);
    for (const d of report.drops) {
      assert.equal(await panel.locator(`#analytics .drop-card[data-drop-id="${d.drop_id}"] svg.funnel`).count(), 1,
                   `drop ${d.drop_id} has a funnel chart`);
    }
    for (const a of report.advice) {
      const item = panel.locator("#analytics .advice-item", { hasText: a.text });
      for (const k of Object.keys(a.figures || {})) {
        assert.equal(await item.locator(`[data-figure="${k}"]`).count(), 1,
                     `advice ${a.code} shows the figure ${k}`);
      }
    }
    checked.push("panel: a funnel per drop, the figures behind each advice");
    await noSideways(panel, "the panel at 1280 px");

    // The audience chart: a value under the pointer, and with the keyboard.
    const chart = "#audience-chart";
    await panel.locator(chart).scrollIntoViewIfNeeded();
    const box = await panel.locator(`${chart} svg`).boundingBox();
    await panel.mouse.move(box.x + box.width * 0.6, box.y + box.height / 2);
    const hovered = await tooltipMatches(panel, chart, "hovering the audience chart");
    await panel.locator(`${chart} svg`).focus();
    await panel.keyboard.press("Home");
    await panel.waitForFunction(([c, x]) => document.querySelector(c).dataset.hoverX === String(x),
                                [chart, report.audience.points[0]?.at_ms], { timeout: STEP_MS });
    await tooltipMatches(panel, chart, "the Home key on the audience chart");
    checked.push("panel: audience chart tooltip on hover and on the Home key");
    await panel.mouse.move(box.x + box.width * 0.6, box.y + box.height / 2);
    await tooltipLines(panel, chart);
    await panel.screenshot({ path: join(shots, "report-panel.png"), fullPage: true });

    // The CSV downloads carry the report's own CSV headers.
    const drops = await downloadFirstLine(panel, "Download CSV (drops)");
    const dropsCsv = await fetchReport(panel, "?format=csv");
    assert.match(dropsCsv.type, /^text\/csv/, "the drops CSV is text/csv");
    assert.equal(drops.first, dropsCsv.text.replace(/^\uFEFF/, "").split(/\r?\n/)[0],
                 "the downloaded drops CSV starts with the report's CSV header");
    assert.match(drops.first, /drop/i, `the drops CSV's first line is a header: ${drops.first}`);
    assert.match(drops.first, /taps/i, `the drops CSV's header names the taps: ${drops.first}`);
    assert.ok(report.drops.every((d) => !drops.first.includes(d.drop_id)),
              `the drops CSV's first line is a header, not a row: ${drops.first}`);
    assert.match(drops.name, /\.csv$/, `the download is named ${drops.name}`);
    const audience = await downloadFirstLine(panel, "Download CSV (audience)");
    const audienceCsv = await fetchReport(panel, "?format=csv&table=audience");
    assert.equal(audience.first, audienceCsv.text.replace(/^\uFEFF/, "").split(/\r?\n/)[0],
                 "the downloaded audience CSV starts with the report's CSV header");
    assert.match(audience.first, /viewers/i, `the audience CSV's header names the viewers: ${audience.first}`);
    checked.push(`panel: Download CSV (drops) header "${drops.first}"`,
                 `panel: Download CSV (audience) header "${audience.first}"`);

    // --- the printable report ---------------------------------------------------------------
    await panel.getByRole("link", { name: "Printable report" }).click();
    await panel.waitForURL(/\/report\?room=/);
    await reportReady(panel);
    const printed = await sameFigures(panel, "#report", REPORT_DROP_FIELDS, "the printable report",
                                      reloadReport(panel));
    await panel.getByRole("heading", { name: `Report: ${printed.room.title}` }).waitFor();
    for (const d of printed.drops) {
      const card = panel.locator(`#report .drop-card[data-drop-id="${d.drop_id}"]`);
      assert.equal(await card.locator("table.drop-figures").count(), 1, `drop ${d.drop_id} has a table`);
      const cell = async (k) => (await card.locator(`[data-field="${k}"]`).textContent()).trim();
      for (const [k, empty] of [["overall", "–"], ["sell_out_ms", "not sold out"],
                                ["launched_at_ms", "–"], ["opens_at_ms", "–"],
                                ["sold_out_at_ms", "–"], ["closed_at_ms", "–"]]) {
        const value = k === "overall" ? d.rates.overall : d[k];
        const text = await cell(k);
        assert.equal(text === empty, value == null,
                     `the report's ${k} of ${d.drop_id} shows "${text}" for ${value}`);
      }
      const retention = d.retention || {};
      for (const [k, v] of [["viewers_1m", retention.viewers_1m], ["viewers_5m", retention.viewers_5m]]) {
        const text = (await cell(k)).replace(/,/g, "");
        assert.equal(text, v == null ? "not yet" : String(v), `the report's ${k} of ${d.drop_id}`);
      }
    }
    checked.push(`report page: a table per drop (${REPORT_DROP_FIELDS.join(", ")}, rates, `
                 + "sell-out, retention, times), headline figures, advice");
    await panel.evaluate(() => { window.printCalls = 0; window.print = () => { window.printCalls += 1; }; });
    await panel.getByRole("button", { name: "Print" }).click();
    await panel.waitForFunction(() => window.printCalls === 1);
    await panel.emulateMedia({ media: "print" });
    assert.equal(await panel.getByRole("button", { name: "Print" }).isVisible(), false,
                 "the Print button is not printed");
    assert.equal(await panel.locator("#report button:visible").count(), 0, "no button is printed");
    await noSideways(panel, "the printed report");
    await panel.screenshot({ path: join(shots, "report-print.png"), fullPage: true });
    await panel.emulateMedia({ media: "screen" });
    checked.push("report page: Print calls window.print(), print media shows no buttons");

    // --- a phone ---------------------------------------------------------------------------
    const phone = await newPage(browser, { viewport: { width: 390, height: 844 }, isMobile: true,
                                           hasTouch: true }, "phone");
    await signInAndOpenRoom(phone);
    await sameFigures(phone, "#analytics", PANEL_DROP_FIELDS, "the Analytics section on a phone",
                      nextRefresh(phone));
    await noSideways(phone, "the panel on a 390 px phone");
    const phoneChart = await phone.locator(`${chart} svg`).boundingBox();
    assert.ok(phoneChart.width <= 390, `the audience chart is ${phoneChart.width} px wide on a phone`);
    await phone.locator(`${chart} svg`).scrollIntoViewIfNeeded();
    await phone.locator(`${chart} svg`).tap({ position: { x: phoneChart.width * 0.5, y: phoneChart.height / 2 } });
    await tooltipMatches(phone, chart, "a tap on the audience chart");
    await phone.locator("#analytics").screenshot({ path: join(shots, "report-phone.png") });
    await phone.goto(`${base}/report?room=${encodeURIComponent(roomId)}`);
    await reportReady(phone);
    await noSideways(phone, "the printable report on a 390 px phone");
    checked.push("phone 390×844: no sideways scrolling (panel, report page), chart shrinks, tap shows a value");

    assert.deepEqual(pageErrors, [], "no script error or Content-Security-Policy violation");
    checked.push("no page errors, no CSP violations");
    return { ok: true, room_id: roomId, generated_at_ms: report.generated_at_ms,
             drops: report.drops.length, advice: report.advice.length,
             hovered, checked, screenshots: shots };
  } finally {
    await browser.close();
  }
}

try {
  console.log(JSON.stringify(await run()));
} catch (e) {
  console.error(e && e.stack ? e.stack : e);
  console.log(JSON.stringify({ ok: false, error: e && e.message ? e.message : String(e), checked,
                               page_errors: pageErrors }));
  process.exitCode = 1;
}
