#!/usr/bin/env python3
"""Interop client for `wsc serve` (Python `websockets`), run by wsc/tests/cli.rs.

    py_client.py echo URL [--compress]     text, binary, large, fragmented, empty,
                                           ping/pong, close 1000 against --echo
    py_client.py broadcast URL             two clients see each other's messages

Prints `OK` and exits 0 when every check passed; anything else exits non-zero.
"""

import argparse
import asyncio
import sys

from websockets.asyncio.client import connect


async def echo(url: str, compress: bool) -> None:
    kwargs = {"max_size": None, "compression": "deflate" if compress else None}
    async with connect(url, **kwargs) as ws:
        if compress:
            ext = ws.response.headers.get("Sec-WebSocket-Extensions", "")
            assert "permessage-deflate" in ext, f"deflate not negotiated: {ext!r}"
        for text in ["héllo ✓", "", "x" * 200_000]:
            await ws.send(text)
            got = await ws.recv()
            assert got == text, f"text echo differs ({len(got)} vs {len(text)} chars)"
        data = bytes(range(256)) * 4
        await ws.send(data)
        got = await ws.recv()
        assert got == data, "binary echo differs"
        # One message sent as three frames.
        await ws.send(["frag", "men", "ted"])
        got = await ws.recv()
        assert got == "fragmented", f"fragmented echo: {got!r}"
        pong = await ws.ping(b"probe")
        await asyncio.wait_for(pong, 5)
        await ws.close(1000, "bye")
    assert ws.close_code == 1000, f"close code {ws.close_code}"


async def broadcast(url: str) -> None:
    async def until(ws, want):
        seen = []
        while (got := await ws.recv()) != want:
            seen.append(got)
        return seen

    async with connect(url) as a, connect(url) as b:
        # A client's own message coming back proves it is subscribed (b may
        # or may not have been in time for a's).
        await a.send("a-ready")
        assert await until(a, "a-ready") == []
        await b.send("b-ready")
        assert await until(b, "b-ready") in ([], ["a-ready"])
        assert await until(a, "b-ready") == []
        await a.send("to all")
        assert await a.recv() == "to all"
        assert await b.recv() == "to all"


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["echo", "broadcast"])
    p.add_argument("url")
    p.add_argument("--compress", action="store_true")
    args = p.parse_args()
    run = echo(args.url, args.compress) if args.mode == "echo" else broadcast(args.url)
    asyncio.run(asyncio.wait_for(run, 20))
    print("OK", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
