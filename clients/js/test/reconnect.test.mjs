// The gateway goes away (linkdrop is SIGKILLed) and comes back on the same data directory and
// port: the client resumes with `since` and misses no event; and a room full of clients does
// not come back all at once.
import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { LinkdropClient } from "../dist/index.js";
import { Linkdrop } from "./support/linkdrop.mjs";
import { recordingWebSocket, until } from "./support/sockets.mjs";

describe("reconnecting", () => {
  const servers = [];
  const clients = [];
  after(async () => {
    for (const c of clients) c.close();
    for (const s of servers) await s.stop();
  });

  it("resumes with since after the gateway is killed and restarted, and misses no event", async () => {
    const server = await Linkdrop.start();
    servers.push(server);
    const roomId = await server.createRoom();
    // Token function with a gate: the test holds the client's reconnection until it has made
    // events that the client can only get from the room's history.
    let gate;
    const { WebSocket, attempts } = recordingWebSocket();
    const c = new LinkdropClient({
      url: server.url,
      WebSocket,
      token: async () => {
        await gate?.promise;
        return server.token("resumer");
      },
      reconnect: { baseMs: 200 },
    });
    clients.push(c);
    const room = c.join(roomId);
    const events = [];
    const frames = [];
    room.on("event", (e) => {
      frames.push(e.type);
      if (typeof e.seq === "number" && e.type !== "resync" && e.type !== "hello") events.push(e);
    });
    await room.next("hello", { timeoutMs: 5000 });

    // Before: a drop launched and closed (seq 1, 2).
    const first = await server.createDrop(roomId);
    await server.launch(first, 60_000);
    await server.closeDrop(first);
    await until(() => room.lastSeq === 2, 5000, "seq 2");

    let release;
    gate = { promise: new Promise((r) => (release = r)) };
    const reconnecting = room.next("reconnecting", { timeoutMs: 5000 });
    await server.kill();
    const info = await reconnecting;
    assert.equal(info.attempt, 1);
    assert.equal(info.since, 2);
    assert.equal(room.state, "reconnecting");

    // linkdrop comes back; events happen while the client is still away (seq 3, 4, 5).
    await server.start();
    const second = await server.createDrop(roomId, { title: "Tea set" });
    await server.launch(second, 60_000);
    await server.closeDrop(second);
    const third = await server.createDrop(roomId, { title: "Vase" });
    await server.launch(third, 60_000);
    const framesBefore = frames.length;
    release();

    await room.next("hello", { timeoutMs: 10_000 });
    await until(() => room.lastSeq === 5, 5000, "seq 5");
    assert.deepEqual(events.map((e) => e.seq), [1, 2, 3, 4, 5], "every event once, in order");
    assert.deepEqual(
      events.map((e) => `${e.type}:${e.drop_id ?? e.drop.id}`),
      [`drop.countdown:${first}`, `drop.closed:${first}`, `drop.countdown:${second}`, `drop.closed:${second}`, `drop.countdown:${third}`],
    );
    assert.ok(!frames.slice(framesBefore).includes("resync"), "caught up from history, not from a snapshot");
    assert.equal(attempts.length, 2);
    assert.equal(attempts[0].url.searchParams.get("since"), null, "the first join has no since");
    assert.equal(attempts[1].url.searchParams.get("since"), "2", "the reconnection resumes after seq 2");
    assert.deepEqual(room.drops.map((d) => d.id), [third]);
    assert.equal(room.connections, 2);
  });

  it("the viewers of a killed gateway come back spread over the backoff window", async (t) => {
    const server = await Linkdrop.start();
    servers.push(server);
    const roomId = await server.createRoom();
    const VIEWERS = 40;
    const BASE_MS = 1000; // the default first window
    const viewers = [];
    for (let i = 0; i < VIEWERS; i++) {
      const { WebSocket, attempts } = recordingWebSocket();
      const c = new LinkdropClient({ url: server.url, WebSocket, token: server.token(`viewer-${i}`) });
      clients.push(c);
      const room = c.join(roomId);
      const v = { room, attempts, lostAt: undefined };
      room.on("reconnecting", (info) => {
        if (info.attempt === 1) v.lostAt = performance.now();
      });
      viewers.push(v);
    }
    await Promise.all(viewers.map((v) => (v.room.state === "open" ? null : v.room.next("hello", { timeoutMs: 10_000 }))));

    await server.kill();
    // Each viewer's first attempt after the connection died: the connection attempts on the wire.
    await until(() => viewers.every((v) => v.attempts.length >= 2), BASE_MS + 2000, "every first reconnection attempt");
    const delays = viewers.map((v) => v.attempts[1].at - v.lostAt);
    const times = viewers.map((v) => v.attempts[1].at).sort((a, b) => a - b);
    const span = times.at(-1) - times[0];
    const mean = times.reduce((a, b) => a + b) / times.length;
    const sd = Math.sqrt(times.reduce((a, t) => a + (t - mean) ** 2, 0) / times.length);
    let busiest = 0;
    for (let i = 0, j = 0; i < times.length; i++) {
      while (times[i] - times[j] > 100) j++;
      busiest = Math.max(busiest, i - j + 1);
    }
    const figures = `span ${span.toFixed(0)} ms, sd ${sd.toFixed(0)} ms, busiest 100 ms: ${busiest} of ${VIEWERS}`;
    t.diagnostic(`first reconnection attempts: ${figures}`);
    // Full jitter over [0, 1000 ms] is uniform: sd ≈ 289 ms, span ≈ 950 ms, 4 per 100 ms on
    // average and 8–10 in the busiest 100 ms (simulated: more than 16 in fewer than 1 in
    // 10,000 runs). Without jitter all 40 come back within a few ms.
    assert.ok(Math.max(...delays) <= BASE_MS + 50, `a first attempt waited ${Math.max(...delays)} ms, past the window`);
    assert.ok(span >= BASE_MS / 2, `reconnections not spread: ${figures}`);
    assert.ok(sd >= BASE_MS * 0.15, `reconnections not spread: ${figures}`);
    assert.ok(busiest <= VIEWERS / 2, `a reconnection storm: ${figures}`);

    // linkdrop comes back; every viewer returns (its attempts keep backing off meanwhile).
    await server.start();
    await until(() => viewers.every((v) => v.room.connections === 2 && v.room.state === "open"), 20_000, "every viewer back");
  });
});
