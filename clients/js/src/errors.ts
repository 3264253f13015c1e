// Errors: linkdrop's problem answers, and the error the SDK throws when it could get no answer.

/** An RFC 9457 problem answer, as linkdrop sends for every error. */
export interface Problem {
  type?: string;
  title?: string;
  status: number;
  code?: string;
  detail?: string;
  [member: string]: unknown;
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

/** The error of a call or a wait that was aborted through its signal. */
export function abortError(signal: AbortSignal): LinkdropError {
  return new LinkdropError("aborted", { code: "aborted", status: 0, attempts: 0, cause: signal.reason });
}
