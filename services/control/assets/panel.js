// The host panel: sign in with an API key, rooms, drops, the launch button, a live
// dashboard of the selected drop and the room's analytics. Everything goes through the
// public API.
import { $, api, el, problemText, roomSocketUrl, ServerClock } from "/assets/common.js";
import { formatClock, LineChart } from "/assets/charts.js";
import { audienceData, dropCard, downloadCsv, fingerprint, renderAdvice, renderHeadline,
         REPORT_REFRESH_MS, reportUrl } from "/assets/analytics.js";

const COUNTDOWNS_S = [0, 3, 5, 10];
const POLL_MS = 500;
const CHART_POINTS = 120;

const state = { key: sessionStorage.getItem("linkdrop-key"), room: null, drop: null,
                clock: new ServerClock(), samples: [], poll: null, probe: null, fanoutMs: null };
const charts = {
  rate: new LineChart($("chart-rate"), { height: 170, yLabel: "rate", unit: "orders/s",
                                         title: "Orders per second over time" }),
  stock: new LineChart($("chart-stock"), { height: 170, yLabel: "stock left", unit: "units",
                                           title: "Stock left over time" }),
};
/** The Analytics section: its refresh timer and what it shows (to redraw only what changed). */
const analytics = { timer: null, loading: false, shown: {}, audience: null, funnels: [] };

function showFieldErrors(form, answer) {
  for (const p of form.querySelectorAll(".field-error")) p.textContent = "";
  const errors = (answer.body && answer.body.errors) || [];
  let unplaced = [];
  for (const e of errors) {
    const input = form.querySelector(`[data-field="${e.field}"]`);
    const slot = input && document.getElementById(input.getAttribute("aria-describedby"));
    if (slot) { slot.textContent = e.message; input.setAttribute("aria-invalid", "true"); }
    else unplaced.push(`${e.field}: ${e.message}`);
  }
  return errors.length ? unplaced.join("; ") : problemText(answer);
}

function clearFieldErrors(form) {
  for (const p of form.querySelectorAll(".field-error")) p.textContent = "";
  for (const i of form.querySelectorAll("[aria-invalid]")) i.removeAttribute("aria-invalid");
}

async function signIn(key) {
  const answer = await api("/v1/rooms", { key });
  if (answer.status !== 200) {
    $("signin-error").textContent = answer.status === 401
      ? "That key was not accepted." : problemText(answer);
    return false;
  }
  state.key = key;
  sessionStorage.setItem("linkdrop-key", key);
  $("signin").hidden = true;
  $("rooms").hidden = false;
  $("sign-out").hidden = false;
  await state.clock.syncOverHttp();
  const rooms = answer.body.items || [];
  renderRooms(rooms);
  // Back from the printable report (or a reload): the room that was open opens again.
  const wanted = new URLSearchParams(location.hash.slice(1)).get("room");
  const again = wanted && rooms.find((room) => room.id === wanted);
  if (again && !state.room) openRoom(again);
  return true;
}

function renderRooms(rooms) {
  $("room-list").replaceChildren(...rooms.map((room) => el("tr", {},
    el("td", {}, room.title), el("td", {}, room.merchant_id), el("td", {}, el("code", {}, room.id)),
    el("td", {}, el("button", { type: "button", className: "secondary",
                                onclick: () => openRoom(room) }, "Open")))));
}

async function refreshRooms() {
  const answer = await api("/v1/rooms", { key: state.key });
  if (answer.status === 200) renderRooms(answer.body.items || []);
}

async function createRoom(event) {
  event.preventDefault();
  const form = event.target;
  clearFieldErrors(form);
  const body = { title: $("room-title").value };
  if ($("room-merchant").value) body.merchant_id = $("room-merchant").value;
  const answer = await api("/v1/rooms", { method: "POST", key: state.key, body });
  if (answer.status !== 201) { $("room-error").textContent = showFieldErrors(form, answer); return; }
  $("room-error").textContent = "";
  await refreshRooms();
  openRoom(answer.body);
}

