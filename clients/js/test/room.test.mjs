// Rooms against a real linkdrop: joining, typed events, the countdown revealed on the server's
// clock, and a lottery's results.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { WebSocket } from "ws";
import { LinkdropClient } from "../dist/index.js";
import { Linkdrop } from "./support/linkdrop.mjs";

describe("rooms", () => {
  let server;
  const clients = [];
  const client = (user, options = {}) => {
    const c = new LinkdropClient({ url: server.url, token: server.token(user), WebSocket, ...options });
    clients.push(c);
    return c;
  };
  before(async () => {
    server = await Linkdrop.start();
  });
  after(async () => {
    for (const c of clients) c.close();
    await server?.stop();
  });

  it("joins a room with a token function and gets a typed hello", async () => {
    const roomId = await server.createRoom();
    const reasons = [];
    const c = client("joiner", { token: async ({ reason }) => (reasons.push(reason), server.token("joiner")) });
    const room = c.join(roomId);
    assert.equal(room.state, "connecting");
    const pong = room.next("pong", { timeoutMs: 5000 });
    const hello = await room.next("hello", { timeoutMs: 5000 });
    assert.equal(hello.type, "hello");
    assert.equal(hello.room_id, roomId);
    assert.match(hello.session_id, /^ses_/);
    assert.equal(hello.seq, 0);
    assert.equal(room.state, "open");
    assert.equal(room.sessionId, hello.session_id);
    assert.equal(room.lastSeq, 0);
    assert.deepEqual(reasons, ["connect"]);
    assert.ok(room.clock.synced, "hello's server_time_ms is a first clock sample");
    assert.equal(typeof (await pong).server_time_ms, "number");
    room.close();
    assert.equal(room.state, "closed");
  });

  it("counts down and reveals at opens_at_ms on the server's clock, not the local one", async () => {
    // This shopper's phone runs 7 seconds slow: a reveal on its own clock would come 7 s late.
    const skewMs = 7000;
    const roomId = await server.createRoom();
    const c = client("early-bird", { now: () => Date.now() - skewMs });
    const room = c.join(roomId);
    // The first pings: five round trips, one after the other.
    let pongs = 0;
    await room.next("pong", { filter: () => ++pongs === 5, timeoutMs: 5000 });
    assert.ok(Math.abs(c.clock.offset - skewMs) < 50, `offset ${c.clock.offset}, expected about ${skewMs}`);
    assert.ok(c.clock.uncertainty < 50, `uncertainty ${c.clock.uncertainty}`);

    const dropId = await server.createDrop(roomId);
    const countdown = room.next("drop.countdown", { timeoutMs: 5000 });
    const { opens_at_ms } = await server.launch(dropId, 1500);
    const event = await countdown;
    const arrivedAt = Date.now();
    assert.equal(event.opens_at_ms, opens_at_ms);
    assert.equal(event.drop.id, dropId);
    assert.equal(event.order_url, `${server.url}/v1/drops/${dropId}/orders`);
    // The server's clock is this machine's: Date.now() is the truth here.
    const revealedAt = await new Promise((resolve) => room.revealAt(event.opens_at_ms, () => resolve(Date.now())));
    assert.ok(revealedAt - arrivedAt > 1000, "the countdown arrived ahead of the opening and the reveal waited for it");
    assert.ok(revealedAt >= opens_at_ms, `revealed ${opens_at_ms - revealedAt} ms before opens_at_ms`);
    assert.ok(revealedAt - opens_at_ms < 250, `revealed ${revealedAt - opens_at_ms} ms after opens_at_ms`);
    // And the order goes through at once.
    const result = await c.order(dropId);
    assert.equal(result.outcome, "reserved");
  });

  it("delivers stock, sold out and closed in seq order and keeps each drop's view", async () => {
    const roomId = await server.createRoom();
    const watcher = client("watcher").join(roomId);
    await watcher.next("hello", { timeoutMs: 5000 });
    const events = [];
    watcher.on("event", (e) => {
      if (e.seq !== undefined && e.type !== "resync" && e.type !== "hello") events.push(e);
    });
    const dropId = await server.createDrop(roomId, { stock: 2 });
    // Listening before acting: an event may come before the answer to the call that made it.
    const countdown = watcher.next("drop.countdown", { timeoutMs: 5000 });
    await server.launch(dropId, 0);
    await countdown;
    const soldOut = watcher.next("drop.sold_out", { timeoutMs: 5000 });
    assert.equal((await client("buyer-1").order(dropId)).outcome, "reserved");
    assert.equal((await client("buyer-2").order(dropId)).outcome, "reserved");
    assert.equal((await soldOut).drop_id, dropId);
    const late = await client("buyer-3").order(dropId);
    assert.equal(late.outcome, "sold_out", "409 sold_out comes back as a result");
    assert.equal(late.attempts, 1, "and is not retried");
    const closed = watcher.next("drop.closed", { timeoutMs: 5000 });
    await server.closeDrop(dropId);
    assert.equal((await closed).drop_id, dropId);

    const seqs = events.map((e) => e.seq);
    assert.deepEqual(seqs, seqs.map((_, i) => seqs[0] + i), `consecutive seqs: ${seqs}`);
    const types = events.map((e) => e.type);
    assert.equal(types[0], "drop.countdown");
    assert.ok(types.includes("drop.sold_out") && types.at(-1) === "drop.closed", types.join(", "));
    assert.ok(events.filter((e) => e.type === "drop.stock").every((e) => e.drop_id === dropId && e.stock === 2));
    const view = watcher.drop(dropId);
    assert.deepEqual([view.soldOut, view.closed, view.stockLeft, view.stock], [true, true, 0, 2]);
    assert.deepEqual(watcher.drops, [], "closed drops are not listed");
    assert.equal(watcher.lastSeq, seqs.at(-1));
  });

  it("a new viewer of a room with a launched drop gets its state (resync)", async () => {
    const roomId = await server.createRoom();
    const dropId = await server.createDrop(roomId, { stock: 3 });
    const { opens_at_ms } = await server.launch(dropId, 60_000);
    const room = client("newcomer").join(roomId);
    const resync = await room.next("resync", { timeoutMs: 5000 });
    assert.equal(resync.drops[0].drop_id, dropId);
    const view = room.drop(dropId);
    assert.equal(view.opensAtMs, opens_at_ms);
    assert.equal(view.stockLeft, 3);
    assert.equal(view.orderUrl, `${server.url}/v1/drops/${dropId}/orders`);
    const early = await client("newcomer").order(dropId);
    assert.equal(early.outcome, "not_open");
    assert.equal(early.opensAtMs, opens_at_ms);
  });

  it("a lottery: 202 entered, then the result on the socket, or by reading the order", async () => {
    const roomId = await server.createRoom();
    const dropId = await server.createDrop(roomId, { stock: 1, fairness: { policy: "lottery", window_ms: 300 } });
    // Two shoppers watch the room; a third only orders (its result comes from GET /v1/orders/{id}).
    const watching = ["lotto-a", "lotto-b"].map((user) => {
      const c = client(user);
      return { user, c, room: c.join(roomId) };
    });
    await Promise.all(watching.map((w) => w.room.next("hello", { timeoutMs: 5000 })));
    const countdowns = Promise.all(watching.map((w) => w.room.next("drop.countdown", { timeoutMs: 5000 })));
    const draw = watching[0].room.next("drop.draw", { timeoutMs: 10_000 });
    const launched = await server.launch(dropId, 0);
    assert.equal((await countdowns)[0].seed_hash, launched.seed_hash);
    const offline = client("lotto-c");
    const shoppers = [...watching.map((w) => w.c), offline];
    const entries = await Promise.all(shoppers.map((c) => c.order(dropId)));
    for (const e of entries) {
      assert.equal(e.outcome, "entered");
      assert.equal(e.entry.status, "entered");
      assert.ok(e.entry.draw_at_ms >= launched.opens_at_ms + 300);
    }
    const results = await Promise.all(shoppers.map((c, i) => c.lotteryResult(entries[i].entry, { timeoutMs: 15_000 })));
    assert.deepEqual(results.map((r) => r.via), ["socket", "socket", "poll"]);
    assert.equal(results.filter((r) => r.status === "reserved").length, 1, JSON.stringify(results));
    assert.equal(results.filter((r) => r.status === "lost").length, 2);
    assert.equal((await draw).winners, 1);
    const winner = results.findIndex((r) => r.status === "reserved");
    const paid = await shoppers[winner].pay(results[winner].order_id);
    assert.equal(paid.outcome, "paid");
    const loser = results.findIndex((r) => r.status === "lost");
    assert.equal((await shoppers[loser].pay(results[loser].order_id)).outcome, "not_payable");
  });
});
