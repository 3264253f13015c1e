"""The checker: reads a run's history (every client operation and its answer), the webhook
receiver's log and every store (PostgreSQL, Redis, the control API's live figures), and
lists each violation of what linkdrop promises (ARCHITECTURE "Invariants", API.md):

  oversell       more units held at one moment than the drop's stock, or by one shopper
                 than max_per_user (from the answers the clients got), or store figures
                 holding more than the stock
  lost           an order answered 201/202 that PostgreSQL does not hold
  twice          one Idempotency-Key with two orders, or one change with two events
  idempotency    a key with a final answer (201, 202, 409 limit_reached) later answered
                 differently; an order in PostgreSQL whose shopper was told otherwise
  open_close     an order admitted before opens_at_ms, or a fresh order sent after the close
                 was acknowledged
  payment        a payment answered paid that the records do not show paid, or accepted
                 after its deadline; an order answered expired that is paid
  stock          stock figures that do not add up: stock - stock_left against the units
                 reserved and paid (Redis orders, PostgreSQL, the API's figures), paid
                 units, per-shopper holdings; PostgreSQL's statuses against the live state
  delivery       a merchant event neither delivered with a valid signature (the receiver
                 verified it with the Standard Webhooks library and answered 2xx) nor
                 dead-lettered; a delivery with a bad signature or of an unknown event; a
                 change (order created, paid, expired, drop closed) without its event
  lottery        a draw that does not verify: the seed against its hash (published at
                 launch, in the countdown), the entries against the 202 answers, winners and
                 cutoff against HMAC ranks, outcomes in the records, the announcement
  viewers        a gap in a viewer's room event sequence (resumed or not), a viewer that
                 never caught up with the room's last event, a room event missing from the
                 room (drop.closed, drop.draw)

Unresolved operations (no definite answer before the deadline) are listed, not judged: such
an order may or may not exist.
"""

import hashlib
import hmac
import json
from collections import defaultdict

FINAL = (201, 202)


class Verdict:
    def __init__(self):
        self.violations = []
        self.notes = []
        self.stats = defaultdict(int)

    def fail(self, invariant, detail, **data):
        self.violations.append({"invariant": invariant, "detail": detail, **data})

    def note(self, detail, **data):
        self.notes.append({"detail": detail, **data})


def read_lines(path):
    out = []
    try:
        with open(path) as f:
            for line in f:
                line = line.strip()
                if line:
                    try:
                        out.append(json.loads(line))
                    except ValueError:
                        pass
    except FileNotFoundError:
        pass
    return out


def is_final(op):
    return op.get("status") in FINAL or (op.get("status") == 409 and op.get("code") == "limit_reached")


def answer_of(op):
    """What must be identical between the answers to one key."""
    body = op.get("body") or {}
    if op["status"] == 201:
        return (201, body.get("order_id"), body.get("qty"), body.get("pay_by_ms"), body.get("status"))
    if op["status"] == 202:
        return (202, body.get("order_id"), body.get("qty"), body.get("draw_at_ms"), body.get("status"))
    return (op["status"], op.get("code"))


def rank(seed_hex, user):
    return hmac.new(bytes.fromhex(seed_hex), user.encode(), hashlib.sha256).hexdigest()


