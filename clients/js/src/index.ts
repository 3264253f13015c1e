// @linkdrop/client — the shopper side of linkdrop's protocol (API.md; schemas/ws/).
//
// One ES module, no dependencies, for browsers and Node >= 20 (pass a WebSocket class where
// there is no global one). What it does for an app:
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
//
// This file is also served as-is to the shop page (services/control/assets/linkdrop-client.js).

// ---------------------------------------------------------------------------------------
// Room events (API.md "WebSocket"; one JSON Schema per frame in schemas/ws/). Every frame may
// carry members not listed here: they are passed through untouched.

/** How buyers contend for the stock. */
export type Fairness = { policy: "fcfs" } | { policy: "lottery"; window_ms: number };

/** What viewers see of a drop (`drop.countdown`'s `drop`). */
export interface DropInfo {
  id: string;
  sku: string;
  title: string;
  image_url: string;
  /** Price in minor units. */
  price_cents: number;
  /** ISO 4217 code. */
  currency: string;
  max_per_user: number;
  fairness: Fairness;
}

/** First frame of every connection. `seq` is the room's latest seq when it was made. */
export interface HelloEvent {
  type: "hello";
  session_id: string;
  room_id: string;
  server_time_ms: number;
  seq: number;
  viewers: number;
}

/** A drop was launched: it takes orders from `opens_at_ms` (server time). */
export interface DropCountdownEvent {
  type: "drop.countdown";
  seq: number;
  ts_ms: number;
  drop: DropInfo;
  opens_at_ms: number;
  /** Where to POST orders for this drop. */
  order_url: string;
  /** Lottery drops only: hex SHA-256 of the draw seed. */
  seed_hash?: string;
}

/** The drop's stock changed (at most a few per second). */
export interface DropStockEvent {
  type: "drop.stock";
  seq: number;
  ts_ms: number;
  drop_id: string;
  stock_left: number;
  stock: number;
}

/** No unit is left right now (units may come back when a reservation expires unpaid). */
export interface DropSoldOutEvent {
  type: "drop.sold_out";
  seq: number;
  ts_ms: number;
  drop_id: string;
  sold_out_at_ms: number;
}

/** The host closed the drop: no orders after it. */
export interface DropClosedEvent {
  type: "drop.closed";
  seq: number;
  ts_ms: number;
  drop_id: string;
}

/** A lottery drop's draw is done: the seed (its hash came with the countdown), winners. */
export interface DropDrawEvent {
  type: "drop.draw";
  seq: number;
  ts_ms: number;
  drop_id: string;
  seed: string;
  winners: number;
  cutoff_rank: string | null;
}

/** Approximate viewers of the room (no seq: a notice, not replayed). */
export interface RoomViewersEvent {
  type: "room.viewers";
  viewers: number;
  ts_ms: number;
}

/** The result of this shopper's lottery entry (no seq: only to the shopper, not replayed). */
export interface OrderResultEvent {
  type: "order.result";
  order_id: string;
  drop_id: string;
  status: "reserved" | "lost";
  /** With `reserved`: the payment deadline. */
  pay_by_ms?: number;
}

/** One drop in a `resync`: its countdown (without `type`) and its live figures. */
export interface ResyncDrop {
  drop_id: string;
  state: "countdown" | "open" | "sold_out";
  stock: number;
  stock_left: number;
  opens_at_ms: number;
  order_url?: string;
  drop: DropInfo;
  seed_hash?: string;
}

/** The room's drops as of `seq`, sent instead of the missed events when they are no longer
 *  kept, and to a new viewer of a room with launched drops. Closed drops are left out. */
export interface ResyncEvent {
  type: "resync";
  seq?: number;
  drops: ResyncDrop[];
}

/** Answer to the SDK's clock ping. */
export interface PongEvent {
  type: "pong";
  t: number | null;
  server_time_ms: number;
}

/** Every frame the server sends, by type. */
export interface RoomEventMap {
  hello: HelloEvent;
  "drop.countdown": DropCountdownEvent;
  "drop.stock": DropStockEvent;
  "drop.sold_out": DropSoldOutEvent;
  "drop.closed": DropClosedEvent;
  "drop.draw": DropDrawEvent;
  "room.viewers": RoomViewersEvent;
  "order.result": OrderResultEvent;
  resync: ResyncEvent;
  pong: PongEvent;
}

/** Any frame the server sends (frames of types this version does not know included). */
export type RoomEvent = RoomEventMap[keyof RoomEventMap] | { type: string; seq?: number; [member: string]: unknown };

/** Where a room's connection is. */
export type ConnectionState = "connecting" | "open" | "reconnecting" | "closed";

/** Told before each reconnection attempt. */
export interface ReconnectInfo {
  /** 1 for the first attempt after a disconnection, then 2, 3, … until one succeeds. */
  attempt: number;
  /** How long the SDK waits before this attempt (full jitter: anywhere in [0, window]). */
  delayMs: number;
  /** The backoff window this delay was drawn from. */
  windowMs: number;
  /** Close code and reason of the connection that ended (1006: it failed or was cut). */
  code: number;
  reason: string;
  /** The seq the attempt resumes from (`since`), if any. */
  since: number | undefined;
}

/** What the SDK knows of one launched drop of a room, kept from its events (and `resync`). */
export interface DropView {
  id: string;
  drop: DropInfo;
  opensAtMs: number;
  orderUrl: string | undefined;
  seedHash: string | undefined;
  stock: number | undefined;
  stockLeft: number | undefined;
  /** No unit left right now; not final (units come back from unpaid reservations). */
  soldOut: boolean;
  soldOutAtMs: number | undefined;
  closed: boolean;
  draw: { seed: string; winners: number; cutoffRank: string | null } | undefined;
}

/** Everything a `Room` can tell its listeners: its frames, and about its connection. */
export interface RoomListenerMap extends RoomEventMap {
  /** Every frame, after its own listeners (frames of unknown types too). */
  event: RoomEvent;
  /** The connection's state changed. */
  state: ConnectionState;
  /** A reconnection is scheduled. */
  reconnecting: ReconnectInfo;
  /** A drop's view changed (countdown, stock, sold out, closed, draw, resync). */
  drop: DropView;
  /** Something went wrong that the SDK works around (a token that could not be fetched, a
   *  gap in the events). Informational: the SDK keeps reconnecting. */
  error: Error;
}

// ---------------------------------------------------------------------------------------
// HTTP answers (API.md "Shopping"; the order schemas in schemas/openapi.yaml).

