"""The edge as an ASGI app: route each request by the table, relay it, count and log it.

`create_edge_app(tables, sticky, in_process={...})` returns a plain ASGI callable (no
framework: the edge adds one hop to every registry request, so it stays thin). Per request:

1. The table is read once (`tables.current()`): one request sees one version throughout.
2. On an upload session path (`/v2/<name>/blobs/uploads/<id>`) `sticky.upstream_of(id)` says
   where the upload started; `decide()` then picks the upstream (see routing.py).
3. The request goes over HTTP (`proxy.UpstreamPool`, streamed both ways) or, for an upstream
   `inproc:<name>`, straight into `in_process[name]` in this process (`wharf serve`).
4. Sticky uploads and pushes (pins.py): an upload, and a client's push to a repository,
   finish on the upstream where they started, whatever the table says meanwhile.
5. Failures: no response from the upstream is `502` (refused, closed), `503` (an in-process
   app that is not there) or `504` (connect or read timeout), with `Retry-After`, in the
   registry error format on `/v2/` paths (`UNAVAILABLE`, `detail.upstream`) and as Quay's API
   error JSON elsewhere. An upstream that breaks mid-body, or a client that leaves, makes the
   edge stop at once and close both connections (a truncated body must never look whole).
   Anything unexpected in the edge itself is logged with its traceback and answered `500` in
   the same formats, never with a traceback. Quay's API error JSON is
   `{"status", "error_type", "error_message", "detail"}`; a path no capability matches (only
   possible in a table without the catch-all) is `404 NOT_FOUND`.
6. Every request is counted (metrics.py) and logged as one JSON line (accesslog.py); a
   client that left first is logged as `499`.

The app's lifespan runs every in-process app's lifespan (their state goes into their request
scopes, as a server would do) and closes the upstream connection pools on shutdown; without
a lifespan (tests), `await app.aclose()` does the same.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from wharf.edge.accesslog import log_access
from wharf.edge.inproc import ChildLifespan, dispatch_in_process
from wharf.edge.metrics import EdgeMetrics
from wharf.edge.pins import Pins
from wharf.edge.proxy import (
    ClientDisconnected,
    Headers,
    UpstreamBroke,
    UpstreamPool,
    UpstreamUnavailable,
    client_response_headers,
    request_id_of,
    upstream_request_headers,
)
from wharf.edge.responses import send_error, send_response
from wharf.edge.routing import Decision, decide, upload_session_of
from wharf.edge.state import StickyUploads, TableSource
from wharf.edge.table import INPROC_SCHEME, RouteTable, Upstream

logger = logging.getLogger("wharf.edge")
MAX_HEADER_BYTES = 64 * 1024
PEEK_BYTES = 4096
"""How much of a 404 body on an upload session is kept to look for BLOB_UPLOAD_UNKNOWN."""


class _Exchange:
    """One request's bookkeeping. `receive` and `send` wrap the server's: they count body
    bytes, apply the response header rules and run the sticky hook before headers go out."""

    __slots__ = (
        "_receive",
        "_send",
        "bytes_in",
        "bytes_out",
        "client_gone",
        "completed",
        "on_start",
        "peek",
        "request_id",
        "started",
        "status",
    )

    def __init__(self, receive: Receive, send: Send, request_id: bytes) -> None:
        self._receive, self._send, self.request_id = receive, send, request_id
        self.status = self.bytes_in = self.bytes_out = 0
        self.started = self.completed = self.client_gone = False
        self.on_start: Callable[[int, Headers], Awaitable[None]] | None = None
        self.peek: bytearray | None = None

    async def receive(self) -> Message:
        message = await self._receive()
        if message["type"] == "http.request":
            self.bytes_in += len(message.get("body", b""))
        elif not self.completed:
            self.client_gone = True
        return message

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            headers = client_response_headers(message.get("headers", ()), self.request_id)
            self.status = message["status"]
            if self.on_start is not None:
                await self.on_start(self.status, headers)
            await self._send({**message, "headers": headers})
            self.started = True  # after: headers the server refused leave room for a 500
            return
        if kind == "http.response.body":
            body = message.get("body", b"")
            self.bytes_out += len(body)
            if self.peek is not None and len(self.peek) < PEEK_BYTES:
                self.peek += body[: PEEK_BYTES - len(self.peek)]
            if not message.get("more_body", False):
                self.completed = True
        await self._send(message)


class EdgeApp:
    def __init__(
        self,
        tables: TableSource,
        sticky: StickyUploads,
        *,
        in_process: Mapping[str, ASGIApp] | None = None,
        metrics_path: str | None = None,
        push_pins: StickyUploads | None = None,
    ) -> None:
        self.tables = tables
        self.sticky = sticky
        self.push_pins = push_pins
        self.in_process = dict(in_process or {})
        self.metrics_path = metrics_path
        self.pool = UpstreamPool()
        self.metrics = EdgeMetrics(lambda: tables.current().version)
        self.pins = Pins(sticky, push_pins, self.metrics.sticky_errors)
        self._lifespans: list[ChildLifespan] = []
        self._states: dict[str, dict[str, Any]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)
        else:  # no websocket route exists behind the edge: refuse the handshake (403)
            await send({"type": "websocket.close", "code": 1008})

    async def aclose(self) -> None:
        for child in reversed(self._lifespans):
            await child.shutdown()
        self._lifespans, self._states = [], {}
        await self.pool.close()

    # -- one request ----------------------------------------------------------------------------

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        started, wall = time.perf_counter(), time.time()
        exchange = _Exchange(receive, send, request_id_of(scope["headers"]))
        method: str = scope["method"]
        path: str = scope["path"]
        query = scope["query_string"].decode("latin-1")
        version = -1
        decision: Decision | None = None
        error: str | None = None
        try:
            versioned = self.tables.current()
            version = versioned.version
            if path == self.metrics_path and self.metrics_path is not None:
                body, content_type = self.metrics.render()
                await send_response(exchange.send, method, 200, body, content_type.encode())
                return
            header_bytes = sum(len(name) + len(value) for name, value in scope["headers"])
            if header_bytes > MAX_HEADER_BYTES:
                # The server has read them already; the edge must not pass them on (an
                # upstream would hold them in memory too). nginx's default is 32 KiB.
                error = "headers-too-large"
                await send_error(
                    exchange.send, method, path, 431, "UNSUPPORTED", "request headers too large",
                    {"limit_bytes": MAX_HEADER_BYTES},
                )  # fmt: skip
                return
            session = upload_session_of(path) if "/blobs/uploads/" in path else None
            pinned = await self.pins.upstream_of(self.sticky, session) if session else None
            push_key = self.pins.push_key(scope, method, path)
            push_pinned = None
            if push_key is not None and self.push_pins is not None:
                push_pinned = await self.pins.upstream_of(self.push_pins, push_key)
            decision = decide(
                versioned.table, method, path, query, sticky_upstream=pinned or push_pinned
            )
            if decision is None:
                error = "no-route"
                await send_error(exchange.send, method, path, 404, "NOT_FOUND", "no route", {})
            else:
                push = (push_key, push_pinned) if push_key is not None else None
                error = await self._relay(scope, exchange, versioned.table, decision, session, push)
        except Exception:
            # The catch-all: a bug here must cost one request a JSON 500, never a traceback.
            logger.exception("edge failed on %s %s", method, path)
            error = "edge-error"
            if not exchange.started:
                with contextlib.suppress(Exception):
                    detail = {"request_id": exchange.request_id.decode()}
                    await send_error(
                        exchange.send, method, path, 500, "UNKNOWN", "edge error", detail
                    )
        finally:
            status = exchange.status
            if exchange.client_gone and not exchange.completed:
                status = 499
            elif not exchange.started:
                status = status or 500
            seconds = time.perf_counter() - started
            if path != self.metrics_path:
                self.metrics.observe(
                    capability=decision.capability if decision else "none",
                    upstream=decision.upstream if decision else "none",
                    reason=decision.reason if decision else "none",
                    status=status,
                    seconds=seconds,
                    bytes_in=exchange.bytes_in,
                    bytes_out=exchange.bytes_out,
                )
                client = scope.get("client")
                log_access(
                    started_wall=wall,
                    request_id=exchange.request_id.decode(),
                    method=method,
                    path=path,
                    query=query,
                    status=status,
                    bytes_in=exchange.bytes_in,
                    bytes_out=exchange.bytes_out,
                    duration_s=seconds,
                    upstream=decision.upstream if decision else None,
                    reason=decision.reason if decision else None,
                    capability=decision.capability if decision else None,
                    table_version=version,
                    client=client[0] if client else None,
                    error=error,
                )

    async def _relay(
        self,
        scope: Scope,
        exchange: _Exchange,
        table: RouteTable,
        decision: Decision,
        session: str | None,
        push: tuple[str, str | None] | None = None,
    ) -> str | None:
        """Relay to the decided upstream; the error kind for the log, if any. `push` is the
        push pin's key and where it pointed, for a push-side registry request."""
        upstream = table.upstreams[decision.upstream]
        method: str = scope["method"]

        def start_peek() -> None:
            exchange.peek = bytearray()

        exchange.on_start = self.pins.on_start(
            path=scope["path"],
            upstream=upstream.name,
            method=method,
            session=session,
            push=push,
            start_peek=start_peek,
        )
        client = scope.get("client")
        headers = upstream_request_headers(
            scope["headers"],
            request_id=exchange.request_id,
            client_host=client[0] if client else None,
            scheme=scope.get("scheme", "http"),
        )
        error = None
        flight = self.metrics.flight(upstream.name)
        flight.inc()
        try:
            if upstream.in_process:
                await self._in_process(upstream, scope, exchange, headers)
            else:
                await self.pool.forward(upstream, scope, exchange.receive, exchange.send, headers)
        except UpstreamUnavailable as failure:
            error = failure.kind
            self.metrics.upstream_errors.labels(upstream.name, failure.kind).inc()
            logger.warning("upstream %s: %s (%s)", upstream.name, failure.message, failure.kind)
            if not exchange.started:
                detail = {"upstream": upstream.name}
                await send_error(
                    exchange.send, method, scope["path"], failure.status, "UNAVAILABLE",
                    failure.message, detail, retry_after=True,
                )  # fmt: skip
        except UpstreamBroke as failure:
            # Returning without the last body message makes the server close the connection:
            # the client sees a truncated transfer, never a short body that looks complete.
            error = failure.kind
            self.metrics.upstream_errors.labels(upstream.name, failure.kind).inc()
            logger.warning("upstream %s broke mid-response: %s", upstream.name, failure.kind)
        except ClientDisconnected:
            error = "client-disconnected"
        finally:
            flight.dec()
        if (
            session is not None
            and exchange.peek is not None
            and b"BLOB_UPLOAD_UNKNOWN" in exchange.peek
        ):
            await self.pins.release(session)
        return error

    async def _in_process(
        self, upstream: Upstream, scope: Scope, exchange: _Exchange, headers: Headers
    ) -> None:
        name = upstream.url[len(INPROC_SCHEME) :]
        app = self.in_process.get(name)
        if app is None:
            raise UpstreamUnavailable(upstream.name, 503, "not-running", f"{name} is not running")
        try:
            await dispatch_in_process(
                app, scope, exchange.receive, exchange.send, headers, self._states.get(name)
            )
        except Exception as failure:
            if exchange.client_gone:  # Starlette raises ClientDisconnect on a body cut short
                raise ClientDisconnected from failure
            logger.exception("in-process upstream %s failed", upstream.name)
            self.metrics.upstream_errors.labels(upstream.name, "app-error").inc()
            if not exchange.started:
                detail = {"upstream": upstream.name}
                await send_error(
                    exchange.send, scope["method"], scope["path"], 500, "UNKNOWN", "upstream error",
                    detail,
                )  # fmt: skip

    # -- lifespan -------------------------------------------------------------------------------

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        await receive()  # lifespan.startup
        try:
            for name, app in self.in_process.items():
                child = ChildLifespan(name, app)
                self._lifespans.append(child)
                if await child.startup():
                    self._states[name] = child.state
        except Exception as failure:
            logger.exception("in-process app failed to start")
            await self.aclose()
            await send({"type": "lifespan.startup.failed", "message": str(failure)})
            return
        await send({"type": "lifespan.startup.complete"})
        await receive()  # lifespan.shutdown
        await self.aclose()
        await send({"type": "lifespan.shutdown.complete"})


def create_edge_app(
    tables: TableSource,
    sticky: StickyUploads,
    *,
    in_process: Mapping[str, ASGIApp] | None = None,
    metrics_path: str | None = None,
    push_pins: StickyUploads | None = None,
) -> EdgeApp:
    """The edge. `metrics_path` (e.g. "/metrics") makes the edge answer its own metrics on
    that path of its public port; by default it does not (see metrics.metrics_response)."""
    return EdgeApp(
        tables, sticky, in_process=in_process, metrics_path=metrics_path, push_pins=push_pins
    )
