"""The checker's own test: a small consistent world (history, webhook receipts, stores)
must pass, and each mutation that breaks one promise must be caught as that violation.
Runs in a second, without a cluster:

    PYTHONPATH=scripts/lib python3 -m chaos.selftest
"""

import copy
import hashlib
import hmac
import json
import sys

from chaos import checker

SEED = "11" * 32
SEED_HASH = hashlib.sha256(bytes.fromhex(SEED)).hexdigest()


def rank(user):
    return hmac.new(bytes.fromhex(SEED), user.encode(), hashlib.sha256).hexdigest()


class FakeStores:
    def __init__(self, world):
        self.w = world

    def pg_drops(self, merchant):
        return list(self.w["pg_drops"].values())

    def pg_orders(self, drop_ids):
        return [o for o in self.w["pg_orders"].values() if o["drop_id"] in drop_ids]

    def pg_messages(self, merchant):
        return list(self.w["messages"].values())

    def pg_deliveries(self, endpoint_id):
        return list(self.w["deliveries"].values())

    def drop_meta(self, drop_id):
        return dict(self.w["meta"][drop_id])

    def drop_orders(self, drop_id):
        return copy.deepcopy(self.w["live"][drop_id])

    def drop_holders(self, drop_id):
        return dict(self.w["holders"][drop_id])

    def drop_entries(self, drop_id):
        return copy.deepcopy(self.w["entries"].get(drop_id, {}))

    def room_seq(self, room_id):
        return self.w["room_seq"][room_id]

    def room_history(self, room_id):
        return list(self.w["room_history"][room_id])

    def api_get(self, path):
        return 200, copy.deepcopy(self.w["api"][path])


