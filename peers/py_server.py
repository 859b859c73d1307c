#!/usr/bin/env python3
"""WebSocket test peer built on Python `websockets` (asyncio, new-style API).

Behaviour is documented in peers/README.md and is identical to
peers/node_server.js.  Run with the interpreter from `.venv-peers`
(created by scripts/install-peers.sh).

Prints exactly one line `PORT <n>` on stdout once listening (`PORT 0` with
`--unix PATH`, which listens on that Unix domain socket instead).
"""

from __future__ import annotations

import argparse
import asyncio
import http
import json
import logging
import signal
import ssl
import struct
import sys
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import ServerConnection, serve, unix_serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Response

# ---------------------------------------------------------------------------
# Payload rules (keep in sync with node_server.js, README.md and
# wsclient/tests/support/peers.rs).
# ---------------------------------------------------------------------------

TEXT_UNIT = "héllo wörld ✓ ".encode("utf-8")  # 18 bytes


def text_payload(n: int) -> bytes:
    """Exactly n bytes of valid UTF-8.

    The UTF-8 bytes of "héllo wörld ✓ " repeated and cut to n bytes; if the
    cut splits a multi-byte character, that partial character's bytes are
    replaced by ASCII '.' (one '.' per byte).
    """
    raw = (TEXT_UNIT * (n // len(TEXT_UNIT) + 1))[:n]
    whole = raw.decode("utf-8", errors="ignore").encode("utf-8")  # drops a cut tail
    return whole + b"." * (n - len(whole))


def binary_payload(n: int) -> bytes:
    """Byte i is i % 256."""
    return (bytes(range(256)) * (n // 256 + 1))[:n]


def split_chunks(data: bytes, k: int) -> list[bytes]:
    """Chunk i is data[i*N//K : (i+1)*N//K] (byte boundaries, may split UTF-8)."""
    n = len(data)
    return [data[i * n // k:(i + 1) * n // k] for i in range(k)]


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------

log = logging.getLogger("py_server")


def q_get(query: dict[str, list[str]], name: str, default: str | None = None) -> str | None:
    vals = query.get(name)
    return vals[0] if vals else default


def q_int(query: dict[str, list[str]], name: str, default: int) -> int:
    v = q_get(query, name)
    if v is None or v == "":
        return default
    return int(v)


def parse_target(target: str) -> tuple[str, dict[str, list[str]]]:
    parts = urlsplit(target)
    return parts.path, parse_qs(parts.query, keep_blank_values=True)


KNOWN_PATHS = {
    "/echo", "/headers", "/fragmented", "/send", "/close", "/ping",
    "/reject", "/drop-mid-message", "/silent", "/close-after",
}


def reject_response(status: int, retry_after: str | None) -> Response:
    try:
        phrase = http.HTTPStatus(status).phrase
    except ValueError:
        phrase = "Unknown"
    body = f"rejected {status}".encode()
    if status in (204, 304):
        body = b""
    headers = Headers()
    headers["Connection"] = "close"
    headers["Content-Type"] = "text/plain; charset=utf-8"
    headers["Content-Length"] = str(len(body))
    headers["X-Reject"] = "yes"
    if retry_after is not None and status in (429, 503):
        headers["Retry-After"] = retry_after
    return Response(status, phrase, headers, body)


def process_request(connection: ServerConnection, request) -> Response | None:
    path, query = parse_target(request.path)
    if path == "/reject":
        status = q_int(query, "status", 403)
        if not 200 <= status <= 599:
            status = 400
        return reject_response(status, q_get(query, "retry_after"))
    if path not in KNOWN_PATHS:
        return reject_response(404, None)
    return None


class _Detached(asyncio.Protocol):
    """Takes over a connection's transport from the websockets library.

    Everything the client sends is discarded (or, with close_on_data, the
    first bytes trigger a close).  When the TCP connection ends, the
    library's connection is told so that its handler can finish.
    """

    def __init__(self, ws: ServerConnection, close_on_data: bool = False):
        self.ws = ws
        self.close_on_data = close_on_data
        self.transport: asyncio.Transport | None = None

    def data_received(self, data: bytes) -> None:
        if self.close_on_data and self.transport is not None:
            self.transport.close()

    def eof_received(self):
        return None  # close our side too

    def connection_lost(self, exc) -> None:
        try:
            self.ws.connection_lost(exc)
        except Exception:  # pragma: no cover - defensive
            pass


def detach(ws: ServerConnection, close_on_data: bool = False) -> asyncio.Transport:
    transport = ws.transport
    proto = _Detached(ws, close_on_data)
    proto.transport = transport
    transport.set_protocol(proto)
    return transport


async def echo(ws: ServerConnection, limit: int | None = None) -> int:
    n = 0
    if limit is not None and limit <= 0:
        return 0
    async for msg in ws:
        await ws.send(msg)
        n += 1
        if limit is not None and n >= limit:
            break
    return n


async def send_fragmented(ws: ServerConnection, data: bytes, k: int, text: bool) -> None:
    """Send one message as exactly k frames (k >= 1)."""
    chunks = split_chunks(data, k)
    first, rest = chunks[0], chunks[1:]
    proto = ws.protocol
    async with ws.send_context():
        if text:
            proto.send_text(first, fin=not rest)
        else:
            proto.send_binary(first, fin=not rest)
    for i, chunk in enumerate(rest):
        async with ws.send_context():
            proto.send_continuation(chunk, fin=(i == len(rest) - 1))


def close_frame(code: int | None, reason: bytes) -> bytes:
    payload = b"" if code is None else struct.pack("!H", code) + reason
    n = len(payload)
    if n < 126:
        header = bytes([0x88, n])
    elif n < 65536:
        header = bytes([0x88, 126]) + struct.pack("!H", n)
    else:
        header = bytes([0x88, 127]) + struct.pack("!Q", n)
    return header + payload


# ---------------------------------------------------------------------------
# Handler
# ---------------------------------------------------------------------------


async def handler(ws: ServerConnection) -> None:
    path, query = parse_target(ws.request.path)
    try:
        if path == "/echo":
            await echo(ws)

        elif path == "/headers":
            obj: dict[str, object] = {}
            for name, value in ws.request.headers.raw_items():
                key = name.lower()
                obj[key] = f"{obj[key]}, {value}" if key in obj else value
            obj["path"] = ws.request.path
            obj["subprotocol"] = ws.subprotocol
            await ws.send(json.dumps(obj, separators=(",", ":"), ensure_ascii=False))
            await echo(ws)

        elif path == "/fragmented":
            size = q_int(query, "size", 1024)
            count = max(1, q_int(query, "count", 4))
            is_text = q_get(query, "type", "text") == "text"
            data = text_payload(size) if is_text else binary_payload(size)
            await send_fragmented(ws, data, count, is_text)
            await echo(ws)

        elif path == "/send":
            size = q_int(query, "size", 16)
            count = q_int(query, "count", 1)
            is_text = q_get(query, "type", "binary") == "text"
            if is_text:
                msg: str | bytes = text_payload(size).decode("utf-8")
            else:
                msg = binary_payload(size)
            for _ in range(count):
                await ws.send(msg)
            await echo(ws)

        elif path == "/close":
            code_s = q_get(query, "code", "1000")
            reason = q_get(query, "reason", "") or ""
            code = None if code_s in ("none", "1005") else int(code_s)
            if q_get(query, "raw", "0") == "1":
                # Raw close frame, no validation; then close TCP as soon as the
                # client sends anything (its close frame) or closes, or after 5 s.
                transport = detach(ws, close_on_data=True)
                transport.write(close_frame(code, reason.encode("utf-8")))
                try:
                    await asyncio.wait_for(ws.wait_closed(), 5)
                except asyncio.TimeoutError:
                    transport.abort()
            else:
                await ws.close(code, reason)  # type: ignore[arg-type]

        elif path == "/ping":
            data = q_get(query, "data", "") or ""

            async def after_pong(waiter) -> None:
                try:
                    await waiter
                    await ws.send(f"pong:{data}")
                except ConnectionClosed:
                    pass

            waiter = await ws.ping(data.encode("utf-8"))
            task = asyncio.create_task(after_pong(waiter))
            try:
                await echo(ws)
            finally:
                task.cancel()

        elif path == "/drop-mid-message":
            transport = detach(ws)
            # Binary frame, FIN, 16-bit length = 1000, then only 10 bytes.
            transport.write(b"\x82\x7e\x03\xe8" + binary_payload(10))
            transport.close()  # flushes the 14 bytes, then closes the socket
            await ws.wait_closed()

        elif path == "/silent":
            detach(ws)  # read & discard everything, never write
            await ws.wait_closed()

        elif path == "/close-after":
            n = q_int(query, "n", 1)
            await echo(ws, limit=n)
            await ws.close(1000, "done")

    except ConnectionClosed:
        pass
    except Exception:
        log.exception("handler for %s failed", ws.request.path)
        ws.transport.abort()


# ---------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------


async def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--tls-cert")
    ap.add_argument("--tls-key")
    ap.add_argument("--tls-client-ca", help="require client certificates signed by this CA (PEM)")
    ap.add_argument("--compression", action="store_true")
    ap.add_argument("--subprotocols", default="")
    ap.add_argument("--max-size", type=int, default=64 * 1024 * 1024)
    ap.add_argument("--unix", help="listen on this Unix domain socket path instead of TCP")
    args = ap.parse_args()

    ssl_ctx = None
    if args.tls_cert or args.tls_key:
        if not (args.tls_cert and args.tls_key):
            ap.error("--tls-cert and --tls-key go together")
        ssl_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ssl_ctx.load_cert_chain(args.tls_cert, args.tls_key)
        ssl_ctx.set_alpn_protocols(["http/1.1"])
        if args.tls_client_ca:
            ssl_ctx.load_verify_locations(cafile=args.tls_client_ca)
            ssl_ctx.verify_mode = ssl.CERT_REQUIRED
    elif args.tls_client_ca:
        ap.error("--tls-client-ca needs --tls-cert and --tls-key")

    supported = [s for s in args.subprotocols.split(",") if s]

    def select_subprotocol(connection, offered):
        for p in offered:
            if p in supported:
                return p
        return None

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    options = dict(
        ssl=ssl_ctx,
        compression="deflate" if args.compression else None,
        subprotocols=supported or None,
        select_subprotocol=select_subprotocol,
        process_request=process_request,
        ping_interval=None,
        ping_timeout=None,
        max_size=args.max_size,
    )
    if args.unix:
        server = await unix_serve(handler, args.unix, **options)
        port = 0
    else:
        server = await serve(handler, args.host, args.port, **options)
        port = server.sockets[0].getsockname()[1]
    sys.stdout.write(f"PORT {port}\n")
    sys.stdout.flush()

    await stop.wait()
    server.close(close_connections=False)
    for conn in list(server.connections):
        try:
            conn.transport.abort()
        except Exception:
            pass
    try:
        await asyncio.wait_for(server.wait_closed(), 2)
    except (asyncio.TimeoutError, Exception):
        pass
    return 0


if __name__ == "__main__":
    logging.basicConfig(
        level=logging.WARNING,
        stream=sys.stderr,
        format="[py_server] %(levelname)s %(name)s: %(message)s",
    )
    sys.exit(asyncio.run(main()))
