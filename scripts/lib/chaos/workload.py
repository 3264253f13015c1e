"""The workload of a chaos run: what a host, shoppers, lottery entrants and viewers do, as
careful clients would, through the public API only. Every operation and its answer (or
the lack of one) goes to the history (JSON lines) for the checker; the workload judges
nothing itself.

- The host creates, launches and closes drops on a plan drawn from the seed (fcfs drops
  with small stock, short payment windows and per-user limits, and a lottery).
- Shoppers pick an open drop, order with a new Idempotency-Key per purchase intent, and
  when an answer is lost (no response, 429, 5xx) send the same request again with the same
  key until it is definite. Some re-send a key that already has its final answer (it must
  replay); some pay, on time or late; the rest let their reservation expire.
- Lottery entrants enter within the window, learn their outcome and sometimes pay.
- Viewers join rooms on any gateway, leave and come back with `since`, and move to another
  gateway when theirs dies or stops answering pings; each connection's room events are
  logged as the seq numbers seen.
"""

import asyncio
import base64
import hashlib
import hmac
import json
import random
import time

from chaos.net import NoAnswer, WebSocket, WsClosed, WsRefused, http

EVENTS = ["order.created", "order.paid", "order.expired", "drop.sold_out", "drop.closed"]


def now():
    return time.time()


def mint(secret, user, ttl_s=86400):
    def b64(data):
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    body = b64(json.dumps({"sub": user, "exp": int(now()) + ttl_s}, separators=(",", ":")).encode())
    sig = hmac.new(secret.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64(sig)}"


class History:
    def __init__(self, path):
        self.file = open(path, "a", buffering=1)
        self.counts = {}

    def write(self, **record):
        self.counts[record["op"]] = self.counts.get(record["op"], 0) + 1
        self.file.write(json.dumps(record, separators=(",", ":")) + "\n")


def plan(seed, duration_s, long_run):
    """The drops of a run: [{"name", "policy", "room", "start", "close", "stock",
    "max_per_user", "pay_within_s", "countdown_ms", "window_ms"?, "entrants"?}] — a pure
    function of the seed."""
    rng = random.Random(f"linkdrop-chaos:{seed}:workload")
    drops = []
    t = 1.0
    i = 0
    gap = (20.0, 40.0) if long_run else (7.0, 11.0)
    life = (45.0, 100.0) if long_run else (12.0, 22.0)
    while t < duration_s - 4:
        i += 1
        close = min(t + rng.uniform(*life), duration_s - 1)
        drops.append({
            "name": f"F{i}", "policy": "fcfs", "room": rng.randrange(2), "start": round(t, 2),
            "close": round(close, 2), "stock": rng.randint(12, 40) if not long_run else rng.randint(20, 60),
            "max_per_user": rng.choice([1, 1, 2, 3]), "pay_within_s": rng.randint(3, 7),
            "countdown_ms": rng.choice([0, 500, 1500, 2500]),
        })
        t += rng.uniform(*gap)
    lottery_every = 150.0 if long_run else 1e9
    t = 3.0
    j = 0
    while t < duration_s - 10 or j == 0:
        j += 1
        close = duration_s - 1 if not long_run else min(t + rng.uniform(60, 120), duration_s - 1)
        drops.append({
            "name": f"L{j}", "policy": "lottery", "room": rng.randrange(2), "start": round(t, 2),
            "close": round(close, 2), "stock": rng.randint(8, 14), "max_per_user": 1,
            "pay_within_s": rng.randint(3, 6), "countdown_ms": 1500,
            "window_ms": 3000, "entrants": rng.randint(12, 22),
        })
        t += lottery_every
    return sorted(drops, key=lambda d: d["start"])


class Drop:
    def __init__(self, spec):
        self.spec = spec
        self.id = None
        self.opens_at_ms = None
        self.seed_hash = None
        self.closed = False
        self.launched = asyncio.Event()

    @property
    def lottery(self):
        return self.spec["policy"] == "lottery"

    def buyable(self, t):
        """Whether a shopper would pick it now: launched, open (past any lottery window)
        and not closed."""
        if not self.launched.is_set() or self.closed:
            return False
        opens = self.opens_at_ms / 1000
        if self.lottery:
            return t > opens + self.spec["window_ms"] / 1000 + 1.0
        return t > opens - 0.3


