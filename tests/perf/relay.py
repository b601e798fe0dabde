"""A bare TCP relay for the edge benchmark: `python relay.py LISTEN_PORT UPSTREAM_PORT`.

Every accepted connection gets its own upstream connection and two threads that move the
bytes with splice(2) through a pipe, socket to pipe to socket, so no byte is copied into
user space: no HTTP parsing, routing, headers, logs or metrics, and almost no CPU of its own.
No proxy in a process of its own can move a blob faster on the same machine, so its ratio to
direct is the ceiling the edge and nginx are measured against. What it still costs is the
second TCP connection in the kernel. Prints `listening` once it accepts connections; runs
until killed.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import sys
import threading

PIPE_BYTES = 1 << 20
F_SETPIPE_SZ = 1031
"""fcntl's pipe resize (Linux), missing from Python's fcntl module before 3.12."""


def _pump(source: socket.socket, sink: socket.socket) -> None:
    read_end, write_end = os.pipe()
    with contextlib.suppress(OSError):  # a smaller pipe only means more calls
        fcntl.fcntl(write_end, F_SETPIPE_SZ, PIPE_BYTES)
    # No SPLICE_F_MORE: on a socket it corks, and small responses would wait 200 ms.
    try:
        while moved := os.splice(source.fileno(), write_end, PIPE_BYTES, flags=os.SPLICE_F_MOVE):
            while moved:
                moved -= os.splice(read_end, sink.fileno(), moved, flags=os.SPLICE_F_MOVE)
    except OSError:
        pass
    finally:
        os.close(read_end)
        os.close(write_end)
    with contextlib.suppress(OSError):
        sink.shutdown(socket.SHUT_WR)


def _relay(client: socket.socket, upstream_port: int) -> None:
    try:
        upstream = socket.create_connection(("127.0.0.1", upstream_port))
    except OSError:
        client.close()
        return
    for each in (client, upstream):
        each.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    requests = threading.Thread(target=_pump, args=(client, upstream), daemon=True)
    requests.start()
    _pump(upstream, client)
    requests.join()
    client.close()
    upstream.close()


def _serve(listen_port: int, upstream_port: int) -> None:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", listen_port))
    listener.listen(128)
    print("listening", flush=True)
    while True:
        client, _ = listener.accept()
        threading.Thread(target=_relay, args=(client, upstream_port), daemon=True).start()


if __name__ == "__main__":
    _serve(int(sys.argv[1]), int(sys.argv[2]))
