// @linkdrop/client — the shopper side of linkdrop's protocol (API.md; schemas/ws/).
//
// No runtime dependencies; for browsers and Node >= 20 (pass a WebSocket class where there
// is no global one). What it does for an app:
//   - joins a room's WebSocket with a token (or a function that fetches a fresh one) and
//     hands out its events, typed;
//   - keeps an offset to the server's clock from ping/pong (the best of the recent round
//     trips) and calls back at `opens_at_ms` on the server's clock (`revealAt`);
//   - resumes after any disconnection with `since` (the last seq seen), so that no room event
//     is missed, and reconnects with exponential backoff and full jitter, so that the viewers
//     of a gateway that went away come back spread out rather than all at once;
//   - orders with one Idempotency-Key per purchase intent, sending the same request again
//     when its answer was lost (no answer, a 5xx) and after Retry-After on 429/503;
//   - pays, reads orders, and waits for a lottery entry's result (`order.result` on the
//     socket, or `GET /v1/orders/{id}` after the draw).

// This file is the package's entry: it re-exports the public API of the modules beside it.
//   events.ts   room events, typed, and what a room tells its listeners
//   options.ts  what an app passes to the client and to `join`
//   errors.ts   problem answers and LinkdropError
//   clock.ts    the server's clock and the reveal at a server time (ServerClock)
//   backoff.ts  backoff windows with full jitter, Retry-After
//   room.ts     one room's connection: reconnect, resume with `since`, pings, drop views (Room)
//   http.ts     one HTTP call with the retry policy
//   orders.ts   order answers, purchase intents and Idempotency-Keys, lottery results
//   client.ts   linkdrop for one shopper (LinkdropClient)
//   util.ts     an abortable sleep, a typed event emitter
// The shop page gets them as one file: `npm run build` (scripts/copy-bundle.mjs) joins the
// compiled modules into services/control/assets/linkdrop-client.js.

export type {
  ConnectionState, DropClosedEvent, DropCountdownEvent, DropDrawEvent, DropInfo, DropSoldOutEvent, DropStockEvent,
  DropView, Fairness, HelloEvent, OrderResultEvent, PongEvent, ReconnectInfo, ResyncDrop, ResyncEvent, RoomEvent,
  RoomEventMap, RoomListenerMap, RoomViewersEvent,
} from "./events.js";
export type {
  BackoffOptions, ClientOptions, JoinOptions, ReconnectOptions, RetryOptions, TokenProvider, WebSocketConstructor,
  WebSocketLike,
} from "./options.js";
export type { Problem } from "./errors.js";
export type { ClockSample } from "./clock.js";
export type { LotteryEntry, LotteryResult, Order, OrderIntent, OrderResult, PayResult, ReservedOrder } from "./orders.js";

export { LinkdropError } from "./errors.js";
export { ServerClock } from "./clock.js";
export { backoffWindow, parseRetryAfter } from "./backoff.js";
export { newIdempotencyKey } from "./orders.js";
export { Room } from "./room.js";
export { LinkdropClient } from "./client.js";
