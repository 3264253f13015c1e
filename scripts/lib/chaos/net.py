"""Minimal clients over asyncio and sockets, standard library only: HTTP/1.1 (one
connection per request), a WebSocket client (RFC 6455, text frames) and a RESP client for
reading a Redis Cluster.

Every way a request can fail without a definite answer (refused, reset, timed out, cut
short) raises NoAnswer: the caller cannot know whether the server acted on it.
"""

import asyncio
import base64
import hashlib
import json
import os
import socket
import struct
import zlib


class NoAnswer(Exception):
    """No definite HTTP answer: the request may or may not have taken effect."""


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def json(self):
        try:
            return json.loads(self.body) if self.body else None
        except ValueError:
            return None

    def code(self):
        body = self.json()
        return body.get("code") if isinstance(body, dict) else None


async def _read_head(reader):
    line = await reader.readline()
    if not line:
        raise ConnectionError("connection closed before the status line")
    parts = line.decode("latin-1").split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/"):
        raise ValueError(f"bad status line {line!r}")
    status = int(parts[1])
    headers = {}
    while True:
        line = await reader.readline()
        if not line:
            raise ConnectionError("connection closed in the headers")
        if line in (b"\r\n", b"\n"):
            break
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers


async def _read_body(reader, headers):
    if "content-length" in headers:
        return await reader.readexactly(int(headers["content-length"]))
    if "chunked" in headers.get("transfer-encoding", "").lower():
        chunks = []
        while True:
            size = int((await reader.readline()).split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(chunks)
            chunks.append(await reader.readexactly(size))
            await reader.readexactly(2)
    return await reader.read()


async def _exchange(host, port, raw):
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(raw)
        await writer.drain()
        status, headers = await _read_head(reader)
        body = await _read_body(reader, headers)
        return Response(status, headers, body)
    finally:
        writer.close()


async def http(method, addr, path, *, headers=None, body=None, timeout=10.0):
    """One request on its own connection; a Response, or NoAnswer."""
    host, port = addr
    data = b"" if body is None else json.dumps(body).encode()
    head = [f"{method} {path} HTTP/1.1", f"Host: {host}:{port}", "Connection: close",
            f"Content-Length: {len(data)}"]
    if body is not None:
        head.append("Content-Type: application/json")
    for name, value in (headers or {}).items():
        head.append(f"{name}: {value}")
    raw = ("\r\n".join(head) + "\r\n\r\n").encode() + data
    try:
        return await asyncio.wait_for(_exchange(host, port, raw), timeout)
    except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError) as e:
        raise NoAnswer(f"{type(e).__name__}: {e}") from None


# --- WebSocket ---------------------------------------------------------------------------

class WsRefused(Exception):
    def __init__(self, status, body):
        super().__init__(f"upgrade refused: {status} {body[:200]!r}")
        self.status = status


class WsClosed(Exception):
    def __init__(self, code, reason):
        super().__init__(f"closed {code} {reason}")
        self.code = code
        self.reason = reason


