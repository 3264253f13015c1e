"""Reading what a run left in the stores: PostgreSQL (through psql, as JSON), Redis (the
drops' and rooms' live state) and the control API's live figures."""

import asyncio
import json
import os
import subprocess

from chaos.net import NoAnswer, RedisCluster, http


def psql_bin():
    for d in sorted(os.listdir("/usr/lib/postgresql"), reverse=True) if os.path.isdir("/usr/lib/postgresql") else []:
        p = f"/usr/lib/postgresql/{d}/bin/psql"
        if os.path.exists(p):
            return p
    return "psql"


def sql_literal(text):
    return "'" + str(text).replace("'", "''") + "'"


def sql_list(items):
    return "ARRAY[" + ",".join(sql_literal(i) for i in items) + "]::text[]" if items else "ARRAY[]::text[]"


class Stores:
    def __init__(self, database_url, redis_nodes, control, admin_key, namespace="ld"):
        self.database_url = database_url
        self.redis = RedisCluster(redis_nodes)
        self.control = control
        self.admin_key = admin_key
        self.ns = namespace
        self.psql = psql_bin()

    # --- PostgreSQL -----------------------------------------------------------------------

    def rows(self, sql):
        query = f"SELECT coalesce(json_agg(t), '[]'::json) FROM ({sql}) t"
        p = subprocess.run([self.psql, self.database_url, "-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1",
                            "-c", query], capture_output=True, text=True, timeout=60)
        if p.returncode != 0:
            raise RuntimeError(f"psql failed: {p.stderr.strip()[-500:]}")
        return json.loads(p.stdout.strip() or "[]")

    def pg_drops(self, merchant):
        return self.rows("SELECT id, room_id, stock, max_per_user, policy, phase, opens_at_ms, closed_at_ms, "
                         "seed_hash, seed, cutoff_rank, draw_entries, draw_winners, drawn_at_ms, pay_within_s "
                         f"FROM drops WHERE merchant_id = {sql_literal(merchant)}")

    def pg_orders(self, drop_ids):
        return self.rows("SELECT order_id, drop_id, user_id, qty, status, idempotency_key, admitted_at_ms, "
                         "pay_by_ms, paid_at_ms, payment_ref FROM orders "
                         f"WHERE drop_id = ANY({sql_list(drop_ids)})")

    def pg_messages(self, merchant):
        return self.rows("SELECT id, event_type, body, created_at_ms FROM webhook_messages "
                         f"WHERE merchant_id = {sql_literal(merchant)}")

    def pg_deliveries(self, endpoint_id):
        return self.rows("SELECT message_id, state, attempts, next_attempt_at_ms, locked_until_ms "
                         f"FROM webhook_deliveries WHERE endpoint_id = {sql_literal(endpoint_id)}")

    def pg_endpoint(self, endpoint_id):
        rows = self.rows("SELECT id, disabled_at_ms, disabled_reason FROM webhook_endpoints "
                         f"WHERE id = {sql_literal(endpoint_id)}")
        return rows[0] if rows else None

    # --- Redis ------------------------------------------------------------------------------

    def drop_key(self, drop_id, part):
        return f"{self.ns}:{{d:{drop_id}}}:{part}"

    def room_key(self, room_id, part):
        return f"{self.ns}:{{r:{room_id}}}:{part}"

    def drop_meta(self, drop_id):
        return self.redis.hgetall(self.drop_key(drop_id, "meta"))

    def drop_orders(self, drop_id):
        """{order_id: {"status", "user", "qty", "pay_by_ms"}} from the live orders hash."""
        out = {}
        for order_id, value in self.redis.hgetall(self.drop_key(drop_id, "orders")).items():
            parts = value.split("\t")
            out[order_id] = {"status": parts[0], "user": parts[1], "qty": int(parts[2]),
                             "pay_by_ms": int(parts[3]) if parts[3] not in ("", "0") else None}
        return out

    def drop_holders(self, drop_id):
        return {u: int(n) for u, n in self.redis.hgetall(self.drop_key(drop_id, "holders")).items()}

    def drop_entries(self, drop_id):
        out = {}
        for user, value in self.redis.hgetall(self.drop_key(drop_id, "entries")).items():
            order_id, qty = value.split("\t")
            out[user] = {"order_id": order_id, "qty": int(qty)}
        return out

    def outbox_length(self, drop_id):
        return self.redis.cmd("XLEN", self.drop_key(drop_id, "outbox"))

    def room_seq(self, room_id):
        value = self.redis.cmd("GET", self.room_key(room_id, "seq"))
        return int(value) if value is not None else 0

    def room_history(self, room_id):
        """[(seq, frame dict)] of the room's capped history stream."""
        entries = self.redis.cmd("XRANGE", self.room_key(room_id, "history"), "-", "+") or []
        out = []
        for entry_id, fields in entries:
            values = dict(zip(fields[0::2], fields[1::2]))
            try:
                frame = json.loads(values.get("e", "{}"))
            except ValueError:
                frame = {}
            out.append((int(entry_id.split("-")[0]), frame))
        return out

    # --- the API ----------------------------------------------------------------------------

    def api_get(self, path):
        async def go():
            return await http("GET", self.control, path,
                              headers={"Authorization": f"Bearer {self.admin_key}"}, timeout=10)
        try:
            r = asyncio.run(go())
        except NoAnswer as e:
            return None, str(e)
        return r.status, r.json()
