// Small SVG charts for the panel and the printable report: a time line/area chart (axes with
// units, drop markers, a crosshair with the values under the pointer, finger or arrow keys)
// and a horizontal "funnel" of bars. No library: each chart draws into a container, sizes
// its viewBox from the container's width and redraws when that width changes.

const SVG_NS = "http://www.w3.org/2000/svg";
/** About how wide one character of the charts' 12px text is, for laying labels out. */
const CHAR_PX = 7;
let nextId = 0;

function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v !== undefined && v !== null) node.setAttribute(k, String(v));
  }
  for (const child of children) node.append(child);
  return node;
}

/** A number for people: integers grouped (12,345), others with one decimal. */
export function formatNumber(value) {
  if (value == null || Number.isNaN(value)) return "–";
  if (Number.isInteger(value)) return value.toLocaleString("en-US");
  return value.toLocaleString("en-US", { minimumFractionDigits: 1, maximumFractionDigits: 1 });
}

const pad2 = (n) => String(n).padStart(2, "0");

/** Epoch ms → the local time of day, `HH:MM` or `HH:MM:SS`. */
export function formatClock(ms, withSeconds = true) {
  const d = new Date(ms);
  const hm = `${pad2(d.getHours())}:${pad2(d.getMinutes())}`;
  return withSeconds ? `${hm}:${pad2(d.getSeconds())}` : hm;
}

/** Ticks from 0 to a "nice" top at or above `max`, about `count` of them (integers if asked). */
export function valueTicks(max, count = 5, integer = true) {
  const span = max > 0 ? max : 1;
  const raw = span / count;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const norm = raw / magnitude;
  let step = (norm <= 1 ? 1 : norm <= 2 ? 2 : norm <= 5 ? 5 : 10) * magnitude;
  if (integer) step = Math.max(1, Math.round(step));
  const n = Math.max(1, Math.ceil(span / step - 1e-9));
  const ticks = [];
  for (let i = 0; i <= n; i++) ticks.push(integer ? i * step : Number((i * step).toPrecision(12)));
  return { ticks, top: ticks[ticks.length - 1] };
}

const TIME_STEPS_S = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800,
                      21600, 43200, 86400];

/** Time-of-day ticks over [from, to] (epoch ms), at most `most` of them, on round local times. */
export function timeTicks(from, to, most) {
  const span = Math.max(1, to - from);
  const stepS = TIME_STEPS_S.find((s) => span / (s * 1000) <= Math.max(1, most))
    ?? TIME_STEPS_S[TIME_STEPS_S.length - 1];
  const step = stepS * 1000;
  const offset = -new Date(from).getTimezoneOffset() * 60_000;
  const ticks = [];
  for (let t = Math.ceil((from + offset) / step) * step - offset; t <= to; t += step) ticks.push(t);
  return { ticks, withSeconds: stepS < 60 };
}

function nearestIndex(points, x) {
  let lo = 0;
  let hi = points.length - 1;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (points[mid].x < x) lo = mid; else hi = mid;
  }
  return Math.abs(points[hi].x - x) < Math.abs(points[lo].x - x) ? hi : lo;
}

/** Calls `draw` when the container's width changes, or the page is printed. */
class Responsive {
  constructor(container) {
    this.container = container;
    this.width = -1;
    this.observer = new ResizeObserver(() => {
      if (Math.round(this.container.clientWidth) !== this.width) this.draw();
    });
    this.observer.observe(container);
    this.print = window.matchMedia("print");
    this.onPrint = () => this.draw();
    this.print.addEventListener("change", this.onPrint);
    window.addEventListener("beforeprint", this.onPrint);
  }
  /** The width to draw at (a fallback while the container is not laid out). */
  measure(least) {
    this.width = Math.round(this.container.clientWidth);
    return Math.max(least, this.width || 600);
  }
  destroy() {
    this.observer.disconnect();
    this.print.removeEventListener("change", this.onPrint);
    window.removeEventListener("beforeprint", this.onPrint);
  }
}

/**
 * A line (and area) chart over time.
 *
 *   const chart = new LineChart(div, { yLabel: "viewers", unit: "viewers", height: 240 });
 *   chart.update({ series: [{ name: "viewers", points: [{ x: ms, y: 12, detail: "…" }] }],
 *                  markers: [{ x: ms, label: "Silk scarf" }], xRange: [fromMs, untilMs] });
 *
 * Hovering (mouse, pen or finger) or the arrow keys when the chart has focus show a
 * crosshair and a tooltip with the time and each series' value; the tooltip stays across
 * updates. `destroy()` stops watching the container's size.
 */
