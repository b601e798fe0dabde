"""Forwarding one request: the header rules, the per-upstream client pool, streaming both ways.

The client is aiohttp, chosen because it measured faster than httpx on every count on this
machine (2 vCPUs shared with other work; tests/perf/test_edge_client_choice.py: a minimal
streaming forwarder on each library, Wharf's edge and nginx in front of one raw ASGI upstream,
curl moving 1 GiB each way, 2000 keep-alive HEADs; best of 3, ratio to direct):

                 upload MB/s    download MB/s   HEAD p50 / p99 added
    direct       768            2557            (0.14 / 0.25 ms)
    httpx        386 (0.50)      456 (0.18)     1.14 / 6.7 ms
    aiohttp      502 (0.65)     1051 (0.41)     0.26 / 0.37 ms
    edge         522 (0.68)     1095 (0.43)     0.29 / 0.27 ms (p99 from a quieter rerun)
    nginx        571 (0.74)     1411 (0.55)     0.06 / 0.60 ms

httpx costs 4x the latency and 2.3x less download throughput. Three processes share two CPUs
when anything proxies, so no proxy reaches 0.8x direct here; the edge is 0.91x nginx on
upload and 0.78x on download.

Header rules (both directions):
* Hop-by-hop headers are dropped: Connection, Keep-Alive, Proxy-* (Proxy-Connection,
  -Authenticate, -Authorization), TE, Trailer, Transfer-Encoding, Upgrade, and every header
  the Connection header names. Bodies are re-framed by each side's server and client.
* `Host` goes upstream exactly as the client sent it, so a registry builds its absolute
  `Location`s and its token realm for the edge's public name, as it would behind nginx with
  `proxy_set_header Host $host`. An upstream therefore cannot rely on `Host` for name-based
  virtual hosting; point the edge at an address that serves the registry by default.
* `X-Request-ID`: the client's is passed on when it looks like an id (1-128 characters of
  `[A-Za-z0-9._:@/+=-]`), else a new random 128-bit hex id replaces it; either way it goes
  upstream and back to the client (replacing whatever the upstream sent).
* `X-Forwarded-For` gets the client's address (the scope's `client`) appended;
  `X-Forwarded-Proto` is the scope's scheme and `X-Forwarded-Host` the `Host` the edge saw.
  The edge is the public entry point, so its server should run with uvicorn's
  `proxy_headers=False` and the edge appends the true peer. Behind a trusted proxy
  (`--forwarded-allow-ips`), uvicorn has already replaced `client` and the scheme with the
  proxy's word; the address is then the last one in `X-Forwarded-For` and is not added twice.
  `Expect` is dropped: the edge's server answered `100-continue` when the body was read.
* Responses keep everything else, `Location` byte for byte, duplicates (`Link`, `Set-Cookie`)
  and order included. `Date` and `Server` are dropped, as nginx does, because the edge's own
  server writes them: two `Date` headers would be invalid.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import Final
from urllib.parse import quote

import aiohttp
from starlette.types import Receive, Scope, Send
from yarl import URL

from wharf.edge.table import Upstream

Headers = list[tuple[bytes, bytes]]

HOP_BY_HOP: Final = frozenset(
    {b"connection", b"keep-alive", b"te", b"trailer", b"transfer-encoding", b"upgrade"}
)
SET_BY_EDGE_REQUEST: Final = frozenset(
    {b"x-request-id", b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host", b"expect"}
)
SET_BY_EDGE_RESPONSE: Final = frozenset({b"x-request-id", b"date", b"server"})
REQUEST_ID_RE: Final = re.compile(rb"[A-Za-z0-9._:@/+=-]{1,128}")
READ_BUFSIZE: Final = 256 * 1024
"""aiohttp's per-response read buffer (it pauses the socket at twice this): big enough for
few, large ASGI messages on blob downloads, small enough that 100 streams stay under 64 MiB."""
KEEPALIVE_S: Final = 4.0
"""Idle upstream connections are dropped before uvicorn's default 5 s keep-alive ends, so
the edge rarely sends on a connection the upstream is closing."""
SAFE_RETRY: Final = frozenset({"GET", "HEAD", "OPTIONS"})


class UpstreamUnavailable(Exception):
    """The upstream gave no response: the edge answers `status` with `Retry-After`."""

    def __init__(self, upstream: str, status: int, kind: str, message: str) -> None:
        super().__init__(message)
        self.upstream, self.status, self.kind, self.message = upstream, status, kind, message


class UpstreamBroke(Exception):
    """The upstream failed after its response had started: only aborting is left."""

    def __init__(self, upstream: str, kind: str) -> None:
        super().__init__(f"{upstream}: {kind}")
        self.upstream, self.kind = upstream, kind


class ClientDisconnected(Exception):
    """The client went away before the exchange finished."""


# -- header rules -------------------------------------------------------------------------------


def _new_request_id() -> bytes:
    # Not a secret, only unique: cheaper than uuid4 (a getrandom() call and a UUID object).
    return b"%032x" % random.getrandbits(128)


def request_id_of(headers: Iterable[tuple[bytes, bytes]]) -> bytes:
    for name, value in headers:
        if name == b"x-request-id":
            return value if REQUEST_ID_RE.fullmatch(value) else _new_request_id()
    return _new_request_id()


def _connection_tokens(value: bytes, into: set[bytes]) -> None:
    into.update(token.strip().lower() for token in value.split(b","))


def upstream_request_headers(
    headers: Iterable[tuple[bytes, bytes]],
    *,
    request_id: bytes,
    client_host: str | None,
    scheme: str,
) -> Headers:
    """The client's headers (ASGI: lower-case names) as the upstream gets them."""
    out: Headers = []
    forwarded_for: list[bytes] = []
    listed: set[bytes] = set()
    host = None
    for name, value in headers:
        if name in HOP_BY_HOP or name in SET_BY_EDGE_REQUEST or name.startswith(b"proxy-"):
            if name == b"x-forwarded-for":
                forwarded_for.append(value)
            elif name == b"connection":
                _connection_tokens(value, listed)
            continue
        if name == b"host":
            host = value
        out.append((name, value))
    if listed:
        listed.discard(b"host")  # forwarded whatever Connection says: see the module doc
        out = [(name, value) for name, value in out if name not in listed]
    if client_host and not (forwarded_for and _last_hop(forwarded_for) == client_host.encode()):
        forwarded_for.append(client_host.encode())
    if forwarded_for:
        out.append((b"x-forwarded-for", b", ".join(forwarded_for)))
    out.append((b"x-forwarded-proto", scheme.encode()))
    if host is not None:
        out.append((b"x-forwarded-host", host))
    out.append((b"x-request-id", request_id))
    return out


