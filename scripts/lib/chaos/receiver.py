"""The merchant's webhook endpoint during a chaos run: a process of its own that answers
linkdrop's deliveries, sometimes failing or slow, and writes one JSON line per delivery it
got (what was sent, whether the Standard Webhooks reference library accepts its signature,
and what it answered) for the checker.

Whether an attempt fails is a pure function of the seed, the webhook-id and how many times
this receiver saw that id before: the first attempt of some messages gets a 500, a 503 with
Retry-After, or an answer slower than linkdrop's attempt timeout; later attempts succeed
(in long runs a few fail once more, which costs them linkdrop's 5-minute retry).

    python -m chaos.receiver --seed S --out FILE --port-file FILE [--long]

`POST /_config {"secret": "whsec_..."}` (from the workload, once it registered the
endpoint) sets the signing secret; until then every delivery is answered 503.
"""

import argparse
import asyncio
import hashlib
import json
import os
import sys
import time

from standardwebhooks.webhooks import Webhook

from chaos.net import _read_body, _read_head

SLOW_TIMEOUT_S = 2.6  # longer than the run's LINKDROP_WEBHOOK_TIMEOUT_MS (2000)


def fate(seed, message_id, nth, long_run):
    """What the receiver does with the nth (0-based) delivery of message_id."""
    h = hashlib.sha256(f"{seed}:{message_id}:{nth}".encode()).digest()
    r = int.from_bytes(h[:4], "big") / 2**32
    if nth == 0:
        if r < 0.10:
            return ("fail", 500, 0.0)
        if r < 0.14:
            return ("throttle", 503, 0.0)
        if r < 0.17:
            return ("timeout", 200, SLOW_TIMEOUT_S)
        if r < 0.27:
            return ("slow", 200, 0.2 + (r - 0.17) * 10)
        return ("ok", 200, 0.0)
    if long_run and nth == 1 and r < 0.03:
        return ("fail", 500, 0.0)
    return ("ok", 200, 0.0)


class Receiver:
    def __init__(self, seed, out, long_run):
        self.seed = seed
        self.out = open(out, "a", buffering=1)
        self.long_run = long_run
        self.secret = None
        self.seen = {}

    def log(self, record):
        self.out.write(json.dumps(record, separators=(",", ":")) + "\n")

    async def handle(self, reader, writer):
        try:
            while True:
                try:
                    method_line_status = await self.one(reader, writer)
                except (ConnectionError, asyncio.IncompleteReadError, ValueError):
                    break
                if not method_line_status:
                    break
        finally:
            writer.close()

    async def one(self, reader, writer):
        line = await reader.readline()
        if not line:
            return False
        method, path, _ = line.decode("latin-1").split(" ", 2)
        headers = {}
        while True:
            h = await reader.readline()
            if h in (b"\r\n", b"\n", b""):
                break
            name, _, value = h.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        body = await _read_body(reader, headers) if "content-length" in headers else b""
        if path == "/_config":
            self.secret = json.loads(body)["secret"]
            await self.answer(writer, 200, b"{}")
            return True
        t = time.time()
        message_id = headers.get("webhook-id", "")
        if self.secret is None:
            await self.answer(writer, 503, b"not configured", {"Retry-After": "1"})
            return True
        nth = self.seen.get(message_id, 0)
        self.seen[message_id] = nth + 1
        text = body.decode("utf-8", "replace")
        record = {"t": t, "id": message_id, "nth": nth, "timestamp": headers.get("webhook-timestamp"),
                  "signature": headers.get("webhook-signature"), "body": text}
        try:
            Webhook(self.secret).verify(body, {k: v for k, v in headers.items()
                                               if k.startswith("webhook-")})
            record["valid"] = True
        except Exception as e:  # the library raises its own WebhookVerificationError
            record["valid"] = False
            record["error"] = f"{type(e).__name__}: {e}"
        if not record["valid"]:
            kind, status, delay = "bad_signature", 400, 0.0
        else:
            kind, status, delay = fate(self.seed, message_id, nth, self.long_run)
        record["fate"] = kind
        if delay:
            await asyncio.sleep(delay)
        extra = {"Retry-After": "1"} if status == 503 else {}
        try:
            await self.answer(writer, status, b"ok" if status == 200 else b"no", extra)
            record["sent"] = True
        except (ConnectionError, OSError):
            record["sent"] = False
        record["answer"] = status
        record["t_answer"] = time.time()
        self.log(record)
        return True

    async def answer(self, writer, status, body, extra=None):
        reason = {200: "OK", 400: "Bad Request", 500: "Internal Server Error",
                  503: "Service Unavailable"}.get(status, "X")
        head = [f"HTTP/1.1 {status} {reason}", f"Content-Length: {len(body)}",
                "Content-Type: text/plain"]
        for k, v in (extra or {}).items():
            head.append(f"{k}: {v}")
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        await writer.drain()


async def main():
    p = argparse.ArgumentParser()
    p.add_argument("--seed", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--port-file", required=True)
    p.add_argument("--long", action="store_true")
    args = p.parse_args()
    receiver = Receiver(args.seed, args.out, args.long)
    server = await asyncio.start_server(receiver.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    tmp = args.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(port))
    os.replace(tmp, args.port_file)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