class Workload:
    def __init__(self, *, seed, duration_s, long_run, control, orders, gateways, admin_key,
                 jwt_secret, hist: History, merchant, receiver_url):
        self.seed = seed
        self.duration_s = duration_s
        self.long_run = long_run
        self.control = control
        self.orders = orders
        self.gateways = gateways
        self.admin = {"Authorization": f"Bearer {admin_key}"}
        self.jwt_secret = jwt_secret
        self.hist = hist
        self.merchant = merchant
        self.receiver_url = receiver_url
        self.rng = random.Random(f"linkdrop-chaos:{seed}:clients")
        self.rooms = []
        self.drops = []
        self.stop = asyncio.Event()  # no new intents after this
        self.viewers_stop = asyncio.Event()
        self.final_seq = {}  # room id -> seq the viewers must reach before leaving
        self.tasks = []  # shopper-side tasks that must finish (orders, pays)
        self.viewer_tasks = []
        self.resolve_deadline = float("inf")
        self.unresolved = 0
        self.endpoint = None

    # --- calls ----------------------------------------------------------------------

    async def admin_call(self, op, method, path, body=None, ok=(200, 201, 202), deadline=None,
                         extra_ok=()):
        """An admin call to control, retried while the answer is lost; the response with a
        status in ok + extra_ok, or None when the deadline passed."""
        attempt = 0
        while True:
            t0 = now()
            try:
                r = await http(method, self.control[0], path, headers=self.admin, body=body, timeout=8)
            except NoAnswer as e:
                r = None
                self.hist.write(op=op, path=path, attempt=attempt, t0=t0, t1=now(), status=None,
                                error=str(e))
            if r is not None:
                self.hist.write(op=op, path=path, attempt=attempt, t0=t0, t1=now(), status=r.status,
                                body=r.json() if r.status < 500 else None, code=r.code())
                if r.status in ok or r.status in extra_ok:
                    return r
                if r.status < 500 and r.status not in (404, 429):
                    raise RuntimeError(f"{op} {path}: {r.status} {r.body[:300]!r}")
            attempt += 1
            if deadline is not None and now() > deadline:
                return None
            await asyncio.sleep(min(2.0, 0.2 * 1.5 ** attempt) * (0.5 + self.rng.random()))

    async def setup(self, receiver_port_config):
        r = await self.admin_call("endpoint", "POST", "/v1/webhook-endpoints",
                                  {"url": self.receiver_url, "events": EVENTS,
                                   "merchant_id": self.merchant})
        self.endpoint = r.json()
        await receiver_port_config(self.endpoint["secret"])
        for i in range(2):
            r = await self.admin_call("room", "POST", "/v1/rooms",
                                      {"title": f"chaos {self.seed} room {i}", "merchant_id": self.merchant})
            self.rooms.append(r.json()["id"])

    async def shopper_call(self, op, method, path, token, body, key=None, **fields):
        """One shopper request, retried with the same body (and Idempotency-Key) until the
        answer is definite: anything below 500 but 429. The final Response, or None when the
        resolve deadline passed first."""
        attempt = 0
        headers = {"Authorization": f"Bearer {token}"}
        if key is not None:
            headers["Idempotency-Key"] = key
        while True:
            addr = self.rng.choice(self.orders)
            t0 = now()
            record = dict(op=op, path=path, node=addr[1], attempt=attempt, t0=t0, key=key, **fields)
            retry_after = None
            try:
                r = await http(method, addr, path, headers=headers, body=body, timeout=8)
                record.update(t1=now(), status=r.status, code=r.code(), body=r.json(),
                              replayed=r.headers.get("idempotent-replayed") == "true")
                if r.status < 500 and r.status != 429:
                    self.hist.write(**record)
                    return r
                ra = r.headers.get("retry-after")
                retry_after = float(ra) if ra and ra.replace(".", "", 1).isdigit() else None
            except NoAnswer as e:
                record.update(t1=now(), status=None, error=str(e))
            self.hist.write(**record)
            attempt += 1
            if now() > self.resolve_deadline:
                self.unresolved += 1
                self.hist.write(op="unresolved", of=op, path=path, key=key, t=now(), **fields)
                return None
            backoff = min(2.0, 0.15 * 1.6 ** attempt) * (0.5 + self.rng.random())
            await asyncio.sleep(max(backoff, min(retry_after or 0, 3.0)))

    # --- host ---------------------------------------------------------------------------

    async def host(self, t0):
        for spec in plan(self.seed, self.duration_s, self.long_run):
            drop = Drop(spec)
            self.drops.append(drop)
        for drop in self.drops:
            wait = t0 + drop.spec["start"] - now()
            if wait > 0:
                try:
                    await asyncio.wait_for(self.stop.wait(), wait)
                except asyncio.TimeoutError:
                    pass
            if self.stop.is_set():
                break
            self.tasks.append(asyncio.create_task(self.run_drop(drop, t0)))

    async def create_drop(self, drop):
        spec = drop.spec
        room = self.rooms[spec["room"]]
        sku = f"chaos-{self.seed}-{spec['name']}-{self.merchant}"
        body = {"sku": sku, "title": f"chaos {spec['name']}", "image_url": "https://example.com/x.png",
                "price_cents": 990, "currency": "CNY", "stock": spec["stock"],
                "max_per_user": spec["max_per_user"], "pay_within_s": spec["pay_within_s"],
                "fairness": ({"policy": "lottery", "window_ms": spec["window_ms"]} if drop.lottery
                             else {"policy": "fcfs"})}
        while True:
            r = await self.admin_call("create_drop", "POST", f"/v1/rooms/{room}/drops", body,
                                      deadline=now() + 5)
            if r is not None:
                return r.json()["id"]
            # The answer was lost: the drop may exist. A careful host looks before creating
            # another one.
            listed = await self.admin_call("list_drops", "GET", f"/v1/rooms/{room}/drops",
                                           deadline=now() + 30)
            if listed is not None:
                body_json = listed.json()
                items = body_json.get("items", body_json) if isinstance(body_json, dict) else body_json
                for d in items or []:
                    if isinstance(d, dict) and d.get("sku") == sku:
                        return d["id"]

    async def run_drop(self, drop, t0):
        drop.id = await self.create_drop(drop)
        r = await self.admin_call("launch", "POST", f"/v1/drops/{drop.id}/launch",
                                  {"countdown_ms": drop.spec["countdown_ms"]}, extra_ok=(409,))
        if r.status == 202:
            body = r.json()
            drop.opens_at_ms = body["opens_at_ms"]
            drop.seed_hash = body.get("seed_hash")
        else:  # 409 already_launched: an earlier attempt whose answer was lost took effect
            got = await self.admin_call("get_drop", "GET", f"/v1/drops/{drop.id}")
            drop.opens_at_ms = got.json()["opens_at_ms"]
            if drop.lottery:
                draw = await self.admin_call("get_draw", "GET", f"/v1/drops/{drop.id}/draw")
                drop.seed_hash = draw.json().get("seed_hash")
        self.hist.write(op="launched", drop=drop.id, name=drop.spec["name"], spec=drop.spec,
                        room=self.rooms[drop.spec["room"]], opens_at_ms=drop.opens_at_ms,
                        seed_hash=drop.seed_hash, t=now())
        drop.launched.set()
        if drop.lottery:
            for i in range(drop.spec["entrants"]):
                self.tasks.append(asyncio.create_task(self.entrant(drop, i)))
        wait = t0 + drop.spec["close"] - now()
        if wait > 0:
            try:
                await asyncio.wait_for(self.stop.wait(), wait)
            except asyncio.TimeoutError:
                pass
        if not self.stop.is_set():
            await self.close_drop(drop)

    async def close_drop(self, drop):
        if drop.closed or drop.id is None:
            return
        t0 = now()
        r = await self.admin_call("close", "POST", f"/v1/drops/{drop.id}/close", {}, extra_ok=(409,))
        drop.closed = True
        self.hist.write(op="closed", drop=drop.id, t0=t0, t1=now(), status=r.status)

    async def close_all(self):
        await asyncio.gather(*(self.close_drop(d) for d in self.drops if d.id is not None))

    # --- shoppers -----------------------------------------------------------------------

    async def shopper(self, i):
        user = f"{self.merchant}-s{i}"
        token = mint(self.jwt_secret, user)
        rng = random.Random(f"linkdrop-chaos:{self.seed}:shopper:{i}")
        intents = 0
        think = 1.2 if not self.long_run else 1.5
        while not self.stop.is_set():
            await asyncio.sleep(rng.expovariate(1 / think))
            if self.stop.is_set():
                break
            t = now()
            open_drops = [d for d in self.drops if d.buyable(t)]
            if not open_drops:
                continue
            drop = rng.choice(open_drops)
            intents += 1
            key = f"{user}-k{intents}"
            max_q = drop.spec["max_per_user"]
            qty = rng.randint(1, max_q)
            await self.purchase(user, token, drop, key, qty, rng)

    async def purchase(self, user, token, drop, key, qty, rng, tries=0):
        path = f"/v1/drops/{drop.id}/orders"
        r = await self.shopper_call("order", "POST", path, token, {"qty": qty}, key=key,
                                    user=user, drop=drop.id, qty=qty, intent="buy")
        if r is None:
            return
        code = r.code()
        if r.status == 201:
            order = r.json()
            if rng.random() < 0.15:
                self.tasks.append(asyncio.create_task(
                    self.replay(user, token, drop, key, qty, rng.uniform(0, 4))))
            if rng.random() < 0.55:
                pay_within = drop.spec["pay_within_s"]
                delay = rng.uniform(0.1, pay_within * 1.3)
                self.tasks.append(asyncio.create_task(
                    self.pay_later(user, token, order["order_id"], delay, f"pay-{key}")))
        elif r.status == 409 and code == "limit_reached":
            if rng.random() < 0.3:
                self.tasks.append(asyncio.create_task(
                    self.replay(user, token, drop, key, qty, rng.uniform(0, 2))))
        elif r.status == 409 and code == "sold_out" and tries < 2 and rng.random() < 0.5:
            # Units come back when reservations expire: the same key may succeed later.
            await asyncio.sleep(rng.uniform(0.5, 3))
            if not self.stop.is_set():
                await self.purchase(user, token, drop, key, qty, rng, tries + 1)
        elif r.status == 425 and tries < 3:
            opens = (r.json() or {}).get("opens_at_ms") or drop.opens_at_ms
            await asyncio.sleep(max(0.05, opens / 1000 - now()) + rng.uniform(0, 0.3))
            await self.purchase(user, token, drop, key, qty, rng, tries + 1)

    async def replay(self, user, token, drop, key, qty, delay):
        await asyncio.sleep(delay)
        await self.shopper_call("order", "POST", f"/v1/drops/{drop.id}/orders", token, {"qty": qty},
                                key=key, user=user, drop=drop.id, qty=qty, intent="replay")

    async def pay_later(self, user, token, order_id, delay, ref):
        await asyncio.sleep(delay)
        await self.shopper_call("pay", "POST", f"/v1/orders/{order_id}/pay", token,
                                {"payment_ref": ref}, user=user, order=order_id, ref=ref)

    async def entrant(self, drop, i):
        user = f"{self.merchant}-{drop.spec['name']}-e{i}"
        token = mint(self.jwt_secret, user)
        rng = random.Random(f"linkdrop-chaos:{self.seed}:entrant:{drop.spec['name']}:{i}")
        window = drop.spec["window_ms"] / 1000
        opens = drop.opens_at_ms / 1000
        await asyncio.sleep(max(0.0, opens - 0.4 + rng.uniform(0, window * 0.7) - now()))
        key = f"{user}-k1"
        path = f"/v1/drops/{drop.id}/orders"
        r = None
        for _ in range(5):
            r = await self.shopper_call("order", "POST", path, token, {"qty": 1}, key=key,
                                        user=user, drop=drop.id, qty=1, intent="enter")
            if r is None or r.status != 425:
                break
            opens_ms = (r.json() or {}).get("opens_at_ms") or drop.opens_at_ms
            await asyncio.sleep(max(0.02, opens_ms / 1000 - now()))
        if r is None or r.status not in (201, 202):
            return
        order = r.json()
        status = order.get("status")
        if r.status == 202:
            # Wait for the draw, then learn the outcome (GET reads the system of record).
            await asyncio.sleep(max(0.0, order["draw_at_ms"] / 1000 - now()) + 1.0)
            deadline = now() + (120 if self.long_run else 60)
            while now() < deadline:
                got = await self.shopper_call("get_order", "GET", f"/v1/orders/{order['order_id']}",
                                              token, None, user=user, order=order["order_id"])
                if got is None:
                    return
                status = (got.json() or {}).get("status")
                if got.status == 200 and status not in ("entered", None):
                    break
                await asyncio.sleep(1.0)
        if status == "reserved" and rng.random() < 0.5:
            await self.pay_later(user, token, order["order_id"], rng.uniform(0, drop.spec["pay_within_s"] * 0.8),
                                 f"pay-{key}")

    # --- viewers -----------------------------------------------------------------------

    async def viewer(self, i):
        room = self.rooms[i % len(self.rooms)]
        user = f"{self.merchant}-v{i}"
        token = mint(self.jwt_secret, user)
        rng = random.Random(f"linkdrop-chaos:{self.seed}:viewer:{i}")
        last = None
        conn = 0
        stay = 25.0 if self.long_run else 10.0
        while True:
            target = self.final_seq.get(room)
            if target is not None and last is not None and last >= target:
                return
            if self.viewers_stop.is_set():
                self.hist.write(op="viewer_gave_up", viewer=user, room=room, last=last,
                                target=target, t=now())
                return
            gw = rng.choice(self.gateways)
            since = last
            path = f"/v1/rooms/{room}/ws?token={token}" + (f"&since={since}" if since is not None else "")
            record = {"op": "ws", "viewer": user, "room": room, "conn": conn, "gw": gw[1],
                      "since": since, "t0": now()}
            conn += 1
            try:
                ws = await WebSocket.connect(gw, path, timeout=5)
            except WsRefused as e:
                self.hist.write(**record, t1=now(), end=f"refused {e.status}", frames=[])
                await asyncio.sleep(rng.uniform(0.3, 1.5))
                continue
            except NoAnswer as e:
                self.hist.write(**record, t1=now(), end=f"no answer: {e}", frames=[])
                await asyncio.sleep(rng.uniform(0.3, 1.5))
                continue
            frames = []
            notable = []
            hello = None
            end = None
            leave_at = now() + rng.expovariate(1 / stay)
            last_heard = now()
            next_ping = now() + 2.0
            try:
                while True:
                    t = now()
                    target = self.final_seq.get(room)
                    if target is not None and last is not None and last >= target:
                        end = "done"
                        break
                    if self.viewers_stop.is_set():
                        end = "stopped"
                        break
                    if t >= leave_at and self.final_seq.get(room) is None:
                        end = "leave"
                        break
                    if t - last_heard > 6.0:
                        end = "stalled"
                        break
                    if t >= next_ping:
                        ws.send_text(json.dumps({"type": "ping", "t": int(t * 1000)}))
                        next_ping = t + 2.0
                    wait = max(0.05, min(leave_at, last_heard + 6.0, next_ping, t + 1.0) - t)
                    try:
                        text = await asyncio.wait_for(ws.recv(), wait)
                    except asyncio.TimeoutError:
                        continue
                    last_heard = now()
                    try:
                        frame = json.loads(text)
                    except ValueError:
                        notable.append({"bad_frame": text[:200]})
                        continue
                    kind = frame.get("type")
                    if kind == "hello":
                        hello = frame.get("seq")
                        if last is None:
                            last = hello
                    elif kind == "resync":
                        frames.append(["R", frame.get("seq")])
                        if frame.get("seq") is not None:
                            last = max(last or 0, frame["seq"])
                    elif kind in ("pong", "room.viewers", "order.result"):
                        continue
                    elif isinstance(frame.get("seq"), int):
                        seq = frame["seq"]
                        frames.append(seq)
                        if last is None or seq > last:
                            last = seq
                        if kind == "drop.countdown":
                            notable.append({"type": kind, "drop": frame["drop"]["id"], "seq": seq,
                                            "opens_at_ms": frame.get("opens_at_ms"),
                                            "seed_hash": frame.get("seed_hash")})
                        elif kind == "drop.draw":
                            notable.append({"type": kind, "drop": frame.get("drop_id"), "seq": seq,
                                            "seed": frame.get("seed"), "cutoff_rank": frame.get("cutoff_rank"),
                                            "winners": frame.get("winners")})
                        elif kind in ("drop.closed", "drop.sold_out"):
                            notable.append({"type": kind, "drop": frame.get("drop_id"), "seq": seq})
            except WsClosed as e:
                end = f"closed {e.code} {e.reason}"
            except (ConnectionError, asyncio.IncompleteReadError, OSError) as e:
                end = f"dropped: {type(e).__name__}"
            finally:
                ws.close()
            self.hist.write(**record, t1=now(), hello=hello, frames=compress(frames),
                            notable=notable, end=end, last=last)
            if end == "done":
                return
            if end == "leave":
                await asyncio.sleep(rng.uniform(0.0, 3.0))
            else:
                await asyncio.sleep(rng.uniform(0.1, 1.0))


def compress(frames):
    """[5, 6, 7, 9, ["R", 12], 13] -> [[5, 7], [9, 9], ["R", 12], [13, 13]]"""
    out = []
    for f in frames:
        if isinstance(f, list):
            out.append(f)
        elif out and isinstance(out[-1], list) and out[-1][0] != "R" and out[-1][1] + 1 == f:
            out[-1][1] = f
        else:
            out.append([f, f])
    return out
