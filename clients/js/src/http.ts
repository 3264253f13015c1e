// HTTP with the retry policy: one call to linkdrop, asked again when its answer was lost (no
// answer, a timeout, 408, a 5xx) after a full-jitter backoff, and after Retry-After on 429 and
// 503, within a budget of attempts and time; a refused token (401) is replaced once.

import { backoffWindow, parseRetryAfter } from "./backoff.js";
import type { ServerClock } from "./clock.js";
import { LinkdropError, abortError } from "./errors.js";
import type { Problem } from "./errors.js";
import type { RetryOptions } from "./options.js";
import { sleep } from "./util.js";

/** An answer: its status, its JSON body (null when it had none or it was not JSON), its headers. */
export interface Answer {
  status: number;
  body: any;
  headers: Headers;
}

/** What a call needs of the client that makes it. */
export interface HttpContext {
  fetch: typeof fetch;
  /** The retry budget (`ClientOptions.retry` with its defaults). */
  retry: Required<RetryOptions>;
  /** Its local clock times the budget. */
  clock: ServerClock;
  /** The jitter's randomness, in [0, 1). */
  random: () => number;
  /** The shopper's token; `refresh` after linkdrop refused the last one. */
  token: (reason: "request" | "refresh") => Promise<string>;
  /** Whether a refused token can be replaced by a fresh one (the token is a function). */
  canRefresh: boolean;
}

/**
 * One HTTP call with the retry policy: an answer is any 2xx, 3xx or 4xx but 408 and 429;
 * no answer (a network error, a timeout), 408 and 5xx are asked again after a backoff with
 * full jitter; 429 and 503 with a Retry-After wait at least that long (and up to half as
 * long again, so that the clients it turned away come back spread out). 401 with a token
 * function: once more with a fresh token.
 */
export async function requestWithRetries(
  http: HttpContext,
  method: string,
  url: string,
  body: unknown,
  headers: Record<string, string>,
  signal?: AbortSignal,
): Promise<{ answer: Answer; attempts: number }> {
  const started = http.clock.local();
  const budget = http.retry;
  let refreshed = false;
  let tokenReason: "request" | "refresh" = "request";
  let last: { code: string; status: number; problem?: Problem; retryAfterMs?: number; cause?: unknown } = { code: "network", status: 0 };
  for (let attempt = 1; ; attempt++) {
    if (signal?.aborted) throw abortError(signal);
    const token = await http.token(tokenReason);
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
      const response = await http.fetch(url, init);
      const text = await response.text();
      let parsed: any = null;
      try {
        parsed = text ? JSON.parse(text) : null;
      } catch {
        parsed = null;
      }
      const answer: Answer = { status: response.status, body: parsed, headers: response.headers };
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
    if (wait === undefined) wait = http.random() * backoffWindow(attempt, budget);
    const elapsed = http.clock.local() - started;
    if (attempt >= budget.maxAttempts || elapsed + wait > budget.deadlineMs) {
      const what = last.status ? `HTTP ${last.status} ${last.code}` : last.code;
      throw new LinkdropError(`no answer after ${attempt} attempts (${what})`, { ...last, attempts: attempt });
    }
    await sleep(wait, signal);
  }
}