async function openRoom(room) {
  state.room = room;
  document.body.dataset.roomId = room.id;
  $("room").hidden = false;
  $("room-heading").textContent = `Room: ${room.title}`;
  $("shop-link").href = `/shop?room=${encodeURIComponent(room.id)}`;
  $("shop-link").textContent = `/shop?room=${room.id}`;
  history.replaceState(null, "", `#room=${encodeURIComponent(room.id)}`);
  startAnalytics(room);
  await refreshDrops();
}

async function refreshDrops() {
  const answer = await api(`/v1/rooms/${state.room.id}/drops`, { key: state.key });
  if (answer.status !== 200) { $("drop-error").textContent = problemText(answer); return; }
  $("drop-list").replaceChildren(...(answer.body.items || []).map(dropRow));
}

function dropRow(drop) {
  const choice = el("select", { "aria-label": `countdown for ${drop.title}` },
    ...COUNTDOWNS_S.map((s) => el("option", { value: String(s), selected: s === 3 }, `${s} s`)));
  const launch = el("button", { type: "button", className: "launch",
                                disabled: drop.state !== "draft",
                                onclick: () => launchDrop(drop, Number(choice.value)) },
                    "3, 2, 1, 上链接");
  return el("tr", { dataset: { dropId: drop.id } },
    el("td", {}, drop.title), el("td", {}, drop.fairness.policy), el("td", {}, drop.state),
    el("td", {}, `${drop.stock_left} / ${drop.stock}`),
    el("td", {}, choice, launch),
    el("td", {}, el("button", { type: "button", className: "secondary",
                                onclick: () => watchDrop(drop) }, "Dashboard")));
}

async function createDrop(event) {
  event.preventDefault();
  const form = event.target;
  clearFieldErrors(form);
  const number = (id) => ($(id).value.trim() === "" ? null : Number($(id).value));
  const fairness = { policy: $("drop-policy").value };
  if (fairness.policy === "lottery") fairness.window_ms = number("drop-window");
  const body = {
    sku: $("drop-sku").value, title: $("drop-title").value, image_url: $("drop-image").value,
    price_cents: number("drop-price"), currency: $("drop-currency").value,
    stock: number("drop-stock"), max_per_user: number("drop-max"),
    pay_within_s: number("drop-pay-within"), fairness,
  };
  const answer = await api(`/v1/rooms/${state.room.id}/drops`, { method: "POST", key: state.key, body });
  if (answer.status !== 201) { $("drop-error").textContent = showFieldErrors(form, answer); return; }
  $("drop-error").textContent = "";
  await refreshDrops();
  watchDrop(answer.body);
}

async function launchDrop(drop, countdownS) {
  const answer = await api(`/v1/drops/${drop.id}/launch`, {
    method: "POST", key: state.key, body: { countdown_ms: countdownS * 1000 } });
  if (answer.status !== 202) { $("drop-error").textContent = problemText(answer); return; }
  $("drop-error").textContent = "";
  document.body.dataset.opensAtMs = String(answer.body.opens_at_ms);
  await refreshDrops();
  watchDrop({ ...drop, opens_at_ms: answer.body.opens_at_ms, state: "countdown" });
}

// --- the live dashboard ----------------------------------------------------------------

function watchDrop(drop) {
  state.drop = drop;
  state.samples = [];
  $("dashboard").hidden = false;
  $("dash-drop").textContent = drop.title;
  clearInterval(state.poll);
  state.poll = setInterval(pollDrop, POLL_MS);
  pollDrop();
  startFanoutProbe();
  requestAnimationFrame(tickCountdown);
}