def check(meta, history, receipts, stores):
    v = Verdict()
    merchant = meta["merchant"]
    launched = {op["drop"]: op for op in history if op["op"] == "launched"}
    closed_ops = {op["drop"]: op for op in history if op["op"] == "closed"}
    orders_ops = [op for op in history if op["op"] == "order"]
    pay_ops = [op for op in history if op["op"] == "pay"]
    ws_ops = [op for op in history if op["op"] == "ws"]
    unresolved = [op for op in history if op["op"] == "unresolved"]
    v.stats["drops"] = len(launched)
    v.stats["order_requests"] = len(orders_ops)
    v.stats["pay_requests"] = len(pay_ops)
    v.stats["lost_answers"] = sum(1 for op in orders_ops + pay_ops if op.get("status") is None)
    v.stats["answers_5xx"] = sum(1 for op in orders_ops + pay_ops if (op.get("status") or 0) >= 500)
    v.stats["unresolved"] = len(unresolved)
    for op in unresolved:
        v.note("operation without a definite answer before the deadline (not judged)", op=op)

    pg_drops = {d["id"]: d for d in stores.pg_drops(merchant)}
    drop_ids = sorted(launched)
    pg_orders = {o["order_id"]: o for o in stores.pg_orders(drop_ids)}
    v.stats["orders_in_postgres"] = len(pg_orders)

    # --- answers per key -----------------------------------------------------------------
    by_key = defaultdict(list)
    for op in sorted(orders_ops, key=lambda o: o["t0"]):
        by_key[(op["user"], op["drop"], op["key"])].append(op)
    acked = {}  # order_id -> first final op
    unresolved_keys = {(op.get("user"), op.get("drop"), op.get("key")) for op in unresolved if op.get("of") == "order"}
    for key, ops in by_key.items():
        final = None
        for op in ops:
            if op.get("status") is None or op["status"] >= 500 or op["status"] == 429:
                continue
            if op["status"] == 404:
                v.fail("idempotency", "an order for a launched drop answered 404 (its live state is gone)", op=op)
            if final is None:
                if is_final(op):
                    final = op
            elif answer_of(op) != answer_of(final):
                v.fail("idempotency", "a key with a final answer was later answered differently",
                       key=list(key), first=final, later=op)
        if final is not None and final["status"] in FINAL:
            order_id = (final.get("body") or {}).get("order_id")
            if order_id in acked and acked[order_id]["key"] != final["key"] and not launched[final["drop"]]["spec"]["policy"] == "lottery":
                v.fail("twice", "two keys answered with the same order", order=order_id,
                       first=acked[order_id], second=final)
            acked.setdefault(order_id, final)
    v.stats["orders_acknowledged"] = sum(1 for op in acked.values() if op["status"] == 201)
    v.stats["entries_acknowledged"] = sum(1 for op in acked.values() if op["status"] == 202)

    # --- nothing lost, nothing twice -----------------------------------------------------------
    for order_id, op in acked.items():
        row = pg_orders.get(order_id)
        if row is None:
            v.fail("lost", f"an order answered {op['status']} is not in PostgreSQL", order=order_id, op=op)
            continue
        if row["user_id"] != op["user"] or row["drop_id"] != op["drop"]:
            v.fail("lost", "PostgreSQL holds the order for another shopper or drop", order=order_id, row=row, op=op)
    per_key = defaultdict(list)
    for row in pg_orders.values():
        per_key[(row["drop_id"], row["user_id"], row["idempotency_key"])].append(row["order_id"])
        if row["order_id"] not in acked:
            key = (row["user_id"], row["drop_id"], row["idempotency_key"])
            if key in unresolved_keys:
                v.note("an order whose answer never came (unresolved) exists", order=row["order_id"])
            else:
                told = [(o.get("status"), o.get("code")) for o in by_key.get(key, [])]
                v.fail("idempotency", "PostgreSQL holds an order its shopper was never answered with",
                       order=row, answers=told)
    for key, ids in per_key.items():
        if len(ids) > 1:
            v.fail("twice", "one Idempotency-Key has several orders in PostgreSQL", key=list(key), orders=ids)

    # --- per drop: stores and figures ----------------------------------------------------------
    paid_answers = {}
    expired_answers = {}
    for op in pay_ops:
        if op.get("status") == 200:
            paid_answers.setdefault(op["order"], op)
        elif op.get("status") == 409 and op.get("code") == "expired":
            expired_answers.setdefault(op["order"], op)
    v.stats["payments_acknowledged"] = len(paid_answers)
    live_by_drop = {}
    for drop_id in drop_ids:
        spec = launched[drop_id]["spec"]
        pgd = pg_drops.get(drop_id)
        if pgd is None:
            v.fail("lost", "a launched drop is not in PostgreSQL", drop=drop_id)
            continue
        meta_live = stores.drop_meta(drop_id)
        live = stores.drop_orders(drop_id)
        live_by_drop[drop_id] = live
        holders = stores.drop_holders(drop_id)
        stock = pgd["stock"]
        stock_left = int(meta_live.get("stock_left", -1))
        paid_live = int(meta_live.get("paid", 0))
        held = sum(o["qty"] for o in live.values() if o["status"] in ("reserved", "paid"))
        paid_units = sum(o["qty"] for o in live.values() if o["status"] == "paid")
        if stock - stock_left != held:
            v.fail("stock", "stock - stock_left differs from the units reserved and paid (Redis)",
                   drop=drop_id, stock=stock, stock_left=stock_left, held=held)
        if held > stock or stock_left < 0:
            v.fail("oversell", "more units reserved and paid than the stock (Redis)", drop=drop_id,
                   stock=stock, held=held, stock_left=stock_left)
        if paid_live != paid_units:
            v.fail("stock", "the drop's paid figure differs from its paid orders (Redis)", drop=drop_id,
                   paid=paid_live, paid_orders=paid_units)
        per_user = defaultdict(int)
        for o in live.values():
            if o["status"] in ("reserved", "paid"):
                per_user[o["user"]] += o["qty"]
        for user in set(per_user) | set(holders):
            if per_user.get(user, 0) != holders.get(user, 0):
                v.fail("stock", "a shopper's holding differs from their orders (Redis)", drop=drop_id,
                       user=user, holding=holders.get(user, 0), orders=per_user.get(user, 0))
            if per_user.get(user, 0) > pgd["max_per_user"]:
                v.fail("oversell", "a shopper holds more than max_per_user", drop=drop_id, user=user,
                       units=per_user[user], max_per_user=pgd["max_per_user"])
        pg_of_drop = {oid: o for oid, o in pg_orders.items() if o["drop_id"] == drop_id}
        pg_held = sum(o["qty"] for o in pg_of_drop.values() if o["status"] in ("reserved", "paid"))
        if pg_held > stock:
            v.fail("oversell", "more units reserved and paid than the stock (PostgreSQL)", drop=drop_id,
                   stock=stock, held=pg_held)
        for oid in set(live) | set(pg_of_drop):
            a = live.get(oid, {}).get("status")
            b = pg_of_drop.get(oid, {}).get("status")
            if a != b:
                v.fail("stock", "PostgreSQL's order status differs from the live state", drop=drop_id,
                       order=oid, redis=a, postgres=b)
        status, figures = stores.api_get(f"/v1/drops/{drop_id}")
        if status == 200:
            for name, want in (("stock_left", stock_left), ("paid", paid_units), ("reserved", held - paid_units)):
                if figures.get(name) != want:
                    v.fail("stock", f"GET /v1/drops: {name} does not add up", drop=drop_id,
                           api=figures.get(name), expected=want)
        else:
            v.note("GET /v1/drops did not answer", drop=drop_id, status=status)
        for oid, o in pg_of_drop.items():
            if o["admitted_at_ms"] < (pgd["opens_at_ms"] or 0):
                v.fail("open_close", "an order admitted before opens_at_ms", drop=drop_id, order=o,
                       opens_at_ms=pgd["opens_at_ms"])
        v.stats["units_sold"] += held
        v.stats["units_paid"] += paid_units
        v.stats["orders_expired"] += sum(1 for o in live.values() if o["status"] == "expired")

        # Held at one moment, from the answers: at the time T an answer 201 arrived, every
        # order acknowledged by T whose deadline was not past at T (or that was paid) held its
        # units together (admitted <= T; expiry strictly after pay_by_ms on the same clock).
        holdings = []
        for oid, op in acked.items():
            if op["drop"] != drop_id or op["status"] != 201:
                continue
            body = op["body"]
            final_status = live.get(oid, {}).get("status") or pg_orders.get(oid, {}).get("status")
            holdings.append((op["t1"], body.get("pay_by_ms"), body.get("qty") or op["qty"], op["user"],
                             final_status == "paid" or oid in paid_answers))
        if spec["policy"] == "lottery" and pgd.get("drawn_at_ms"):
            for oid, o in pg_of_drop.items():
                if o["status"] in ("reserved", "paid", "expired") and oid in acked and acked[oid]["status"] == 202:
                    holdings.append((pgd["drawn_at_ms"] / 1000 + 0.5, o["pay_by_ms"], o["qty"], o["user_id"],
                                     o["status"] == "paid"))
        worst, worst_user = 0, 0
        for t, *_ in holdings:
            at_t = [(q, u) for (t1, pay_by, q, u, paid) in holdings
                    if t1 <= t and (paid or (pay_by is not None and pay_by >= t * 1000))]
            total = sum(q for q, _ in at_t)
            worst = max(worst, total)
            users = defaultdict(int)
            for q, u in at_t:
                users[u] += q
            if total > stock:
                v.fail("oversell", "more units acknowledged and held at one moment than the stock",
                       drop=drop_id, at=t, held=total, stock=stock)
                break
            for u, q in users.items():
                worst_user = max(worst_user, q)
                if q > pgd["max_per_user"]:
                    v.fail("oversell", "a shopper acknowledged more units at one moment than max_per_user",
                           drop=drop_id, user=u, at=t, units=q)
        v.stats["max_held_at_once"] = max(v.stats["max_held_at_once"], worst)

        close = closed_ops.get(drop_id)
        if close is not None:
            for op in orders_ops:
                if (op["drop"] == drop_id and op.get("status") in FINAL and not op.get("replayed")
                        and op["t0"] > close["t1"]):
                    v.fail("open_close", "a fresh order was accepted after the close was acknowledged",
                           drop=drop_id, op=op, closed_at=close["t1"])
            if pgd["phase"] != "closed":
                v.fail("stock", "a drop whose close was acknowledged is not closed in PostgreSQL",
                       drop=drop_id, phase=pgd["phase"])
            if meta_live.get("phase") != "closed":
                v.fail("stock", "a drop whose close was acknowledged is not closed in Redis",
                       drop=drop_id, phase=meta_live.get("phase"))

    # --- payments ------------------------------------------------------------------------------
    for oid, op in paid_answers.items():
        row = pg_orders.get(oid)
        if row is None or row["status"] != "paid":
            v.fail("payment", "a payment answered paid is not paid in PostgreSQL", order=oid,
                   status=row and row["status"], op=op)
        # The first request to pay it left after the deadline (the script's clock was later
        # still), yet the order was paid: a late payment resurrected it.
        pay_by = (row or {}).get("pay_by_ms")
        first_pay = min((p for p in pay_ops if p["order"] == oid), key=lambda p: p["t0"])
        if pay_by is not None and first_pay["t0"] * 1000 > pay_by + 1:
            v.fail("payment", "a payment sent after the deadline was accepted", order=oid,
                   pay_by_ms=pay_by, sent_ms=int(first_pay["t0"] * 1000))
    for oid, op in expired_answers.items():
        row = pg_orders.get(oid)
        if row is not None and row["status"] == "paid":
            v.fail("payment", "an order answered expired is paid", order=oid, op=op)

    # --- merchant events -------------------------------------------------------------------------
    check_delivery(v, meta, receipts, stores, pg_orders, pg_drops, closed_ops)

    # --- lotteries -------------------------------------------------------------------------------
    for drop_id in drop_ids:
        if launched[drop_id]["spec"]["policy"] == "lottery" and drop_id in pg_drops:
            check_lottery(v, drop_id, launched[drop_id], pg_drops[drop_id], acked, pg_orders, stores, ws_ops)

    # --- viewers ---------------------------------------------------------------------------------
    check_viewers(v, meta, ws_ops, history, stores, launched, closed_ops)
    return v


