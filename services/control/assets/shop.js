// The shopper page, built on the shopper SDK (@linkdrop/client, clients/js; its build is
// /assets/linkdrop-client.js): the SDK keeps the room's connection (resuming with `since`,
// reconnecting with jitter), the offset to the server's clock, and the order's Idempotency-Key
// and retries. The page reveals the buy button at `opens_at_ms` on the server's clock — not
// when the countdown arrives — so that every viewer sees it at the same instant.
import { LinkdropClient } from "/assets/linkdrop-client.js";
import { $, money } from "/assets/common.js";

const state = { client: null, room: null, drop: null, soldOut: false, closed: false, order: null,
                cancelReveal: null, ticker: null };

function join(roomId, token) {
  $("join").hidden = true;
  $("live").hidden = false;
  const client = new LinkdropClient({ token });
  const room = client.join(roomId);
  state.client = client;
  state.room = room;
  room.on("state", (connection) => {
    document.body.dataset.connected = String(connection === "open");
    if (connection === "open") $("connection").textContent = "Connected";
  });
  room.on("reconnecting", (r) => {
    $("connection").textContent =
      `Disconnected (${r.code} ${r.reason || ""}); reconnecting in ${(r.delayMs / 1000).toFixed(1)} s…`;
  });
  room.on("hello", (hello) => showViewers(hello.viewers));
  room.on("room.viewers", (e) => showViewers(e.viewers));
  // A drop's view: its countdown, stock, sold out, closed — from its events or a resync.
  room.on("drop", onDrop);
  client.onOrderResult((result) => {
    if (state.order && result.order_id === state.order.order_id) outcome(result.status, result);
  });
}

function showViewers(n) {
  if (typeof n === "number") $("viewers").textContent = `${n} watching`;
}

function onDrop(view) {
  if (view.closed) {
    if (state.drop && view.id === state.drop.id && !state.closed) {
      state.closed = true;
      stopCountdown();
      $("buy").hidden = true;
      say("This drop is closed.");
    }
    return;
  }
  if (!state.drop || state.drop.id !== view.id) {
    countdown(view);
    return;
  }
  if (view.soldOut && !state.soldOut && !state.order) say("Sold out.");
  state.soldOut = view.soldOut;
}

function countdown(view) {
  stopCountdown();
  const drop = view.drop;
  state.drop = drop;
  state.soldOut = view.soldOut;
  state.closed = false;
  state.order = null;
  $("waiting").hidden = true;
  $("product").hidden = false;
  $("product-title").textContent = drop.title;
  $("product-price").textContent = `${money(drop.price_cents, drop.currency)} · at most ${drop.max_per_user} per shopper`;
  $("product-image").src = drop.image_url;
  $("product-image").alt = drop.title;
  $("buy").hidden = true;
  $("pay").hidden = true;
  say(view.soldOut ? "Sold out." : "");
  const clock = state.room.clock;
  const tick = () => {
    $("countdown").textContent = `${Math.max(0, (view.opensAtMs - clock.now()) / 1000).toFixed(1)} s`;
  };
  tick();
  state.ticker = setInterval(tick, 100);
  state.cancelReveal = state.room.revealAt(view.opensAtMs, () => reveal(view.opensAtMs));
}

function stopCountdown() {
  if (state.ticker) clearInterval(state.ticker);
  if (state.cancelReveal) state.cancelReveal();
  state.ticker = state.cancelReveal = null;
}

/** `opens_at_ms` has surely passed on the server's clock. */
function reveal(opensAtMs) {
  stopCountdown();
  $("countdown").textContent = "Open!";
  if (state.order || state.closed) return;
  $("buy").hidden = false;
  document.body.dataset.revealedAtWallMs = String(Date.now());
  document.body.dataset.revealedAtServerMs = String(Math.round(state.room.clock.now()));
  document.body.dataset.opensAtMs = String(opensAtMs);
  $("buy").focus();
}

function say(text, good) {
  $("result").textContent = text;
  $("result").className = good ? "ok" : text ? "error" : "";
}

function problemText(problem) {
  return problem.detail || problem.title || `HTTP ${problem.status}`;
}

async function buy() {
  const drop = state.drop;
  $("buy").disabled = true;
  let r;
  try {
    // One purchase intent: a second tap, or a retry after a lost answer, carries the same
    // Idempotency-Key, so it can only ever make one order.
    r = await state.client.order(drop.id, 1);
  } catch (e) {
    say(e.status === 429 || e.status === 503
      ? "Busy — try again in a moment."
      : "No answer from the shop. Tap again: it asks about the same order.");
    return;
  } finally {
    $("buy").disabled = false;
  }
  switch (r.outcome) {
    case "reserved":
      state.order = r.order;
      outcome("reserved", r.order);
      break;
    case "entered":
      state.order = r.entry;
      outcome("entered", r.entry);
      state.client.lotteryResult(r.entry).then((result) => outcome(result.status, result), () => {});
      break;
    case "sold_out":
      say("Sold out.");
      $("buy").hidden = true;
      break;
    case "limit_reached":
      say(`Limit reached: at most ${r.maxPerUser} per shopper.`);
      $("buy").hidden = true;
      break;
    case "not_open":
      say("Not open yet.");
      break;
    default:
      say(problemText(r.problem));
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
  let r;
  try {
    r = await state.client.pay(state.order.order_id, `demo-${state.order.order_id}`);
  } catch (e) {
    say("No answer from the shop. Try again.");
    return;
  } finally {
    $("pay").disabled = false;
  }
  if (r.outcome === "paid") outcome("paid", r.order);
  else say(r.outcome === "expired" ? "Too late: the reservation expired." : problemText(r.problem));
}

$("buy").addEventListener("click", buy);
$("pay").addEventListener("click", pay);
$("join-form").addEventListener("submit", (e) => { e.preventDefault(); join($("room-id").value.trim(), $("token").value.trim()); });
const params = new URLSearchParams(location.search);
if (params.get("room")) $("room-id").value = params.get("room");
if (params.get("room") && params.get("token")) join(params.get("room"), params.get("token"));
