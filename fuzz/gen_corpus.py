#!/usr/bin/env python3
"""Writes the seed corpora under fuzz/corpus/<target>/ (run from anywhere).

Small valid inputs for each target, in the layout its fuzz_targets/*.rs
header describes. Deterministic: re-running rewrites the same files.
"""
import os
import struct
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))


def frame(op, payload=b"", fin=True, rsv1=False, mask=None, ext=None):
    """A frame; `ext` forces the 16- or 64-bit length form."""
    b0 = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | op
    n = len(payload)
    mbit = 0x80 if mask else 0
    if ext is None:
        ext = 0 if n < 126 else (16 if n < 65536 else 64)
    if ext == 0:
        head = bytes([b0, mbit | n])
    elif ext == 16:
        head = bytes([b0, mbit | 126]) + struct.pack(">H", n)
    else:
        head = bytes([b0, mbit | 127]) + struct.pack(">Q", n)
    if mask:
        head += mask
        payload = bytes(c ^ mask[i % 4] for i, c in enumerate(payload))
    return head + payload


def close(code=None, reason=b""):
    return frame(0x8, b"" if code is None else struct.pack(">H", code) + reason)


def deflate(data, wbits=15):
    c = zlib.compressobj(6, zlib.DEFLATED, -wbits)
    out = c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(b"\x00\x00\xff\xff")
    return out[:-4]


def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# frame_header: raw headers.
write("frame_header", "text_short", frame(0x1, b"Hello")[:2])
write("frame_header", "binary_len16", frame(0x2, b"x" * 300)[:4])
write("frame_header", "binary_len64", frame(0x2, b"", ext=64))
write("frame_header", "masked_ping", frame(0x9, b"ab", mask=b"\x37\xfa\x21\x3d")[:6])
write("frame_header", "continuation_nofin", frame(0x0, b"", fin=False))
write("frame_header", "nonminimal_len16", frame(0x1, b"hi", ext=16))
write("frame_header", "rsv1_text", frame(0x1, b"", rsv1=True))
write("frame_header", "max_len64", bytes([0x82, 127]) + struct.pack(">Q", (1 << 63) - 1))

# engine: flags, chunk count, chunk sizes, server bytes.
def engine(name, server, flags=0, chunks=b""):
    write("engine", name, bytes([flags, len(chunks)]) + chunks + server)

engine("text", frame(0x1, b"Hello, world"))
engine("binary_len16", frame(0x2, bytes(range(256)) * 2))
engine("fragmented_text",
       frame(0x1, "héllo ".encode(), fin=False)
       + frame(0x9, b"ping")
       + frame(0x0, "wörld".encode(), fin=False)
       + frame(0x0, b"!"),
       chunks=bytes([0, 2, 6]))
engine("fragmented_split_utf8",
       frame(0x1, "€".encode()[:2], fin=False)
       + frame(0x0, "€".encode()[2:]),
       chunks=bytes([0]))
engine("ping_pong", frame(0x9, b"are you there") + frame(0xA, b"yes"))
engine("close_1000", frame(0x1, b"bye") + close(1000, b"normal"))
engine("close_empty", close())
engine("close_after_own_close", frame(0x2, b"\x00\x01") + close(1000), flags=2)
engine("invalid_utf8", frame(0x1, b"ok \xff\xfe"))
engine("masked_from_server", frame(0x1, b"x", mask=b"\x01\x02\x03\x04"))
engine("too_large", frame(0x2, b"", ext=64)[:2] + struct.pack(">Q", 1 << 20))
engine("deflate_text", frame(0x1, deflate(b"Hello " * 50), rsv1=True)
       + frame(0x1, deflate(b"Hello " * 50), rsv1=True), flags=1)
payload = deflate("fragmented compressed text ".encode() * 20)
engine("deflate_fragmented",
       frame(0x1, payload[:10], rsv1=True, fin=False) + frame(0x0, payload[10:]),
       flags=1 | (7 << 2), chunks=bytes([3, 100]))

# handshake_response: limit byte, then the response head.
ACCEPT = b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
resp101 = (b"HTTP/1.1 101 Switching Protocols\r\n"
           b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
           b"Sec-WebSocket-Accept: " + ACCEPT + b"\r\n\r\n")
write("handshake_response", "101", b"\xff" + resp101)
write("handshake_response", "101_with_frames", b"\xff" + resp101 + frame(0x1, b"hi"))
write("handshake_response", "101_deflate_protocol", b"\xff" + resp101[:-2]
      + b"Sec-WebSocket-Protocol: chat\r\n"
      + b"Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=10; "
        b"client_no_context_takeover\r\n\r\n")
write("handshake_response", "403", b"\x20HTTP/1.1 403 Forbidden\r\nContent-Length: 5\r\n\r\nnope!")
write("handshake_response", "partial", b"\x10" + resp101[:40])
# One header over the 64 the parser accepts (fails as ResponseTooLarge).
write("handshake_response", "65_headers", b"\xff" + resp101[:-2]
      + b"".join(b"X-%d: y\r\n" % i for i in range(62)) + b"\r\n")

# deflate: flags, limit, chunk count, chunks, data.
def dfl(name, data, flags=0, limit=255, chunks=b""):
    write("deflate", name, bytes([flags, limit, len(chunks)]) + chunks + data)

dfl("inflate_hello", deflate(b"Hello " * 100))
dfl("inflate_split", deflate(b"abcdefgh" * 64), chunks=bytes([5, 0x80 | 40]))
dfl("inflate_small_window", deflate(b"0123456789" * 30, wbits=9), flags=(1 << 1))
dfl("inflate_bomb", deflate(b"\x00" * 200000), limit=4)
dfl("round_trip", b"The quick brown fox jumps over the lazy dog. " * 10, flags=1 | (6 << 5),
    chunks=bytes([20, 0x80 | 50, 0x80 | 127]))
dfl("round_trip_nct", b"abc" * 100, flags=1 | 0x10 | (3 << 1), chunks=bytes([0x80 | 30]))
