// A room's report (`GET /v1/rooms/{id}/report`) for people: the figures, the audience curve,
// a card per drop (funnel and table) and the advice. Shared by the panel's Analytics section
// and the printable report page.
import { el } from "/assets/common.js";
import { FunnelChart, formatClock, formatNumber } from "/assets/charts.js";

/** How often the panel reloads the report while a room is open. */
export const REPORT_REFRESH_MS = 5000;

/** Fetches the report (JSON), or one of its CSV tables, with the key as a Bearer token. */
export function reportUrl(roomId, params = {}) {
  const q = new URLSearchParams(params).toString();
  return `/v1/rooms/${encodeURIComponent(roomId)}/report${q ? `?${q}` : ""}`;
}

/** A ratio as a percentage with at most one decimal (`0.111` → `11.1 %`); `–` for null. */
export function percent(ratio) {
  if (ratio == null) return "–";
  return `${Number((ratio * 100).toFixed(1)).toLocaleString("en-US")} %`;
}

/** Milliseconds as a duration: `0.40 s`, `12.5 s`, `3 min 20 s`, `1 h 5 min`. */
export function duration(ms) {
  if (ms == null) return "–";
  if (ms < 10_000) return `${(ms / 1000).toFixed(2)} s`;
  if (ms < 120_000) return `${(ms / 1000).toFixed(1)} s`;
  const s = Math.round(ms / 1000);
  if (s < 3600) return s % 60 ? `${Math.floor(s / 60)} min ${s % 60} s` : `${s / 60} min`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

/** Epoch ms → `YYYY-MM-DD HH:MM:SS` in local time; `–` for null. */
export function dateTime(ms) {
  if (ms == null) return "–";
  const d = new Date(ms);
  const day = `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, "0")}-${String(d.getDate()).padStart(2, "0")}`;
  return `${day} ${formatClock(ms)}`;
}

const share = (part, whole) => (whole ? part / whole : null);

/** The stream's headline figures: [{key, label, value, note}]. */
export function headline(report) {
  const a = report.audience;
  const b = report.buyers;
  return [
    { key: "peak_viewers", label: "peak viewers", value: a.peak_viewers,
      note: a.peak_at_ms == null ? "" : `at ${formatClock(a.peak_at_ms)}` },
    { key: "unique_viewers", label: "unique viewers", value: a.unique_viewers, note: "" },
    { key: "new_viewers", label: "new viewers", value: a.new_viewers,
      note: `${percent(share(a.new_viewers, a.unique_viewers))} of unique` },
    { key: "returning_viewers", label: "returning viewers", value: a.returning_viewers,
      note: `${percent(share(a.returning_viewers, a.unique_viewers))} of unique` },
    { key: "buyers", label: "buyers", value: b.unique, note: "" },
    { key: "repeat_buyers", label: "repeat buyers", value: b.repeat,
      note: `${percent(share(b.repeat, b.unique))} of buyers` },
  ];
}

/** Fills `container` with one `.figure` a headline figure. */
export function renderHeadline(container, report) {
  container.replaceChildren(...headline(report).map((f) =>
    el("div", { className: "figure", dataset: { figure: f.key } },
      el("b", {}, formatNumber(f.value)), el("span", {}, f.label),
      ...(f.note ? [el("small", {}, f.note)] : []))));
}

/** The audience curve for LineChart: viewers per step, each launched drop marked. */
export function audienceData(report) {
  return {
    series: [{ name: "viewers", area: true, points: report.audience.points.map((p) => ({
      x: p.at_ms, y: p.viewers, detail: `joins ${formatNumber(p.joins)} · leaves ${formatNumber(p.leaves)}` })) }],
    markers: report.drops.filter((d) => d.launched_at_ms != null)
      .map((d) => ({ x: d.launched_at_ms, label: d.title })),
    xRange: [report.from_ms, report.until_ms],
  };
}

/** A drop's figures in table order: [{key, label, value (text), note}]. */
export function dropFigures(drop, { times = false } = {}) {
  const r = drop.rates || {};
  const t = drop.retention || {};
  const rows = [
    { key: "viewers_at_launch", label: "Viewers at launch", value: formatNumber(drop.viewers_at_launch), note: "" },
    { key: "countdown_reached", label: "Reached by the countdown", value: formatNumber(drop.countdown_reached), note: "" },
    { key: "taps", label: "Taps (every order request)", value: formatNumber(drop.taps),
      note: r.tap == null ? "" : `${r.tap.toFixed(2)} per viewer` },
    { key: "reserved", label: "Reserved", value: formatNumber(drop.reserved),
      note: r.reserve == null ? "" : `${percent(r.reserve)} of taps` },
    { key: "paid", label: "Paid", value: formatNumber(drop.paid),
      note: r.pay == null ? "" : `${percent(r.pay)} of reserved` },
    { key: "expired", label: "Expired unpaid", value: formatNumber(drop.expired), note: "" },
    { key: "overall", label: "Overall conversion", value: percent(r.overall),
      note: "paid per viewer at launch" },
    { key: "stock", label: "Stock", value: formatNumber(drop.stock), note: "" },
    { key: "demand_ratio", label: "Demand (taps per unit)",
      value: drop.demand_ratio == null ? "–" : drop.demand_ratio.toFixed(1), note: "" },
    { key: "sell_out_ms", label: "Time to sell out",
      value: drop.sell_out_ms == null ? "not sold out" : duration(drop.sell_out_ms), note: "after opening" },
    { key: "buyers", label: "Buyers", value: formatNumber(drop.buyers), note: "" },
    { key: "repeat_buyers", label: "Repeat buyers", value: formatNumber(drop.repeat_buyers), note: "" },
    { key: "viewers_1m", label: "Viewers 1 min after launch",
      value: t.viewers_1m == null ? "not yet" : formatNumber(t.viewers_1m),
      note: t.after_1m == null ? "" : `${percent(t.after_1m)} stayed` },
    { key: "viewers_5m", label: "Viewers 5 min after launch",
      value: t.viewers_5m == null ? "not yet" : formatNumber(t.viewers_5m),
      note: t.after_5m == null ? "" : `${percent(t.after_5m)} stayed` },
  ];
  if (times) {
    rows.push(
      { key: "launched_at_ms", label: "Launched", value: dateTime(drop.launched_at_ms), note: "" },
      { key: "opens_at_ms", label: "Opened", value: dateTime(drop.opens_at_ms), note: "" },
      { key: "sold_out_at_ms", label: "Sold out", value: dateTime(drop.sold_out_at_ms), note: "" },
      { key: "closed_at_ms", label: "Closed", value: dateTime(drop.closed_at_ms), note: "" });
  }
  return rows;
}

/** A drop's figures as a two-column table in a wrapper that scrolls on its own if need be. */
export function dropTable(drop, options) {
  return el("div", { className: "table-wrap" },
    el("table", { className: "drop-figures" },
      el("caption", { className: "visually-hidden" }, `${drop.title}: figures`),
      el("thead", {}, el("tr", {}, el("th", { scope: "col" }, "Figure"),
                          el("th", { scope: "col" }, "Value"), el("th", { scope: "col" }, "Note"))),
      el("tbody", {}, ...dropFigures(drop, options).map((f) => el("tr", {},
        el("th", { scope: "row" }, f.label),
        el("td", { className: "num", dataset: { field: f.key } }, f.value),
        el("td", { className: "note" }, f.note))))));
}

/** The funnel's steps: viewers at launch → taps → reserved → paid, with the rates between. */
export function funnelSteps(drop) {
  const r = drop.rates || {};
  return [
    { label: "Viewers at launch", value: drop.viewers_at_launch },
    { label: "Taps", value: drop.taps, note: r.tap == null ? "" : `${r.tap.toFixed(2)} per viewer` },
    { label: "Reserved", value: drop.reserved, note: r.reserve == null ? "" : `${percent(r.reserve)} of taps` },
    { label: "Paid", value: drop.paid, note: r.pay == null ? "" : `${percent(r.pay)} of reserved` },
  ];
}

/**
 * A card for one drop: title, what it was, when, the funnel and the table. Returns the node
 * and its chart (to `destroy()` when the card is replaced).
 */
export function dropCard(drop, { times = false, headingLevel = "h3" } = {}) {
  const funnelBox = el("div", { className: "funnel-box" });
  const chart = new FunnelChart(funnelBox, { title: `${drop.title}: from viewers to paid orders` })
    .update(funnelSteps(drop));
  const when = [];
  if (drop.launched_at_ms != null) when.push(`launched ${formatClock(drop.launched_at_ms)}`);
  if (drop.opens_at_ms != null) when.push(`opened ${formatClock(drop.opens_at_ms)}`);
  if (drop.sold_out_at_ms != null) when.push(`sold out ${formatClock(drop.sold_out_at_ms)}`);
  if (drop.closed_at_ms != null) when.push(`closed ${formatClock(drop.closed_at_ms)}`);
  const node = el("article", { className: "drop-card", dataset: { dropId: drop.drop_id } },
    el(headingLevel, {}, drop.title),
    el("p", { className: "muted" },
      `${drop.sku} · ${drop.policy === "lottery" ? "lottery" : "first come, first served"} · `
      + `${formatNumber(drop.stock)} in stock · pay within ${duration((drop.pay_within_s ?? 0) * 1000)}`
      + (when.length ? ` · ${when.join(", ")}` : " · not launched")),
    el("div", { className: "drop-grid" },
      el("figure", {}, funnelBox,
        el("figcaption", {}, drop.rates?.overall == null
          ? "Overall conversion: – (no viewers at launch)"
          : `Overall conversion: ${percent(drop.rates.overall)} of viewers at launch paid`)),
      dropTable(drop, { times })));
  return { node, chart };
}

const FIGURE_NAMES = { sell_out_ms: "time to sell out (ms)", demand_ratio: "taps per unit" };

function figureName(key) {
  if (FIGURE_NAMES[key]) return FIGURE_NAMES[key];
  const ms = key.endsWith("_ms");
  const words = (ms ? key.slice(0, -3) : key).replaceAll("_", " ");
  return ms ? `${words} (ms)` : words;
}

/** Fills a list with the advice, each with the figures behind it. */
export function renderAdvice(list, report) {
  const titles = new Map(report.drops.map((d) => [d.drop_id, d.title]));
  if (!report.advice.length) {
    list.replaceChildren(el("li", { className: "muted" }, "No advice yet."));
    return;
  }
  list.replaceChildren(...report.advice.map((a) => {
    const figures = Object.entries(a.figures || {});
    return el("li", { className: "advice-item", dataset: { code: a.code, dropId: a.drop_id ?? "" } },
      ...(a.drop_id ? [el("span", { className: "advice-drop" }, titles.get(a.drop_id) ?? a.drop_id)] : []),
      el("p", { className: "advice-text" }, a.text),
      ...(figures.length ? [el("dl", { className: "advice-figures" }, ...figures.map(([k, v]) =>
        el("div", { dataset: { figure: k } }, el("dt", {}, figureName(k)),
           el("dd", {}, typeof v === "number" ? formatNumber(v) : String(v)))))] : []));
  }));
}

/** A report's content without the time it was made, to tell whether anything changed. */
export function fingerprint(report) {
  return JSON.stringify({ ...report, generated_at_ms: undefined });
}

/**
 * Downloads one of the report's CSV tables (`drops` or `audience`): fetched with the key
 * (not a cookie, so a plain link would not do) and saved through a Blob link.
 */
export async function downloadCsv(roomId, key, table) {
  const params = table === "drops" ? { format: "csv" } : { format: "csv", table };
  let response;
  try {
    response = await fetch(reportUrl(roomId, params), { headers: { authorization: `Bearer ${key}` } });
  } catch (e) {
    throw new Error(`network error: ${e.message}`);
  }
  if (!response.ok) {
    let detail = `HTTP ${response.status}`;
    try { const body = await response.json(); detail = body.detail || body.title || detail; } catch { /* text */ }
    throw new Error(detail);
  }
  const blob = new Blob([await response.arrayBuffer()], { type: "text/csv;charset=utf-8" });
  const url = URL.createObjectURL(blob);
  const link = el("a", { href: url, download: `${roomId}-${table}.csv`, hidden: true });
  document.body.append(link);
  link.click();
  link.remove();
  // The download has its own copy once it started; the object URL only needs to outlive the click.
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}