def world():
    e1, e2 = "m-L1-e1", "m-L1-e2"
    winner, loser = sorted([e1, e2], key=rank)
    order_of = {e1: "o3", e2: "o4"}
    spec_f = {"policy": "fcfs", "stock": 2, "max_per_user": 1}
    spec_l = {"policy": "lottery", "stock": 1, "max_per_user": 1, "window_ms": 3000}
    history = [
        {"op": "launched", "drop": "D1", "spec": spec_f, "room": "r1", "opens_at_ms": 1_000_000, "seed_hash": None},
        {"op": "launched", "drop": "D2", "spec": spec_l, "room": "r1", "opens_at_ms": 1_000_000,
         "seed_hash": SEED_HASH},
        {"op": "order", "user": "u1", "drop": "D1", "key": "k1", "qty": 1, "t0": 1001.0, "t1": 1001.1,
         "status": 201, "code": None, "body": {"order_id": "o1", "status": "reserved", "qty": 1,
                                               "pay_by_ms": 1_010_000}},
        {"op": "order", "user": "u2", "drop": "D1", "key": "k2", "qty": 1, "t0": 1002.0, "t1": 1002.1,
         "status": None, "error": "timeout"},
        {"op": "order", "user": "u2", "drop": "D1", "key": "k2", "qty": 1, "t0": 1002.5, "t1": 1002.6,
         "status": 201, "code": None, "replayed": True,
         "body": {"order_id": "o2", "status": "reserved", "qty": 1, "pay_by_ms": 1_012_000}},
        {"op": "order", "user": "u3", "drop": "D1", "key": "k3", "qty": 1, "t0": 1003.0, "t1": 1003.1,
         "status": 409, "code": "sold_out", "body": {"code": "sold_out"}},
        {"op": "order", "user": "u1", "drop": "D1", "key": "k1", "qty": 1, "t0": 1003.5, "t1": 1003.6,
         "status": 201, "code": None, "replayed": True,
         "body": {"order_id": "o1", "status": "reserved", "qty": 1, "pay_by_ms": 1_010_000}},
        {"op": "pay", "user": "u1", "order": "o1", "t0": 1004.0, "t1": 1004.1, "attempt": 0, "status": 200,
         "code": None, "body": {"status": "paid"}},
        {"op": "order", "user": e1, "drop": "D2", "key": "ke1", "qty": 1, "t0": 1000.5, "t1": 1000.6,
         "status": 202, "code": None, "body": {"order_id": "o3", "status": "entered", "qty": 1,
                                               "draw_at_ms": 1_003_000}},
        {"op": "order", "user": e2, "drop": "D2", "key": "ke2", "qty": 1, "t0": 1000.7, "t1": 1000.8,
         "status": 202, "code": None, "body": {"order_id": "o4", "status": "entered", "qty": 1,
                                               "draw_at_ms": 1_003_000}},
        {"op": "closed", "drop": "D1", "t0": 1019.0, "t1": 1020.0, "status": 200},
        {"op": "ws", "viewer": "v1", "room": "r1", "conn": 0, "gw": 1, "since": None, "t0": 999.0, "t1": 1010.0,
         "hello": 0, "frames": [[1, 2]], "notable": [
             {"type": "drop.countdown", "drop": "D2", "seq": 2, "seed_hash": SEED_HASH}], "end": "dropped"},
        {"op": "ws", "viewer": "v1", "room": "r1", "conn": 1, "gw": 2, "since": 2, "t0": 1010.5, "t1": 1030.0,
         "hello": 3, "frames": [[3, 4]], "notable": [
             {"type": "drop.draw", "drop": "D2", "seq": 3, "seed": SEED, "cutoff_rank": rank(winner)}],
         "end": "done"},
    ]
    pg_drops = {
        "D1": {"id": "D1", "room_id": "r1", "stock": 2, "max_per_user": 1, "policy": "fcfs", "phase": "closed",
               "opens_at_ms": 1_000_000, "closed_at_ms": 1_019_500, "seed_hash": None, "seed": None,
               "cutoff_rank": None, "drawn_at_ms": None},
        "D2": {"id": "D2", "room_id": "r1", "stock": 1, "max_per_user": 1, "policy": "lottery",
               "phase": "launched", "opens_at_ms": 1_000_000, "closed_at_ms": None, "seed_hash": SEED_HASH,
               "seed": SEED, "cutoff_rank": rank(winner), "draw_entries": 2, "draw_winners": 1,
               "drawn_at_ms": 1_003_100},
    }

    def order(oid, drop, user, key, status, admitted, pay_by):
        return {"order_id": oid, "drop_id": drop, "user_id": user, "qty": 1, "status": status,
                "idempotency_key": key, "admitted_at_ms": admitted, "pay_by_ms": pay_by}
    pg_orders = {
        "o1": order("o1", "D1", "u1", "k1", "paid", 1_001_050, 1_010_000),
        "o2": order("o2", "D1", "u2", "k2", "expired", 1_002_050, 1_012_000),
        order_of[winner]: order(order_of[winner], "D2", winner, "ke" + winner[-1], "reserved", 1_000_550, 1_008_100),
        order_of[loser]: order(order_of[loser], "D2", loser, "ke" + loser[-1], "lost", 1_000_750, None),
    }
    live = {
        "D1": {"o1": {"status": "paid", "user": "u1", "qty": 1, "pay_by_ms": 1_010_000},
               "o2": {"status": "expired", "user": "u2", "qty": 1, "pay_by_ms": 1_012_000}},
        "D2": {order_of[winner]: {"status": "reserved", "user": winner, "qty": 1, "pay_by_ms": 1_008_100},
               order_of[loser]: {"status": "lost", "user": loser, "qty": 1, "pay_by_ms": None}},
    }
    messages = {}

    def message(kind, subject, data):
        mid = f"msg_{subject}_{kind.replace('.', '_')}"
        messages[mid] = {"id": mid, "event_type": kind, "created_at_ms": 0,
                         "body": json.dumps({"type": kind, "data": data})}
    message("order.created", "o1", {"order_id": "o1"})
    message("order.paid", "o1", {"order_id": "o1"})
    message("order.created", "o2", {"order_id": "o2"})
    message("order.expired", "o2", {"order_id": "o2"})
    message("order.created", order_of[winner], {"order_id": order_of[winner]})
    message("drop.closed", "D1", {"drop_id": "D1"})
    deliveries = {mid: {"message_id": mid, "state": "delivered", "attempts": 1, "next_attempt_at_ms": 0,
                        "locked_until_ms": None} for mid in messages}
    receipts = [{"id": mid, "nth": 0, "fate": "ok", "valid": True, "answer": 200, "sent": True,
                 "body": m["body"]} for mid, m in messages.items()]
    w = {
        "pg_drops": pg_drops, "pg_orders": pg_orders, "live": live, "messages": messages,
        "deliveries": deliveries,
        "meta": {"D1": {"stock_left": "1", "paid": "1", "phase": "closed"},
                 "D2": {"stock_left": "0", "paid": "0", "phase": "launched", "drawn": "1",
                        "draw_announced": "1"}},
        "holders": {"D1": {"u1": 1}, "D2": {winner: 1}},
        "entries": {"D2": {e1: {"order_id": "o3", "qty": 1}, e2: {"order_id": "o4", "qty": 1}}},
        "room_seq": {"r1": 4},
        "room_history": {"r1": [(1, {"type": "drop.countdown", "drop": {"id": "D1"}}),
                                (2, {"type": "drop.countdown", "drop": {"id": "D2"}}),
                                (3, {"type": "drop.draw", "drop_id": "D2"}),
                                (4, {"type": "drop.closed", "drop_id": "D1"})]},
        "api": {"/v1/drops/D1": {"stock_left": 1, "paid": 1, "reserved": 0},
                "/v1/drops/D2": {"stock_left": 0, "paid": 0, "reserved": 1},
                "/v1/drops/D2/draw": {"seed": SEED, "seed_hash": SEED_HASH, "cutoff_rank": rank(winner),
                                      "entries": 2, "winners": 1}},
    }
    meta = {"merchant": "m", "endpoint_id": "ep", "rooms": ["r1"]}
    return meta, history, receipts, w, {"winner": winner, "loser": loser, "order_of": order_of}


