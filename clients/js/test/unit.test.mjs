// The SDK's pieces without a server: the clock, the backoff, Retry-After, keys, and the order
// retry policy against a scripted fetch.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  LinkdropClient, LinkdropError, ServerClock, backoffWindow, newIdempotencyKey, parseRetryAfter,
} from "../dist/index.js";

/** A fetch that answers from a script: each entry is a Response, an Error (thrown), or a function. */
function scriptedFetch(script) {
  const calls = [];
  const fetch = async (url, init) => {
    calls.push({ url, init, at: performance.now(), key: init?.headers?.["idempotency-key"] });
    const next = script.length > 1 ? script.shift() : script[0];
    const step = typeof next === "function" ? next(calls.length) : next;
    if (step instanceof Error) throw step;
    return step.clone();
  };
  return { fetch, calls };
}

const json = (status, body, headers = {}) =>
  new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json", ...headers } });
const reserved = json(201, { order_id: "ord_d_1", status: "reserved", qty: 1, pay_by_ms: 1 });

describe("ServerClock", () => {
  it("keeps the offset of the shortest recent round trip", () => {
    const clock = new ServerClock({ keep: 3 });
    assert.equal(clock.uncertainty, Infinity);
    clock.sample(1000, 1100, 6050); // rtt 100: offset 5000
    clock.sample(2000, 2010, 7010); // rtt 10: offset 5005
    clock.sample(3000, 3300, 9000); // rtt 300: ignored while the 10 ms one is kept
    assert.equal(clock.offset, 5005);
    assert.equal(clock.uncertainty, 5);
    clock.sample(4000, 4040, 9020); // rtt 40
    clock.sample(5000, 5040, 10020); // rtt 40; the 10 ms sample has aged out of the last 3
    assert.equal(clock.offset, 5000);
    assert.equal(clock.uncertainty, 20);
  });

  it("reveals at the server's time, whatever the local clock says", async () => {
    const skew = 60_000; // the local clock is a minute slow
    const clock = new ServerClock({ now: () => Date.now() - skew });
    const t = Date.now() - skew;
    clock.sample(t, t + 2, Date.now() + 1); // the server is the real clock
    const opensAt = Date.now() + 300;
    const firedAt = await new Promise((resolve) => clock.revealAt(opensAt, () => resolve(Date.now())));
    assert.ok(firedAt >= opensAt, `fired ${opensAt - firedAt} ms early`);
    assert.ok(firedAt - opensAt < 150, `fired ${firedAt - opensAt} ms late`);
  });

  it("can cancel a reveal", async () => {
    const clock = new ServerClock();
    clock.sample(Date.now(), Date.now(), Date.now());
    let fired = false;
    const cancel = clock.revealAt(Date.now() + 50, () => (fired = true));
    cancel();
    await new Promise((r) => setTimeout(r, 120));
    assert.equal(fired, false);
  });
});

describe("helpers", () => {
  it("backoff windows double up to the cap", () => {
    const o = { baseMs: 1000, maxMs: 30_000 };
    assert.deepEqual([1, 2, 3, 4, 5, 6, 7, 50].map((n) => backoffWindow(n, o)), [1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]);
  });

  it("reads Retry-After as seconds or as a date", () => {
    assert.equal(parseRetryAfter("2"), 2000);
    assert.equal(parseRetryAfter("0.5"), 500);
    assert.equal(parseRetryAfter(new Date(10_000).toUTCString(), 7000), 3000);
    assert.equal(parseRetryAfter("soon"), undefined);
    assert.equal(parseRetryAfter(null), undefined);
  });

  it("makes v4 UUID keys, also where randomUUID is refused", () => {
    const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
    assert.match(newIdempotencyKey(), uuid);
    const original = crypto.randomUUID;
    crypto.randomUUID = () => {
      throw new Error("not a secure context");
    };
    try {
      const keys = new Set(Array.from({ length: 100 }, newIdempotencyKey));
      assert.equal(keys.size, 100);
      for (const k of keys) assert.match(k, uuid);
    } finally {
      crypto.randomUUID = original;
    }
  });
});