/** An RFC 9457 problem answer, as linkdrop sends for every error. */
export interface Problem {
  type?: string;
  title?: string;
  status: number;
  code?: string;
  detail?: string;
  [member: string]: unknown;
}

/** 201: the units are the shopper's until `pay_by_ms`. */
export interface ReservedOrder {
  order_id: string;
  status: "reserved";
  qty: number;
  pay_by_ms: number;
  [member: string]: unknown;
}

/** 202: a lottery entry; the result comes at `draw_at_ms`. */
export interface LotteryEntry {
  order_id: string;
  status: "entered";
  draw_at_ms: number;
  qty?: number;
  [member: string]: unknown;
}

/** `GET /v1/orders/{id}`. */
export interface Order {
  order_id: string;
  drop_id: string;
  user_id: string;
  qty: number;
  status: "entered" | "lost" | "reserved" | "paid" | "expired" | "cancelled";
  [member: string]: unknown;
}

/** What an order request came to. Only `reserved`, `entered` and `limit_reached` are final
 *  (recorded under the Idempotency-Key); the others may change. */
export type OrderResult =
  | { outcome: "reserved"; order: ReservedOrder; replayed: boolean; idempotencyKey: string; attempts: number }
  | { outcome: "entered"; entry: LotteryEntry; replayed: boolean; idempotencyKey: string; attempts: number }
  /** 409 `sold_out`: no unit right now. Not final: units come back when reservations expire;
   *  ordering again (the same intent keeps its key) may succeed. The SDK does not retry it. */
  | { outcome: "sold_out"; problem: Problem; idempotencyKey: string; attempts: number }
  /** 409 `limit_reached`: the shopper holds `max_per_user` units. Final. */
  | { outcome: "limit_reached"; maxPerUser: number | undefined; problem: Problem; idempotencyKey: string; attempts: number }
  /** 425 `not_open`: too early; the drop opens at `opensAtMs` (server time). */
  | { outcome: "not_open"; opensAtMs: number | undefined; problem: Problem; idempotencyKey: string; attempts: number }
  /** 410 `closed`: the host closed the drop. */
  | { outcome: "closed"; problem: Problem; idempotencyKey: string; attempts: number }
  /** Any other refusal (400, 401, 403, 404, 409 `idempotency_conflict`, 413, 422): a bug or
   *  a bad token rather than the sale's outcome. */
  | { outcome: "refused"; status: number; code: string | undefined; problem: Problem; idempotencyKey: string; attempts: number };

/** What paying came to. Paying again answers the same, so it is retried like an order. */
export type PayResult =
  | { outcome: "paid"; order: Order & { paid_at_ms?: number; payment_ref?: string }; attempts: number }
  /** 409 `expired`: past `pay_by_ms`; the units went back on sale. */
  | { outcome: "expired"; problem: Problem; attempts: number }
  /** 409 `not_payable`: not a reservation (a lottery entry, a lost entry). */
  | { outcome: "not_payable"; orderStatus: string | undefined; problem: Problem; attempts: number }
  | { outcome: "refused"; status: number; code: string | undefined; problem: Problem; attempts: number };

/** A lottery entry's result. */
export interface LotteryResult {
  order_id: string;
  status: "reserved" | "lost";
  pay_by_ms?: number;
  /** Where it came from: the room's `order.result`, or reading the order. */
  via: "socket" | "poll";
}

/** Thrown when no answer could be had: the network failed, or linkdrop stayed busy or
 *  unavailable, for longer than the retry budget; or the call was aborted. The purchase
 *  intent keeps its key: ordering again sends the same key, so an order that was taken
 *  meanwhile comes back rather than a second one being made. */
export class LinkdropError extends Error {
  /** `network` (no answer), `timeout` (no answer in time), `aborted`, or the last answer's
   *  problem code (`overloaded`, `rate_limited`, `unavailable`, …) or `http_<status>`. */
  readonly code: string;
  /** The last HTTP status seen, 0 when there was none. */
  readonly status: number;
  readonly attempts: number;
  readonly problem: Problem | undefined;
  /** Retry-After of the last answer, when it had one. */
  readonly retryAfterMs: number | undefined;
  constructor(message: string, details: { code: string; status: number; attempts: number; problem?: Problem; retryAfterMs?: number; cause?: unknown }) {
    super(message);
    this.name = "LinkdropError";
    this.code = details.code;
    this.status = details.status;
    this.attempts = details.attempts;
    this.problem = details.problem;
    this.retryAfterMs = details.retryAfterMs;
    if (details.cause !== undefined) (this as { cause?: unknown }).cause = details.cause;
  }
}

// ---------------------------------------------------------------------------------------
// Options.

/** The least of the WebSocket API the SDK uses: browsers' `WebSocket`, the `ws` package's. */
export interface WebSocketLike {
  readonly readyState: number;
  onopen: ((event: any) => void) | null;
  onmessage: ((event: any) => void) | null;
  onclose: ((event: any) => void) | null;
  onerror: ((event: any) => void) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}
export type WebSocketConstructor = new (url: string) => WebSocketLike;

/** Gives a shopper token. Called before every connection attempt (return a cached token
 *  while it is valid) and with `reason: "refresh"` after linkdrop refused one (401). */
export type TokenProvider = (context: { reason: "connect" | "request" | "refresh" }) => string | Promise<string>;

/** Exponential backoff with full jitter: attempt n (from 1) waits a random time in
 *  [0, min(maxMs, baseMs · 2^(n−1))]. */
export interface BackoffOptions {
  baseMs?: number;
  maxMs?: number;
}

export interface ReconnectOptions extends BackoffOptions {
  /** Give up after this many attempts in a row (default: never). */
  maxAttempts?: number;
  /** A connection that lived this long counts as a success: the next disconnection starts
   *  the backoff from its first window again. Default 5000 ms. */
  stableAfterMs?: number;
}

export interface RetryOptions extends BackoffOptions {
  /** Requests per call at most, the first included. Default 8. */
  maxAttempts?: number;
  /** No new attempt starts after this long from the call (ms). Default 30000. */
  deadlineMs?: number;
  /** One request's time limit; past it, its answer counts as lost (ms). Default 10000. */
  requestTimeoutMs?: number;
}