def _last_hop(forwarded_for: list[bytes]) -> bytes:
    return forwarded_for[-1].rsplit(b",", 1)[-1].strip()


def client_response_headers(headers: Iterable[tuple[bytes, bytes]], request_id: bytes) -> Headers:
    """An upstream's response headers (any case) as the client gets them."""
    out: Headers = []
    listed: set[bytes] = set()
    for raw_name, value in headers:
        name = raw_name.lower()
        if name in HOP_BY_HOP or name in SET_BY_EDGE_RESPONSE or name.startswith(b"proxy-"):
            if name == b"connection":
                _connection_tokens(value, listed)
            continue
        out.append((name, value))
    if listed:
        out = [(name, value) for name, value in out if name not in listed]
    out.append((b"x-request-id", request_id))
    return out


def has_body(headers: Iterable[tuple[bytes, bytes]]) -> bool:
    """Whether the client sends a body: a non-zero Content-Length, or chunked framing."""
    for name, value in headers:
        if name == b"content-length":
            return value.strip() not in (b"0", b"")
        if name == b"transfer-encoding":
            return True
    return False


# -- the client pool ----------------------------------------------------------------------------


@dataclass(eq=False)
class _Client:
    upstream: Upstream
    session: aiohttp.ClientSession
    in_flight: int = 0
    retired: bool = False


class _RequestBody:
    """The client's body, chunk by chunk, as aiohttp sends it upstream."""

    def __init__(self, receive: Receive) -> None:
        self.receive = receive
        self.finished = False
        self.client_gone = False

    async def chunks(self) -> AsyncIterator[bytes]:
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                self.client_gone = True
                raise ClientDisconnected
            chunk = message.get("body", b"")
            if chunk:
                yield chunk
            if not message.get("more_body", False):
                self.finished = True
                return


class UpstreamPool:
    """One aiohttp session (connection pool, timeouts) per upstream, made on first use.

    A table that changes an upstream's URL or limits gets a new session; the old one closes
    when its last request ends, so a swap never cuts a transfer."""

    def __init__(self) -> None:
        self._clients: dict[str, _Client] = {}
        self._closing: set[asyncio.Task[None]] = set()

    def _client(self, upstream: Upstream) -> _Client:
        client = self._clients.get(upstream.name)
        if client is not None and (client.upstream is upstream or client.upstream == upstream):
            return client
        if client is not None:
            client.retired = True
            self._close_when_idle(client)
        client = _Client(upstream, _session(upstream))
        self._clients[upstream.name] = client
        return client

    def _close_when_idle(self, client: _Client) -> None:
        if client.retired and client.in_flight == 0:
            task = asyncio.get_running_loop().create_task(client.session.close())
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    async def close(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.session.close()
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)

    async def forward(
        self, upstream: Upstream, scope: Scope, receive: Receive, send: Send, headers: Headers
    ) -> None:
        """Relay one exchange. Raises UpstreamUnavailable before the response started,
        UpstreamBroke after, ClientDisconnected when the client left."""
        client = self._client(upstream)
        method: str = scope["method"]
        body = _RequestBody(receive) if has_body(scope["headers"]) else None
        target = scope.get("raw_path") or quote(scope["path"]).encode()
        if scope["query_string"]:
            target += b"?" + scope["query_string"]
        url = URL(upstream.url + target.decode("latin-1"), encoded=True)
        sent = [(name.decode("latin-1"), value.decode("latin-1")) for name, value in headers]
        client.in_flight += 1
        done = False
        try:
            response = await _open(client.session, upstream, method, url, sent, body)
            try:
                done = await _relay(upstream, response, method, receive, send, body)
            finally:
                if done and (body is None or body.finished):
                    response.release()
                else:  # a half-read response or half-sent body: never back into the pool
                    response.close()
        finally:
            client.in_flight -= 1
            self._close_when_idle(client)


