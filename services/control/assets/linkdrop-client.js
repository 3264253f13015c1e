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
//
// Made by `npm run build` in clients/js (scripts/bundle.mjs): the compiled modules of
// src/ in one ES module. Do not edit: edit clients/js/src/ and build.

// ---------------------------------------------------------------------------------------
// src/errors.ts

// Errors: linkdrop's problem answers, and the error the SDK throws when it could get no answer.
/** Thrown when no answer could be had: the network failed, or linkdrop stayed busy or
 *  unavailable, for longer than the retry budget; or the call was aborted. The purchase
 *  intent keeps its key: ordering again sends the same key, so an order that was taken
 *  meanwhile comes back rather than a second one being made. */
export class LinkdropError extends Error {
    constructor(message, details) {
        super(message);
        this.name = "LinkdropError";
        this.code = details.code;
        this.status = details.status;
        this.attempts = details.attempts;
        this.problem = details.problem;
        this.retryAfterMs = details.retryAfterMs;
        if (details.cause !== undefined)
            this.cause = details.cause;
    }
}
/** The error of a call or a wait that was aborted through its signal. */
function abortError(signal) {
    return new LinkdropError("aborted", { code: "aborted", status: 0, attempts: 0, cause: signal.reason });
}

// ---------------------------------------------------------------------------------------
// src/clock.ts

// The server's clock: an offset to it from ping/pong round trips, and the reveal at a server
// time (`revealAt`), the same instant on every viewer whatever their own clocks say.
/**
 * An estimate of the server's clock. Each sample (a ping's local send and receive times and
 * the server's time in between) gives an offset that is right to within half its round trip;
 * the clock keeps the last `keep` samples and uses the one with the shortest round trip, so
 * that one slow answer does not move it and an old one ages out.
 */
export class ServerClock {
    constructor(options = {}) {
        this.samples = [];
        this.localNow = options.now ?? (() => Date.now());
        this.keep = options.keep ?? 8;
    }
    /** Server time − local time (ms); 0 before any sample. */
    get offset() {
        return this.best ? this.best.offsetMs : 0;
    }
    /** How far `offset` may be off (half the best round trip); Infinity before any sample. */
    get uncertainty() {
        return this.best ? this.best.rttMs / 2 : Infinity;
    }
    /** Whether any sample was taken. */
    get synced() {
        return this.best !== undefined;
    }
    /** The local clock. */
    local() {
        return this.localNow();
    }
    /** Adds a sample: local send time, local receive time, the server's time in between. */
    sample(sentMs, receivedMs, serverMs) {
        if (!Number.isFinite(sentMs) || !Number.isFinite(receivedMs) || !Number.isFinite(serverMs) || receivedMs < sentMs) {
            return undefined;
        }
        const rttMs = receivedMs - sentMs;
        const sample = { rttMs, offsetMs: serverMs - (sentMs + rttMs / 2), atMs: receivedMs };
        this.samples.push(sample);
        if (this.samples.length > this.keep)
            this.samples.shift();
        this.best = this.samples.reduce((a, b) => (b.rttMs <= a.rttMs ? b : a));
        return sample;
    }
    /** The server's time now (estimated). */
    now() {
        return this.localNow() + this.offset;
    }
    /** Whether `serverMs` has surely passed on the server's clock (beyond the uncertainty). */
    surelyPast(serverMs) {
        return this.now() - Math.ceil(this.uncertainty) >= serverMs;
    }
    /** Milliseconds (local) until `serverMs` has surely passed on the server's clock; 0 if it has. */
    msUntil(serverMs) {
        const left = serverMs + Math.ceil(this.uncertainty) - this.now();
        return Number.isFinite(left) ? Math.max(0, left) : Infinity;
    }
    /**
     * Calls `callback` once `serverMs` has surely passed on the server's clock — at the same
     * instant on every viewer whose clock is synced, whatever their own clocks say. Re-checks
     * at least once a second, so a better sample taken meanwhile counts. Returns a cancel
     * function. Before any sample it waits for one.
     */
    revealAt(serverMs, callback, options = {}) {
        let timer;
        let done = false;
        const cancel = () => {
            done = true;
            if (timer !== undefined)
                clearTimeout(timer);
            options.signal?.removeEventListener("abort", cancel);
        };
        const check = () => {
            timer = undefined;
            if (done)
                return;
            const wait = this.msUntil(serverMs);
            if (wait <= 0) {
                cancel();
                callback(this.now());
                return;
            }
            timer = setTimeout(check, Math.min(wait, 1000));
        };
        if (options.signal?.aborted)
            return cancel;
        options.signal?.addEventListener("abort", cancel);
        check();
        return cancel;
    }
}

