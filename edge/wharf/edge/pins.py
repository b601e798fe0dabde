"""Sticky uploads and pushes: where a request must go because of what came before it.

- An upload session is pinned to the upstream that answered its `POST .../blobs/uploads/`
  with `202` (its `Location` ends in `/blobs/uploads/<id>`), *before* the client hears of it,
  so its next `PATCH` cannot overtake the pin. A `PUT` answered `201` or a `DELETE` answered
  `204` releases it, also before the answer goes out; a `404` whose body says
  `BLOB_UPLOAD_UNKNOWN` releases it once that body went through (the relay peeks at it).
- A push is more than its uploads: its manifest PUT must reach the upstream holding its
  blobs. Every successful push-side request (POST, PATCH, PUT, DELETE under `/v2/<name>/`)
  pins that client's push to the repository (`state.push_pin_key`: the repository and the
  client's Authorization header, else its address), for `PUSH_STICKINESS_S` after the last
  one. A new push (a new token) follows the table again.

A pin store that fails or takes over `STICKY_TIMEOUT_S` is logged and counted, and routing
goes on by the table (an upload may then fail; requests never hang on the store).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from prometheus_client import Counter
from starlette.types import Scope

from wharf.edge.proxy import Headers
from wharf.edge.routing import repository_of
from wharf.edge.state import StickyUploads, push_pin_key

START_UPLOAD_RE = re.compile(r"/v2/.+/blobs/uploads/?")
LOCATION_SESSION_RE = re.compile(r"/blobs/uploads/([^/]+)$")
STICKY_TIMEOUT_S = 2.0
PUSH_METHODS = frozenset({"POST", "PATCH", "PUT", "DELETE"})
logger = logging.getLogger("wharf.edge")

OnStart = Callable[[int, Headers], Awaitable[None]]


class Pins:
    def __init__(
        self, sticky: StickyUploads, push_pins: StickyUploads | None, errors: Counter
    ) -> None:
        self.sticky = sticky
        self.push_pins = push_pins
        self.errors = errors

    async def upstream_of(self, pins: StickyUploads, key: str) -> str | None:
        try:
            async with asyncio.timeout(STICKY_TIMEOUT_S):
                return await pins.upstream_of(key)
        except Exception:
            logger.warning("upload pin store failed (upstream_of %s)", key, exc_info=True)
            self.errors.labels("upstream_of").inc()
            return None

    def push_key(self, scope: Scope, method: str, path: str) -> str | None:
        """The push pin of a push-side registry request (see `state.push_pin_key`)."""
        if self.push_pins is None or method not in PUSH_METHODS:
            return None
        repository = repository_of(path)
        if repository is None:
            return None
        credential = next(
            (value for name, value in scope["headers"] if name == b"authorization"), None
        )
        if credential is not None:
            return push_pin_key(repository, credential.decode("latin-1"))
        client = scope.get("client")
        return push_pin_key(repository, f"address:{client[0] if client else '-'}")

    async def call(self, operation: str, call: Awaitable[None]) -> None:
        try:
            async with asyncio.timeout(STICKY_TIMEOUT_S):
                await call
        except Exception:
            logger.warning("upload pin store failed (%s)", operation, exc_info=True)
            self.errors.labels(operation).inc()

    async def release(self, session: str) -> None:
        await self.call("release", self.sticky.release(session))

    def on_start(
        self,
        *,
        path: str,
        upstream: str,
        method: str,
        session: str | None,
        push: tuple[str, str | None] | None,
        start_peek: Callable[[], None],
    ) -> OnStart | None:
        """What to do when the upstream's answer starts, before the client sees it."""
        hooks: list[OnStart] = []
        if session is not None or (method == "POST" and START_UPLOAD_RE.fullmatch(path)):
            hooks.append(self._upload_hook(upstream, method, session, start_peek))
        if push is not None and push[1] != upstream:
            hooks.append(self._push_hook(push[0], upstream))
        if not hooks:
            return None

        async def run_all(status: int, headers: Headers) -> None:
            for hook in hooks:
                await hook(status, headers)

        return run_all

    def _push_hook(self, key: str, upstream: str) -> OnStart:
        async def on_start(status: int, headers: Headers) -> None:
            # Before the client hears of it: its next request (the manifest PUT) sees the pin.
            if 200 <= status < 300 and self.push_pins is not None:
                await self.call("pin", self.push_pins.pin(key, upstream))

        return on_start

    def _upload_hook(
        self, upstream: str, method: str, session: str | None, start_peek: Callable[[], None]
    ) -> OnStart:
        async def on_start(status: int, headers: Headers) -> None:
            if session is None:  # a POST that may start an upload
                if status == 202:
                    started = session_from_location(headers)
                    if started is not None:
                        await self.call("pin", self.sticky.pin(started, upstream))
            elif (method == "PUT" and status == 201) or (method == "DELETE" and status == 204):
                # Before the client hears of it, like the pin: its next move sees no pin.
                await self.release(session)
            elif status == 404:
                start_peek()

        return on_start


def session_from_location(headers: Headers) -> str | None:
    """The upload id at the end of a Location (a path or an absolute URL, with or without a
    query string), or None."""
    for name, value in headers:
        if name == b"location":
            found = LOCATION_SESSION_RE.search(urlsplit(value.decode("latin-1")).path)
            return found.group(1) if found is not None else None
    return None