export interface ClientOptions {
  /** linkdrop's base URL (`https://live.example`); in a browser, the page's origin by default. */
  url?: string;
  /** Base URL of the WebSockets when they are served elsewhere; default: `url` with ws(s). */
  wsUrl?: string;
  /** The shopper's token (a JWT), or a function that fetches a fresh one. */
  token: string | TokenProvider;
  /** A WebSocket class, where there is no global one (Node 20: `import { WebSocket } from "ws"`). */
  WebSocket?: WebSocketConstructor;
  /** A fetch function; default the global one. */
  fetch?: typeof fetch;
  /** Reconnection backoff of rooms. Defaults: base 1000 ms, cap 30000 ms. */
  reconnect?: ReconnectOptions;
  /** Retries of order, pay and reads. Defaults: base 250 ms, cap 4000 ms, 8 attempts, 30 s. */
  retry?: RetryOptions;
  /** The local clock (ms since the epoch); default `Date.now`. */
  now?: () => number;
  /** A source of randomness in [0, 1), for the jitter; default `Math.random`. */
  random?: () => number;
}

export interface JoinOptions {
  /** Resume after this seq (one the app kept, e.g. across a page reload). */
  since?: number;
  /** Clock pings sent one after the other when a connection opens. Default 5. */
  initialPings?: number;
  /** Then one ping every this long (ms). Default 10000. */
  pingIntervalMs?: number;
  /** A connection that answers no ping for this long is taken as dead and replaced. Default 15000. */
  pongTimeoutMs?: number;
}

// ---------------------------------------------------------------------------------------
// The server's clock.

/** One ping/pong (or hello) measurement. */
export interface ClockSample {
  /** Round trip (ms). */
  rttMs: number;
  /** Server clock minus local clock (ms). */
  offsetMs: number;
  /** Local time the sample was taken. */
  atMs: number;
}

/**
 * An estimate of the server's clock. Each sample (a ping's local send and receive times and
 * the server's time in between) gives an offset that is right to within half its round trip;
 * the clock keeps the last `keep` samples and uses the one with the shortest round trip, so
 * that one slow answer does not move it and an old one ages out.
 */
export class ServerClock {
  private samples: ClockSample[] = [];
  private best: ClockSample | undefined;
  private readonly keep: number;
  private readonly localNow: () => number;

  constructor(options: { now?: () => number; keep?: number } = {}) {
    this.localNow = options.now ?? (() => Date.now());
    this.keep = options.keep ?? 8;
  }

  /** Server time − local time (ms); 0 before any sample. */
  get offset(): number {
    return this.best ? this.best.offsetMs : 0;
  }

  /** How far `offset` may be off (half the best round trip); Infinity before any sample. */
  get uncertainty(): number {
    return this.best ? this.best.rttMs / 2 : Infinity;
  }

  /** Whether any sample was taken. */
  get synced(): boolean {
    return this.best !== undefined;
  }

  /** The local clock. */
  local(): number {
    return this.localNow();
  }

  /** Adds a sample: local send time, local receive time, the server's time in between. */
  sample(sentMs: number, receivedMs: number, serverMs: number): ClockSample | undefined {
    if (!Number.isFinite(sentMs) || !Number.isFinite(receivedMs) || !Number.isFinite(serverMs) || receivedMs < sentMs) {
      return undefined;
    }
    const rttMs = receivedMs - sentMs;
    const sample = { rttMs, offsetMs: serverMs - (sentMs + rttMs / 2), atMs: receivedMs };
    this.samples.push(sample);
    if (this.samples.length > this.keep) this.samples.shift();
    this.best = this.samples.reduce((a, b) => (b.rttMs <= a.rttMs ? b : a));
    return sample;
  }

  /** The server's time now (estimated). */
  now(): number {
    return this.localNow() + this.offset;
  }

  /** Whether `serverMs` has surely passed on the server's clock (beyond the uncertainty). */
  surelyPast(serverMs: number): boolean {
    return this.now() - Math.ceil(this.uncertainty) >= serverMs;
  }

  /** Milliseconds (local) until `serverMs` has surely passed on the server's clock; 0 if it has. */
  msUntil(serverMs: number): number {
    const left = serverMs + Math.ceil(this.uncertainty) - this.now();
    return Number.isFinite(left) ? Math.max(0, left) : Infinity;
  }

  /**
   * Calls `callback` once `serverMs` has surely passed on the server's clock — at the same
   * instant on every viewer whose clock is synced, whatever their own clocks say. Re-checks
   * at least once a second, so a better sample taken meanwhile counts. Returns a cancel
   * function. Before any sample it waits for one.
   */
  revealAt(serverMs: number, callback: (serverNowMs: number) => void, options: { signal?: AbortSignal } = {}): () => void {
    let timer: ReturnType<typeof setTimeout> | undefined;
    let done = false;
    const cancel = () => {
      done = true;
      if (timer !== undefined) clearTimeout(timer);
      options.signal?.removeEventListener("abort", cancel);
    };
    const check = () => {
      timer = undefined;
      if (done) return;
      const wait = this.msUntil(serverMs);
      if (wait <= 0) {
        cancel();
        callback(this.now());
        return;
      }
      timer = setTimeout(check, Math.min(wait, 1000));
    };
    if (options.signal?.aborted) return cancel;
    options.signal?.addEventListener("abort", cancel);
    check();
    return cancel;
  }
}

// ---------------------------------------------------------------------------------------
// Small helpers.

/** Full jitter: a random wait in [0, min(maxMs, baseMs · 2^(attempt−1))] for attempt ≥ 1. */
export function backoffWindow(attempt: number, options: BackoffOptions & { baseMs: number; maxMs: number }): number {
  const exponent = Math.max(0, Math.min(attempt - 1, 30));
  return Math.min(options.maxMs, options.baseMs * 2 ** exponent);
}

/** `Retry-After` in ms: delta-seconds or an HTTP date; undefined when absent or unreadable. */
export function parseRetryAfter(value: string | null | undefined, nowMs: number = Date.now()): number | undefined {
  if (value == null) return undefined;
  const text = value.trim();
  if (/^\d+(\.\d+)?$/.test(text)) return Math.round(Number(text) * 1000);
  const at = Date.parse(text);
  return Number.isNaN(at) ? undefined : Math.max(0, at - nowMs);
}

/** A random UUID (v4) for Idempotency-Keys; works where `crypto.randomUUID` does not
 *  (pages served over plain HTTP on a LAN address are not a secure context). */
