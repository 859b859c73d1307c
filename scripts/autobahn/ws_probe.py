#!/usr/bin/env python3
"""Minimal stdlib WebSocket probe for the Autobahn fuzzingserver (loopback only).

    ws_probe.py ws://127.0.0.1:PORT                     # prints the case count
    ws_probe.py ws://127.0.0.1:PORT --path /getCaseInfo?case=1

Connects, reads text messages until the server closes, and prints them one per
line. Used by scripts/autobahn.sh as a smoke test and for harness self-tests;
it is not a WebSocket implementation to test against.
"""
import argparse
import base64
import os
import socket
import struct
import sys
from urllib.parse import urlsplit


def _recv_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("connection closed mid-frame")
        buf += chunk
    return buf


def _send_frame(sock, opcode, payload):
    mask = os.urandom(4)
    head = bytes([0x80 | opcode])
    n = len(payload)
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + struct.pack("!H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack("!Q", n)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    sock.sendall(head + mask + masked)


def fetch(url, path, timeout=10.0):
    parts = urlsplit(url)
    host, port = parts.hostname, parts.port or 80
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit("ws_probe: refusing non-loopback host %r" % host)
    key = base64.b64encode(os.urandom(16)).decode()
    sock = socket.create_connection((host, port), timeout=timeout)
    try:
        req = (
            "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n" % (path, host, port, key)
        )
        sock.sendall(req.encode())
        resp = b""
        while b"\r\n\r\n" not in resp:
            chunk = sock.recv(4096)
            if not chunk:
                raise ConnectionError("closed during handshake")
            resp += chunk
        head, rest = resp.split(b"\r\n\r\n", 1)
        status = head.split(b"\r\n", 1)[0]
        if b" 101 " not in status + b" ":
            raise ConnectionError("handshake failed: %r" % status)
        messages, frag = [], b""

        class Buffered:
            def __init__(self, pre):
                self.pre = pre

            def recv(self, n):
                if self.pre:
                    out, self.pre = self.pre[:n], self.pre[n:]
                    return out
                return sock.recv(n)

        rd = Buffered(rest)
        while True:
            b0, b1 = _recv_exact(rd, 2)
            fin, opcode = b0 & 0x80, b0 & 0x0F
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack("!H", _recv_exact(rd, 2))[0]
            elif n == 127:
                n = struct.unpack("!Q", _recv_exact(rd, 8))[0]
            mask = _recv_exact(rd, 4) if b1 & 0x80 else None
            payload = _recv_exact(rd, n)
            if mask:
                payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            if opcode == 0x8:
                _send_frame(sock, 0x8, payload[:2])
                return messages
            if opcode == 0x9:
                _send_frame(sock, 0xA, payload)
                continue
            if opcode in (0x0, 0x1, 0x2):
                frag += payload
                if fin:
                    messages.append(frag.decode("utf-8", "replace"))
                    frag = b""
    finally:
        sock.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("url", help="ws://127.0.0.1:PORT")
    ap.add_argument("--path", default="/getCaseCount")
    ap.add_argument("--timeout", type=float, default=10.0)
    args = ap.parse_args()
    try:
        for m in fetch(args.url, args.path, args.timeout):
            print(m)
    except (OSError, ConnectionError) as e:
        print("ws_probe: %s" % e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