export class LineChart extends Responsive {
  constructor(container, { height = 220, xLabel = "time of day", yLabel = "", unit = "",
                           integer = true, title = "chart", empty = "No data yet." } = {}) {
    super(container);
    this.o = { height, xLabel, yLabel, unit, integer, title, empty };
    this.data = { series: [], markers: [] };
    this.hoverX = null;
    this.clipId = `chart-clip-${++nextId}`;
    this.svg = svg("svg", { class: "chart-svg", tabindex: 0, role: "img", "aria-label": title });
    this.readout = document.createElement("p");
    this.readout.className = "visually-hidden";
    this.readout.setAttribute("aria-live", "polite");
    container.classList.add("chart-box");
    container.replaceChildren(this.svg, this.readout);
    this.svg.addEventListener("pointermove", (e) => this.pointAt(e));
    this.svg.addEventListener("pointerdown", (e) => this.pointAt(e));
    this.svg.addEventListener("pointerleave", (e) => { if (e.pointerType === "mouse") this.hide(); });
    this.svg.addEventListener("keydown", (e) => this.key(e));
    this.svg.addEventListener("focus", () => { if (this.hoverX == null) this.showIndex(Infinity); });
    this.svg.addEventListener("blur", () => this.hide());
    this.draw();
  }

  update(data) {
    this.data = data;
    this.draw();
  }

