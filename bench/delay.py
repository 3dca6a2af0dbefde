#!/usr/bin/env python3
"""A TCP relay that delays every byte by a fixed time in each direction.

    python3 bench/delay.py LISTEN_PORT TARGET_HOST:TARGET_PORT DELAY_MS

The stand-in for `tc netem delay` where the kernel has no netem (sch_netem): each chunk read
from one side is written to the other DELAY_MS after it was read, in order, so a request and
its answer take 2 x DELAY_MS through it. The relay connects to the target when a client
connects, without delay: the delay applies to the bytes of the connection, not to its TCP
handshake. Prints "ready" once it listens.
"""

import asyncio
import sys


async def pipe(reader, writer, delay, loop):
    queue = asyncio.Queue()

    async def send():
        while True:
            due, chunk = await queue.get()
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            if chunk is None:
                try:
                    writer.write_eof()
                except OSError:
                    pass
                return
            writer.write(chunk)
            await writer.drain()

    sender = asyncio.ensure_future(send())
    try:
        while True:
            chunk = await reader.read(65536)
            queue.put_nowait((loop.time() + delay, chunk or None))
            if not chunk:
                break
        await sender
    except (ConnectionError, OSError):
        sender.cancel()


async def main():
    port, target, delay_ms = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
    host, tport = target.rsplit(":", 1)
    delay = delay_ms / 1000
    loop = asyncio.get_running_loop()

    async def serve(cr, cw):
        try:
            tr, tw = await asyncio.open_connection(host, int(tport))
        except OSError:
            cw.close()
            return
        for w in (cw, tw):
            sock = w.get_extra_info("socket")
            if sock is not None:
                import socket

                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        await asyncio.gather(
            pipe(cr, tw, delay, loop), pipe(tr, cw, delay, loop), return_exceptions=True
        )
        for w in (cw, tw):
            w.close()

    server = await asyncio.start_server(serve, "127.0.0.1", port)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
