// Orders against a real linkdrop, some through a proxy that loses answers or says 503: one
// Idempotency-Key per purchase intent, lost answers asked again with it, Retry-After honoured,
// and the refusals that are results (sold out, not open, limit reached) not retried.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { WebSocket } from "ws";
import { LinkdropClient } from "../dist/index.js";
import { Linkdrop } from "./support/linkdrop.mjs";
import { startProxy } from "./support/proxy.mjs";

describe("orders", () => {
  let server;
  const cleanup = [];
  before(async () => {
    server = await Linkdrop.start();
  });
  after(async () => {
    for (const f of cleanup) await f();
    await server?.stop();
  });

  /** A client whose every request is counted. */
  const client = (user, options = {}) => {
    const requests = [];
    const c = new LinkdropClient({
      url: server.url,
      token: server.token(user),
      WebSocket,
      fetch: (url, init) => {
        requests.push({ url: String(url), at: performance.now(), key: init?.headers?.["idempotency-key"] });
        return fetch(url, init);
      },
      ...options,
    });
    cleanup.push(() => c.close());
    return { c, requests };
  };
  const openDrop = async (options) => {
    const roomId = await server.createRoom();
    const dropId = await server.createDrop(roomId, options);
    await server.launch(dropId, 0);
    return dropId;
  };
  const proxy = async (plan) => {
    const p = await startProxy(server.url, plan);
    cleanup.push(p.close);
    return p;
  };

  it("reserves once for a double tap, then pays", async () => {
    const dropId = await openDrop({ stock: 5 });
    const { c, requests } = client("tapper");
    const [a, b] = await Promise.all([c.order(dropId), c.order(dropId)]);
    assert.equal(a, b, "the second tap gets the first tap's answer");
    assert.equal(requests.length, 1);
    assert.equal(a.outcome, "reserved");
    assert.equal(a.replayed, false);
    assert.match(a.order.order_id, /^ord_/);
    const paid = await c.pay(a.order.order_id, "ref-1");
    assert.equal(paid.outcome, "paid");
    assert.equal(paid.order.payment_ref, "ref-1");
    assert.equal((await c.getOrder(a.order.order_id)).status, "paid");
    assert.equal((await server.drop(dropId)).reserved + (await server.drop(dropId)).paid, 1);
  });

  it("a lost answer is asked again with the same key and gives the same order (idempotent-replayed)", async () => {
    const dropId = await openDrop({ stock: 5 });
    const p = await proxy((n) => (n === 1 ? "lose-answer" : "pass"));
    const { c } = client("unlucky", { url: p.url });
    const result = await c.order(dropId);
    assert.equal(result.outcome, "reserved");
    assert.equal(result.attempts, 2);
    assert.equal(result.replayed, true, "the second answer is the first one, replayed");
    const [lost, retry] = p.requests;
    assert.equal(lost.upstream.status, 201, "linkdrop took the order the first time");
    assert.equal(JSON.parse(lost.upstream.body).order_id, result.order.order_id, "the same order comes back");
    assert.equal(lost.headers["idempotency-key"], retry.headers["idempotency-key"]);
    assert.equal(retry.upstream.headers["idempotent-replayed"], "true");
    const drop = await server.drop(dropId);
    assert.equal(drop.stock_left, 4, "one unit taken, not two");
  });

  it("a 5xx without an answer is asked again", async () => {
    const dropId = await openDrop({ stock: 5 });
    const p = await proxy((n) => (n === 1 ? { status: 502, body: "" } : "pass"));
    const { c } = client("gatewayed", { url: p.url });
    const result = await c.order(dropId);
    assert.deepEqual([result.outcome, result.attempts, result.replayed], ["reserved", 2, false]);
    assert.equal(p.requests[0].headers["idempotency-key"], p.requests[1].headers["idempotency-key"]);
  });

  it("a 503 with Retry-After is waited out before asking again", async () => {
    const dropId = await openDrop({ stock: 5 });
    const overloaded = {
      status: 503,
      headers: { "content-type": "application/problem+json", "retry-after": "2" },
      body: JSON.stringify({ type: "urn:linkdrop:problem:overloaded", title: "Overloaded", status: 503, code: "overloaded" }),
    };
    const p = await proxy((n) => (n === 1 ? overloaded : "pass"));
    const { c } = client("patient", { url: p.url });
    const result = await c.order(dropId);
    assert.equal(result.outcome, "reserved");
    assert.equal(result.attempts, 2);
    const waited = p.requests[1].receivedAt - p.requests[0].answeredAt;
    assert.ok(waited >= 2000, `asked again ${waited} ms after Retry-After: 2`);
    assert.ok(waited < 3500, `waited ${waited} ms (at most half as long again)`);
  });

  it("linkdrop's own 429 (per-shopper rate limit) is waited out", async () => {
    // Seven purchases at once by one shopper: over the 5 per second linkdrop allows.
    const drops = await Promise.all(Array.from({ length: 7 }, () => openDrop({ stock: 1 })));
    const answers = [];
    const { c } = client("hasty", {
      fetch: async (url, init) => {
        const sent = performance.now();
        const response = await fetch(url, init);
        answers.push({ key: init.headers["idempotency-key"], sent, at: performance.now(), status: response.status, retryAfter: response.headers.get("retry-after") });
        return response;
      },
    });
    const results = await Promise.all(drops.map((d) => c.order(d)));
    assert.deepEqual(results.map((r) => r.outcome), Array(7).fill("reserved"));
    const limited = answers.filter((a) => a.status === 429);
    assert.ok(limited.length >= 1, "linkdrop refused some with 429");
    for (const refusal of limited) {
      assert.ok(refusal.retryAfter, "429 carries Retry-After");
      const next = answers.find((a) => a.key === refusal.key && a.sent > refusal.at);
      assert.ok(next, "the refused intent was sent again");
      assert.ok(next.sent - refusal.at >= Number(refusal.retryAfter) * 1000, `asked again after ${next.sent - refusal.at} ms`);
    }
  });

  it("sold out is a result, not retried; the same intent gets the unit that comes back", async () => {
    const roomId = await server.createRoom();
    // Reservations of this drop expire after a second unpaid.
    const quick = (await server.expect(201, "POST", `/v1/rooms/${roomId}/drops`, {
      sku: "SKU-Q", title: "Quick", image_url: "https://img.example/q.png", price_cents: 100, currency: "CNY",
      stock: 1, pay_within_s: 1,
    })).id;
    await server.launch(quick, 0);
    const first = client("first");
    assert.equal((await first.c.order(quick)).outcome, "reserved");
    const second = client("second");
    const watcher = second.c.join(roomId);
    // The first shopper does not pay; the unit comes back (drop.stock with a unit left).
    const back = watcher.next("drop.stock", { filter: (e) => e.drop_id === quick && e.stock_left === 1, timeoutMs: 10_000 });
    const refused = await second.c.order(quick);
    assert.equal(refused.outcome, "sold_out");
    assert.equal(second.requests.length, 1, "sold out is not retried by the SDK");
    await back;
    const again = await second.c.order(quick);
    assert.equal(again.outcome, "reserved");
    assert.equal(again.idempotencyKey, refused.idempotencyKey, "one key for the whole intent");
  });

  it("not_open carries opens_at_ms; limit_reached is final and a new purchase has a new key", async () => {
    const roomId = await server.createRoom();
    const later = await server.createDrop(roomId);
    const { opens_at_ms } = await server.launch(later, 60_000);
    const { c, requests } = client("eager");
    const early = await c.order(later);
    assert.deepEqual([early.outcome, early.opensAtMs, requests.length], ["not_open", opens_at_ms, 1]);

    const now = await openDrop({ stock: 5, maxPerUser: 1 });
    const bought = await c.order(now);
    assert.equal(bought.outcome, "reserved");
    const more = await c.order(now);
    assert.equal(more.outcome, "limit_reached");
    assert.equal(more.maxPerUser, 1);
    assert.notEqual(more.idempotencyKey, bought.idempotencyKey, "the reservation ended its intent");
    const yetMore = await c.order(now);
    assert.notEqual(yetMore.idempotencyKey, more.idempotencyKey, "limit_reached is final too");
  });
});
