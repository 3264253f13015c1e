// Room events: every frame a room's WebSocket sends, typed (API.md "WebSocket"; one JSON
// Schema per frame in schemas/ws/), and what a `Room` tells its listeners about them and about
// its connection. Every frame may carry members not listed here: they are passed through
// untouched. Types only.

/** How buyers contend for the stock. */
export type Fairness = { policy: "fcfs" } | { policy: "lottery"; window_ms: number };

/** What viewers see of a drop (`drop.countdown`'s `drop`). */
export interface DropInfo {
  id: string;
  sku: string;
  title: string;
  image_url: string;
  /** Price in minor units. */
  price_cents: number;
  /** ISO 4217 code. */
  currency: string;
  max_per_user: number;
  fairness: Fairness;
}

/** First frame of every connection. `seq` is the room's latest seq when it was made. */
export interface HelloEvent {
  type: "hello";
  session_id: string;
  room_id: string;
  server_time_ms: number;
  seq: number;
  viewers: number;
}

/** A drop was launched: it takes orders from `opens_at_ms` (server time). */
export interface DropCountdownEvent {
  type: "drop.countdown";
  seq: number;
  ts_ms: number;
  drop: DropInfo;
  opens_at_ms: number;
  /** Where to POST orders for this drop. */
  order_url: string;
  /** Lottery drops only: hex SHA-256 of the draw seed. */
  seed_hash?: string;
}

/** The drop's stock changed (at most a few per second). */
export interface DropStockEvent {
  type: "drop.stock";
  seq: number;
  ts_ms: number;
  drop_id: string;
  stock_left: number;
  stock: number;
}

/** No unit is left right now (units may come back when a reservation expires unpaid). */
export interface DropSoldOutEvent {
  type: "drop.sold_out";
  seq: number;
  ts_ms: number;
  drop_id: string;
  sold_out_at_ms: number;
}

/** The host closed the drop: no orders after it. */
export interface DropClosedEvent {
  type: "drop.closed";
  seq: number;
  ts_ms: number;
  drop_id: string;
}

/** A lottery drop's draw is done: the seed (its hash came with the countdown), winners. */
export interface DropDrawEvent {
  type: "drop.draw";
  seq: number;
  ts_ms: number;
  drop_id: string;
  seed: string;
  winners: number;
  cutoff_rank: string | null;
}

/** Approximate viewers of the room (no seq: a notice, not replayed). */
export interface RoomViewersEvent {
  type: "room.viewers";
  viewers: number;
  ts_ms: number;
}

/** The result of this shopper's lottery entry (no seq: only to the shopper, not replayed). */
export interface OrderResultEvent {
  type: "order.result";
  order_id: string;
  drop_id: string;
  status: "reserved" | "lost";
  /** With `reserved`: the payment deadline. */
  pay_by_ms?: number;
}

/** One drop in a `resync`: its countdown (without `type`) and its live figures. */
export interface ResyncDrop {
  drop_id: string;
  state: "countdown" | "open" | "sold_out";
  stock: number;
  stock_left: number;
  opens_at_ms: number;
  order_url?: string;
  drop: DropInfo;
  seed_hash?: string;
}

/** The room's drops as of `seq`, sent instead of the missed events when they are no longer
 *  kept, and to a new viewer of a room with launched drops. Closed drops are left out. */
export interface ResyncEvent {
  type: "resync";
  seq?: number;
  drops: ResyncDrop[];
}

/** Answer to the SDK's clock ping. */
export interface PongEvent {
  type: "pong";
  t: number | null;
  server_time_ms: number;
}

/** Every frame the server sends, by type. */
export interface RoomEventMap {
  hello: HelloEvent;
  "drop.countdown": DropCountdownEvent;
  "drop.stock": DropStockEvent;
  "drop.sold_out": DropSoldOutEvent;
  "drop.closed": DropClosedEvent;
  "drop.draw": DropDrawEvent;
  "room.viewers": RoomViewersEvent;
  "order.result": OrderResultEvent;
  resync: ResyncEvent;
  pong: PongEvent;
}

/** Any frame the server sends (frames of types this version does not know included). */
export type RoomEvent = RoomEventMap[keyof RoomEventMap] | { type: string; seq?: number; [member: string]: unknown };

/** Where a room's connection is. */
export type ConnectionState = "connecting" | "open" | "reconnecting" | "closed";

/** Told before each reconnection attempt. */
export interface ReconnectInfo {
  /** 1 for the first attempt after a disconnection, then 2, 3, … until one succeeds. */
  attempt: number;
  /** How long the SDK waits before this attempt (full jitter: anywhere in [0, window]). */
  delayMs: number;
  /** The backoff window this delay was drawn from. */
  windowMs: number;
  /** Close code and reason of the connection that ended (1006: it failed or was cut). */
  code: number;
  reason: string;
  /** The seq the attempt resumes from (`since`), if any. */
  since: number | undefined;
}

/** What the SDK knows of one launched drop of a room, kept from its events (and `resync`). */
export interface DropView {
  id: string;
  drop: DropInfo;
  opensAtMs: number;
  orderUrl: string | undefined;
  seedHash: string | undefined;
  stock: number | undefined;
  stockLeft: number | undefined;
  /** No unit left right now; not final (units come back from unpaid reservations). */
  soldOut: boolean;
  soldOutAtMs: number | undefined;
  closed: boolean;
  draw: { seed: string; winners: number; cutoffRank: string | null } | undefined;
}

/** Everything a `Room` can tell its listeners: its frames, and about its connection. */
export interface RoomListenerMap extends RoomEventMap {
  /** Every frame, after its own listeners (frames of unknown types too). */
  event: RoomEvent;
  /** The connection's state changed. */
  state: ConnectionState;
  /** A reconnection is scheduled. */
  reconnecting: ReconnectInfo;
  /** A drop's view changed (countdown, stock, sold out, closed, draw, resync). */
  drop: DropView;
  /** Something went wrong that the SDK works around (a token that could not be fetched, a
   *  gap in the events). Informational: the SDK keeps reconnecting. */
  error: Error;
}