// ---------------------------------------------------------------------------------------
// src/backoff.ts

// When to try again: the backoff windows of reconnections and request retries, and Retry-After.
/** Full jitter: a random wait in [0, min(maxMs, baseMs · 2^(attempt−1))] for attempt ≥ 1. */
export function backoffWindow(attempt, options) {
    const exponent = Math.max(0, Math.min(attempt - 1, 30));
    return Math.min(options.maxMs, options.baseMs * 2 ** exponent);
}
/** `Retry-After` in ms: delta-seconds or an HTTP date; undefined when absent or unreadable. */
export function parseRetryAfter(value, nowMs = Date.now()) {
    if (value == null)
        return undefined;
    const text = value.trim();
    if (/^\d+(\.\d+)?$/.test(text))
        return Math.round(Number(text) * 1000);
    const at = Date.parse(text);
    return Number.isNaN(at) ? undefined : Math.max(0, at - nowMs);
}

// ---------------------------------------------------------------------------------------
// src/util.ts

// Small helpers: a sleep that can be aborted, and a typed event emitter.
/** Resolves after `ms`; rejects with an `aborted` LinkdropError when `signal` aborts first. */
function sleep(ms, signal) {
    return new Promise((resolve, reject) => {
        if (signal?.aborted)
            return reject(abortError(signal));
        const timer = setTimeout(() => {
            signal?.removeEventListener("abort", onAbort);
            resolve();
        }, ms);
        const onAbort = () => {
            clearTimeout(timer);
            reject(abortError(signal));
        };
        signal?.addEventListener("abort", onAbort, { once: true });
    });
}
/** A small typed event emitter; a throwing listener does not stop the others. */
class Emitter {
    constructor() {
        this.listeners = new Map();
    }
    on(type, listener) {
        let set = this.listeners.get(type);
        if (!set)
            this.listeners.set(type, (set = new Set()));
        set.add(listener);
        return () => this.off(type, listener);
    }
    off(type, listener) {
        this.listeners.get(type)?.delete(listener);
    }
    emit(type, value) {
        const set = this.listeners.get(type);
        if (!set)
            return;
        for (const listener of [...set]) {
            try {
                listener(value);
            }
            catch (e) {
                setTimeout(() => {
                    throw e;
                });
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// src/orders.ts

// Orders: what the shopping calls answer (API.md "Shopping"; the order schemas in
// schemas/openapi.yaml), purchase intents and their Idempotency-Keys, what an order or a
// payment answer comes to, and waiting for a lottery entry's result.
/** A random UUID (v4) for Idempotency-Keys; works where `crypto.randomUUID` does not
 *  (pages served over plain HTTP on a LAN address are not a secure context). */
export function newIdempotencyKey() {
    const c = globalThis.crypto;
    if (c && typeof c.randomUUID === "function") {
        try {
            return c.randomUUID();
        }
        catch {
            // not a secure context: fall through
        }
    }
    const bytes = new Uint8Array(16);
    if (c && typeof c.getRandomValues === "function")
        c.getRandomValues(bytes);
    else
        for (let i = 0; i < 16; i++)
            bytes[i] = Math.floor(Math.random() * 256);
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
    return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
/** The name of the purchase intent for `qty` units of a drop (a client keeps one per name). */
function intentName(dropId, qty) {
    return `${dropId}\u0000${qty}`;
}
/** Whether an order's outcome ends its purchase intent: the next order of the same drop and
 *  qty is another purchase, with a new key. `sold_out` and `not_open` keep the intent. */
function endsIntent(result) {
    return ["reserved", "entered", "limit_reached", "closed", "refused"].includes(result.outcome);
}
/** What an answer to `POST /v1/drops/{drop}/orders` comes to. */
function orderResult(answer, attempts, idempotencyKey) {
    const body = answer.body ?? {};
    const problem = { status: answer.status, ...body };
    const replayed = answer.headers.get("idempotent-replayed") === "true";
    if (answer.status === 201)
        return { outcome: "reserved", order: body, replayed, idempotencyKey, attempts };
    if (answer.status === 202)
        return { outcome: "entered", entry: body, replayed, idempotencyKey, attempts };
    switch (body.code) {
        case "sold_out":
            return { outcome: "sold_out", problem, idempotencyKey, attempts };
        case "limit_reached":
            return { outcome: "limit_reached", maxPerUser: body.max_per_user, problem, idempotencyKey, attempts };
        case "not_open":
            return { outcome: "not_open", opensAtMs: body.opens_at_ms, problem, idempotencyKey, attempts };
        case "closed":
            return { outcome: "closed", problem, idempotencyKey, attempts };
    }
    return { outcome: "refused", status: answer.status, code: body.code, problem, idempotencyKey, attempts };
}
/** What an answer to `POST /v1/orders/{id}/pay` comes to. */
function payResult(answer, attempts) {
    const body = answer.body ?? {};
    const problem = { status: answer.status, ...body };
    if (answer.status === 200)
        return { outcome: "paid", order: body, attempts };
    if (body.code === "expired")
        return { outcome: "expired", problem, attempts };
    if (body.code === "not_payable")
        return { outcome: "not_payable", orderStatus: body.order_status, problem, attempts };
    return { outcome: "refused", status: answer.status, code: body.code, problem, attempts };
}
/** `LinkdropClient.lotteryResult` (see there): the first of the socket's `order.result` and
 *  reading the order once the draw is due. */
function waitForLotteryResult(client, entry, options) {
    const pollIntervalMs = options.pollIntervalMs ?? 1000;
    const socketGraceMs = options.socketGraceMs ?? 2000;
    const timeoutMs = options.timeoutMs ?? 120000;
    const controller = new AbortController();
    const onAbort = () => controller.abort(options.signal?.reason);
    options.signal?.addEventListener("abort", onAbort, { once: true });
    return new Promise((resolve, reject) => {
        let settled = false;
        const finish = (error, result) => {
            if (settled)
                return;
            settled = true;
            off();
            clearTimeout(deadline);
            options.signal?.removeEventListener("abort", onAbort);
            controller.abort();
            if (error)
                reject(error);
            else
                resolve(result);
        };
        const off = client.onOrderResult((e) => {
            if (e.order_id !== entry.order_id)
                return;
            finish(undefined, { order_id: e.order_id, status: e.status, ...(e.pay_by_ms !== undefined ? { pay_by_ms: e.pay_by_ms } : {}), via: "socket" });
        });
        const deadline = setTimeout(() => finish(new LinkdropError(`no lottery result within ${timeoutMs} ms`, { code: "timeout", status: 0, attempts: 0 })), timeoutMs);
        if (options.signal?.aborted)
            return finish(abortError(options.signal));
        controller.signal.addEventListener("abort", () => {
            if (!settled)
                finish(abortError(controller.signal));
        });
        const poll = async () => {
            const due = entry.draw_at_ms !== undefined ? client.clock.msUntil(entry.draw_at_ms) : pollIntervalMs;
            const listening = client.listening();
            const firstWait = (Number.isFinite(due) ? due : pollIntervalMs) + (listening ? socketGraceMs : 0);
            await sleep(firstWait + client.random() * pollIntervalMs * 0.5, controller.signal);
            for (;;) {
                try {
                    const order = await client.getOrder(entry.order_id, { signal: controller.signal });
                    if (order.status === "reserved" || order.status === "paid" || order.status === "expired" || order.status === "cancelled") {
                        const payBy = order.pay_by_ms;
                        return finish(undefined, { order_id: order.order_id, status: "reserved", ...(payBy !== undefined ? { pay_by_ms: payBy } : {}), via: "poll" });
                    }
                    if (order.status === "lost")
                        return finish(undefined, { order_id: order.order_id, status: "lost", via: "poll" });
                }
                catch (e) {
                    if (settled)
                        return;
                    if (e instanceof LinkdropError && e.status >= 400 && e.status < 500 && e.status !== 404)
                        return finish(e);
                }
                await sleep(pollIntervalMs * (0.5 + client.random()), controller.signal);
            }
        };
        poll().catch((e) => finish(e));
    });
}

// ---------------------------------------------------------------------------------------
// src/room.ts

// A room: one room's WebSocket kept open, reconnected with full-jitter backoff and resumed
// with `since`, its clock pings, its events delivered once and in order, and the views of its
// drops kept from them.
const NUMBERED = new Set(["drop.countdown", "drop.stock", "drop.sold_out", "drop.closed", "drop.draw"]);
const OPEN = 1;
/**
 * One room's WebSocket, kept open: made by `LinkdropClient.join`. Listen with `on(type, fn)`;
 * every numbered room event is delivered once and in order, across reconnections (each one
 * resumes with `since` = `lastSeq`). `close()` ends it.
 */
export class Room {
    /** Made by `LinkdropClient.join`. */
    constructor(client, roomId, options = {}) {
        this.emitter = new Emitter();
        this.pingsSent = 0;
        this.attempt = 0;
        this.closedByApp = false;
        this.views = new Map();
        this._state = "connecting";
        this._connections = 0;
        this.client = client;
        this.id = roomId;
        this.opts = {
            initialPings: options.initialPings ?? 5,
            pingIntervalMs: options.pingIntervalMs ?? 10000,
            pongTimeoutMs: options.pongTimeoutMs ?? 15000,
        };
        this._lastSeq = options.since;
        void this.connect();
    }
    /** The connection's state. */
    get state() {
        return this._state;
    }
    /** The last numbered room event seen (or the seq the room was at when joined). Keep it to
     *  resume after a page reload: `client.join(room, { since })`. */
    get lastSeq() {
        return this._lastSeq;
    }
    /** The current connection's `session_id`. */
    get sessionId() {
        return this._sessionId;
    }
    /** Approximate viewers of the room (from `hello` and `room.viewers`). */
    get viewers() {
        return this._viewers;
    }
    /** How many connections got a `hello` so far (1 + reconnections). */
    get connections() {
        return this._connections;
    }
    /** The server's clock (shared by the client's rooms). */
    get clock() {
        return this.client.clock;
    }
    /** The launched drops of the room that are not closed, kept from its events. */
    get drops() {
        return [...this.views.values()].filter((d) => !d.closed);
    }
    /** One drop's view (closed ones included), if the room has told of it. */
    drop(dropId) {
        return this.views.get(dropId);
    }
    /** Listens to a frame type (`"drop.countdown"`, …) or to `"event"`, `"state"`,
     *  `"reconnecting"`, `"drop"`, `"error"`. Returns a function that stops listening. */
    on(type, listener) {
        return this.emitter.on(type, listener);
    }
    off(type, listener) {
        this.emitter.off(type, listener);
    }
    /** The next `type` for which `filter` holds, as a promise (rejects on timeout or abort). */
    next(type, options = {}) {
        return new Promise((resolve, reject) => {
            let timer;
            const finish = () => {
                off();
                if (timer !== undefined)
                    clearTimeout(timer);
                options.signal?.removeEventListener("abort", onAbort);
            };
            const off = this.on(type, (value) => {
                if (options.filter && !options.filter(value))
                    return;
                finish();
                resolve(value);
            });
            const onAbort = () => {
                finish();
                reject(abortError(options.signal));
            };
            if (options.signal?.aborted)
                return onAbort();
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
    revealAt(opensAtMs, callback, options = {}) {
        return this.client.clock.revealAt(opensAtMs, callback, options);
    }
    /** Leaves the room: closes the connection and stops reconnecting. */
    close() {
        if (this.closedByApp)
            return;
        this.closedByApp = true;
        this.clearTimers();
        const socket = this.socket;
        this.socket = undefined;
        if (socket) {
            try {
                socket.close(1000, "left");
            }
            catch {
                // already closed
            }
        }
        this.setState("closed");
        this.client._forget(this);
    }
    setState(state) {
        if (this._state === state)
            return;
        this._state = state;
        this.emitter.emit("state", state);
    }
    clearTimers() {
        for (const t of [this.timer, this.pingTimer, this.pongDeadline])
            if (t !== undefined)
                clearTimeout(t);
        this.timer = this.pingTimer = this.pongDeadline = undefined;
    }
    async connect() {
        this.timer = undefined;
        if (this.closedByApp)
            return;
        let token;
        try {
            token = await this.client._token("connect");
        }
        catch (e) {
            this.emitter.emit("error", new LinkdropError("could not get a token", { code: "token", status: 0, attempts: 0, cause: e }));
            this.scheduleReconnect(1006, "no token");
            return;
        }
        if (this.closedByApp)
            return;
        const url = this.client._roomUrl(this.id, token, this._lastSeq);
        let socket;
        try {
            socket = new (this.client._WebSocket())(url);
        }
        catch (e) {
            this.emitter.emit("error", e instanceof Error ? e : new Error(String(e)));
            this.scheduleReconnect(1006, "could not open");
            return;
        }
        const startedAt = this.client.clock.local();
        this.socket = socket;
        this.openedAt = undefined;
        this.pingsSent = 0;
        socket.onopen = () => {
            if (this.socket === socket)
                this.ping();
        };
        socket.onmessage = (message) => {
            if (this.socket !== socket)
                return;
            let frame;
            try {
                frame = JSON.parse(typeof message.data === "string" ? message.data : new TextDecoder().decode(message.data));
            }
            catch {
                return;
            }
            this.onFrame(socket, frame, startedAt);
        };
        socket.onerror = () => {
            // a close event follows
        };
        socket.onclose = (event) => {
            if (this.socket !== socket)
                return;
            this.socket = undefined;
            this.clearTimers();
            if (this.closedByApp)
                return;
            const lived = this.openedAt !== undefined ? this.client.clock.local() - this.openedAt : 0;
            if (this.openedAt !== undefined && lived >= this.client._reconnect.stableAfterMs)
                this.attempt = 0;
            this.scheduleReconnect(event.code ?? 1006, event.reason ?? "");
        };
    }
    scheduleReconnect(code, reason) {
        if (this.closedByApp)
            return;
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
    resume(socket, code, reason) {
        if (this.socket !== socket)
            return;
        this.socket = undefined;
        this.clearTimers();
        try {
            socket.close(code, reason);
        }
        catch {
            // already closing
        }
        this.scheduleReconnect(code, reason);
    }
    ping() {
        const socket = this.socket;
        if (!socket || socket.readyState !== OPEN)
            return;
        if (this.pingTimer !== undefined)
            clearTimeout(this.pingTimer);
        this.pingTimer = undefined;
        try {
            socket.send(JSON.stringify({ type: "ping", t: this.client.clock.local() }));
        }
        catch {
            return;
        }
        this.pingsSent += 1;
        if (this.pongDeadline === undefined) {
            this.pongDeadline = setTimeout(() => this.resume(socket, 4000, "no pong"), this.opts.pongTimeoutMs);
        }
    }
    onFrame(socket, frame, startedAt) {
        const received = this.client.clock.local();
        switch (frame.type) {
            case "hello": {
                const hello = frame;
                // The server made it between the connection's start and now.
                this.client.clock.sample(startedAt, received, hello.server_time_ms);
                this._sessionId = hello.session_id;
                this._viewers = hello.viewers;
                // A new viewer is up to date as of hello.seq (a resync of the drops follows); a
                // resuming one gets the events after `since` next. A room whose numbering went
                // backwards (its history was lost) starts over from hello.seq.
                if (this._lastSeq === undefined || hello.seq < this._lastSeq)
                    this._lastSeq = hello.seq;
                this.openedAt = received;
                this._connections += 1;
                this.setState("open");
                break;
            }
            case "pong": {
                const pong = frame;
                if (typeof pong.t === "number")
                    this.client.clock.sample(pong.t, received, pong.server_time_ms);
                if (this.pongDeadline !== undefined)
                    clearTimeout(this.pongDeadline);
                this.pongDeadline = undefined;
                const next = this.pingsSent < this.opts.initialPings ? 100 : this.opts.pingIntervalMs;
                this.pingTimer = setTimeout(() => this.ping(), next);
                break;
            }
            case "room.viewers":
                this._viewers = frame.viewers;
                break;
            case "resync": {
                const resync = frame;
                if (typeof resync.seq === "number")
                    this._lastSeq = resync.seq;
                this.applyResync(resync);
                break;
            }
            case "order.result":
                this.client._orderResult(frame);
                break;
            default:
                if (NUMBERED.has(frame.type) || typeof frame.seq === "number") {
                    const seq = frame.seq;
                    if (this._lastSeq !== undefined && seq <= this._lastSeq)
                        return; // seen already
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
        this.emitter.emit(frame.type, frame);
        this.emitter.emit("event", frame);
    }
    applyEvent(frame) {
        switch (frame.type) {
            case "drop.countdown": {
                const e = frame;
                this.putView({
                    id: e.drop.id, drop: e.drop, opensAtMs: e.opens_at_ms, orderUrl: e.order_url, seedHash: e.seed_hash,
                    stock: undefined, stockLeft: undefined, soldOut: false, soldOutAtMs: undefined, closed: false, draw: undefined,
                });
                break;
            }
            case "drop.stock": {
                const e = frame;
                this.updateView(e.drop_id, (v) => {
                    v.stock = e.stock;
                    v.stockLeft = e.stock_left;
                    if (e.stock_left > 0)
                        v.soldOut = false;
                });
                break;
            }
            case "drop.sold_out": {
                const e = frame;
                this.updateView(e.drop_id, (v) => {
                    v.soldOut = true;
                    v.soldOutAtMs = e.sold_out_at_ms;
                    v.stockLeft = 0;
                });
                break;
            }
            case "drop.closed":
                this.updateView(frame.drop_id, (v) => {
                    v.closed = true;
                });
                break;
            case "drop.draw": {
                const e = frame;
                this.updateView(e.drop_id, (v) => {
                    v.draw = { seed: e.seed, winners: e.winners, cutoffRank: e.cutoff_rank };
                });
                break;
            }
        }
    }
    applyResync(resync) {
        const listed = new Set();
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
            if (!listed.has(v.id) && !v.closed)
                this.updateView(v.id, (view) => (view.closed = true));
        }
    }
    putView(view) {
        this.views.set(view.id, view);
        this.client._learnOrderUrl(view.id, view.orderUrl);
        this.emitter.emit("drop", { ...view });
    }
    updateView(dropId, change) {
        const view = this.views.get(dropId);
        if (!view)
            return;
        change(view);
        this.emitter.emit("drop", { ...view });
    }
}

// ---------------------------------------------------------------------------------------
// src/http.ts

// HTTP with the retry policy: one call to linkdrop, asked again when its answer was lost (no
// answer, a timeout, 408, a 5xx) after a full-jitter backoff, and after Retry-After on 429 and
// 503, within a budget of attempts and time; a refused token (401) is replaced once.
/**
 * One HTTP call with the retry policy: an answer is any 2xx, 3xx or 4xx but 408 and 429;
 * no answer (a network error, a timeout), 408 and 5xx are asked again after a backoff with
 * full jitter; 429 and 503 with a Retry-After wait at least that long (and up to half as
 * long again, so that the clients it turned away come back spread out). 401 with a token
 * function: once more with a fresh token.
 */
async function requestWithRetries(http, method, url, body, headers, signal) {
    const started = http.clock.local();
    const budget = http.retry;
    let refreshed = false;
    let tokenReason = "request";
    let last = { code: "network", status: 0 };
    for (let attempt = 1;; attempt++) {
        if (signal?.aborted)
            throw abortError(signal);
        const token = await http.token(tokenReason);
        const controller = new AbortController();
        const onAbort = () => controller.abort(signal?.reason);
        signal?.addEventListener("abort", onAbort, { once: true });
        const timeout = setTimeout(() => controller.abort(new Error("timeout")), budget.requestTimeoutMs);
        let wait;
        try {
            const init = {
                method,
                headers: { authorization: `Bearer ${token}`, ...(body !== undefined ? { "content-type": "application/json" } : {}), ...headers },
                signal: controller.signal,
            };
            if (body !== undefined)
                init.body = JSON.stringify(body);
            const response = await http.fetch(url, init);
            const text = await response.text();
            let parsed = null;
            try {
                parsed = text ? JSON.parse(text) : null;
            }
            catch {
                parsed = null;
            }
            const answer = { status: response.status, body: parsed, headers: response.headers };
            const status = response.status;
            if (status === 401 && !refreshed && http.canRefresh) {
                refreshed = true;
                tokenReason = "refresh";
                attempt -= 1; // a fresh token is not a retry
                continue;
            }
            tokenReason = "request";
            const retryAfterMs = parseRetryAfter(response.headers.get("retry-after"), http.clock.local());
            const code = parsed && typeof parsed.code === "string" ? parsed.code : `http_${status}`;
            if (status === 429 || status === 503) {
                last = { code, status, problem: { status, ...(parsed ?? {}) }, retryAfterMs };
                wait = retryAfterMs !== undefined ? retryAfterMs * (1 + 0.5 * http.random()) : undefined;
            }
            else if (status >= 500 || status === 408) {
                last = { code, status, problem: { status, ...(parsed ?? {}) } };
            }
            else {
                return { answer, attempts: attempt };
            }
        }
        catch (e) {
            if (signal?.aborted)
                throw abortError(signal);
            const timedOut = controller.signal.aborted;
            last = { code: timedOut ? "timeout" : "network", status: 0, cause: e };
        }
        finally {
            clearTimeout(timeout);
            signal?.removeEventListener("abort", onAbort);
        }
        if (wait === undefined)
            wait = http.random() * backoffWindow(attempt, budget);
        const elapsed = http.clock.local() - started;
        if (attempt >= budget.maxAttempts || elapsed + wait > budget.deadlineMs) {
            const what = last.status ? `HTTP ${last.status} ${last.code}` : last.code;
            throw new LinkdropError(`no answer after ${attempt} attempts (${what})`, { ...last, attempts: attempt });
        }
        await sleep(wait, signal);
    }
}

// ---------------------------------------------------------------------------------------
// src/client.ts

// The client: linkdrop for one shopper. Its settings, its rooms, the server's clock they
// share, and the shopping calls (orders, payments, reads, lottery results) with the retry
// policy.
/**
 * linkdrop for one shopper: rooms (`join`), the server's clock (`clock`), and the shopping
 * calls (`order`, `pay`, `getOrder`, `lotteryResult`).
 */
export class LinkdropClient {
    constructor(options) {
        this.rooms = new Set();
        this.intents = new Map();
        this.orderUrls = new Map();
        this.results = new Emitter();
        if (!options || options.token === undefined)
            throw new TypeError("LinkdropClient needs a token (a string or a function)");
        const origin = globalThis.location?.origin;
        const url = options.url ?? origin;
        if (!url)
            throw new TypeError("LinkdropClient needs a url outside a browser page");
        this.baseUrl = url.replace(/\/+$/, "");
        this.wsBase = (options.wsUrl ?? this.baseUrl).replace(/\/+$/, "").replace(/^http(s?):/i, "ws$1:");
        this.tokenSource = options.token;
        this.WebSocketClass = options.WebSocket;
        const f = options.fetch ?? globalThis.fetch;
        if (!f)
            throw new TypeError("no fetch: pass { fetch }");
        this.fetchFn = (input, init) => f(input, init);
        this.clock = new ServerClock({ now: options.now });
        this._random = options.random ?? Math.random;
        this._reconnect = {
            baseMs: options.reconnect?.baseMs ?? 1000,
            maxMs: options.reconnect?.maxMs ?? 30000,
            maxAttempts: options.reconnect?.maxAttempts ?? Infinity,
            stableAfterMs: options.reconnect?.stableAfterMs ?? 5000,
        };
        this.retry = {
            baseMs: options.retry?.baseMs ?? 250,
            maxMs: options.retry?.maxMs ?? 4000,
            maxAttempts: options.retry?.maxAttempts ?? 8,
            deadlineMs: options.retry?.deadlineMs ?? 30000,
            requestTimeoutMs: options.retry?.requestTimeoutMs ?? 10000,
        };
    }
    /** Joins a room: opens its WebSocket and keeps it open until `room.close()`. */
    join(roomId, options = {}) {
        this._WebSocket(); // fail now, not in the background, when there is none
        const room = new Room(this, roomId, options);
        this.rooms.add(room);
        return room;
    }
    /** Listens to `order.result` from every room of this client. */
    onOrderResult(listener) {
        return this.results.on("order.result", listener);
    }
    /** Leaves every room. */
    close() {
        for (const room of [...this.rooms])
            room.close();
    }
    /** Samples the server's clock over HTTP (`GET /v1/time`), e.g. before joining a room. */
    async syncClock(samples = 5) {
        for (let i = 0; i < samples; i++) {
            const sent = this.clock.local();
            try {
                const response = await this.fetchFn(`${this.baseUrl}/v1/time`);
                const body = await response.json();
                if (response.ok)
                    this.clock.sample(sent, this.clock.local(), body.server_time_ms);
            }
            catch {
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
    intent(dropId, qty = 1) {
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
    order(dropId, qty = 1, options = {}) {
        const intent = options.idempotencyKey
            ? { dropId, qty, idempotencyKey: options.idempotencyKey }
            : this.intent(dropId, qty);
        if (intent.inFlight)
            return intent.inFlight;
        const attempt = this.sendOrder(intent, options.signal).then((result) => {
            const name = intentName(dropId, qty);
            if (endsIntent(result) && this.intents.get(name) === intent)
                this.intents.delete(name);
            return result;
        });
        intent.inFlight = attempt;
        const clear = () => {
            if (intent.inFlight === attempt)
                intent.inFlight = undefined;
        };
        attempt.then(clear, clear);
        return attempt;
    }
    async sendOrder(intent, signal) {
        const url = this.orderUrls.get(intent.dropId) ?? `${this.baseUrl}/v1/drops/${encodeURIComponent(intent.dropId)}/orders`;
        const { answer, attempts } = await this.request("POST", url, { qty: intent.qty }, { "idempotency-key": intent.idempotencyKey }, signal);
        return orderResult(answer, attempts, intent.idempotencyKey);
    }
    /** Pays a reservation (`POST /v1/orders/{id}/pay`), standing in for a payment provider's
     *  callback. Retried like an order: paying again answers the same. */
    async pay(orderId, paymentRef = `pay-${newIdempotencyKey()}`, options = {}) {
        const { answer, attempts } = await this.request("POST", `${this.baseUrl}/v1/orders/${encodeURIComponent(orderId)}/pay`, { payment_ref: paymentRef }, {}, options.signal);
        return payResult(answer, attempts);
    }
    /** Reads an order (`GET /v1/orders/{id}`); throws a `LinkdropError` for a refusal (404, …). */
    async getOrder(orderId, options = {}) {
        const { answer, attempts } = await this.request("GET", `${this.baseUrl}/v1/orders/${encodeURIComponent(orderId)}`, undefined, {}, options.signal);
        if (answer.status === 200)
            return answer.body;
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
    lotteryResult(entry, options = {}) {
        return waitForLotteryResult({
            clock: this.clock,
            random: () => this._random(),
            listening: () => [...this.rooms].some((room) => room.state === "open"),
            onOrderResult: (listener) => this.onOrderResult(listener),
            getOrder: (orderId, getOptions) => this.getOrder(orderId, getOptions),
        }, entry, options);
    }
    /** One HTTP call with the retry policy (`requestWithRetries`), with this client's fetch, token
     *  and retry budget. */
    request(method, url, body, headers, signal) {
        const http = {
            fetch: this.fetchFn,
            retry: this.retry,
            clock: this.clock,
            random: () => this._random(),
            token: (reason) => this._token(reason),
            canRefresh: typeof this.tokenSource === "function",
        };
        return requestWithRetries(http, method, url, body, headers, signal);
    }
    /** @internal */
    async _token(reason) {
        const source = this.tokenSource;
        return typeof source === "function" ? await source({ reason }) : source;
    }
    /** @internal */
    _roomUrl(roomId, token, since) {
        const query = new URLSearchParams({ token });
        if (since !== undefined)
            query.set("since", String(since));
        return `${this.wsBase}/v1/rooms/${encodeURIComponent(roomId)}/ws?${query}`;
    }
    /** @internal */
    _WebSocket() {
        const ws = this.WebSocketClass ?? globalThis.WebSocket;
        if (!ws)
            throw new TypeError("no WebSocket here: pass { WebSocket } (in Node 20: import { WebSocket } from \"ws\")");
        return ws;
    }
    /** @internal */
    _forget(room) {
        this.rooms.delete(room);
    }
    /** @internal */
    _learnOrderUrl(dropId, url) {
        if (url)
            this.orderUrls.set(dropId, url);
    }
    /** @internal */
    _orderResult(event) {
        this.results.emit("order.result", event);
    }
}
