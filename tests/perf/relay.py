"""A bare TCP relay for the edge benchmark: `python relay.py LISTEN_PORT UPSTREAM_PORT`.

Every accepted connection gets its own upstream connection and the bytes are copied both
ways (asyncio `sock_recv`/`sock_sendall`, 256 KiB at a time) with no HTTP parsing, routing,
headers, logs or metrics. No proxy that runs in its own process in user space can move a
blob faster on the same machine, so its ratio to direct is the ceiling the edge and nginx
are measured against. Prints `listening` once it accepts connections; runs until killed.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sys

RECV_BYTES = 256 * 1024
"""asyncio's own read size for stream transports."""


async def _pump(source: socket.socket, sink: socket.socket) -> None:
    loop = asyncio.get_running_loop()
    try:
        while data := await loop.sock_recv(source, RECV_BYTES):
            await loop.sock_sendall(sink, data)
    except OSError:
        pass
    with contextlib.suppress(OSError):
        sink.shutdown(socket.SHUT_WR)


async def _relay(client: socket.socket, upstream_port: int) -> None:
    loop = asyncio.get_running_loop()
    upstream = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    upstream.setblocking(False)
    try:
        await loop.sock_connect(upstream, ("127.0.0.1", upstream_port))
        for each in (client, upstream):
            each.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        await asyncio.gather(_pump(client, upstream), _pump(upstream, client))
    except OSError:
        pass
    finally:
        client.close()
        upstream.close()


async def _serve(listen_port: int, upstream_port: int) -> None:
    loop = asyncio.get_running_loop()
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", listen_port))
    listener.listen(128)
    listener.setblocking(False)
    print("listening", flush=True)
    tasks: set[asyncio.Task[None]] = set()
    while True:
        client, _ = await loop.sock_accept(listener)
        client.setblocking(False)
        task = loop.create_task(_relay(client, upstream_port))
        tasks.add(task)
        task.add_done_callback(tasks.discard)


if __name__ == "__main__":
    asyncio.run(_serve(int(sys.argv[1]), int(sys.argv[2])))
