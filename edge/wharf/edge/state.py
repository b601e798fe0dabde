"""What the proxy reads on every request: the current table, and where uploads started.

Two small protocols, with in-memory implementations for a single process and for tests; the
shared implementations (database, Redis) live in `store.py` and satisfy the same protocols.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Protocol

from wharf.edge.table import RouteTable

PUSH_STICKINESS_S = 600.0
"""How long a client's push to a repository stays on the upstream it started on after its
last successful push request (so the manifest PUT follows the blobs across a flip)."""
UPLOAD_STICKINESS_S = 24 * 3600.0
"""How long an upload session stays pinned to its upstream without activity (Quay and
distribution both keep upload sessions for about a day)."""


@dataclass(frozen=True)
class VersionedTable:
    version: int
    table: RouteTable


class TableSource(Protocol):
    """The table in force. `current()` is called on every request: it must not block."""

    def current(self) -> VersionedTable: ...


class StickyUploads(Protocol):
    """Which upstream holds an upload session. Calls may go to a shared store: async."""

    async def pin(self, session_id: str, upstream: str) -> None: ...

    async def upstream_of(self, session_id: str) -> str | None: ...

    async def release(self, session_id: str) -> None: ...


class StaticTable:
    """A fixed table (tests, and `wharf serve` without a switch store)."""

    def __init__(self, table: RouteTable, version: int = 1) -> None:
        self._current = VersionedTable(version, table)

    def current(self) -> VersionedTable:
        return self._current

    def replace(self, table: RouteTable) -> None:
        """Swap atomically: requests already routed keep the table they read."""
        self._current = VersionedTable(self._current.version + 1, table)


class MemoryStickyUploads:
    """Pins kept in this process only, expiring after `ttl` seconds without use."""

    def __init__(self, ttl: float = UPLOAD_STICKINESS_S) -> None:
        self.ttl = ttl
        self._pins: dict[str, tuple[str, float]] = {}

    async def pin(self, session_id: str, upstream: str) -> None:
        self._expire()
        self._pins[session_id] = (upstream, time.monotonic() + self.ttl)

    async def upstream_of(self, session_id: str) -> str | None:
        found = self._pins.get(session_id)
        if found is None or found[1] < time.monotonic():
            return None
        self._pins[session_id] = (found[0], time.monotonic() + self.ttl)
        return found[0]

    async def release(self, session_id: str) -> None:
        self._pins.pop(session_id, None)

    def _expire(self) -> None:
        if len(self._pins) < 10_000:
            return
        now = time.monotonic()
        for key in [k for k, (_, deadline) in self._pins.items() if deadline < now]:
            del self._pins[key]


def push_pin_key(repository: str, credential: str) -> str:
    """The pin of one client's push to one repository. `credential` tells pushes apart: the
    client's Authorization header (one bearer token per push), else its address. A new push
    (a new token) follows the table; the push in flight stays where it started."""
    digest = hashlib.sha256(f"{repository}\0{credential}".encode()).hexdigest()[:40]
    return f"push:{digest}"
