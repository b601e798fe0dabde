"""Real servers for the proxy tests: two upstreams in a thread of their own, the edge in the
test's event loop (so a test can count the loop's tasks), all on 127.0.0.1 ephemeral ports.

Imported by the test modules (not a conftest.py, so that it cannot collide with another edge
test package's fixtures).

`Upstream` is a raw ASGI app, to control its headers exactly:
* every response carries `x-upstream: <name>`;
* `POST /v2/<name>/blobs/uploads/` opens an upload session (`202`, `Location` with a query
  string, or an absolute URL with `?absolute=1`); `PATCH`/`PUT`/`GET`/`DELETE` on a session
  answer `202`/`201`/`204`/`204`, or `404 BLOB_UPLOAD_UNKNOWN` for a session it never opened;
* `GET /bytes/<n>` streams n bytes of `pattern(n)`; `GET /forever` streams until the client
  leaves; `GET /stall` sends headers and one chunk, then nothing; `/slow?s=<seconds>` waits;
* anything else echoes: method, path, raw path, query, headers, body length and sha256, with
  hop-by-hop, duplicate and `Location` headers in the response for the header-rule tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import re
import socket
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import uvicorn
from starlette.types import ASGIApp, Receive, Scope, Send

MiB = 1024 * 1024
UPLOAD_START_RE = re.compile(r"/v2/(?P<name>.+)/blobs/uploads/")
UPLOAD_SESSION_RE = re.compile(r"/v2/(?P<name>.+)/blobs/uploads/(?P<session>[^/]+)")
ECHO_LOCATION = b"/odd/%2Fplace?x=1&y=%20"
_BLOCK = bytes(range(256)) * 4096  # 1 MiB


def pattern(size: int) -> Iterator[bytes]:
    """`size` bytes in 1 MiB blocks, the same bytes every time."""
    left = size
    while left > 0:
        block = _BLOCK if left >= MiB else _BLOCK[:left]
        left -= len(block)
        yield block


def pattern_digest(size: int) -> str:
    digest = hashlib.sha256()
    for block in pattern(size):
        digest.update(block)
    return digest.hexdigest()


class _ClientLeft(Exception):
    pass


class Upstream:
    def __init__(self, name: str) -> None:
        self.name = name
        self.sessions: set[str] = set()
        self.disconnects = 0
        self.seen: list[tuple[str, str]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        with contextlib.suppress(_ClientLeft):
            await self._handle(scope, receive, send)

    async def _handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        method, path = scope["method"], scope["path"]
        self.seen.append((method, path))
        if path == "/forever":
            await self._forever(receive, send)
        elif path == "/stall":
            await self._start(send, 200, [(b"content-length", b"1000000")])
            await send({"type": "http.response.body", "body": b"x" * 1000, "more_body": True})
            await receive()  # the (empty) request body
            await receive()  # nothing more until the edge gives up and hangs up
        elif path.startswith("/bytes/"):
            size = int(path.rsplit("/", 1)[1])
            await self._start(send, 200, [(b"content-length", b"%d" % size)])
            for block in pattern(size):
                await send({"type": "http.response.body", "body": block, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        elif method == "POST" and UPLOAD_START_RE.fullmatch(path):
            await self._drain(receive)
            await self._start_upload(scope, send)
        elif found := UPLOAD_SESSION_RE.fullmatch(path):
            await self._drain(receive)
            await self._session(method, found["name"], found["session"], send)
        else:
            if path == "/slow" or path.startswith("/v2/slow/"):
                await asyncio.sleep(float(dict(_query(scope)).get("s", "1")))
            await self._echo(scope, receive, send)

    async def _start(self, send: Send, status: int, headers: list[tuple[bytes, bytes]]) -> None:
        headers = [(b"x-upstream", self.name.encode()), *headers]
        await send({"type": "http.response.start", "status": status, "headers": headers})

    async def _drain(self, receive: Receive) -> tuple[int, str]:
        size, digest = 0, hashlib.sha256()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                self.disconnects += 1
                raise _ClientLeft
            size += len(message.get("body", b""))
            digest.update(message.get("body", b""))
            if not message.get("more_body", False):
                return size, digest.hexdigest()

    async def _forever(self, receive: Receive, send: Send) -> None:
        await self._start(send, 200, [])
        await receive()  # the (empty) request body; the next message is the disconnect
        gone = asyncio.ensure_future(receive())
        try:
            while not gone.done():
                await send({"type": "http.response.body", "body": _BLOCK, "more_body": True})
                await asyncio.sleep(0.01)
        finally:
            gone.cancel()
        self.disconnects += 1

    async def _start_upload(self, scope: Scope, send: Send) -> None:
        name = UPLOAD_START_RE.fullmatch(scope["path"])["name"]  # type: ignore[index]
        session = uuid.uuid4().hex
        self.sessions.add(session)
        location = f"/v2/{name}/blobs/uploads/{session}?_state=abc%3D"
        if dict(_query(scope)).get("absolute"):
            host = dict(scope["headers"])[b"host"].decode()
            location = f"http://{host}{location}"
        await self._start(send, 202, [(b"location", location.encode()), (b"content-length", b"0")])
        await send({"type": "http.response.body", "body": b""})

    async def _session(self, method: str, name: str, session: str, send: Send) -> None:
        if session not in self.sessions:
            body = json.dumps(
                {"errors": [{"code": "BLOB_UPLOAD_UNKNOWN", "message": "unknown", "detail": {}}]}
            ).encode()
            await self._start(send, 404, [(b"content-type", b"application/json")])
            await send({"type": "http.response.body", "body": body})
            return
        status = {"PATCH": 202, "PUT": 201, "GET": 204, "DELETE": 204}[method]
        if method in ("PUT", "DELETE"):
            self.sessions.discard(session)
        location = f"/v2/{name}/blobs/uploads/{session}".encode()
        await self._start(send, status, [(b"location", location), (b"content-length", b"0")])
        await send({"type": "http.response.body", "body": b""})

    async def _echo(self, scope: Scope, receive: Receive, send: Send) -> None:
        size, digest = await self._drain(receive)
        body = json.dumps(
            {
                "upstream": self.name,
                "method": scope["method"],
                "path": scope["path"],
                "raw_path": scope["raw_path"].decode("latin-1"),
                "query": scope["query_string"].decode("latin-1"),
                "headers": [[k.decode(), v.decode("latin-1")] for k, v in scope["headers"]],
                "size": size,
                "sha256": digest,
            }
        ).encode()
        await self._start(
            send,
            200,
            [
                (b"content-type", b"application/json"),
                (b"connection", b"x-hop-secret"),
                (b"x-hop-secret", b"drop me"),
                (b"keep-alive", b"timeout=5"),
                (b"proxy-authenticate", b"Basic"),
                (b"trailer", b"x-checksum"),
                (b"set-cookie", b"a=1"),
                (b"set-cookie", b"b=2"),
                (b"location", ECHO_LOCATION),
                (b"server", b"upstream-server"),
                (b"x-request-id", b"made-up-by-upstream"),
            ],
        )
        await send({"type": "http.response.body", "body": body})


def _query(scope: Scope) -> list[tuple[str, str]]:
    from urllib.parse import parse_qsl

    return parse_qsl(scope["query_string"].decode("latin-1"))


def bound_socket() -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


def dead_port() -> int:
    """A port nothing listens on (bound, then closed; a race with other processes is
    possible but harmless: a stranger there would answer, not refuse)."""
    with bound_socket() as sock:
        port: int = sock.getsockname()[1]
    return port


def _config(app: ASGIApp, **options: Any) -> uvicorn.Config:
    return uvicorn.Config(app, log_level="warning", access_log=False, **options)


@contextmanager
def threaded_server(app: ASGIApp) -> Iterator[str]:
    """Serve `app` from a thread with its own event loop; yields its base URL."""
    sock = bound_socket()
    # No Date or Server of its own: the tests check that the edge drops the upstream's.
    options = {"server_header": False, "date_header": False, "timeout_keep_alive": 30}
    server = uvicorn.Server(_config(app, lifespan="off", **options))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError("upstream server did not start")
            threading.Event().wait(0.01)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


@asynccontextmanager
async def edge_server(app: ASGIApp, *, lifespan: str = "off") -> AsyncIterator[str]:
    """Serve the edge in the running loop (its tasks are the test's to count)."""
    sock = bound_socket()
    # The edge is the public entry point: it appends the true peer to X-Forwarded-For.
    server = uvicorn.Server(_config(app, lifespan=lifespan, proxy_headers=False))
    # uvicorn swaps signal handlers while it serves from the main thread; not here.
    server.capture_signals = _no_signals  # type: ignore[method-assign]
    task = asyncio.get_running_loop().create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        await task
        sock.close()


@contextmanager
def _no_signals() -> Iterator[None]:
    yield