  draw() {
    const W = this.measure(260);
    const H = this.o.height;
    const series = (this.data.series || []).filter((s) => s.points.length);
    this.svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
    this.layout = null;
    if (!series.length) {
      this.svg.replaceChildren(svg("text", { x: W / 2, y: H / 2, "text-anchor": "middle",
                                             class: "chart-empty" }, this.o.empty));
      this.svg.setAttribute("aria-label", `${this.o.title}: ${this.o.empty}`);
      return;
    }
    const xs = series.flatMap((s) => s.points.map((p) => p.x));
    let [x0, x1] = this.data.xRange || [Math.min(...xs), Math.max(...xs)];
    if (x1 - x0 < 2000) { x0 -= 1000; x1 += 1000; }
    const maxY = Math.max(0, ...series.flatMap((s) => s.points.map((p) => p.y ?? 0)));
    const { ticks: yTicks, top } = valueTicks(maxY, H < 180 ? 3 : 5, this.o.integer);
    const yTickW = Math.max(...yTicks.map((t) => formatNumber(t).length)) * CHAR_PX;

    // Marker labels go in rows above the plot, a label per row wherever they would overlap.
    const markers = (this.data.markers || []).filter((m) => m.x >= x0 && m.x <= x1);
    const m = { l: 30 + yTickW, r: 14, b: 44, t: 12 };
    const pw = W - m.l - m.r;
    const sx = (x) => m.l + ((x - x0) / (x1 - x0)) * pw;
    const rowsEnd = [];
    const placed = markers.map((mk) => {
      const text = mk.label.length > 24 ? `${mk.label.slice(0, 23)}…` : mk.label;
      const width = text.length * CHAR_PX;
      const left = Math.min(Math.max(sx(mk.x) - width / 2, 0), W - width);
      let row = rowsEnd.findIndex((end) => end + 6 <= left);
      if (row < 0) { row = rowsEnd.length; rowsEnd.push(0); }
      rowsEnd[row] = left + width;
      return { ...mk, text, left, row };
    });
    m.t += rowsEnd.length * 15;
    const ph = H - m.t - m.b;
    const sy = (y) => m.t + ph - ((y ?? 0) / top) * ph;

    const parts = [];
    const grid = svg("g", { class: "chart-grid" });
    const yAxis = svg("g", { class: "chart-axis" });
    for (const t of yTicks) {
      grid.append(svg("line", { x1: m.l, x2: m.l + pw, y1: sy(t), y2: sy(t) }));
      yAxis.append(svg("text", { x: m.l - 6, y: sy(t) + 4, "text-anchor": "end" }, formatNumber(t)));
    }
    const { ticks: xTicks, withSeconds } = timeTicks(x0, x1, Math.floor(pw / withSecondsWidth()));
    const xAxis = svg("g", { class: "chart-axis" },
      svg("line", { x1: m.l, x2: m.l + pw, y1: m.t + ph, y2: m.t + ph }),
      svg("line", { x1: m.l, x2: m.l, y1: m.t, y2: m.t + ph }));
    for (const t of xTicks) {
      const x = sx(t);
      const label = formatClock(t, withSeconds);
      const half = (label.length * CHAR_PX) / 2;
      const anchor = x - half < 0 ? "start" : x + half > W ? "end" : "middle";
      xAxis.append(svg("line", { x1: x, x2: x, y1: m.t + ph, y2: m.t + ph + 4 }),
                   svg("text", { x, y: m.t + ph + 17, "text-anchor": anchor }, label));
    }
    const unit = this.o.unit ? ` (${this.o.unit})` : "";
    parts.push(grid, yAxis, xAxis,
      svg("text", { class: "chart-label", "text-anchor": "middle",
                    transform: `translate(13 ${m.t + ph / 2}) rotate(-90)` }, this.o.yLabel + unit),
      svg("text", { class: "chart-label", "text-anchor": "middle", x: m.l + pw / 2, y: H - 6 },
          `${this.o.xLabel} (${withSeconds ? "HH:MM:SS" : "HH:MM"})`),
      svg("clipPath", { id: this.clipId }, svg("rect", { x: m.l, y: m.t - 1, width: pw, height: ph + 2 })));

    series.forEach((s, i) => {
      const line = s.points.map((p, j) => `${j ? "L" : "M"}${sx(p.x).toFixed(1)},${sy(p.y).toFixed(1)}`).join("");
      const g = svg("g", { class: `chart-series chart-series-${i}`, "clip-path": `url(#${this.clipId})` });
      if (s.area) {
        const first = sx(s.points[0].x).toFixed(1);
        const last = sx(s.points[s.points.length - 1].x).toFixed(1);
        g.append(svg("path", { class: "chart-area", d: `${line}L${last},${m.t + ph}L${first},${m.t + ph}Z` }));
      }
      g.append(svg("path", { class: "chart-line", d: line }));
      if (s.points.length === 1) g.append(svg("circle", { class: "chart-dot", r: 3, cx: sx(s.points[0].x), cy: sy(s.points[0].y) }));
      parts.push(g);
    });

    for (const mk of placed) {
      const x = sx(mk.x);
      parts.push(svg("g", { class: "chart-marker" },
        svg("title", {}, `${mk.label} at ${formatClock(mk.x)}`),
        svg("line", { x1: x, x2: x, y1: 12 + mk.row * 15 + 3, y2: m.t + ph }),
        svg("text", { x: mk.left, y: 12 + mk.row * 15 }, mk.text)));
    }

    const hover = svg("g", { class: "chart-hover", display: "none" },
      svg("line", { class: "chart-crosshair", y1: m.t, y2: m.t + ph }),
      ...series.map((_, i) => svg("circle", { class: `chart-focus chart-series-${i}`, r: 4 })),
      svg("g", { class: "chart-tooltip" }, svg("rect", { rx: 4 }), svg("text", {})));
    parts.push(hover);
    this.svg.replaceChildren(...parts);

    const peak = series[0].points.reduce((a, p) => ((p.y ?? 0) > (a.y ?? 0) ? p : a));
    this.svg.setAttribute("aria-label", `${this.o.title}: ${series[0].points.length} points from `
      + `${formatClock(x0)} to ${formatClock(x1)}, highest ${formatNumber(peak.y)}`
      + `${this.o.unit ? ` ${this.o.unit}` : ""} at ${formatClock(peak.x)}. Arrow keys read the values.`);
    this.layout = { W, m, pw, ph, x0, x1, sx, sy, series, hover };
    if (this.hoverX != null) this.showAt(this.hoverX);
  }

  pointAt(event) {
    if (!this.layout) return;
    const box = this.svg.getBoundingClientRect();
    if (!box.width) return;
    const { W, m, pw, x0, x1 } = this.layout;
    const px = ((event.clientX - box.left) * W) / box.width;
    const clamped = Math.min(Math.max(px, m.l), m.l + pw);
    this.showAt(x0 + ((clamped - m.l) / pw) * (x1 - x0));
  }

  key(event) {
    if (!this.layout) return;
    const points = this.layout.series[0].points;
    const now = this.hoverX == null ? points.length - 1 : nearestIndex(points, this.hoverX);
    const moves = { ArrowLeft: -1, ArrowRight: 1, ArrowDown: -1, ArrowUp: 1,
                    PageDown: -10, PageUp: 10, Home: -Infinity, End: Infinity };
    if (event.key === "Escape") { this.hide(); return; }
    if (!(event.key in moves)) return;
    event.preventDefault();
    this.showIndex(now + moves[event.key] * (event.shiftKey ? 10 : 1));
  }