def check_delivery(v, meta, receipts, stores, pg_orders, pg_drops, closed_ops):
    messages = {m["id"]: m for m in stores.pg_messages(meta["merchant"])}
    deliveries = {d["message_id"]: d for d in stores.pg_deliveries(meta["endpoint_id"])}
    by_id = defaultdict(list)
    for r in receipts:
        by_id[r["id"]].append(r)
    v.stats["events"] = len(messages)
    v.stats["webhook_requests"] = len(receipts)
    v.stats["webhook_first_attempt_failures"] = sum(1 for r in receipts if r["nth"] == 0 and r["fate"] != "ok")
    for r in receipts:
        if not r.get("valid"):
            v.fail("delivery", "a delivery whose signature the Standard Webhooks library refuses",
                   id=r["id"], error=r.get("error"))
        if r["id"] not in messages:
            v.fail("delivery", "a delivery of an event the records do not hold", id=r["id"], body=r["body"][:300])
        elif r.get("valid") and r["body"] != messages[r["id"]]["body"]:
            v.fail("delivery", "a delivery whose body differs from the recorded event", id=r["id"])
    delivered = dead = 0
    for mid, m in messages.items():
        d = deliveries.get(mid)
        proof = [r for r in by_id.get(mid, []) if r.get("valid") and 200 <= r.get("answer", 0) < 300
                 and r["body"] == m["body"]]
        if d is None:
            v.fail("delivery", "an event without a delivery to the subscribed endpoint", id=mid)
            continue
        if proof:
            delivered += 1
            if d["state"] != "delivered":
                v.note("delivered (the receiver answered 2xx) but the delivery is still " + d["state"], id=mid,
                       delivery=d)
        elif d["state"] == "dead":
            dead += 1
        else:
            v.fail("delivery", "an event neither delivered with a valid signature nor dead-lettered",
                   id=mid, delivery=d, attempts_seen=[{k: r.get(k) for k in ("nth", "fate", "answer", "sent")}
                                                      for r in by_id.get(mid, [])])
        if d["state"] == "delivered" and not proof:
            v.fail("delivery", "marked delivered, but the receiver never acknowledged it", id=mid)
    v.stats["events_delivered"] = delivered
    v.stats["events_dead_lettered"] = dead

    # Every change has its event, once.
    events = defaultdict(list)
    for m in messages.values():
        try:
            data = json.loads(m["body"]).get("data", {})
        except ValueError:
            data = {}
        subject = data.get("order_id") or data.get("drop_id")
        events[(m["event_type"], subject)].append(m["id"])
    for oid, o in pg_orders.items():
        wanted = []
        if o["status"] in ("reserved", "paid", "expired"):
            wanted.append("order.created")
        if o["status"] == "paid":
            wanted.append("order.paid")
        if o["status"] == "expired":
            wanted.append("order.expired")
        for kind in wanted:
            got = events.get((kind, oid), [])
            if not got:
                v.fail("delivery", f"an order {o['status']} without its {kind} event", order=oid)
            elif len(got) > 1:
                v.fail("twice", f"an order with {len(got)} {kind} events", order=oid, ids=got)
        for kind in ("order.created", "order.paid", "order.expired"):
            if kind not in wanted and events.get((kind, oid)):
                v.fail("delivery", f"a {kind} event for an order that is {o['status']}", order=oid)
    for drop_id in closed_ops:
        got = events.get(("drop.closed", drop_id), [])
        if len(got) != 1:
            v.fail("delivery", f"a closed drop with {len(got)} drop.closed events", drop=drop_id)
    known = set(pg_orders) | set(pg_drops)
    for (kind, subject), ids in events.items():
        if subject not in known:
            v.fail("delivery", "an event about an order or drop the records do not hold", kind=kind,
                   subject=subject, ids=ids)


