#!/usr/bin/env python3
"""A server that checks a client's `--echo` (Python `websockets`), run by
wsc/tests/cli.rs: prints `PORT n`; on a connection sends `probe-1` (text) and
`probe-2` (binary), waits for both to come back unchanged, prints
`ECHOED probe-1 probe-2` (or `BAD ...`), closes with 1000 and exits.
"""

import asyncio
import sys

from websockets.asyncio.server import serve


async def main() -> int:
    done = asyncio.get_running_loop().create_future()

    async def handler(ws):
        await ws.send("probe-1")
        await ws.send(b"probe-2")
        first = await ws.recv()
        second = await ws.recv()
        ok = first == "probe-1" and second == b"probe-2"
        print(("ECHOED probe-1 probe-2" if ok else f"BAD {first!r} {second!r}"), flush=True)
        await ws.close(1000, "done")
        if not done.done():
            done.set_result(ok)

    async with serve(handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        print(f"PORT {port}", flush=True)
        ok = await asyncio.wait_for(done, 30)
        await asyncio.sleep(0.2)  # let the close handshake finish
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