def _session(upstream: Upstream) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(
            limit=upstream.max_connections, limit_per_host=0, keepalive_timeout=KEEPALIVE_S
        ),
        # `connect` covers waiting for a free pooled connection as well as the TCP connect;
        # `sock_read` is the longest silence between two reads, so big blobs never time out.
        timeout=aiohttp.ClientTimeout(
            total=None,
            connect=upstream.connect_timeout,
            sock_connect=upstream.connect_timeout,
            sock_read=upstream.read_timeout,
        ),
        auto_decompress=False,  # bytes pass through as the upstream encoded them
        cookie_jar=aiohttp.DummyCookieJar(),  # never carry one client's cookies to another
        skip_auto_headers=("User-Agent", "Accept-Encoding", "Content-Type"),
        read_bufsize=READ_BUFSIZE,
        raise_for_status=False,
    )


async def _open(
    session: aiohttp.ClientSession,
    upstream: Upstream,
    method: str,
    url: URL,
    headers: list[tuple[str, str]],
    body: _RequestBody | None,
) -> aiohttp.ClientResponse:
    for attempt in (1, 2):
        try:
            return await session.request(
                method,
                url,
                headers=headers,
                data=body.chunks() if body is not None else None,
                allow_redirects=False,
            )
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as error:
            # A pooled connection the upstream closed while idle: a request without a body
            # and without effects can be sent once more (a refused connect is not retried).
            stale = not isinstance(error, aiohttp.ClientConnectorError)
            if stale and attempt == 1 and body is None and method in SAFE_RETRY:
                continue
            raise _unavailable(upstream, error, body) from error
        except (aiohttp.ClientError, TimeoutError, OSError) as error:
            raise _unavailable(upstream, error, body) from error
    raise AssertionError("unreachable")


def _unavailable(upstream: Upstream, error: BaseException, body: _RequestBody | None) -> Exception:
    if body is not None and body.client_gone:
        return ClientDisconnected()
    name = upstream.name
    if isinstance(error, aiohttp.ConnectionTimeoutError):
        return UpstreamUnavailable(name, 504, "connect-timeout", "upstream did not accept in time")
    if isinstance(error, TimeoutError):
        return UpstreamUnavailable(name, 504, "read-timeout", "upstream did not answer in time")
    if isinstance(error, aiohttp.ClientConnectorError):
        return UpstreamUnavailable(name, 502, "connect-failed", "upstream refused the connection")
    return UpstreamUnavailable(name, 502, "bad-response", "upstream closed or sent no response")


async def _relay(
    upstream: Upstream,
    response: aiohttp.ClientResponse,
    method: str,
    receive: Receive,
    send: Send,
    body: _RequestBody | None,
) -> bool:
    """Stream the response to the client; True when all of it was read from the upstream."""
    await send(
        {"type": "http.response.start", "status": response.status, "headers": response.raw_headers}
    )
    content = response.content
    try:
        chunk = b"" if method == "HEAD" else await content.readany()
        if method == "HEAD" or content.at_eof():
            await send({"type": "http.response.body", "body": chunk, "more_body": False})
            return True
    except (aiohttp.ClientError, TimeoutError, OSError) as error:
        raise UpstreamBroke(upstream.name, _broke_kind(error)) from error
    # A longer body: watch for the client leaving, which uvicorn only reports to receive().
    # Only once the request body is over, so that one task at a time calls receive().
    watcher = None
    if body is None or body.finished:
        watcher = asyncio.get_running_loop().create_task(_watch_disconnect(receive, response))
    try:
        while chunk:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
            chunk = await content.readany()
        if watcher is not None and watcher.done():
            raise ClientDisconnected
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        return True
    except (aiohttp.ClientError, TimeoutError, OSError) as error:
        if (watcher is not None and watcher.done()) or (body is not None and body.client_gone):
            raise ClientDisconnected from None
        raise UpstreamBroke(upstream.name, _broke_kind(error)) from error
    finally:
        if watcher is not None:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await watcher


async def _watch_disconnect(receive: Receive, response: aiohttp.ClientResponse) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
    # Closing the upstream connection wakes the relay loop at once, even if the upstream is
    # silent, and keeps the half-read connection out of the pool.
    response.close()


def _broke_kind(error: BaseException) -> str:
    return "read-timeout" if isinstance(error, TimeoutError) else "upstream-disconnected"