export function newIdempotencyKey(): string {
  const c = (globalThis as { crypto?: Crypto }).crypto;
  if (c && typeof c.randomUUID === "function") {
    try {
      return c.randomUUID();
    } catch {
      // not a secure context: fall through
    }
  }
  const bytes = new Uint8Array(16);
  if (c && typeof c.getRandomValues === "function") c.getRandomValues(bytes);
  else for (let i = 0; i < 16; i++) bytes[i] = Math.floor(Math.random() * 256);
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(abortError(signal));
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(abortError(signal!));
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

function abortError(signal: AbortSignal): LinkdropError {
  return new LinkdropError("aborted", { code: "aborted", status: 0, attempts: 0, cause: signal.reason });
}

type Listener<T> = (value: T) => void;

/** A small typed event emitter; a throwing listener does not stop the others. */
class Emitter<M> {
  private listeners = new Map<keyof M, Set<Listener<any>>>();

  on<K extends keyof M>(type: K, listener: Listener<M[K]>): () => void {
    let set = this.listeners.get(type);
    if (!set) this.listeners.set(type, (set = new Set()));
    set.add(listener);
    return () => this.off(type, listener);
  }

  off<K extends keyof M>(type: K, listener: Listener<M[K]>): void {
    this.listeners.get(type)?.delete(listener);
  }

  emit<K extends keyof M>(type: K, value: M[K]): void {
    const set = this.listeners.get(type);
    if (!set) return;
    for (const listener of [...set]) {
      try {
        listener(value);
      } catch (e) {
        setTimeout(() => {
          throw e;
        });
      }
    }
  }
}

const NUMBERED = new Set(["drop.countdown", "drop.stock", "drop.sold_out", "drop.closed", "drop.draw"]);
const OPEN = 1;

// ---------------------------------------------------------------------------------------
// A room.

/**
 * One room's WebSocket, kept open: made by `LinkdropClient.join`. Listen with `on(type, fn)`;
 * every numbered room event is delivered once and in order, across reconnections (each one
 * resumes with `since` = `lastSeq`). `close()` ends it.
 */
export class Room {
  readonly id: string;
  private readonly client: LinkdropClient;
  private readonly emitter = new Emitter<RoomListenerMap>();
  private readonly opts: Required<Omit<JoinOptions, "since">>;
  private socket: WebSocketLike | undefined;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private pingTimer: ReturnType<typeof setTimeout> | undefined;
  private pongDeadline: ReturnType<typeof setTimeout> | undefined;
  private pingsSent = 0;
  private attempt = 0;
  private closedByApp = false;
  private openedAt: number | undefined;
  private readonly views = new Map<string, DropView>();
  private _state: ConnectionState = "connecting";
  private _lastSeq: number | undefined;
  private _sessionId: string | undefined;
  private _viewers: number | undefined;
  private _connections = 0;

  /** Made by `LinkdropClient.join`. */
  constructor(client: LinkdropClient, roomId: string, options: JoinOptions = {}) {
    this.client = client;
    this.id = roomId;
    this.opts = {
      initialPings: options.initialPings ?? 5,
      pingIntervalMs: options.pingIntervalMs ?? 10_000,
      pongTimeoutMs: options.pongTimeoutMs ?? 15_000,
    };
    this._lastSeq = options.since;
    void this.connect();
  }

  /** The connection's state. */
  get state(): ConnectionState {
    return this._state;
  }
  /** The last numbered room event seen (or the seq the room was at when joined). Keep it to
   *  resume after a page reload: `client.join(room, { since })`. */
  get lastSeq(): number | undefined {
    return this._lastSeq;
  }
  /** The current connection's `session_id`. */
  get sessionId(): string | undefined {
    return this._sessionId;
  }
  /** Approximate viewers of the room (from `hello` and `room.viewers`). */
  get viewers(): number | undefined {
    return this._viewers;
  }
  /** How many connections got a `hello` so far (1 + reconnections). */
  get connections(): number {
    return this._connections;
  }
  /** The server's clock (shared by the client's rooms). */
  get clock(): ServerClock {
    return this.client.clock;
  }
  /** The launched drops of the room that are not closed, kept from its events. */
  get drops(): DropView[] {
    return [...this.views.values()].filter((d) => !d.closed);
  }
  /** One drop's view (closed ones included), if the room has told of it. */
  drop(dropId: string): DropView | undefined {
    return this.views.get(dropId);
  }

  /** Listens to a frame type (`"drop.countdown"`, …) or to `"event"`, `"state"`,
   *  `"reconnecting"`, `"drop"`, `"error"`. Returns a function that stops listening. */
  on<K extends keyof RoomListenerMap>(type: K, listener: (value: RoomListenerMap[K]) => void): () => void {
    return this.emitter.on(type, listener);
  }

  off<K extends keyof RoomListenerMap>(type: K, listener: (value: RoomListenerMap[K]) => void): void {
    this.emitter.off(type, listener);
  }

  /** The next `type` for which `filter` holds, as a promise (rejects on timeout or abort). */
  next<K extends keyof RoomListenerMap>(
    type: K,
    options: { filter?: (value: RoomListenerMap[K]) => boolean; timeoutMs?: number; signal?: AbortSignal } = {},
  ): Promise<RoomListenerMap[K]> {
    return new Promise((resolve, reject) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const finish = () => {
        off();
        if (timer !== undefined) clearTimeout(timer);
        options.signal?.removeEventListener("abort", onAbort);
      };
      const off = this.on(type, (value) => {
        if (options.filter && !options.filter(value)) return;
        finish();
        resolve(value);
      });
      const onAbort = () => {
        finish();
        reject(abortError(options.signal!));
      };
      if (options.signal?.aborted) return onAbort();
      options.signal?.addEventListener("abort", onAbort);
      if (options.timeoutMs !== undefined) {
        timer = setTimeout(() => {
          finish();
          reject(new LinkdropError(`no ${String(type)} within ${options.timeoutMs} ms`, { code: "timeout", status: 0, attempts: 0 }));
        }, options.timeoutMs);
      }
    });
  }

  /** Calls back once `opensAtMs` has passed on the server's clock (see `ServerClock.revealAt`). */
  revealAt(opensAtMs: number, callback: (serverNowMs: number) => void, options: { signal?: AbortSignal } = {}): () => void {
    return this.client.clock.revealAt(opensAtMs, callback, options);
  }

  /** Leaves the room: closes the connection and stops reconnecting. */
  close(): void {
    if (this.closedByApp) return;
    this.closedByApp = true;
    this.clearTimers();
    const socket = this.socket;
    this.socket = undefined;
    if (socket) {
      try {
        socket.close(1000, "left");
      } catch {
        // already closed
      }
    }
    this.setState("closed");
    this.client._forget(this);
  }

  private setState(state: ConnectionState): void {
    if (this._state === state) return;
    this._state = state;
    this.emitter.emit("state", state);
  }

  private clearTimers(): void {
    for (const t of [this.timer, this.pingTimer, this.pongDeadline]) if (t !== undefined) clearTimeout(t);
    this.timer = this.pingTimer = this.pongDeadline = undefined;
  }

  private async connect(): Promise<void> {
    this.timer = undefined;
    if (this.closedByApp) return;
    let token: string;
    try {
      token = await this.client._token("connect");
    } catch (e) {
      this.emitter.emit("error", new LinkdropError("could not get a token", { code: "token", status: 0, attempts: 0, cause: e }));
      this.scheduleReconnect(1006, "no token");
      return;
    }
    if (this.closedByApp) return;
    const url = this.client._roomUrl(this.id, token, this._lastSeq);
    let socket: WebSocketLike;
    try {
      socket = new (this.client._WebSocket())(url);
    } catch (e) {
      this.emitter.emit("error", e instanceof Error ? e : new Error(String(e)));
      this.scheduleReconnect(1006, "could not open");
      return;
    }
    const startedAt = this.client.clock.local();
    this.socket = socket;
    this.openedAt = undefined;
    this.pingsSent = 0;
    socket.onopen = () => {
      if (this.socket === socket) this.ping();
    };
    socket.onmessage = (message: { data: unknown }) => {
      if (this.socket !== socket) return;
      let frame: RoomEvent;
      try {
        frame = JSON.parse(typeof message.data === "string" ? message.data : new TextDecoder().decode(message.data as ArrayBuffer));
      } catch {
        return;
      }
      this.onFrame(socket, frame, startedAt);
    };
    socket.onerror = () => {
      // a close event follows
    };
    socket.onclose = (event: { code?: number; reason?: string }) => {
      if (this.socket !== socket) return;
      this.socket = undefined;
      this.clearTimers();
      if (this.closedByApp) return;
      const lived = this.openedAt !== undefined ? this.client.clock.local() - this.openedAt : 0;
      if (this.openedAt !== undefined && lived >= this.client._reconnect.stableAfterMs) this.attempt = 0;
      this.scheduleReconnect(event.code ?? 1006, event.reason ?? "");
    };
  }

  private scheduleReconnect(code: number, reason: string): void {
    if (this.closedByApp) return;
    const settings = this.client._reconnect;
    this.attempt += 1;
    if (this.attempt > settings.maxAttempts) {
      this.emitter.emit("error", new LinkdropError(`gave up reconnecting after ${settings.maxAttempts} attempts`, { code: "gave_up", status: 0, attempts: settings.maxAttempts }));
      this.closedByApp = true;
      this.setState("closed");
      this.client._forget(this);
      return;
    }
    const windowMs = backoffWindow(this.attempt, settings);
    const delayMs = Math.floor(this.client._random() * windowMs);
    this.setState("reconnecting");
    this.emitter.emit("reconnecting", { attempt: this.attempt, delayMs, windowMs, code, reason, since: this._lastSeq });
    this.timer = setTimeout(() => void this.connect(), delayMs);
  }

  /** Drops the connection and resumes from `lastSeq` (after a gap, or a silent peer). */
  private resume(socket: WebSocketLike, code: number, reason: string): void {
    if (this.socket !== socket) return;
    this.socket = undefined;
    this.clearTimers();
    try {
      socket.close(code, reason);
    } catch {
      // already closing
    }
    this.scheduleReconnect(code, reason);
  }

  private ping(): void {
    const socket = this.socket;
    if (!socket || socket.readyState !== OPEN) return;
    if (this.pingTimer !== undefined) clearTimeout(this.pingTimer);
    this.pingTimer = undefined;
    try {
      socket.send(JSON.stringify({ type: "ping", t: this.client.clock.local() }));
    } catch {
      return;
    }
    this.pingsSent += 1;
    if (this.pongDeadline === undefined) {
      this.pongDeadline = setTimeout(() => this.resume(socket, 4000, "no pong"), this.opts.pongTimeoutMs);
    }
  }

  private onFrame(socket: WebSocketLike, frame: RoomEvent, startedAt: number): void {
    const received = this.client.clock.local();
    switch (frame.type) {
      case "hello": {
        const hello = frame as HelloEvent;
        // The server made it between the connection's start and now.
        this.client.clock.sample(startedAt, received, hello.server_time_ms);
        this._sessionId = hello.session_id;
        this._viewers = hello.viewers;
        // A new viewer is up to date as of hello.seq (a resync of the drops follows); a
        // resuming one gets the events after `since` next. A room whose numbering went
        // backwards (its history was lost) starts over from hello.seq.
        if (this._lastSeq === undefined || hello.seq < this._lastSeq) this._lastSeq = hello.seq;
        this.openedAt = received;
        this._connections += 1;
        this.setState("open");
        break;
      }
      case "pong": {
        const pong = frame as PongEvent;
        if (typeof pong.t === "number") this.client.clock.sample(pong.t, received, pong.server_time_ms);
        if (this.pongDeadline !== undefined) clearTimeout(this.pongDeadline);
        this.pongDeadline = undefined;
        const next = this.pingsSent < this.opts.initialPings ? 100 : this.opts.pingIntervalMs;
        this.pingTimer = setTimeout(() => this.ping(), next);
        break;
      }
      case "room.viewers":
        this._viewers = (frame as RoomViewersEvent).viewers;
        break;
      case "resync": {
        const resync = frame as ResyncEvent;
        if (typeof resync.seq === "number") this._lastSeq = resync.seq;
        this.applyResync(resync);
        break;
      }
      case "order.result":
        this.client._orderResult(frame as OrderResultEvent);
        break;
      default:
        if (NUMBERED.has(frame.type) || typeof (frame as { seq?: unknown }).seq === "number") {
          const seq = (frame as { seq: number }).seq;
          if (this._lastSeq !== undefined && seq <= this._lastSeq) return; // seen already
          if (this._lastSeq !== undefined && seq > this._lastSeq + 1) {
            // Events were missed: ask for them again rather than deliver out of order.
            this.emitter.emit("error", new LinkdropError(`missed events ${this._lastSeq + 1}..${seq - 1}; resuming`, { code: "gap", status: 0, attempts: 0 }));
            this.resume(socket, 4000, "gap");
            return;
          }
          this._lastSeq = seq;
          this.applyEvent(frame);
        }
    }
    this.emitter.emit(frame.type as keyof RoomEventMap, frame as never);
    this.emitter.emit("event", frame);
  }

  private applyEvent(frame: RoomEvent): void {
    switch (frame.type) {
      case "drop.countdown": {
        const e = frame as DropCountdownEvent;
        this.putView({
          id: e.drop.id, drop: e.drop, opensAtMs: e.opens_at_ms, orderUrl: e.order_url, seedHash: e.seed_hash,
          stock: undefined, stockLeft: undefined, soldOut: false, soldOutAtMs: undefined, closed: false, draw: undefined,
        });
        break;
      }
      case "drop.stock": {
        const e = frame as DropStockEvent;
        this.updateView(e.drop_id, (v) => {
          v.stock = e.stock;
          v.stockLeft = e.stock_left;
          if (e.stock_left > 0) v.soldOut = false;
        });
        break;
      }
      case "drop.sold_out": {
        const e = frame as DropSoldOutEvent;
        this.updateView(e.drop_id, (v) => {
          v.soldOut = true;
          v.soldOutAtMs = e.sold_out_at_ms;
          v.stockLeft = 0;
        });
        break;
      }
      case "drop.closed":
        this.updateView((frame as DropClosedEvent).drop_id, (v) => {
          v.closed = true;
        });
        break;
      case "drop.draw": {
        const e = frame as DropDrawEvent;
        this.updateView(e.drop_id, (v) => {
          v.draw = { seed: e.seed, winners: e.winners, cutoffRank: e.cutoff_rank };
        });
        break;
      }
    }
  }

  private applyResync(resync: ResyncEvent): void {
    const listed = new Set<string>();
    for (const d of resync.drops ?? []) {
      listed.add(d.drop_id);
      const known = this.views.get(d.drop_id);
      this.putView({
        id: d.drop_id, drop: d.drop, opensAtMs: d.opens_at_ms, orderUrl: d.order_url ?? known?.orderUrl,
        seedHash: d.seed_hash ?? known?.seedHash, stock: d.stock, stockLeft: d.stock_left,
        soldOut: d.state === "sold_out", soldOutAtMs: known?.soldOutAtMs, closed: false, draw: known?.draw,
      });
    }
    // Closed drops are left out of a resync.
    for (const v of this.views.values()) {
      if (!listed.has(v.id) && !v.closed) this.updateView(v.id, (view) => (view.closed = true));
    }
  }

  private putView(view: DropView): void {
    this.views.set(view.id, view);
    this.client._learnOrderUrl(view.id, view.orderUrl);
    this.emitter.emit("drop", { ...view });
  }

  private updateView(dropId: string, change: (view: DropView) => void): void {
    const view = this.views.get(dropId);
    if (!view) return;
    change(view);
    this.emitter.emit("drop", { ...view });
  }
}