def check_lottery(v, drop_id, launch, pgd, acked, pg_orders, stores, ws_ops):
    v.stats["lotteries"] += 1
    meta_live = stores.drop_meta(drop_id)
    status, draw = stores.api_get(f"/v1/drops/{drop_id}/draw")
    if status != 200 or not isinstance(draw, dict):
        v.fail("lottery", "GET /v1/drops/{id}/draw did not answer", drop=drop_id, status=status)
        return
    seed, seed_hash, cutoff = draw.get("seed"), draw.get("seed_hash"), draw.get("cutoff_rank")
    if not seed:
        v.fail("lottery", "the lottery was never drawn", drop=drop_id, draw=draw)
        return
    if hashlib.sha256(bytes.fromhex(seed)).hexdigest() != seed_hash:
        v.fail("lottery", "the seed does not match its hash", drop=drop_id, seed=seed, seed_hash=seed_hash)
    if launch.get("seed_hash") != seed_hash:
        v.fail("lottery", "the seed hash differs from the one published at launch", drop=drop_id,
               launch=launch.get("seed_hash"), draw=seed_hash)
    for ws in ws_ops:
        for n in ws.get("notable") or []:
            if n.get("drop") != drop_id:
                continue
            if n["type"] == "drop.countdown" and n.get("seed_hash") != seed_hash:
                v.fail("lottery", "a viewer's countdown carried another seed hash", drop=drop_id, seen=n)
            if n["type"] == "drop.draw" and (n.get("seed") != seed or n.get("cutoff_rank") != cutoff):
                v.fail("lottery", "a viewer's drop.draw differs from the published draw", drop=drop_id, seen=n)
    entries = stores.drop_entries(drop_id)
    entered = {op["user"]: oid for oid, op in acked.items() if op["drop"] == drop_id and op["status"] == 202}
    for user, oid in entered.items():
        if user not in entries:
            v.fail("lottery", "an entry answered 202 is not among the drawn entries", drop=drop_id, user=user)
        elif entries[user]["order_id"] != oid:
            v.fail("lottery", "an entrant's entry has another order id", drop=drop_id, user=user)
    if draw.get("entries") != len(entries):
        v.fail("lottery", "the published entry count differs from the entries", drop=drop_id,
               published=draw.get("entries"), entries=len(entries))
    ranked = sorted((rank(seed, user), user, e) for user, e in entries.items())
    left, winners, open_, want_cutoff = pgd["stock"], set(), True, None
    for r, user, e in ranked:
        if open_ and e["qty"] <= left:
            left -= e["qty"]
            winners.add(user)
            want_cutoff = r
        else:
            open_ = False
    if cutoff != want_cutoff:
        v.fail("lottery", "the cutoff rank is not the largest winning rank", drop=drop_id,
               published=cutoff, recomputed=want_cutoff)
    if draw.get("winners") != len(winners):
        v.fail("lottery", "the published winner count differs from the ranks", drop=drop_id,
               published=draw.get("winners"), recomputed=len(winners))
    for user, e in entries.items():
        row = pg_orders.get(e["order_id"])
        status = row and row["status"]
        if user in winners and status not in ("reserved", "paid", "expired"):
            v.fail("lottery", "a winner's entry is not a reservation in PostgreSQL", drop=drop_id, user=user,
                   status=status)
        if user not in winners and status != "lost":
            v.fail("lottery", "a losing entry is not lost in PostgreSQL", drop=drop_id, user=user, status=status)
    if pgd.get("seed") != seed or pgd.get("cutoff_rank") != cutoff:
        v.fail("lottery", "the draw is not recorded in PostgreSQL", drop=drop_id,
               postgres={k: pgd.get(k) for k in ("seed", "cutoff_rank", "draw_entries", "draw_winners")})
    if meta_live.get("draw_announced") != "1":
        v.fail("lottery", "the draw was never announced (drop.draw, order.result)", drop=drop_id)
    v.stats["lottery_entries"] += len(entries)
    v.stats["lottery_winners"] += len(winners)