describe("order retry policy", () => {
  const client = (fetch, extra = {}) =>
    new LinkdropClient({ url: "http://linkdrop.test", token: "t", fetch, retry: { baseMs: 20, maxMs: 40 }, ...extra });

  it("asks again with the same key after a network error and a 5xx", async () => {
    const { fetch, calls } = scriptedFetch([new TypeError("fetch failed"), new Response("", { status: 502 }), reserved]);
    const result = await client(fetch).order("drp_1");
    assert.equal(result.outcome, "reserved");
    assert.equal(result.attempts, 3);
    assert.equal(calls.length, 3);
    assert.equal(new Set(calls.map((c) => c.key)).size, 1);
    assert.equal(calls[0].url, "http://linkdrop.test/v1/drops/drp_1/orders");
    assert.equal(calls[0].init.body, JSON.stringify({ qty: 1 }));
  });

  it("does not retry sold out, and keeps the intent's key for the next try", async () => {
    const { fetch, calls } = scriptedFetch([json(409, { code: "sold_out", status: 409 }), reserved]);
    const c = client(fetch);
    const first = await c.order("drp_1");
    assert.equal(first.outcome, "sold_out");
    assert.equal(calls.length, 1);
    const second = await c.order("drp_1");
    assert.equal(second.outcome, "reserved");
    assert.equal(second.idempotencyKey, first.idempotencyKey);
    // The intent is over: a new purchase gets a new key.
    assert.notEqual(c.intent("drp_1").idempotencyKey, first.idempotencyKey);
  });

  it("a double tap sends one request", async () => {
    const { fetch, calls } = scriptedFetch([reserved]);
    const c = client(fetch);
    const [a, b] = await Promise.all([c.order("drp_1"), c.order("drp_1")]);
    assert.equal(calls.length, 1);
    assert.equal(a, b);
  });

  it("gives up with a LinkdropError when nothing answers, and the next call keeps the key", async () => {
    const { fetch, calls } = scriptedFetch([new TypeError("fetch failed")]);
    const c = client(fetch, { retry: { baseMs: 5, maxMs: 5, maxAttempts: 3 } });
    await assert.rejects(c.order("drp_1"), (e) => e instanceof LinkdropError && e.code === "network" && e.attempts === 3);
    assert.equal(calls.length, 3);
    await assert.rejects(c.order("drp_1"));
    assert.equal(new Set(calls.map((c) => c.key)).size, 1, "every request of the intent has its key");
  });

  it("waits Retry-After on a 429 before asking again", async () => {
    const { fetch, calls } = scriptedFetch([json(429, { code: "rate_limited", status: 429 }, { "retry-after": "1" }), reserved]);
    const result = await client(fetch).order("drp_1");
    assert.equal(result.outcome, "reserved");
    const waited = calls[1].at - calls[0].at;
    assert.ok(waited >= 1000, `waited ${waited} ms`);
    assert.ok(waited <= 1500 + 100, `waited ${waited} ms`);
  });

  it("fetches a fresh token once after a 401", async () => {
    const reasons = [];
    const { fetch, calls } = scriptedFetch([json(401, { code: "unauthorized", status: 401 }), reserved]);
    const c = client(fetch, { token: ({ reason }) => (reasons.push(reason), `tok-${reasons.length}`) });
    assert.equal((await c.order("drp_1")).outcome, "reserved");
    assert.deepEqual(reasons, ["request", "refresh"]);
    assert.equal(calls[1].init.headers.authorization, "Bearer tok-2");
    assert.equal(calls[0].key, calls[1].key);
  });

  it("surfaces not_open with opens_at_ms and does not retry it", async () => {
    const { fetch, calls } = scriptedFetch([json(425, { code: "not_open", status: 425, opens_at_ms: 1234 })]);
    const result = await client(fetch).order("drp_1");
    assert.deepEqual([result.outcome, result.opensAtMs, calls.length], ["not_open", 1234, 1]);
  });
});

/** A WebSocket the test drives: open it, hand it frames, cut it. */
function fakeSockets() {
  const sockets = [];
  class FakeSocket {
    constructor(url) {
      this.url = new URL(url);
      this.readyState = 0;
      this.sent = [];
      this.closedWith = undefined;
      this.onopen = this.onmessage = this.onclose = this.onerror = null;
      sockets.push(this);
    }
    send(data) {
      this.sent.push(JSON.parse(data));
    }
    close(code = 1005, reason = "") {
      if (this.readyState === 3) return;
      this.readyState = 3;
      this.closedWith = { code, reason };
      queueMicrotask(() => this.onclose?.({ code, reason }));
    }
    open() {
      this.readyState = 1;
      this.onopen?.({});
    }
    receive(frame) {
      this.onmessage?.({ data: JSON.stringify(frame) });
    }
  }
  return { WebSocket: FakeSocket, sockets };
}

