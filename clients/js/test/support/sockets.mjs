// The `ws` package's WebSocket, recording each connection attempt the SDK makes (its URL and
// when it was made), so that tests look at what went on the wire, not at what the SDK says.
import { WebSocket } from "ws";

export function recordingWebSocket() {
  const attempts = [];
  class Recording extends WebSocket {
    constructor(url) {
      super(url);
      attempts.push({ url: new URL(url), at: performance.now() });
    }
  }
  return { WebSocket: Recording, attempts };
}

/** Waits until `predicate()` holds, checking every 20 ms; fails after `timeoutMs`. */
export async function until(predicate, timeoutMs = 10_000, what = "the condition") {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