class WebSocket:
    def __init__(self, reader, writer):
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, addr, path, timeout=5.0):
        host, port = addr

        async def handshake():
            reader, writer = await asyncio.open_connection(host, port)
            key = base64.b64encode(os.urandom(16)).decode()
            writer.write((f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                          f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                          "Sec-WebSocket-Version: 13\r\n\r\n").encode())
            await writer.drain()
            try:
                status, headers = await _read_head(reader)
                if status != 101:
                    body = await _read_body(reader, headers) if "content-length" in headers else b""
                    raise WsRefused(status, body)
                accept = base64.b64encode(hashlib.sha1(
                    (key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()).decode()
                if headers.get("sec-websocket-accept") != accept:
                    raise ValueError("bad Sec-WebSocket-Accept")
            except BaseException:
                writer.close()
                raise
            return cls(reader, writer)

        try:
            return await asyncio.wait_for(handshake(), timeout)
        except WsRefused:
            raise
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError) as e:
            raise NoAnswer(f"{type(e).__name__}: {e}") from None

    def _send(self, opcode, payload):
        mask = os.urandom(4)
        n = len(payload)
        if n < 126:
            head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
        elif n < 65536:
            head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
        else:
            head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.writer.write(head + mask + masked)

    def send_text(self, text):
        self._send(0x1, text.encode())

    async def recv(self):
        """The next text message; raises WsClosed on a close frame, ConnectionError or
        asyncio.IncompleteReadError when the connection ends without one."""
        parts = []
        while True:
            b1, b2 = await self.reader.readexactly(2)
            opcode, n = b1 & 0x0F, b2 & 0x7F
            if n == 126:
                (n,) = struct.unpack("!H", await self.reader.readexactly(2))
            elif n == 127:
                (n,) = struct.unpack("!Q", await self.reader.readexactly(8))
            mask = await self.reader.readexactly(4) if b2 & 0x80 else None
            payload = await self.reader.readexactly(n)
            if mask:
                payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            if opcode == 0x8:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
                try:
                    self._send(0x8, payload[:2])
                except Exception:
                    pass
                raise WsClosed(code, payload[2:].decode("utf-8", "replace"))
            if opcode == 0x9:
                self._send(0xA, payload)
                continue
            if opcode == 0xA:
                continue
            parts.append(payload)
            if b1 & 0x80:
                return b"".join(parts).decode("utf-8", "replace")

    def close(self, code=1000):
        try:
            self._send(0x8, struct.pack("!H", code))
        except Exception:
            pass
        self.writer.close()


# --- RESP (Redis) ----------------------------------------------------------------------

class RedisError(Exception):
    pass


def _crc16(data):
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
            crc &= 0xFFFF
    return crc


def key_slot(key):
    k = key.encode()
    start = k.find(b"{")
    if start >= 0:
        end = k.find(b"}", start + 1)
        if end > start + 1:
            k = k[start + 1:end]
    return _crc16(k) % 16384


class RedisCluster:
    """Blocking reads from a Redis Cluster: each command goes to the node that answers for
    its key (following MOVED)."""

    def __init__(self, nodes, timeout=5.0):
        self.nodes = list(nodes)
        self.timeout = timeout
        self.slot_node = {}

    def _call(self, node, args):
        with socket.create_connection(node, timeout=self.timeout) as s:
            out = [b"*%d\r\n" % len(args)]
            for a in args:
                a = a if isinstance(a, bytes) else str(a).encode()
                out.append(b"$%d\r\n%s\r\n" % (len(a), a))
            s.sendall(b"".join(out))
            f = s.makefile("rb")
            return self._parse(f)

    def _parse(self, f):
        line = f.readline()
        if not line:
            raise RedisError("connection closed")
        kind, rest = line[:1], line[1:-2]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise RedisError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            data = f.read(n + 2)[:-2]
            return data.decode("utf-8", "replace")
        if kind == b"*":
            n = int(rest)
            if n < 0:
                return None
            return [self._parse(f) for _ in range(n)]
        raise RedisError(f"bad reply {line!r}")

    def cmd(self, *args, key=None):
        key = key if key is not None else (args[1] if len(args) > 1 else None)
        slot = key_slot(key) if key else None
        tried = []
        node = self.slot_node.get(slot) if slot is not None else None
        candidates = ([node] if node else []) + [n for n in self.nodes if n != node]
        error = None
        for _ in range(6):
            if not candidates:
                break
            node = candidates.pop(0)
            tried.append(node)
            try:
                return self._call(node, args)
            except RedisError as e:
                text = str(e)
                if text.startswith("MOVED ") or text.startswith("ASK "):
                    host, port = text.split()[2].rsplit(":", 1)
                    target = (host, int(port))
                    if slot is not None and text.startswith("MOVED "):
                        self.slot_node[slot] = target
                    candidates.insert(0, target)
                    error = e
                    continue
                raise
            except OSError as e:
                error = e
                continue
        raise RedisError(f"no node answered {args[0]} {key}: {error} (tried {tried})")

    def hgetall(self, key):
        flat = self.cmd("HGETALL", key) or []
        return dict(zip(flat[0::2], flat[1::2]))


def crc32(text):
    return zlib.crc32(text.encode())