// ---------------------------------------------------------------------------------------
// The client.

interface Answer {
  status: number;
  body: any;
  headers: Headers;
}

/** A purchase intent: one Idempotency-Key for every request that tries to make one order. */
export interface OrderIntent {
  readonly dropId: string;
  readonly qty: number;
  readonly idempotencyKey: string;
}

/**
 * linkdrop for one shopper: rooms (`join`), the server's clock (`clock`), and the shopping
 * calls (`order`, `pay`, `getOrder`, `lotteryResult`).
 */
export class LinkdropClient {
  /** The server's clock, kept by every room's pings (and `syncClock`). */
  readonly clock: ServerClock;
  private readonly baseUrl: string;
  private readonly wsBase: string;
  private readonly tokenSource: string | TokenProvider;
  private readonly WebSocketClass: WebSocketConstructor | undefined;
  private readonly fetchFn: typeof fetch;
  private readonly retry: Required<RetryOptions>;
  /** @internal */
  readonly _reconnect: Required<ReconnectOptions>;
  /** @internal */
  readonly _random: () => number;
  private readonly rooms = new Set<Room>();
  private readonly intents = new Map<string, OrderIntent & { inFlight?: Promise<OrderResult> }>();
  private readonly orderUrls = new Map<string, string>();
  private readonly results = new Emitter<{ "order.result": OrderResultEvent }>();

