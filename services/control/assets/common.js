// Shared by the panel and the shopper page: API calls, the server clock, small DOM helpers.

/** Calls linkdrop's API; resolves to {status, body} (body is the JSON answer or null). */
export async function api(path, { method = "GET", key, body, headers = {} } = {}) {
  const init = { method, headers: { ...headers } };
  if (key) init.headers.authorization = `Bearer ${key}`;
  if (body !== undefined) {
    init.headers["content-type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (e) {
    return { status: 0, body: { detail: `network error: ${e.message}` } };
  }
  const text = await response.text();
  let parsed = null;
  try { parsed = text ? JSON.parse(text) : null; } catch { parsed = { detail: text }; }
  return { status: response.status, body: parsed };
}

/** The text of a problem answer (API.md errors), for showing to a person. */
export function problemText(answer) {
  const b = answer.body || {};
  return b.detail || b.title || `HTTP ${answer.status}`;
}

/**
 * An estimate of the server's clock: offset = server − local, taken from the sample with
 * the shortest round trip; `uncertainty` is half that round trip (the offset is right to
 * within it).
 */
export class ServerClock {
  constructor() { this.offset = 0; this.uncertainty = Infinity; }
  /** One sample: the local send time, the local receive time, the server's time. */
  sample(sentMs, receivedMs, serverMs) {
    const half = (receivedMs - sentMs) / 2;
    if (half <= this.uncertainty) {
      this.uncertainty = half;
      this.offset = serverMs - (sentMs + half);
    }
  }
  now() { return Date.now() + this.offset; }
  /** Server time at which we can be sure `serverMs` has passed. */
  surelyPast(serverMs) { return this.now() - Math.ceil(this.uncertainty) >= serverMs; }
  /** Samples over HTTP (`GET /v1/time`). */
  async syncOverHttp(samples = 5) {
    for (let i = 0; i < samples; i++) {
      const sent = Date.now();
      const answer = await api("/v1/time");
      if (answer.status === 200) this.sample(sent, Date.now(), answer.body.server_time_ms);
    }
  }
}

/** `document.getElementById`. */
export const $ = (id) => document.getElementById(id);

/** A new element with properties and children. */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === "dataset") Object.assign(node.dataset, v);
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (k in node) node[k] = v;
    else node.setAttribute(k, v);
  }
  for (const child of children) node.append(child);
  return node;
}

/** `1234` cents → `12.34 CNY`. */
export function money(cents, currency) {
  return `${(cents / 100).toFixed(2)} ${currency}`;
}

/** The WebSocket URL of a room. */
export function roomSocketUrl(roomId, token, since) {
  const base = location.origin.replace(/^http/, "ws");
  const q = new URLSearchParams({ token });
  if (since !== undefined) q.set("since", String(since));
  return `${base}/v1/rooms/${encodeURIComponent(roomId)}/ws?${q}`;
}
