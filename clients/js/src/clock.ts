// The server's clock: an offset to it from ping/pong round trips, and the reveal at a server
// time (`revealAt`), the same instant on every viewer whatever their own clocks say.

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
