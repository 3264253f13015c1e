// The shopper page: joins a room's WebSocket with a token, keeps an offset to the server's
// clock from ping/pong, and reveals the buy button at `opens_at_ms` on the server's clock —
// not when the countdown arrives — so that every viewer sees it at the same instant.
import { $, api, money, problemText, roomSocketUrl, ServerClock } from "/assets/common.js";

const PINGS_AT_START = 5;
const PING_EVERY_MS = 10_000;

const state = { room: null, token: null, socket: null, clock: new ServerClock(), pings: 0,
                seq: undefined, drop: null, orderUrl: null, opensAt: null, order: null,
                idempotencyKey: null, revealTimer: null };

function join(room, token) {
  state.room = room;
  state.token = token;
  $("join").hidden = true;
  $("live").hidden = false;
  connect();
}

function connect() {
  const socket = new WebSocket(roomSocketUrl(state.room, state.token, state.seq));
  state.socket = socket;
  socket.onopen = () => ping();
  socket.onmessage = (message) => onFrame(JSON.parse(message.data));
  socket.onclose = (event) => {
    $("connection").textContent = `Disconnected (${event.code} ${event.reason || ""}); reconnecting…`;
    document.body.dataset.connected = "false";
    if (event.code !== 4001) setTimeout(connect, 1000);
  };
}

function ping() {
  if (state.socket.readyState !== WebSocket.OPEN) return;
  state.socket.send(JSON.stringify({ type: "ping", t: Date.now() }));
  state.pings += 1;
  setTimeout(ping, state.pings < PINGS_AT_START ? 200 : PING_EVERY_MS);
}

function onFrame(frame) {
  if (typeof frame.seq === "number") state.seq = frame.seq;
  switch (frame.type) {
    case "hello":
      $("connection").textContent = "Connected";
      document.body.dataset.connected = "true";
      showViewers(frame.viewers);
      break;
    case "pong":
      state.clock.sample(frame.t, Date.now(), frame.server_time_ms);
      break;
    case "room.viewers":
      showViewers(frame.viewers);
      break;
    case "drop.countdown":
      countdown(frame.drop, frame.opens_at_ms, frame.order_url);
      break;
    case "resync":
      for (const d of frame.drops || []) countdown(d.drop, d.opens_at_ms, d.order_url);
      break;
    case "drop.sold_out":
      if (state.drop && frame.drop_id === state.drop.id && !state.order) say("Sold out.");
      break;
    case "drop.closed":
      if (state.drop && frame.drop_id === state.drop.id) { $("buy").hidden = true; say("This drop is closed."); }
      break;
    case "order.result":
      if (state.order && frame.order_id === state.order.order_id) outcome(frame.status, frame);
      break;
  }
}

function showViewers(n) {
  if (typeof n === "number") $("viewers").textContent = `${n} watching`;
}

function countdown(drop, opensAt, orderUrl) {
  if (state.drop && state.drop.id === drop.id) return;
  state.drop = drop;
  state.opensAt = opensAt;
  state.orderUrl = orderUrl;
  state.order = null;
  state.idempotencyKey = crypto.randomUUID();
  $("waiting").hidden = true;
  $("product").hidden = false;
  $("product-title").textContent = drop.title;
  $("product-price").textContent = `${money(drop.price_cents, drop.currency)} · at most ${drop.max_per_user} per shopper`;
  $("product-image").src = drop.image_url;
  $("product-image").alt = drop.title;
  $("buy").hidden = true;
  $("pay").hidden = true;
  say("");
  tick();
}

/** Updates the countdown and reveals the buy button once `opens_at_ms` has surely passed
 *  on the server's clock (the offset is known to within half a round trip). */
function tick() {
  const left = state.opensAt - state.clock.now();
  if (!state.clock.surelyPast(state.opensAt)) {
    $("countdown").textContent = `${Math.max(0, left / 1000).toFixed(1)} s`;
    const wait = Math.max(0, Math.min(100, left + Math.ceil(state.clock.uncertainty)));
    state.revealTimer = setTimeout(tick, wait);
    return;
  }
  $("countdown").textContent = "Open!";
  if ($("buy").hidden && !state.order) {
    $("buy").hidden = false;
    document.body.dataset.revealedAtWallMs = String(Date.now());
    document.body.dataset.revealedAtServerMs = String(Math.round(state.clock.now()));
    document.body.dataset.opensAtMs = String(state.opensAt);
    $("buy").focus();
  }
}

function say(text, good) {
  $("result").textContent = text;
  $("result").className = good ? "ok" : text ? "error" : "";
}

async function buy() {
  $("buy").disabled = true;
  const answer = await api(state.orderUrl, { method: "POST", key: state.token, body: { qty: 1 },
                                            headers: { "idempotency-key": state.idempotencyKey } });
  $("buy").disabled = false;
  const code = answer.body && answer.body.code;
  if (answer.status === 201 || answer.status === 202) {
    state.order = answer.body;
    outcome(answer.body.status, answer.body);
  } else if (code === "sold_out") {
    say("Sold out.");
    $("buy").hidden = true;
  } else if (code === "limit_reached") {
    say(`Limit reached: at most ${answer.body.max_per_user} per shopper.`);
    $("buy").hidden = true;
  } else if (code === "rate_limited" || code === "overloaded") {
    say("Busy — try again in a moment.");
  } else {
    say(problemText(answer));
  }
}

function outcome(status, details) {
  $("buy").hidden = status !== "lost" ? true : $("buy").hidden;
  if (status === "reserved") {
    const by = details.pay_by_ms ? ` Pay by ${new Date(details.pay_by_ms).toLocaleTimeString()}.` : "";
    say(`Reserved!${by}`, true);
    $("pay").hidden = false;
  } else if (status === "entered") {
    say("You are in the lottery draw; the result comes when the window closes.", true);
  } else if (status === "lost") {
    say("Not drawn this time.");
  } else if (status === "paid") {
    say("Paid. Thank you!", true);
    $("pay").hidden = true;
  } else if (status === "expired") {
    say("Your reservation expired unpaid.");
    $("pay").hidden = true;
  }
}

async function pay() {
  $("pay").disabled = true;
  const answer = await api(`/v1/orders/${state.order.order_id}/pay`, {
    method: "POST", key: state.token, body: { payment_ref: `demo-${crypto.randomUUID()}` } });
  $("pay").disabled = false;
  if (answer.status === 200) outcome("paid", answer.body);
  else say(answer.body && answer.body.code === "expired" ? "Too late: the reservation expired." : problemText(answer));
}

$("buy").addEventListener("click", buy);
$("pay").addEventListener("click", pay);
$("join-form").addEventListener("submit", (e) => { e.preventDefault(); join($("room-id").value.trim(), $("token").value.trim()); });
const params = new URLSearchParams(location.search);
if (params.get("room")) $("room-id").value = params.get("room");
if (params.get("room") && params.get("token")) join(params.get("room"), params.get("token"));
