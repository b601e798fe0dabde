"""In-process upstreams (`inproc:<name>`): an app of this process called directly.

`wharf serve` runs the edge and the services on one port this way. httpx's ASGITransport
would buffer whole bodies; here the app gets the server's own `receive` and `send` (wrapped by
the edge for the header rules, counting and sticky pins), so bodies stream with no copy.
The edge's lifespan drives each app's lifespan (`ChildLifespan`), as a server would.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger("wharf.edge")


async def dispatch_in_process(
    app: ASGIApp,
    scope: Scope,
    receive: Receive,
    send: Send,
    headers: list[tuple[bytes, bytes]],
    state: dict[str, Any] | None,
) -> None:
    """Call an app of this process directly: the same receive and send (wrapped by the
    caller for the header rules and sticky uploads), so bodies stream with no copy at all.
    `state` is the app's own lifespan state when the edge ran its lifespan."""
    child = dict(scope)
    child["headers"] = headers
    if state is not None:
        child["state"] = dict(state)  # per request, shallow, as uvicorn does
    await app(child, receive, send)


class ChildLifespan:
    """One in-process app's lifespan, driven the way uvicorn's `lifespan=auto` drives one:
    an app that raises before answering the startup has no lifespan, and is served anyway."""

    def __init__(self, name: str, app: ASGIApp) -> None:
        self.name, self.app = name, app
        self.state: dict[str, Any] = {}
        self._inbox: asyncio.Queue[Message] = asyncio.Queue()
        self._outbox: asyncio.Queue[Message] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._started = False

    async def startup(self) -> bool:
        """True when the app ran its startup; raises when it reported a failure."""
        scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": self.state}
        self._task = asyncio.get_running_loop().create_task(self._run(scope))
        await self._inbox.put({"type": "lifespan.startup"})
        reply = await self._outbox.get()
        if reply["type"] == "lifespan.startup.failed":
            raise RuntimeError(f"{self.name}: {reply.get('message', 'startup failed')}")
        self._started = reply["type"] == "lifespan.startup.complete"
        return self._started

    async def _run(self, scope: Scope) -> None:
        try:
            await self.app(scope, self._inbox.get, self._outbox.put)
        except Exception:
            if self._started:
                logger.exception("in-process app %s failed in its lifespan", self.name)
            else:
                logger.debug("in-process app %s: no lifespan", self.name, exc_info=True)
        finally:
            await self._outbox.put({"type": "lifespan.finished"})

    async def shutdown(self) -> None:
        if self._task is None:
            return
        if not self._task.done():
            await self._inbox.put({"type": "lifespan.shutdown"})
            reply = await self._outbox.get()
            if reply["type"] == "lifespan.shutdown.failed":
                logger.error("in-process app %s: %s", self.name, reply.get("message"))
        with contextlib.suppress(Exception):
            await self._task
        self._task = None
