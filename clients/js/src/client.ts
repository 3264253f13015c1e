// The client: linkdrop for one shopper. Its settings, its rooms, the server's clock they
// share, and the shopping calls (orders, payments, reads, lottery results) with the retry
// policy.

import { ServerClock } from "./clock.js";
import { LinkdropError } from "./errors.js";
import type { OrderResultEvent } from "./events.js";
import { requestWithRetries } from "./http.js";
import type { Answer, HttpContext } from "./http.js";
import type { ClientOptions, JoinOptions, ReconnectOptions, RetryOptions, TokenProvider, WebSocketConstructor } from "./options.js";
import { endsIntent, intentName, newIdempotencyKey, orderResult, payResult, waitForLotteryResult } from "./orders.js";
import type { LotteryEntry, LotteryResult, Order, OrderIntent, OrderResult, PayResult } from "./orders.js";
import { Room } from "./room.js";
import { Emitter } from "./util.js";

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
    const name = intentName(dropId, qty);
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
      const name = intentName(dropId, qty);
      if (endsIntent(result) && this.intents.get(name) === intent) this.intents.delete(name);
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
    return orderResult(answer, attempts, intent.idempotencyKey);
  }

  /** Pays a reservation (`POST /v1/orders/{id}/pay`), standing in for a payment provider's
   *  callback. Retried like an order: paying again answers the same. */
  async pay(orderId: string, paymentRef: string = `pay-${newIdempotencyKey()}`, options: { signal?: AbortSignal } = {}): Promise<PayResult> {
    const { answer, attempts } = await this.request("POST", `${this.baseUrl}/v1/orders/${encodeURIComponent(orderId)}/pay`, { payment_ref: paymentRef }, {}, options.signal);
    return payResult(answer, attempts);
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
    return waitForLotteryResult(
      {
        clock: this.clock,
        random: () => this._random(),
        listening: () => [...this.rooms].some((room) => room.state === "open"),
        onOrderResult: (listener) => this.onOrderResult(listener),
        getOrder: (orderId, getOptions) => this.getOrder(orderId, getOptions),
      },
      entry,
      options,
    );
  }

  /** One HTTP call with the retry policy (`requestWithRetries`), with this client's fetch, token
   *  and retry budget. */
  private request(
    method: string,
    url: string,
    body: unknown,
    headers: Record<string, string>,
    signal?: AbortSignal,
  ): Promise<{ answer: Answer; attempts: number }> {
    const http: HttpContext = {
      fetch: this.fetchFn,
      retry: this.retry,
      clock: this.clock,
      random: () => this._random(),
      token: (reason: "request" | "refresh") => this._token(reason),
      canRefresh: typeof this.tokenSource === "function",
    };
    return requestWithRetries(http, method, url, body, headers, signal);
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