async function waitFor(predicate, what) {
  const deadline = Date.now() + 2000;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe("room events", () => {
  const hello = (seq) => ({ type: "hello", session_id: "ses_x", room_id: "room_1", server_time_ms: Date.now(), seq, viewers: 1 });
  const stock = (seq, left) => ({ type: "drop.stock", seq, ts_ms: 1, drop_id: "drp_1", stock_left: left, stock: 9 });

  it("drops an event seen already, and resumes after a gap rather than deliver out of order", async () => {
    const { WebSocket, sockets } = fakeSockets();
    const client = new LinkdropClient({ url: "http://linkdrop.test", token: "t", WebSocket, reconnect: { baseMs: 1 } });
    const room = client.join("room_1");
    const seen = [];
    const errors = [];
    room.on("drop.stock", (e) => seen.push(e.seq));
    room.on("error", (e) => errors.push(e.code));
    await waitFor(() => sockets.length === 1, "the first socket");
    assert.equal(sockets[0].url.pathname, "/v1/rooms/room_1/ws");
    assert.equal(sockets[0].url.searchParams.get("token"), "t");
    sockets[0].open();
    sockets[0].receive(hello(0));
    sockets[0].receive(stock(1, 8));
    sockets[0].receive(stock(2, 7));
    sockets[0].receive(stock(2, 7)); // a duplicate
    sockets[0].receive(stock(4, 5)); // 3 never came
    assert.deepEqual(seen, [1, 2]);
    assert.deepEqual(errors, ["gap"]);
    assert.equal(sockets[0].closedWith.code, 4000);
    await waitFor(() => sockets.length === 2, "the resuming socket");
    assert.equal(sockets[1].url.searchParams.get("since"), "2");
    sockets[1].open();
    sockets[1].receive(hello(4));
    sockets[1].receive(stock(3, 6));
    sockets[1].receive(stock(4, 5));
    assert.deepEqual(seen, [1, 2, 3, 4]);
    assert.equal(room.lastSeq, 4);
    assert.equal(room.drop("drp_1"), undefined, "no countdown seen: no view");
    room.close();
    assert.equal(sockets[1].closedWith.code, 1000);
  });

  it("replaces a connection that answers no ping", async () => {
    const { WebSocket, sockets } = fakeSockets();
    const client = new LinkdropClient({ url: "https://linkdrop.test", token: "t", WebSocket, reconnect: { baseMs: 1 } });
    const room = client.join("room_1", { pongTimeoutMs: 50 });
    await waitFor(() => sockets.length === 1, "the first socket");
    assert.equal(sockets[0].url.protocol, "wss:");
    sockets[0].open();
    sockets[0].receive(hello(0));
    assert.equal(sockets[0].sent[0].type, "ping");
    await waitFor(() => sockets.length === 2, "a new socket");
    assert.deepEqual(sockets[0].closedWith, { code: 4000, reason: "no pong" });
    room.close();
  });

  it("reconnects with growing, jittered waits and tells each attempt first", async () => {
    const { WebSocket, sockets } = fakeSockets();
    let r = 0;
    const randoms = [0.5, 0.25, 1 - 1e-9];
    const client = new LinkdropClient({
      url: "http://linkdrop.test", token: "t", WebSocket, reconnect: { baseMs: 10, maxMs: 25 }, random: () => randoms[r++ % 3],
    });
    const room = client.join("room_1");
    const told = [];
    room.on("reconnecting", (info) => told.push([info.attempt, info.windowMs, info.delayMs, info.code]));
    for (let i = 0; i < 3; i++) {
      await waitFor(() => sockets.length === i + 1, `socket ${i + 1}`);
      sockets[i].close(1006, ""); // it never opened
    }
    await waitFor(() => told.length === 3, "three attempts");
    assert.deepEqual(told, [[1, 10, 5, 1006], [2, 20, 5, 1006], [3, 25, 24, 1006]]);
    room.close();
    assert.equal(room.state, "closed");
  });
});