function tickCountdown() {
  const drop = state.drop;
  if (!drop) return;
  const opens = drop.opens_at_ms;
  const text = opens == null ? "Not launched"
    : state.clock.now() < opens ? `Opens in ${((opens - state.clock.now()) / 1000).toFixed(1)} s`
    : "Open";
  $("dash-countdown").textContent = text;
  requestAnimationFrame(tickCountdown);
}

async function pollDrop() {
  const drop = state.drop;
  const [d, room] = await Promise.all([
    api(`/v1/drops/${drop.id}`, { key: state.key }),
    api(`/v1/rooms/${state.room.id}`, { key: state.key }),
  ]);
  if (d.status !== 200 || state.drop !== drop) return;
  const view = d.body;
  drop.opens_at_ms = view.opens_at_ms;
  const taken = view.stock - view.stock_left;
  const now = state.clock.now();
  state.samples.push({ at: now, taken, stockLeft: view.stock_left });
  if (state.samples.length > CHART_POINTS) state.samples.shift();
  const [a, b] = state.samples.slice(-2);
  const rate = b && a !== b ? Math.max(0, ((b.taken - a.taken) * 1000) / (b.at - a.at)) : 0;
  b && (b.rate = rate);
  updateDropRow(view);
  $("fig-viewers").textContent = room.status === 200 ? String(room.body.viewers ?? 0) : "–";
  $("fig-stock-left").textContent = String(view.stock_left);
  $("fig-reserved").textContent = String(view.reserved);
  $("fig-paid").textContent = String(view.paid);
  $("fig-rate").textContent = rate.toFixed(0);
  $("fig-sellout").textContent = view.sold_out_at_ms && view.opens_at_ms
    ? `${((view.sold_out_at_ms - view.opens_at_ms) / 1000).toFixed(2)} s` : "–";
  $("fig-fanout").textContent = state.fanoutMs == null ? "–" : `${state.fanoutMs} ms`;
  const markers = view.opens_at_ms ? [{ x: view.opens_at_ms, label: "opens" }] : [];
  charts.rate.update({ markers, series: [{ name: "orders", unit: "per s",
    points: state.samples.map((s) => ({ x: s.at, y: s.rate || 0 })) }] });
  charts.stock.update({ markers, series: [{ name: "stock left", unit: "units", area: true,
    points: state.samples.map((s) => ({ x: s.at, y: s.stockLeft })) }] });
}

/** Keeps the drop's row in the list current (state, stock left) without redrawing it. */
function updateDropRow(view) {
  const row = document.querySelector(`#drop-list tr[data-drop-id="${view.id}"]`);
  if (!row) return;
  row.cells[2].textContent = view.state;
  row.cells[3].textContent = `${view.stock_left} / ${view.stock}`;
}

/** Joins the room as a viewer (admin key: a dev token) to time the drop's arrival. */
async function startFanoutProbe() {
  if (state.probe) { state.probe.close(); state.probe = null; }
  const minted = await api("/v1/dev/tokens", { method: "POST", key: state.key,
                                               body: { user_id: "panel-probe" } });
  if (minted.status !== 201) { $("fig-fanout").textContent = "n/a"; return; }
  const socket = new WebSocket(roomSocketUrl(state.room.id, minted.body.token));
  socket.onmessage = (message) => {
    const frame = JSON.parse(message.data);
    if (frame.type === "drop.countdown" && state.drop && frame.drop.id === state.drop.id
        && typeof frame.ts_ms === "number") {
      state.fanoutMs = Math.max(0, Math.round(state.clock.now() - frame.ts_ms));
    }
  };
  state.probe = socket;
}

// --- analytics ---------------------------------------------------------------------------

/** Shows the room's Analytics section and reloads its report every few seconds. */
function startAnalytics(room) {
  clearInterval(analytics.timer);
  analytics.shown = {};
  const section = $("analytics");
  section.hidden = false;
  section.dataset.state = "loading";
  delete section.dataset.generatedAtMs;
  $("analytics-body").hidden = true;
  $("analytics-error").textContent = "";
  $("analytics-status").textContent = "Loading the report…";
  $("report-link").href = `/report?room=${encodeURIComponent(room.id)}`;
  analytics.audience ??= new LineChart($("audience-chart"), {
    height: 260, yLabel: "viewers", unit: "people", title: "Audience: viewers over time" });
  loadAnalytics();
  analytics.timer = setInterval(loadAnalytics, REPORT_REFRESH_MS);
}