  constructor(options: ClientOptions) {
    if (!options || options.token === undefined) throw new TypeError("LinkdropClient needs a token (a string or a function)");
    const origin = (globalThis as { location?: { origin?: string } }).location?.origin;
    const url = options.url ?? origin;
    if (!url) throw new TypeError("LinkdropClient needs a url outside a browser page");
    this.baseUrl = url.replace(/\/+$/, "");
    this.wsBase = (options.wsUrl ?? this.baseUrl).replace(/\/+$/, "").replace(/^http(s?):/i, "ws$1:");
    this.tokenSource = options.token;
    this.WebSocketClass = options.WebSocket;
    const f = options.fetch ?? (globalThis as { fetch?: typeof fetch }).fetch;
    if (!f) throw new TypeError("no fetch: pass { fetch }");
    this.fetchFn = (input, init) => f(input, init);
    this.clock = new ServerClock({ now: options.now });
    this._random = options.random ?? Math.random;
    this._reconnect = {
      baseMs: options.reconnect?.baseMs ?? 1000,
      maxMs: options.reconnect?.maxMs ?? 30_000,
      maxAttempts: options.reconnect?.maxAttempts ?? Infinity,
      stableAfterMs: options.reconnect?.stableAfterMs ?? 5000,
    };
    this.retry = {
      baseMs: options.retry?.baseMs ?? 250,
      maxMs: options.retry?.maxMs ?? 4000,
      maxAttempts: options.retry?.maxAttempts ?? 8,
      deadlineMs: options.retry?.deadlineMs ?? 30_000,
      requestTimeoutMs: options.retry?.requestTimeoutMs ?? 10_000,
    };
  }

  /** Joins a room: opens its WebSocket and keeps it open until `room.close()`. */
  join(roomId: string, options: JoinOptions = {}): Room {
    this._WebSocket(); // fail now, not in the background, when there is none
    const room = new Room(this, roomId, options);
    this.rooms.add(room);
    return room;
  }

  /** Listens to `order.result` from every room of this client. */
  onOrderResult(listener: (result: OrderResultEvent) => void): () => void {
    return this.results.on("order.result", listener);
  }

  /** Leaves every room. */
  close(): void {
    for (const room of [...this.rooms]) room.close();
  }

  /** Samples the server's clock over HTTP (`GET /v1/time`), e.g. before joining a room. */
  async syncClock(samples = 5): Promise<ServerClock> {
    for (let i = 0; i < samples; i++) {
      const sent = this.clock.local();
      try {
        const response = await this.fetchFn(`${this.baseUrl}/v1/time`);
        const body = await response.json();
        if (response.ok) this.clock.sample(sent, this.clock.local(), body.server_time_ms);
      } catch {
        // the rooms' pings will do
      }
    }
    return this.clock;
  }