# A launch answered this soon after the oldest event the room's history keeps may have
# published its countdown before it (the request can take a client timeout).
TRIM_MARGIN_MS = 15_000


def history_start_ms(history_frames):
    """When the oldest event kept in a room's history was published, if the history was trimmed
    (its first event is not the room's first); None when it holds every event."""
    if not history_frames or history_frames[0][0] <= 1:
        return None
    return history_frames[0][1].get("ts_ms", 0)


def check_viewers(v, meta, ws_ops, history, stores, launched, closed_ops):
    by_viewer = defaultdict(list)
    for op in ws_ops:
        by_viewer[op["viewer"]].append(op)
    final = {room: stores.room_seq(room) for room in meta["rooms"]}
    gave_up = {op["viewer"]: op for op in history if op["op"] == "viewer_gave_up"}
    v.stats["viewers"] = len(by_viewer)
    for viewer, conns in by_viewer.items():
        conns.sort(key=lambda c: c["t0"])
        room = conns[0]["room"]
        last = None
        for c in conns:
            frames = c.get("frames") or []
            if c.get("hello") is None:
                continue  # never got in
            v.stats["viewer_connections"] += 1
            if c["since"] is not None:
                v.stats["viewer_resumes"] += 1
            expected = (c["since"] if c["since"] is not None else c["hello"]) + 1
            for f in frames:
                if f[0] == "R":
                    v.stats["viewer_resyncs"] += 1
                    if f[1] is not None:
                        expected = max(expected, f[1] + 1)
                    continue
                a, b = f
                if a > expected:
                    v.fail("viewers", "a gap in a viewer's room event sequence", viewer=viewer, room=room,
                           gateway=c["gw"], since=c["since"], hello=c["hello"], missing=[expected, a - 1],
                           resumed=c["since"] is not None)
                if a < expected:
                    v.stats["viewer_duplicates"] += min(b, expected - 1) - a + 1
                expected = max(expected, b + 1)
            last = expected - 1
            v.stats["viewer_events"] += sum(f[1] - f[0] + 1 for f in frames if f[0] != "R")
        if viewer in gave_up or last is None or last < final[room]:
            v.fail("viewers", "a viewer never caught up with the room's last event", viewer=viewer,
                   room=room, last=last, room_seq=final[room])
    for room in meta["rooms"]:
        history_frames = stores.room_history(room)
        kinds = defaultdict(list)
        for seq, frame in history_frames:
            kinds[(frame.get("type"), frame.get("drop_id") or (frame.get("drop") or {}).get("id"))].append(seq)
        kept_from_ms = history_start_ms(history_frames)
        for drop_id, op in launched.items():
            if op["room"] != room:
                continue
            launched_ms = op.get("t", 0) * 1000
            if kept_from_ms is not None and launched_ms < kept_from_ms + TRIM_MARGIN_MS:
                # Launched before the oldest event the capped history still keeps: its events
                # may have been trimmed away, as the cap intends (viewers that far behind get
                # a resync). Only later drops are judged from the history.
                v.stats["drops_older_than_history"] += 1
                continue
            if not kinds.get(("drop.countdown", drop_id)):
                v.fail("viewers", "a launched drop's countdown is not among the room's events", drop=drop_id)
            if drop_id in closed_ops and len(kinds.get(("drop.closed", drop_id), [])) != 1:
                v.fail("viewers", "a closed drop's drop.closed is not once among the room's events",
                       drop=drop_id, seqs=kinds.get(("drop.closed", drop_id), []))
            if op["spec"]["policy"] == "lottery" and len(kinds.get(("drop.draw", drop_id), [])) != 1:
                v.fail("viewers", "a lottery's drop.draw is not once among the room's events",
                       drop=drop_id, seqs=kinds.get(("drop.draw", drop_id), []))


