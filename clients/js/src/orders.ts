// Orders: what the shopping calls answer (API.md "Shopping"; the order schemas in
// schemas/openapi.yaml), purchase intents and their Idempotency-Keys, what an order or a
// payment answer comes to, and waiting for a lottery entry's result.

import type { ServerClock } from "./clock.js";
import { LinkdropError, abortError } from "./errors.js";
import type { Problem } from "./errors.js";
import type { OrderResultEvent } from "./events.js";
import type { Answer } from "./http.js";
import { sleep } from "./util.js";

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

/** A purchase intent: one Idempotency-Key for every request that tries to make one order. */
export interface OrderIntent {
  readonly dropId: string;
  readonly qty: number;
  readonly idempotencyKey: string;
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

/** The name of the purchase intent for `qty` units of a drop (a client keeps one per name). */
export function intentName(dropId: string, qty: number): string {
  return `${dropId}\u0000${qty}`;
}

/** Whether an order's outcome ends its purchase intent: the next order of the same drop and
 *  qty is another purchase, with a new key. `sold_out` and `not_open` keep the intent. */
export function endsIntent(result: OrderResult): boolean {
  return ["reserved", "entered", "limit_reached", "closed", "refused"].includes(result.outcome);
}

/** What an answer to `POST /v1/drops/{drop}/orders` comes to. */
export function orderResult(answer: Answer, attempts: number, idempotencyKey: string): OrderResult {
  const body = answer.body ?? {};
  const problem: Problem = { status: answer.status, ...body };
  const replayed = answer.headers.get("idempotent-replayed") === "true";
  if (answer.status === 201) return { outcome: "reserved", order: body, replayed, idempotencyKey, attempts };
  if (answer.status === 202) return { outcome: "entered", entry: body, replayed, idempotencyKey, attempts };
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
export function payResult(answer: Answer, attempts: number): PayResult {
  const body = answer.body ?? {};
  const problem: Problem = { status: answer.status, ...body };
  if (answer.status === 200) return { outcome: "paid", order: body, attempts };
  if (body.code === "expired") return { outcome: "expired", problem, attempts };
  if (body.code === "not_payable") return { outcome: "not_payable", orderStatus: body.order_status, problem, attempts };
  return { outcome: "refused", status: answer.status, code: body.code, problem, attempts };
}

/** What waiting for a lottery result needs of the client. */
export interface LotteryWatch {
  clock: ServerClock;
  /** The jitter's randomness, in [0, 1). */
  random: () => number;
  /** Whether a room of the client is connected now (its socket normally brings the result first). */
  listening: () => boolean;
  /** Listens to `order.result` from every room of the client. */
  onOrderResult: (listener: (result: OrderResultEvent) => void) => () => void;
  /** Reads an order. */
  getOrder: (orderId: string, options: { signal?: AbortSignal }) => Promise<Order>;
}

/** `LinkdropClient.lotteryResult` (see there): the first of the socket's `order.result` and
 *  reading the order once the draw is due. */
export function waitForLotteryResult(
  client: LotteryWatch,
  entry: LotteryEntry | { order_id: string; draw_at_ms?: number },
  options: { pollIntervalMs?: number; socketGraceMs?: number; timeoutMs?: number; signal?: AbortSignal },
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
    const off = client.onOrderResult((e) => {
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
      const due = entry.draw_at_ms !== undefined ? client.clock.msUntil(entry.draw_at_ms) : pollIntervalMs;
      const listening = client.listening();
      const firstWait = (Number.isFinite(due) ? due : pollIntervalMs) + (listening ? socketGraceMs : 0);
      await sleep(firstWait + client.random() * pollIntervalMs * 0.5, controller.signal);
      for (;;) {
        try {
          const order = await client.getOrder(entry.order_id, { signal: controller.signal });
          if (order.status === "reserved" || order.status === "paid" || order.status === "expired" || order.status === "cancelled") {
            const payBy = (order as { pay_by_ms?: number }).pay_by_ms;
            return finish(undefined, { order_id: order.order_id, status: "reserved", ...(payBy !== undefined ? { pay_by_ms: payBy } : {}), via: "poll" });
          }
          if (order.status === "lost") return finish(undefined, { order_id: order.order_id, status: "lost", via: "poll" });
        } catch (e) {
          if (settled) return;
          if (e instanceof LinkdropError && e.status >= 400 && e.status < 500 && e.status !== 404) return finish(e);
        }
        await sleep(pollIntervalMs * (0.5 + client.random()), controller.signal);
      }
    };
    poll().catch((e) => finish(e));
  });
}