  /**
   * The purchase intent for `qty` units of a drop: the same object (and Idempotency-Key) until
   * an order request for it gets a final answer (reserved, entered, limit reached) or the drop
   * is closed. `order` uses it; take it yourself to keep the key (e.g. across a page reload).
   */
  intent(dropId: string, qty = 1): OrderIntent {
    const name = `${dropId}\u0000${qty}`;
    let intent = this.intents.get(name);
    if (!intent) {
      intent = { dropId, qty, idempotencyKey: newIdempotencyKey() };
      this.intents.set(name, intent);
    }
    return intent;
  }

  /**
   * Orders `qty` units of a drop (`POST /v1/drops/{drop}/orders`). Every request of one
   * purchase intent carries the same Idempotency-Key: calling again while a call is out
   * returns that call's promise (a double tap makes one order), and after a `sold_out` or
   * `not_open` the next call reuses the key. A lost answer (no answer, a timeout, a 5xx) is
   * asked again with the same key, after a backoff with full jitter; 429 and 503 after their
   * Retry-After. Resolves with the outcome; rejects with a `LinkdropError` only when no answer
   * could be had within the retry budget (the intent keeps its key for the next call).
   */
  order(dropId: string, qty = 1, options: { idempotencyKey?: string; signal?: AbortSignal } = {}): Promise<OrderResult> {
    const intent = options.idempotencyKey
      ? { dropId, qty, idempotencyKey: options.idempotencyKey }
      : (this.intent(dropId, qty) as OrderIntent & { inFlight?: Promise<OrderResult> });
    if (intent.inFlight) return intent.inFlight;
    const attempt = this.sendOrder(intent, options.signal).then((result) => {
      const over = ["reserved", "entered", "limit_reached", "closed", "refused"].includes(result.outcome);
      const name = `${dropId}\u0000${qty}`;
      if (over && this.intents.get(name) === intent) this.intents.delete(name);
      return result;
    });
    intent.inFlight = attempt;
    const clear = () => {
      if (intent.inFlight === attempt) intent.inFlight = undefined;
    };
    attempt.then(clear, clear);
    return attempt;
  }

  private async sendOrder(intent: OrderIntent, signal?: AbortSignal): Promise<OrderResult> {
    const url = this.orderUrls.get(intent.dropId) ?? `${this.baseUrl}/v1/drops/${encodeURIComponent(intent.dropId)}/orders`;
    const { answer, attempts } = await this.request("POST", url, { qty: intent.qty }, { "idempotency-key": intent.idempotencyKey }, signal);
    const key = intent.idempotencyKey;
    const body = answer.body ?? {};
    const problem: Problem = { status: answer.status, ...body };
    const replayed = answer.headers.get("idempotent-replayed") === "true";
    if (answer.status === 201) return { outcome: "reserved", order: body, replayed, idempotencyKey: key, attempts };
    if (answer.status === 202) return { outcome: "entered", entry: body, replayed, idempotencyKey: key, attempts };
    switch (body.code) {
      case "sold_out":
        return { outcome: "sold_out", problem, idempotencyKey: key, attempts };
      case "limit_reached":
        return { outcome: "limit_reached", maxPerUser: body.max_per_user, problem, idempotencyKey: key, attempts };
      case "not_open":
        return { outcome: "not_open", opensAtMs: body.opens_at_ms, problem, idempotencyKey: key, attempts };
      case "closed":
        return { outcome: "closed", problem, idempotencyKey: key, attempts };
    }
    return { outcome: "refused", status: answer.status, code: body.code, problem, idempotencyKey: key, attempts };
  }

  /** Pays a reservation (`POST /v1/orders/{id}/pay`), standing in for a payment provider's
   *  callback. Retried like an order: paying again answers the same. */
  async pay(orderId: string, paymentRef: string = `pay-${newIdempotencyKey()}`, options: { signal?: AbortSignal } = {}): Promise<PayResult> {
    const { answer, attempts } = await this.request("POST", `${this.baseUrl}/v1/orders/${encodeURIComponent(orderId)}/pay`, { payment_ref: paymentRef }, {}, options.signal);
    const body = answer.body ?? {};
    const problem: Problem = { status: answer.status, ...body };
    if (answer.status === 200) return { outcome: "paid", order: body, attempts };
    if (body.code === "expired") return { outcome: "expired", problem, attempts };
    if (body.code === "not_payable") return { outcome: "not_payable", orderStatus: body.order_status, problem, attempts };
    return { outcome: "refused", status: answer.status, code: body.code, problem, attempts };
  }

  /** Reads an order (`GET /v1/orders/{id}`); throws a `LinkdropError` for a refusal (404, …). */
  async getOrder(orderId: string, options: { signal?: AbortSignal } = {}): Promise<Order> {
    const { answer, attempts } = await this.request("GET", `${this.baseUrl}/v1/orders/${encodeURIComponent(orderId)}`, undefined, {}, options.signal);
    if (answer.status === 200) return answer.body;
    const body = answer.body ?? {};
    throw new LinkdropError(body.detail ?? `HTTP ${answer.status}`, { code: body.code ?? `http_${answer.status}`, status: answer.status, attempts, problem: { status: answer.status, ...body } });
  }

