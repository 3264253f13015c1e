// The printable report of a room (`/report?room=<id>`): the same figures as the panel's
// Analytics section, laid out for paper. Signs in with the panel's key (sessionStorage), or
// asks for one.
import { $, api, el, problemText } from "/assets/common.js";
import { formatClock, LineChart } from "/assets/charts.js";
import { audienceData, dateTime, downloadCsv, dropCard, duration, renderAdvice, renderHeadline,
         reportUrl } from "/assets/analytics.js";

const roomId = new URLSearchParams(location.search).get("room");
let key = sessionStorage.getItem("linkdrop-key");
let audience = null;

function showSignIn(message = "") {
  $("report-status").textContent = "";
  $("signin").hidden = false;
  $("signin-error").textContent = message;
  $("api-key").focus();
}

async function load() {
  if (!roomId) {
    $("report-status").textContent = "";
    $("report-error").textContent = "No room given: open this page from the panel's "
      + "“Printable report” link (/report?room=<room id>).";
    return;
  }
  $("back-link").href = `/panel#room=${encodeURIComponent(roomId)}`;
  if (!key) { showSignIn(); return; }
  const answer = await api(reportUrl(roomId), { key });
  if (answer.status === 401) {
    sessionStorage.removeItem("linkdrop-key");
    key = null;
    showSignIn("That key was not accepted.");
    return;
  }
  if (answer.status !== 200) {
    $("report-status").textContent = "";
    $("report-error").textContent = `The report could not be loaded: ${problemText(answer)}`;
    return;
  }
  $("signin").hidden = true;
  $("report-error").textContent = "";
  $("report-status").textContent = "";
  render(answer.body);
}

function render(report) {
  const room = report.room;
  document.title = `Report: ${room.title} — linkdrop`;
  $("report-title").textContent = `Report: ${room.title}`;
  const sameDay = new Date(report.from_ms).toDateString() === new Date(report.until_ms).toDateString();
  const meta = [
    ["Room", `${room.title} (${room.id})`],
    ["Merchant", room.merchant_id],
    ["Period", `${dateTime(report.from_ms)} to ${sameDay ? formatClock(report.until_ms) : dateTime(report.until_ms)}`
               + ` (${duration(report.until_ms - report.from_ms)})`],
    ["Drops", String(report.drops.length)],
    ["Made at", dateTime(report.generated_at_ms)],
  ];
  $("report-meta").replaceChildren(...meta.map(([k, v]) => el("div", {}, el("dt", {}, k), el("dd", {}, v))));
  renderHeadline($("report-headline"), report);
  audience ??= new LineChart($("report-audience"), {
    height: 240, yLabel: "viewers", unit: "people", title: "Audience: viewers over time" });
  audience.update(audienceData(report));
  $("report-drops").replaceChildren(...(report.drops.length
    ? report.drops.map((drop) => dropCard(drop, { times: true }).node)
    : [el("p", { className: "muted" }, "No drops in this room.")]));
  renderAdvice($("report-advice"), report);
  $("report").hidden = false;
  $("report").dataset.state = "ready";
  $("report").dataset.generatedAtMs = String(report.generated_at_ms);
}

async function download(table, button) {
  button.disabled = true;
  try {
    await downloadCsv(roomId, key, table);
    $("report-error").textContent = "";
  } catch (e) {
    $("report-error").textContent = `The CSV could not be downloaded: ${e.message}`;
  } finally {
    button.disabled = false;
  }
}

$("signin-form").addEventListener("submit", (event) => {
  event.preventDefault();
  key = $("api-key").value;
  sessionStorage.setItem("linkdrop-key", key);
  $("signin-error").textContent = "";
  load();
});
$("print").addEventListener("click", () => window.print());
$("csv-drops").addEventListener("click", (e) => download("drops", e.currentTarget));
$("csv-audience").addEventListener("click", (e) => download("audience", e.currentTarget));
load();
