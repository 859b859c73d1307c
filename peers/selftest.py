#!/usr/bin/env python3
"""Self-test of the WebSocket test peers (py_server.py and node_server.js).

Run with the venv interpreter:  .venv-peers/bin/python peers/selftest.py
Options: --only python|node, --no-tls, -v.
Ends with a line `N passed, M failed`; exit status 1 when anything failed.

Uses the `websockets` asyncio client for message-level checks and a small raw
socket client for frame-level checks (fragment counts, partial frames, raw
close frames, HTTP rejections).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import time
import traceback

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, ConnectionClosedError, InvalidStatus

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
VENV_PY = os.path.join(REPO, ".venv-peers", "bin", "python")

TEXT_UNIT = "héllo wörld ✓ ".encode()


def text_payload(n: int) -> bytes:
    raw = (TEXT_UNIT * (n // len(TEXT_UNIT) + 1))[:n]
    whole = raw.decode("utf-8", errors="ignore").encode()
    return whole + b"." * (n - len(whole))


def binary_payload(n: int) -> bytes:
    return (bytes(range(256)) * (n // 256 + 1))[:n]


# ---------------------------------------------------------------------------
# Server processes
# ---------------------------------------------------------------------------


class Server:
    def __init__(self, kind: str, extra: list[str]):
        self.kind = kind
        if kind == "python":
            cmd = [VENV_PY, os.path.join(HERE, "py_server.py")]
        else:
            cmd = ["node", os.path.join(HERE, "node_server.js")]
        self.tls = "--tls-cert" in extra
        self.proc = subprocess.Popen(cmd + ["--port", "0"] + extra, stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if not line.startswith("PORT "):
            self.proc.kill()
            raise RuntimeError(f"{kind} server did not print PORT: {line!r}")
        self.port = int(line.split()[1])

    def url(self, path: str) -> str:
        return f"{'wss' if self.tls else 'ws'}://127.0.0.1:{self.port}{path}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


# ---------------------------------------------------------------------------
# Raw client
# ---------------------------------------------------------------------------


class Raw:
    """Minimal blocking WebSocket client that exposes individual frames."""

    def __init__(self, port: int, path: str, ssl_ctx: ssl.SSLContext | None = None, upgrade: bool = True):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        if ssl_ctx is not None:
            s = ssl_ctx.wrap_socket(s, server_hostname="localhost")
        self.sock = s
        self.buf = b""
        key = base64.b64encode(os.urandom(16)).decode()
        req = (
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        s.sendall(req.encode())
        head = self._read_until(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        self.status = int(lines[0].split()[1])
        self.headers = {}
        for line in lines[1:]:
            if line:
                k, _, v = line.partition(":")
                self.headers[k.strip().lower()] = v.strip()

    def _fill(self) -> bool:
        d = self.sock.recv(65536)
        if not d:
            return False
        self.buf += d
        return True

    def _read_until(self, marker: bytes) -> bytes:
        while marker not in self.buf:
            if not self._fill():
                raise EOFError("eof before " + repr(marker))
        i = self.buf.index(marker)
        out, self.buf = self.buf[:i], self.buf[i + len(marker):]
        return out

    def read_exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            if not self._fill():
                raise EOFError(f"eof with {len(self.buf)} of {n} bytes")
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_body(self) -> bytes:
        n = int(self.headers.get("content-length", "0"))
        return self.read_exact(n)

    def read_frame(self) -> tuple[bool, int, bytes]:
        b0, b1 = self.read_exact(2)
        fin, opcode = bool(b0 & 0x80), b0 & 0x0F
        n = b1 & 0x7F
        assert not (b1 & 0x80), "server frame must not be masked"
        if n == 126:
            (n,) = struct.unpack("!H", self.read_exact(2))
        elif n == 127:
            (n,) = struct.unpack("!Q", self.read_exact(8))
        return fin, opcode, self.read_exact(n)

    def send_frame(self, opcode: int, payload: bytes, fin: bool = True) -> None:
        mask = os.urandom(4)
        n = len(payload)
        hdr = bytes([(0x80 if fin else 0) | opcode])
        if n < 126:
            hdr += bytes([0x80 | n])
        elif n < 65536:
            hdr += bytes([0x80 | 126]) + struct.pack("!H", n)
        else:
            hdr += bytes([0x80 | 127]) + struct.pack("!Q", n)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(hdr + mask + masked)

    def at_eof(self, timeout: float = 3.0) -> bool:
        self.sock.settimeout(timeout)
        try:
            while True:
                d = self.sock.recv(65536)
                if not d:
                    return True
                self.buf += d
        except (ConnectionResetError, ssl.SSLError):
            return True
        except socket.timeout:
            return False

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


# ---------------------------------------------------------------------------
# Test framework
# ---------------------------------------------------------------------------

RESULTS: list[tuple[str, bool, str]] = []
VERBOSE = False


async def check(name: str, coro) -> None:
    try:
        await asyncio.wait_for(coro, 20)
        RESULTS.append((name, True, ""))
        print(f"ok   {name}", flush=True)
    except Exception as e:  # noqa: BLE001
        detail = "".join(traceback.format_exception(e)) if VERBOSE else f"{type(e).__name__}: {e}"
        RESULTS.append((name, False, detail))
        print(f"FAIL {name}: {detail}", flush=True)


def eq(a, b, what: str = "") -> None:
    if a != b:
        ra, rb = repr(a), repr(b)
        raise AssertionError(f"{what}: {ra[:200]} != {rb[:200]}")


def raw_in_thread(fn):
    return asyncio.to_thread(fn)


# ---------------------------------------------------------------------------
# Checks on a default server (no compression, no subprotocols)
# ---------------------------------------------------------------------------


def client_kw(srv: Server, ctx: ssl.SSLContext | None) -> dict:
    kw = dict(ping_interval=None, compression=None, max_size=None, open_timeout=5, close_timeout=3)
    if srv.tls:
        kw["ssl"] = ctx
        kw["server_hostname"] = "localhost"
    return kw


async def basic_checks(tag: str, srv: Server, ctx: ssl.SSLContext | None, full: bool = True) -> None:
    kw = client_kw(srv, ctx)

    async def t_echo():
        async with connect(srv.url("/echo"), **kw) as ws:
            await ws.send("hello ✓")
            eq(await ws.recv(), "hello ✓", "text echo")
            await ws.send(b"\x00\x01\xff")
            eq(await ws.recv(), b"\x00\x01\xff", "binary echo")
            big = binary_payload(1 << 20)
            await ws.send(big)
            eq(await ws.recv(), big, "1 MiB echo")
            await ws.send("")
            eq(await ws.recv(), "", "empty text echo")

    await check(f"{tag} /echo", t_echo())

    async def t_headers():
        async with connect(srv.url("/headers?x=1&y=%20z"), additional_headers={"X-Test": "yes"}, **kw) as ws:
            obj = json.loads(await ws.recv())
            eq(obj["path"], "/headers?x=1&y=%20z", "path")
            eq(obj["subprotocol"], None, "subprotocol")
            eq(obj["x-test"], "yes", "x-test")
            eq(obj["upgrade"].lower(), "websocket", "upgrade")
            eq(obj["sec-websocket-version"], "13", "version")
            assert "sec-websocket-key" in obj and "host" in obj, obj
            await ws.send(b"after")
            eq(await ws.recv(), b"after", "echo after headers")

    await check(f"{tag} /headers", t_headers())

    for typ, size, count in [("text", 100, 7), ("binary", 100, 7), ("text", 5000, 3), ("binary", 70000, 2), ("text", 17, 1), ("binary", 3, 5)]:
        path = f"/fragmented?size={size}&count={count}&type={typ}"
        expected = text_payload(size) if typ == "text" else binary_payload(size)

        async def t_frag_ws(path=path, typ=typ, expected=expected):
            async with connect(srv.url(path), **kw) as ws:
                msg = await ws.recv()
                if typ == "text":
                    assert isinstance(msg, str), type(msg)
                    eq(msg.encode(), expected, "text payload")
                else:
                    assert isinstance(msg, bytes), type(msg)
                    eq(msg, expected, "binary payload")
                await ws.send("x")
                eq(await ws.recv(), "x", "echo after fragmented")

        await check(f"{tag} {path} (one message)", t_frag_ws())

        def t_frag_raw(path=path, typ=typ, count=count, expected=expected):
            r = Raw(srv.port, path, ctx if srv.tls else None)
            try:
                eq(r.status, 101, "status")
                frames = [r.read_frame() for _ in range(count)]
                eq([f[0] for f in frames], [False] * (count - 1) + [True], "fin bits")
                first_op = 1 if typ == "text" else 2
                eq([f[1] for f in frames], [first_op] + [0] * (count - 1), "opcodes")
                n = len(expected)
                eq([len(f[2]) for f in frames], [(i + 1) * n // count - i * n // count for i in range(count)], "sizes")
                eq(b"".join(f[2] for f in frames), expected, "reassembled")
            finally:
                r.close()

        await check(f"{tag} {path} (exactly {count} frames)", raw_in_thread(t_frag_raw))

    for typ, size, count in [("binary", 300, 3), ("text", 40, 2), ("binary", 0, 2), ("text", 100000, 1)]:
        path = f"/send?size={size}&count={count}&type={typ}"

        async def t_send(path=path, typ=typ, size=size, count=count):
            exp = text_payload(size).decode() if typ == "text" else binary_payload(size)
            async with connect(srv.url(path), **kw) as ws:
                for _ in range(count):
                    eq(await ws.recv(), exp, "message")
                await ws.send(b"e")
                eq(await ws.recv(), b"e", "echo after send")

        await check(f"{tag} {path}", t_send())

    async def t_send_default():
        async with connect(srv.url("/send"), **kw) as ws:
            eq(await ws.recv(), binary_payload(16), "default /send")

    await check(f"{tag} /send (defaults)", t_send_default())

    async def t_close(code: int, reason: str, expect_code: int | None):
        path = f"/close?code={code}&reason={reason}"
        async with connect(srv.url(path), **kw) as ws:
            try:
                await ws.recv()
                raise AssertionError("expected close")
            except ConnectionClosed as e:
                assert e.rcvd is not None, "no close frame received"
                eq(e.rcvd.code, expect_code if expect_code is not None else 1005, "close code")
                eq(e.rcvd.reason, reason if expect_code is not None else "", "close reason")

    await check(f"{tag} /close?code=4001&reason=bye", t_close(4001, "bye", 4001))
    await check(f"{tag} /close?code=1000", t_close(1000, "", 1000))
    await check(f"{tag} /close?code=1011&reason=oops", t_close(1011, "oops", 1011))
    await check(f"{tag} /close?code=1005 (empty close frame)", t_close(1005, "", None))

    def t_close_raw():
        r = Raw(srv.port, "/close?code=999&reason=bad&raw=1", ctx if srv.tls else None)
        try:
            eq(r.status, 101, "status")
            eq(r.read_frame(), (True, 8, b"\x03\xe7bad"), "raw close frame")
            r.send_frame(8, b"\x03\xea")  # 1002
            assert r.at_eof(3), "server did not close TCP after client close"
        finally:
            r.close()

    await check(f"{tag} /close?code=999&raw=1", raw_in_thread(t_close_raw))

    def t_close_raw_empty():
        r = Raw(srv.port, "/close?code=none&raw=1", ctx if srv.tls else None)
        try:
            eq(r.read_frame(), (True, 8, b""), "raw empty close frame")
            r.send_frame(8, b"")
            assert r.at_eof(3), "server did not close TCP"
        finally:
            r.close()

    await check(f"{tag} /close?code=none&raw=1", raw_in_thread(t_close_raw_empty))

    async def t_ping():
        async with connect(srv.url("/ping?data=abc"), **kw) as ws:
            eq(await ws.recv(), "pong:abc", "pong reply")
            await ws.send("m")
            eq(await ws.recv(), "m", "echo after ping")

    await check(f"{tag} /ping?data=abc", t_ping())

    def t_ping_raw():
        r = Raw(srv.port, "/ping?data=xyz", ctx if srv.tls else None)
        try:
            eq(r.read_frame(), (True, 9, b"xyz"), "ping frame")
            r.send_frame(10, b"other")  # unrelated pong: no reply
            r.send_frame(1, b"t1")
            eq(r.read_frame(), (True, 1, b"t1"), "echo before pong")
            r.send_frame(10, b"xyz")
            eq(r.read_frame(), (True, 1, b"pong:xyz"), "pong:xyz")
        finally:
            r.close()

    await check(f"{tag} /ping (raw: only the matching pong counts)", raw_in_thread(t_ping_raw))

    def t_reject(path: str, status: int, retry: str | None):
        def run():
            r = Raw(srv.port, path, ctx if srv.tls else None)
            try:
                eq(r.status, status, "status")
                eq(r.headers.get("x-reject"), "yes", "x-reject")
                eq(r.headers.get("retry-after"), retry, "retry-after")
                eq(r.read_body(), f"rejected {status}".encode(), "body")
                assert r.at_eof(3), "connection not closed after rejection"
            finally:
                r.close()

        return raw_in_thread(run)

    await check(f"{tag} /reject?status=503&retry_after=7", t_reject("/reject?status=503&retry_after=7", 503, "7"))
    await check(f"{tag} /reject?status=429&retry_after=2", t_reject("/reject?status=429&retry_after=2", 429, "2"))
    await check(f"{tag} /reject?status=401&retry_after=9 (no Retry-After)", t_reject("/reject?status=401&retry_after=9", 401, None))
    await check(f"{tag} /reject?status=200", t_reject("/reject?status=200", 200, None))
    await check(f"{tag} /reject (default 403)", t_reject("/reject", 403, None))
    await check(f"{tag} unknown path -> 404", t_reject("/nope?x=1", 404, None))

    async def t_reject_ws():
        try:
            async with connect(srv.url("/reject?status=500"), **kw):
                raise AssertionError("handshake should fail")
        except InvalidStatus as e:
            eq(e.response.status_code, 500, "status")
            eq(e.response.body, b"rejected 500", "body")

    await check(f"{tag} /reject?status=500 (websockets client)", t_reject_ws())

    def t_drop_raw():
        r = Raw(srv.port, "/drop-mid-message", ctx if srv.tls else None)
        try:
            eq(r.read_exact(4), b"\x82\x7e\x03\xe8", "frame header")
            eq(r.read_exact(10), binary_payload(10), "partial payload")
            assert r.at_eof(3), "no EOF after partial frame"
            eq(r.buf, b"", "extra bytes")
        finally:
            r.close()

    await check(f"{tag} /drop-mid-message (raw bytes then EOF)", raw_in_thread(t_drop_raw))

    async def t_drop_ws():
        async with connect(srv.url("/drop-mid-message"), **kw) as ws:
            try:
                await ws.recv()
                raise AssertionError("expected connection error")
            except ConnectionClosedError as e:
                assert e.rcvd is None, "unexpected close frame"

    await check(f"{tag} /drop-mid-message (connection error)", t_drop_ws())

    async def t_silent():
        async with connect(srv.url("/silent"), **kw) as ws:
            waiter = await ws.ping(b"hi")
            try:
                await asyncio.wait_for(asyncio.shield(waiter), 1.0)
                raise AssertionError("silent peer answered a ping")
            except asyncio.TimeoutError:
                pass
            await ws.send("anyone?")
            try:
                msg = await asyncio.wait_for(ws.recv(), 0.5)
                raise AssertionError(f"silent peer sent {msg!r}")
            except asyncio.TimeoutError:
                pass
            ws.transport.abort()

    await check(f"{tag} /silent (no pong within 1 s, no echo)", t_silent())

    def t_silent_raw():
        r = Raw(srv.port, "/silent", ctx if srv.tls else None)
        try:
            eq(r.status, 101, "status")
            r.send_frame(9, b"p")
            r.send_frame(8, b"\x03\xe8")
            assert not r.at_eof(1.0), "silent peer reacted"
            eq(r.buf, b"", "silent peer sent bytes")
            if not srv.tls:
                r.sock.shutdown(socket.SHUT_WR)
                assert r.at_eof(3), "silent peer did not close after client FIN"
        finally:
            r.close()

    await check(f"{tag} /silent (raw: nothing written; closes after client FIN)", raw_in_thread(t_silent_raw))

    async def t_close_after():
        async with connect(srv.url("/close-after?n=2"), **kw) as ws:
            await ws.send("a")
            await ws.send(b"b")
            eq(await ws.recv(), "a", "echo 1")
            eq(await ws.recv(), b"b", "echo 2")
            try:
                await ws.recv()
                raise AssertionError("expected close")
            except ConnectionClosed as e:
                eq((e.rcvd.code, e.rcvd.reason), (1000, "done"), "close")

    await check(f"{tag} /close-after?n=2", t_close_after())

    async def t_close_after0():
        async with connect(srv.url("/close-after?n=0"), **kw) as ws:
            try:
                await ws.recv()
                raise AssertionError("expected close")
            except ConnectionClosed as e:
                eq((e.rcvd.code, e.rcvd.reason), (1000, "done"), "close")

    await check(f"{tag} /close-after?n=0", t_close_after0())

    async def t_no_compression():
        async with connect(srv.url("/echo"), **{**kw, "compression": "deflate"}) as ws:
            eq(ws.response.headers.get("Sec-WebSocket-Extensions"), None, "extensions")
            eq(ws.subprotocol, None, "subprotocol")

    await check(f"{tag} compression off by default", t_no_compression())


async def option_checks(tag: str, kind: str, ctx_unused) -> None:
    # --subprotocols
    srv = Server(kind, ["--subprotocols", "chat,superchat"])
    try:
        kw = client_kw(srv, None)

        async def t_sub(offer, expect):
            async with connect(srv.url("/headers"), subprotocols=offer, **kw) as ws:
                eq(ws.subprotocol, expect, "negotiated")
                eq(json.loads(await ws.recv())["subprotocol"], expect, "reported")

        await check(f"{tag} --subprotocols: client [superchat, chat] -> superchat", t_sub(["superchat", "chat"], "superchat"))
        await check(f"{tag} --subprotocols: client [x, chat] -> chat", t_sub(["x", "chat"], "chat"))
        await check(f"{tag} --subprotocols: client [x] -> none", t_sub(["x"], None))
        await check(f"{tag} --subprotocols: client offers nothing -> none", t_sub(None, None))
    finally:
        srv.stop()

    # --compression
    srv = Server(kind, ["--compression"])
    try:
        kw = {**client_kw(srv, None), "compression": "deflate"}

        async def t_comp():
            async with connect(srv.url("/echo"), **kw) as ws:
                ext = ws.response.headers.get("Sec-WebSocket-Extensions") or ""
                assert ext.startswith("permessage-deflate"), ext
                await ws.send("a" * 5000)
                eq(await ws.recv(), "a" * 5000, "compressed echo")
                await ws.send("hi")
                eq(await ws.recv(), "hi", "small compressed echo")

        await check(f"{tag} --compression: negotiated + echo", t_comp())

        async def t_comp_frag():
            async with connect(srv.url("/fragmented?size=3000&count=3&type=text"), **kw) as ws:
                eq((await ws.recv()).encode(), text_payload(3000), "fragmented compressed")

        await check(f"{tag} --compression: /fragmented", t_comp_frag())

        async def t_comp_send():
            async with connect(srv.url("/send?size=10&count=2"), **kw) as ws:
                eq(await ws.recv(), binary_payload(10), "msg1")
                eq(await ws.recv(), binary_payload(10), "msg2")

        await check(f"{tag} --compression: /send", t_comp_send())

        async def t_comp_off_client():
            async with connect(srv.url("/echo"), **{**kw, "compression": None}) as ws:
                eq(ws.response.headers.get("Sec-WebSocket-Extensions"), None, "no ext when not offered")
                await ws.send("plain")
                eq(await ws.recv(), "plain", "echo")

        await check(f"{tag} --compression: client without extension", t_comp_off_client())

        def t_comp_raw():
            # Offer permessage-deflate by hand and check RSV1 on the first frame.
            s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
            try:
                key = base64.b64encode(os.urandom(16)).decode()
                s.sendall(
                    (
                        f"GET /send?size=200&type=text HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                        "Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n"
                    ).encode()
                )
                data = b""
                while b"\r\n\r\n" not in data or len(data) < data.index(b"\r\n\r\n") + 6:
                    data += s.recv(65536)
                frame = data[data.index(b"\r\n\r\n") + 4:]
                assert frame[0] & 0x40, f"RSV1 not set: {frame[:2].hex()}"
                import zlib

                n = frame[1] & 0x7F
                payload_start = 2 if n < 126 else 4
                if n == 126:
                    (n,) = struct.unpack("!H", frame[2:4])
                while len(frame) < payload_start + n:
                    frame += s.recv(65536)
                body = frame[payload_start:payload_start + n]
                eq(zlib.decompressobj(-15).decompress(body + b"\x00\x00\xff\xff"), text_payload(200), "inflated")
            finally:
                s.close()

        await check(f"{tag} --compression: RSV1 set on small message (raw)", raw_in_thread(t_comp_raw))
    finally:
        srv.stop()

    # --max-size
    srv = Server(kind, ["--max-size", "1000"])
    try:
        kw = client_kw(srv, None)

        async def t_max():
            async with connect(srv.url("/echo"), **kw) as ws:
                await ws.send(b"x" * 1000)
                eq(await ws.recv(), b"x" * 1000, "at limit")
                await ws.send(b"x" * 1001)
                try:
                    await ws.recv()
                    raise AssertionError("expected close 1009")
                except ConnectionClosed as e:
                    eq(e.rcvd.code if e.rcvd else None, 1009, "close code")

        await check(f"{tag} --max-size 1000 -> 1009", t_max())
    finally:
        srv.stop()

    # SIGTERM with an open connection
    async def t_sigterm():
        srv = Server(kind, [])
        try:
            async with connect(srv.url("/silent"), **client_kw(srv, None)):
                srv.proc.send_signal(signal.SIGTERM)
                t0 = time.monotonic()
                rc = await asyncio.to_thread(srv.proc.wait, 5)
                eq(rc, 0, "exit code")
                assert time.monotonic() - t0 < 3, "slow exit"
        finally:
            srv.stop()

    await check(f"{tag} SIGTERM exits 0 promptly", t_sigterm())


def make_cert(tmp: str) -> tuple[str, str]:
    cert, key = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-keyout", key, "-out", cert,
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


async def main() -> int:
    global VERBOSE
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", choices=["python", "node"])
    ap.add_argument("--no-tls", action="store_true")
    ap.add_argument("-v", action="store_true")
    a = ap.parse_args()
    VERBOSE = a.v

    kinds = [a.only] if a.only else ["python", "node"]
    tmp = tempfile.mkdtemp(prefix="peers-selftest-")
    try:
        ctx = None
        if not a.no_tls:
            cert, key = make_cert(tmp)
            ctx = ssl.create_default_context(cafile=cert)
        for kind in kinds:
            srv = Server(kind, [])
            try:
                await basic_checks(kind, srv, None)
            finally:
                srv.stop()
            await option_checks(kind, kind, None)
            if ctx is not None:
                srv = Server(kind, ["--tls-cert", cert, "--tls-key", key])
                try:
                    await basic_checks(f"{kind}+tls", srv, ctx)
                finally:
                    srv.stop()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    passed = sum(1 for r in RESULTS if r[1])
    failed = len(RESULTS) - passed
    for name, ok, detail in RESULTS:
        if not ok:
            print(f"failed: {name}: {detail.splitlines()[-1] if detail else ''}")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