def op(history, **match):
    return next(o for o in history if all(o.get(k) == v for k, v in match.items()))


def mutations():
    """(name, expected invariant, function(meta, history, receipts, world, names))"""
    def lost(m, h, r, w, n):
        del w["pg_orders"]["o1"]
    def twice(m, h, r, w, n):
        w["pg_orders"]["o9"] = dict(w["pg_orders"]["o1"], order_id="o9")
    def replay_differs(m, h, r, w, n):
        later = op(h, user="u1", key="k1", t0=1003.5)
        later.update(status=409, code="sold_out", body={"code": "sold_out"})
    def told_otherwise(m, h, r, w, n):
        answer = op(h, user="u2", key="k2", status=201)
        answer.update(status=409, code="sold_out", body={"code": "sold_out"})
    def oversell_history(m, h, r, w, n):
        h.append({"op": "order", "user": "u4", "drop": "D1", "key": "k4", "qty": 1, "t0": 1003.0, "t1": 1003.2,
                  "status": 201, "code": None,
                  "body": {"order_id": "o5", "status": "reserved", "qty": 1, "pay_by_ms": 1_013_000}})
        w["pg_orders"]["o5"] = dict(w["pg_orders"]["o2"], order_id="o5", user_id="u4", idempotency_key="k4")
        w["live"]["D1"]["o5"] = dict(w["live"]["D1"]["o2"], user="u4")
    def oversell_user(m, h, r, w, n):
        h.append({"op": "order", "user": "u1", "drop": "D1", "key": "k5", "qty": 1, "t0": 1003.0, "t1": 1003.2,
                  "status": 201, "code": None,
                  "body": {"order_id": "o6", "status": "reserved", "qty": 1, "pay_by_ms": 1_013_000}})
        w["pg_orders"]["o6"] = dict(w["pg_orders"]["o2"], order_id="o6", user_id="u1", idempotency_key="k5")
        w["live"]["D1"]["o6"] = dict(w["live"]["D1"]["o2"], user="u1")
    def oversell_store(m, h, r, w, n):
        w["live"]["D1"]["o2"]["status"] = "reserved"
        w["live"]["D1"]["o7"] = {"status": "reserved", "user": "u7", "qty": 1, "pay_by_ms": 1}
        w["meta"]["D1"]["stock_left"] = "-1"
    def before_open(m, h, r, w, n):
        w["pg_orders"]["o1"]["admitted_at_ms"] = 999_000
    def after_close(m, h, r, w, n):
        h.append({"op": "order", "user": "u8", "drop": "D1", "key": "k8", "qty": 1, "t0": 1021.0, "t1": 1021.1,
                  "status": 201, "code": None, "replayed": False,
                  "body": {"order_id": "o2", "status": "reserved", "qty": 1, "pay_by_ms": 1_012_000}})
    def paid_not_paid(m, h, r, w, n):
        w["pg_orders"]["o1"]["status"] = "expired"
    def late_payment(m, h, r, w, n):
        op(h, op="pay", order="o1")["t0"] = 1011.0
    def stock_figures(m, h, r, w, n):
        w["meta"]["D1"]["stock_left"] = "0"
    def status_differs(m, h, r, w, n):
        w["pg_orders"]["o2"]["status"] = "reserved"
    def api_figures(m, h, r, w, n):
        w["api"]["/v1/drops/D1"]["reserved"] = 1
    def holders(m, h, r, w, n):
        w["holders"]["D1"]["u2"] = 1
    def undelivered(m, h, r, w, n):
        mid = "msg_o2_order_expired"
        w["deliveries"][mid]["state"] = "pending"
        r[:] = [x for x in r if x["id"] != mid]
    def bad_signature(m, h, r, w, n):
        r[0]["valid"] = False
    def unknown_event(m, h, r, w, n):
        r.append(dict(r[0], id="msg_nope_order_created"))
    def missing_event(m, h, r, w, n):
        mid = "msg_o1_order_paid"
        del w["messages"][mid]
        del w["deliveries"][mid]
        r[:] = [x for x in r if x["id"] != mid]
    def dead_is_fine(m, h, r, w, n):
        mid = "msg_o2_order_expired"
        w["deliveries"][mid]["state"] = "dead"
        r[:] = [x for x in r if x["id"] != mid]
    def seed_hash(m, h, r, w, n):
        w["api"]["/v1/drops/D2/draw"]["seed_hash"] = "00" * 32
    def cutoff(m, h, r, w, n):
        w["api"]["/v1/drops/D2/draw"]["cutoff_rank"] = rank(n["loser"])
    def winner_lost(m, h, r, w, n):
        w["pg_orders"][n["order_of"][n["winner"]]]["status"] = "lost"
        w["live"]["D2"][n["order_of"][n["winner"]]]["status"] = "lost"
        w["holders"]["D2"] = {}
        w["meta"]["D2"]["stock_left"] = "1"
        w["api"]["/v1/drops/D2"].update(stock_left=1, reserved=0)
    def entry_lost(m, h, r, w, n):
        del w["entries"]["D2"][n["loser"]]
    def draw_unrecorded(m, h, r, w, n):
        w["pg_drops"]["D2"]["seed"] = None
    def gap(m, h, r, w, n):
        op(h, op="ws", conn=1)["frames"] = [[4, 4]]
    def not_caught_up(m, h, r, w, n):
        w["room_seq"]["r1"] = 5
    def closed_unannounced(m, h, r, w, n):
        w["room_history"]["r1"] = w["room_history"]["r1"][:3]
    def trim_history(w, first_ts_ms):
        # The capped history kept events 3 and 4 only; the first two were trimmed away.
        w["room_history"]["r1"] = [(seq, dict(frame, ts_ms=first_ts_ms))
                                   for seq, frame in w["room_history"]["r1"][2:]]
    def trimmed_before_launch(m, h, r, w, n):
        trim_history(w, first_ts_ms=1_000_000 + 60_000)
        for drop in ("D1", "D2"):
            op(h, op="launched", drop=drop)["t"] = 1000.0
    def trimmed_after_launch(m, h, r, w, n):
        trim_history(w, first_ts_ms=1_000_000 - 60_000)
        for drop in ("D1", "D2"):
            op(h, op="launched", drop=drop)["t"] = 1000.0
    def resync_is_fine(m, h, r, w, n):
        op(h, op="ws", conn=1)["frames"] = [["R", 3], [4, 4]]
    return [
        ("no change", None, lambda *a: None),
        ("an acknowledged order missing from PostgreSQL", "lost", lost),
        ("one key, two orders", "twice", twice),
        ("a final answer not replayed", "idempotency", replay_differs),
        ("an order the shopper was refused", "idempotency", told_otherwise),
        ("three units held of two", "oversell", oversell_history),
        ("two units held by one shopper of max 1", "oversell", oversell_user),
        ("stores hold more than the stock", "oversell", oversell_store),
        ("admitted before opening", "open_close", before_open),
        ("fresh order after the close", "open_close", after_close),
        ("paid answer, expired record", "payment", paid_not_paid),
        ("payment sent after the deadline accepted", "payment", late_payment),
        ("stock_left off by one", "stock", stock_figures),
        ("PostgreSQL behind Redis", "stock", status_differs),
        ("API figures off", "stock", api_figures),
        ("holding without an order", "stock", holders),
        ("event neither delivered nor dead", "delivery", undelivered),
        ("bad signature", "delivery", bad_signature),
        ("delivery of an unknown event", "delivery", unknown_event),
        ("paid without order.paid", "delivery", missing_event),
        ("a dead letter", None, dead_is_fine),
        ("seed against hash", "lottery", seed_hash),
        ("wrong cutoff", "lottery", cutoff),
        ("winner recorded lost", "lottery", winner_lost),
        ("entry missing from the draw", "lottery", entry_lost),
        ("draw not in PostgreSQL", "lottery", draw_unrecorded),
        ("a gap after resuming", "viewers", gap),
        ("a viewer short of the room's last event", "viewers", not_caught_up),
        ("drop.closed missing from the room", "viewers", closed_unannounced),
        ("a resync instead of the missed events", None, resync_is_fine),
        ("countdowns trimmed from a capped history, launched before it", None, trimmed_before_launch),
        ("countdowns missing from a history that reaches back before the launch", "viewers",
         trimmed_after_launch),
    ]


def main():
    failures = 0
    for name, expected, mutate in mutations():
        meta, history, receipts, w, names = world()
        mutate(meta, history, receipts, w, names)
        verdict = checker.check(meta, history, receipts, FakeStores(w))
        found = sorted({x["invariant"] for x in verdict.violations})
        ok = (not found) if expected is None else (expected in found)
        status = "ok  " if ok else "FAIL"
        print(f"{status} {name}: expected {expected or 'no violation'}, found {found or 'none'}")
        if not ok:
            failures += 1
            for x in verdict.violations:
                print("       ", json.dumps(x, default=str)[:300])
    print(f"checker self-test: {len(mutations()) - failures} passed, {failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
