// Options: what an app passes to `new LinkdropClient` and `client.join`. Types only.

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