def drain_state(meta, stores, drop_ids, lottery_ids, now_ms):
    """What is still in flight: an empty list once the stores have settled."""
    waiting = []
    pg_orders = {o["order_id"]: o for o in stores.pg_orders(drop_ids)}
    for drop_id in drop_ids:
        live = stores.drop_orders(drop_id)
        behind = [oid for oid, o in live.items() if pg_orders.get(oid, {}).get("status") != o["status"]]
        if behind:
            waiting.append(f"{drop_id}: {len(behind)} orders not yet settled as in Redis")
        overdue = [oid for oid, o in live.items() if o["status"] == "reserved" and o["pay_by_ms"]
                   and o["pay_by_ms"] < now_ms - 2000]
        if overdue:
            waiting.append(f"{drop_id}: {len(overdue)} overdue reservations not yet expired")
    for drop_id in lottery_ids:
        meta_live = stores.drop_meta(drop_id)
        if meta_live.get("drawn") != "1":
            waiting.append(f"{drop_id}: lottery not drawn")
        elif meta_live.get("draw_announced") != "1":
            waiting.append(f"{drop_id}: lottery drawn, not announced")
    pending = [d for d in stores.pg_deliveries(meta["endpoint_id"]) if d["state"] == "pending"]
    if pending:
        soonest = min(max(d["next_attempt_at_ms"], d["locked_until_ms"] or 0) for d in pending)
        waiting.append(f"{len(pending)} webhook deliveries pending (next due in {max(0, soonest - now_ms) / 1000:.0f}s)")
    return waiting


def summary(v):
    lines = []
    by = defaultdict(int)
    for x in v.violations:
        by[x["invariant"]] += 1
    if v.violations:
        lines.append(f"{len(v.violations)} violation(s): " + ", ".join(f"{k} {n}" for k, n in sorted(by.items())))
        for x in v.violations[:30]:
            data = {k: val for k, val in x.items() if k not in ("invariant", "detail")}
            lines.append(f"  [{x['invariant']}] {x['detail']}: {json.dumps(data, default=str)[:600]}")
        if len(v.violations) > 30:
            lines.append(f"  ... and {len(v.violations) - 30} more (verdict.json)")
    else:
        lines.append("no violation")
    return "\n".join(lines)
