// A room: one room's WebSocket kept open, reconnected with full-jitter backoff and resumed
// with `since`, its clock pings, its events delivered once and in order, and the views of its
// drops kept from them.

import type { LinkdropClient } from "./client.js";
import type { ServerClock } from "./clock.js";
import { backoffWindow } from "./backoff.js";
import { LinkdropError, abortError } from "./errors.js";
import type {
  ConnectionState, DropClosedEvent, DropCountdownEvent, DropDrawEvent, DropSoldOutEvent, DropStockEvent, DropView,
  HelloEvent, OrderResultEvent, PongEvent, ResyncEvent, RoomEvent, RoomEventMap, RoomListenerMap, RoomViewersEvent,
} from "./events.js";
import type { JoinOptions, WebSocketLike } from "./options.js";
import { Emitter } from "./util.js";

const NUMBERED = new Set(["drop.countdown", "drop.stock", "drop.sold_out", "drop.closed", "drop.draw"]);
const OPEN = 1;

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