async function loadAnalytics() {
  const room = state.room;
  if (!room || analytics.loading) return;
  analytics.loading = true;
  try {
    const answer = await api(reportUrl(room.id), { key: state.key });
    if (state.room !== room) return;
    const section = $("analytics");
    if (answer.status !== 200) {
      $("analytics-error").textContent = answer.status === 404
        ? `No report for this room: ${problemText(answer)}` : `The report could not be loaded: ${problemText(answer)}`;
      $("analytics-status").textContent = "";
      if (!analytics.shown.audience) section.dataset.state = "error";
      return;
    }
    const report = answer.body;
    renderAnalytics(report);
    $("analytics-error").textContent = "";
    $("analytics-status").textContent = `From ${formatClock(report.from_ms)} to `
      + `${formatClock(report.until_ms)} · updated ${formatClock(report.generated_at_ms)}, every `
      + `${REPORT_REFRESH_MS / 1000} s`;
    section.dataset.generatedAtMs = String(report.generated_at_ms);
    section.dataset.state = "ready";
  } finally {
    analytics.loading = false;
  }
}

/** Redraws the parts of the section whose figures changed. */
function renderAnalytics(report) {
  $("analytics-body").hidden = false;
  const parts = {
    headline: JSON.stringify([report.audience.peak_viewers, report.audience.peak_at_ms,
                              report.audience.unique_viewers, report.audience.new_viewers,
                              report.audience.returning_viewers, report.buyers]),
    audience: fingerprint({ audience: report.audience, from: report.from_ms,
                            until: report.until_ms, drops: report.drops.map((d) => [d.title, d.launched_at_ms]) }),
    drops: JSON.stringify(report.drops),
    advice: JSON.stringify([report.advice, report.drops.map((d) => [d.drop_id, d.title])]),
  };
  const changed = (part) => analytics.shown[part] !== parts[part];
  if (changed("headline")) renderHeadline($("analytics-headline"), report);
  if (changed("audience")) analytics.audience.update(audienceData(report));
  if (changed("drops")) {
    for (const chart of analytics.funnels) chart.destroy();
    const cards = report.drops.map((drop) => dropCard(drop));
    analytics.funnels = cards.map((c) => c.chart);
    $("analytics-drops").replaceChildren(...(cards.length ? cards.map((c) => c.node)
      : [el("p", { className: "muted" }, "No drops in this room yet.")]));
  }
  if (changed("advice")) renderAdvice($("advice-list"), report);
  analytics.shown = parts;
}

async function download(table, button) {
  if (!state.room) return;
  button.disabled = true;
  try {
    await downloadCsv(state.room.id, state.key, table);
    $("analytics-error").textContent = "";
  } catch (e) {
    $("analytics-error").textContent = `The CSV could not be downloaded: ${e.message}`;
  } finally {
    button.disabled = false;
  }
}

// --- wiring ------------------------------------------------------------------------------

$("signin-form").addEventListener("submit", (e) => { e.preventDefault(); signIn($("api-key").value); });
$("room-form").addEventListener("submit", createRoom);
$("drop-form").addEventListener("submit", createDrop);
$("csv-drops").addEventListener("click", (e) => download("drops", e.currentTarget));
$("csv-audience").addEventListener("click", (e) => download("audience", e.currentTarget));
$("sign-out").addEventListener("click", () => {
  sessionStorage.removeItem("linkdrop-key");
  history.replaceState(null, "", location.pathname);
  location.reload();
});
if (state.key) signIn(state.key);