  /**
   * A lottery entry's result: the first of `order.result` on any of this client's rooms and
   * reading the order once the draw is due, so that it comes even when the socket was away at
   * the draw. Reading starts at `draw_at_ms` (server time) when no room of this client is
   * connected, else `socketGraceMs` later (the socket normally brings it first: a room's
   * entrants do not all read at the draw's instant); then every `pollIntervalMs`, jittered.
   */
  lotteryResult(
    entry: LotteryEntry | { order_id: string; draw_at_ms?: number },
    options: { pollIntervalMs?: number; socketGraceMs?: number; timeoutMs?: number; signal?: AbortSignal } = {},
  ): Promise<LotteryResult> {
    const pollIntervalMs = options.pollIntervalMs ?? 1000;
    const socketGraceMs = options.socketGraceMs ?? 2000;
    const timeoutMs = options.timeoutMs ?? 120_000;
    const controller = new AbortController();
    const onAbort = () => controller.abort(options.signal?.reason);
    options.signal?.addEventListener("abort", onAbort, { once: true });
    return new Promise<LotteryResult>((resolve, reject) => {
      let settled = false;
      const finish = (error: unknown, result?: LotteryResult) => {
        if (settled) return;
        settled = true;
        off();
        clearTimeout(deadline);
        options.signal?.removeEventListener("abort", onAbort);
        controller.abort();
        if (error) reject(error);
        else resolve(result!);
      };
      const off = this.onOrderResult((e) => {
        if (e.order_id !== entry.order_id) return;
        finish(undefined, { order_id: e.order_id, status: e.status, ...(e.pay_by_ms !== undefined ? { pay_by_ms: e.pay_by_ms } : {}), via: "socket" });
      });
      const deadline = setTimeout(
        () => finish(new LinkdropError(`no lottery result within ${timeoutMs} ms`, { code: "timeout", status: 0, attempts: 0 })),
        timeoutMs,
      );
      if (options.signal?.aborted) return finish(abortError(options.signal));
      controller.signal.addEventListener("abort", () => {
        if (!settled) finish(abortError(controller.signal));
      });
      const poll = async () => {
        const due = entry.draw_at_ms !== undefined ? this.clock.msUntil(entry.draw_at_ms) : pollIntervalMs;
        const listening = [...this.rooms].some((room) => room.state === "open");
        const firstWait = (Number.isFinite(due) ? due : pollIntervalMs) + (listening ? socketGraceMs : 0);
        await sleep(firstWait + this._random() * pollIntervalMs * 0.5, controller.signal);
        for (;;) {
          try {
            const order = await this.getOrder(entry.order_id, { signal: controller.signal });
            if (order.status === "reserved" || order.status === "paid" || order.status === "expired" || order.status === "cancelled") {
              const payBy = (order as { pay_by_ms?: number }).pay_by_ms;
              return finish(undefined, { order_id: order.order_id, status: "reserved", ...(payBy !== undefined ? { pay_by_ms: payBy } : {}), via: "poll" });
            }
            if (order.status === "lost") return finish(undefined, { order_id: order.order_id, status: "lost", via: "poll" });
          } catch (e) {
            if (settled) return;
            if (e instanceof LinkdropError && e.status >= 400 && e.status < 500 && e.status !== 404) return finish(e);
          }
          await sleep(pollIntervalMs * (0.5 + this._random()), controller.signal);
        }
      };
      poll().catch((e) => finish(e));
    });
  }

  /**
   * One HTTP call with the retry policy: an answer is any 2xx, 3xx or 4xx but 408 and 429;
   * no answer (a network error, a timeout), 408 and 5xx are asked again after a backoff with
   * full jitter; 429 and 503 with a Retry-After wait at least that long (and up to half as
   * long again, so that the clients it turned away come back spread out). 401 with a token
   * function: once more with a fresh token.
   */
  private async request(
    method: string,
    url: string,
    body: unknown,
    headers: Record<string, string>,
    signal?: AbortSignal,
  ): Promise<{ answer: Answer; attempts: number }> {
    const started = this.clock.local();
    const budget = this.retry;
    let refreshed = false;
    let tokenReason: "request" | "refresh" = "request";
    let last: { code: string; status: number; problem?: Problem; retryAfterMs?: number; cause?: unknown } = { code: "network", status: 0 };
    for (let attempt = 1; ; attempt++) {
      if (signal?.aborted) throw abortError(signal);
      const token = await this._token(tokenReason);
      const controller = new AbortController();
      const onAbort = () => controller.abort(signal?.reason);
      signal?.addEventListener("abort", onAbort, { once: true });
      const timeout = setTimeout(() => controller.abort(new Error("timeout")), budget.requestTimeoutMs);
      let wait: number | undefined;
      try {
        const init: RequestInit = {
          method,
          headers: { authorization: `Bearer ${token}`, ...(body !== undefined ? { "content-type": "application/json" } : {}), ...headers },
          signal: controller.signal,
        };
        if (body !== undefined) init.body = JSON.stringify(body);
        const response = await this.fetchFn(url, init);
        const text = await response.text();
        let parsed: any = null;
        try {
          parsed = text ? JSON.parse(text) : null;
        } catch {
          parsed = null;
        }
        const answer: Answer = { status: response.status, body: parsed, headers: response.headers };
        const status = response.status;
        if (status === 401 && !refreshed && typeof this.tokenSource === "function") {
          refreshed = true;
          tokenReason = "refresh";
          attempt -= 1; // a fresh token is not a retry
          continue;
        }
        tokenReason = "request";
        const retryAfterMs = parseRetryAfter(response.headers.get("retry-after"), this.clock.local());
        const code = parsed && typeof parsed.code === "string" ? parsed.code : `http_${status}`;
        if (status === 429 || status === 503) {
          last = { code, status, problem: { status, ...(parsed ?? {}) }, retryAfterMs };
          wait = retryAfterMs !== undefined ? retryAfterMs * (1 + 0.5 * this._random()) : undefined;
        } else if (status >= 500 || status === 408) {
          last = { code, status, problem: { status, ...(parsed ?? {}) } };
        } else {
          return { answer, attempts: attempt };
        }
      } catch (e) {
        if (signal?.aborted) throw abortError(signal);
        const timedOut = controller.signal.aborted;
        last = { code: timedOut ? "timeout" : "network", status: 0, cause: e };
      } finally {
        clearTimeout(timeout);
        signal?.removeEventListener("abort", onAbort);
      }
      if (wait === undefined) wait = this._random() * backoffWindow(attempt, budget);
      const elapsed = this.clock.local() - started;
      if (attempt >= budget.maxAttempts || elapsed + wait > budget.deadlineMs) {
        const what = last.status ? `HTTP ${last.status} ${last.code}` : last.code;
        throw new LinkdropError(`no answer after ${attempt} attempts (${what})`, { ...last, attempts: attempt });
      }
      await sleep(wait, signal);
    }
  }

  /** @internal */
  async _token(reason: "connect" | "request" | "refresh"): Promise<string> {
    const source = this.tokenSource;
    return typeof source === "function" ? await source({ reason }) : source;
  }

  /** @internal */
  _roomUrl(roomId: string, token: string, since: number | undefined): string {
    const query = new URLSearchParams({ token });
    if (since !== undefined) query.set("since", String(since));
    return `${this.wsBase}/v1/rooms/${encodeURIComponent(roomId)}/ws?${query}`;
  }

  /** @internal */
  _WebSocket(): WebSocketConstructor {
    const ws = this.WebSocketClass ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    if (!ws) throw new TypeError("no WebSocket here: pass { WebSocket } (in Node 20: import { WebSocket } from \"ws\")");
    return ws;
  }

  /** @internal */
  _forget(room: Room): void {
    this.rooms.delete(room);
  }

  /** @internal */
  _learnOrderUrl(dropId: string, url: string | undefined): void {
    if (url) this.orderUrls.set(dropId, url);
  }

  /** @internal */
  _orderResult(event: OrderResultEvent): void {
    this.results.emit("order.result", event);
  }
}