  showIndex(index) {
    if (!this.layout) return;
    const points = this.layout.series[0].points;
    this.showAt(points[Math.min(Math.max(index, 0), points.length - 1)].x);
  }

  /** Shows the crosshair and tooltip at the point nearest to `x` (epoch ms). */
  showAt(x) {
    if (!this.layout) return;
    const { W, m, ph, sx, sy, series, hover } = this.layout;
    const at = series[0].points[nearestIndex(series[0].points, x)];
    this.hoverX = at.x;
    const cx = sx(at.x);
    hover.removeAttribute("display");
    const [cross, ...rest] = hover.children;
    cross.setAttribute("x1", cx);
    cross.setAttribute("x2", cx);
    const lines = [formatClock(at.x)];
    series.forEach((s, i) => {
      const p = s.points[nearestIndex(s.points, at.x)];
      rest[i].setAttribute("cx", sx(p.x));
      rest[i].setAttribute("cy", sy(p.y));
      lines.push(`${s.name}: ${formatNumber(p.y)}${s.unit ? ` ${s.unit}` : ""}`);
      if (p.detail) lines.push(p.detail);
    });
    const tip = rest[series.length];
    const [rect, text] = tip.children;
    text.replaceChildren(...lines.map((line, i) => svg("tspan", { x: 8, dy: i ? 15 : 0,
                                                                 class: i ? "" : "chart-tip-time" }, line)));
    text.setAttribute("y", 16);
    const width = Math.max(...lines.map((l) => l.length)) * CHAR_PX + 16;
    let measured = width;
    try { measured = Math.max(text.getBBox().width + 16, 40); } catch { /* not rendered */ }
    rect.setAttribute("width", measured);
    rect.setAttribute("height", lines.length * 15 + 8);
    const left = cx + 10 + measured > W - 2 ? cx - 10 - measured : cx + 10;
    tip.setAttribute("transform", `translate(${Math.max(2, left).toFixed(1)} ${m.t + Math.min(8, ph / 4)})`);
    this.readout.textContent = lines.join(", ");
    this.container.dataset.hoverX = String(at.x);
  }

  hide() {
    this.hoverX = null;
    delete this.container.dataset.hoverX;
    if (this.layout) this.layout.hover.setAttribute("display", "none");
  }
}

function withSecondsWidth() {
  return "00:00:00".length * CHAR_PX + 24;
}

/**
 * Horizontal bars, one a step, each as long as its value against the largest, with the
 * count and a note (a conversion rate) printed on the step's line.
 *
 *   new FunnelChart(div, { title: "Silk scarf funnel" })
 *     .update([{ label: "Viewers at launch", value: 170 }, { label: "Taps", value: 900,
 *               note: "5.29 per viewer" }, …]);
 */
export class FunnelChart extends Responsive {
  constructor(container, { title = "funnel" } = {}) {
    super(container);
    this.title = title;
    this.steps = [];
    this.svg = svg("svg", { class: "chart-svg funnel", role: "img", "aria-label": title });
    container.classList.add("chart-box");
    container.replaceChildren(this.svg);
    this.draw();
  }

  update(steps) {
    this.steps = steps;
    this.draw();
    return this;
  }

  draw() {
    const W = this.measure(200);
    const rowH = 48;
    const H = Math.max(1, this.steps.length) * rowH + 2;
    this.svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
    const top = Math.max(1, ...this.steps.map((s) => s.value ?? 0));
    const rows = this.steps.map((s, i) => {
      const y = i * rowH;
      const length = s.value > 0 ? Math.max(2, (s.value / top) * W) : 0;
      return svg("g", { class: `funnel-step funnel-step-${i}` },
        svg("text", { class: "funnel-label", x: 0, y: y + 16 }, s.label),
        svg("text", { class: "funnel-value", x: W, y: y + 16, "text-anchor": "end" },
          svg("tspan", { class: "funnel-count" }, formatNumber(s.value)),
          ...(s.note ? [svg("tspan", { class: "funnel-note" }, ` · ${s.note}`)] : [])),
        svg("rect", { class: "funnel-track", x: 0, y: y + 23, width: W, height: 16, rx: 3 }),
        svg("rect", { class: "funnel-bar", x: 0, y: y + 23, width: length.toFixed(1), height: 16, rx: 3 }));
    });
    this.svg.replaceChildren(...rows);
    this.svg.setAttribute("aria-label", `${this.title}: ${this.steps.map((s) =>
      `${s.label} ${formatNumber(s.value)}${s.note ? ` (${s.note})` : ""}`).join(", ")}`);
  }
}
