// When to try again: the backoff windows of reconnections and request retries, and Retry-After.

import type { BackoffOptions } from "./options.js";

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
