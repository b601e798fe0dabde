"""Switches: the route table's versions and audit trail, and the table every replica serves.

A change is a new row (or Redis hash) holding the whole YAML text with its version, author,
time and reason; the row before it is the "old" side of the audit entry, so one record
carries the audit and history cannot disagree with what was served. Versions are
consecutive and a write is an insert of `latest + 1` that fails if that version exists: two
concurrent `set`s cannot both win (optimistic concurrency, `expected_version`).

Backends (`store_sql.py`, `store_redis.py`) only store and fetch records; the rules
(validate before storing, versioning, rollback) live here so that both behave alike.
What the proxy reads, the last good table kept in step with the store, is
`table_source.PolledTableSource`.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from wharf.edge.state import StickyUploads
from wharf.edge.table import TableError, parse_table_yaml

log = logging.getLogger("wharf.edge.store")

MAX_TABLE_BYTES = 1024 * 1024
"""A table is a few kilobytes; a megabyte is a mistake (or an attack on the admin API)."""
BOOTSTRAP_AUTHOR = "bootstrap"


class StoreUnavailable(Exception):
    """The store could not be reached or answered with an error; retrying may work."""


class VersionConflict(Exception):
    """Another change was stored first: the table is not at the version the caller read."""

    def __init__(self, expected: int, current: int) -> None:
        super().__init__(f"the table is at version {current}, not {expected}: re-read and retry")
        self.expected = expected
        self.current = current


class NoSuchVersion(LookupError):
    """A rollback to a version the store does not have."""


@dataclass(frozen=True)
class TableRecord:
    version: int
    yaml: str
    author: str
    reason: str
    created_at: datetime

    def summary(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "author": self.author,
            "reason": self.reason,
            "created_at": self.created_at.isoformat(),
        }


@dataclass(frozen=True)
class AuditEntry:
    """One change: who, when, why, and the table before (None for the first) and after."""

    record: TableRecord
    previous_yaml: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            **self.record.summary(),
            "yaml": self.record.yaml,
            "previous_yaml": self.previous_yaml,
        }


class SwitchStore(Protocol):
    """Storage of table records. Every method raises `StoreUnavailable` on backend failure."""

    kind: str
    """`sqlite`, `postgresql` or `redis`: shown by the status endpoint (never the URL)."""

    async def open(self) -> None: ...

    async def aclose(self) -> None: ...

    async def latest_version(self) -> int:
        """The newest version, 0 for an empty store: the poller's one cheap query."""
        ...

    async def read(self, version: int) -> TableRecord | None: ...

    async def read_recent(self, limit: int) -> list[TableRecord]:
        """Up to `limit` records, newest first."""
        ...

    async def insert(self, record: TableRecord) -> bool:
        """Store `record` unless its version exists (then False, and nothing changes)."""
        ...


def now() -> datetime:
    return datetime.now(UTC)


def validate_text(text: str) -> None:
    """Raise TableError (with every problem) unless `text` is a table that can be applied."""
    if len(text.encode()) > MAX_TABLE_BYTES:
        raise TableError([f"the table is larger than {MAX_TABLE_BYTES} bytes"])
    parse_table_yaml(text)


class Switches:
    """The operations of `wharf edge set/rollback/history` over one store."""

    def __init__(self, store: SwitchStore) -> None:
        self.store = store

    async def latest(self) -> TableRecord | None:
        version = await self.store.latest_version()
        return await self.store.read(version) if version else None

    async def set(
        self, text: str, *, author: str, reason: str, expected_version: int | None = None
    ) -> TableRecord:
        """Validate, then store as the next version. Without `expected_version` the change
        goes on top of whatever is newest (a lost race is retried); with it, a table that
        moved on raises VersionConflict."""
        if not reason.strip():
            raise ValueError("a reason is required: say why the table changes")
        validate_text(text)
        for attempt in range(20):
            if attempt:  # jitter, so that writers racing each other spread out
                await asyncio.sleep(random.uniform(0, 0.01 * attempt))
            latest = await self.store.latest_version()
            if expected_version is not None and latest != expected_version:
                raise VersionConflict(expected_version, latest)
            record = TableRecord(latest + 1, text, author, reason.strip(), now())
            if await self.store.insert(record):
                return record
            if expected_version is not None:
                raise VersionConflict(expected_version, await self.store.latest_version())
        raise VersionConflict(latest, await self.store.latest_version())

    async def rollback(
        self,
        *,
        author: str,
        reason: str,
        to_version: int | None = None,
        expected_version: int | None = None,
    ) -> TableRecord:
        """Store the table of `to_version` (default: the one before the newest) as a new
        version. Conditional on the newest version read here, so two SREs pressing rollback
        at once roll back one step, not two."""
        latest = await self.store.latest_version()
        if expected_version is not None and latest != expected_version:
            raise VersionConflict(expected_version, latest)
        target = latest - 1 if to_version is None else to_version
        if target < 1 or target >= latest:
            raise NoSuchVersion(f"no version {target} to roll back to (newest is v{latest})")
        record = await self.store.read(target)
        if record is None:
            raise NoSuchVersion(f"version {target} is not in the store")
        note = f"rollback to v{target}" + (f": {reason.strip()}" if reason.strip() else "")
        return await self.set(record.yaml, author=author, reason=note, expected_version=latest)

    async def history(self, limit: int = 20) -> list[AuditEntry]:
        records = await self.store.read_recent(limit + 1)
        entries = []
        for index, record in enumerate(records[:limit]):
            before = records[index + 1] if index + 1 < len(records) else None
            if before is None or before.version != record.version - 1:
                before = await self.store.read(record.version - 1) if record.version > 1 else None
            entries.append(AuditEntry(record, before.yaml if before else None))
        return entries


class LocalPins:
    """This replica's cache of upload pins. A pin never changes upstream, so a hit needs no
    store round trip; a miss reads the store (another replica may have pinned it)."""

    def __init__(self, ttl: float, size: int = 10_000) -> None:
        self.ttl, self.size = ttl, size
        self._pins: OrderedDict[str, tuple[str, float]] = OrderedDict()

    def get(self, session_id: str) -> tuple[str, bool] | None:
        """(upstream, whether the store's expiry should be pushed back) or None."""
        found = self._pins.get(session_id)
        if found is None:
            return None
        upstream, refreshed = found
        age = time.monotonic() - refreshed
        if age > self.ttl:
            del self._pins[session_id]
            return None
        self._pins.move_to_end(session_id)
        # Sliding expiry without a write per chunk: push it back once half of it is gone.
        return upstream, age > self.ttl / 2

    def put(self, session_id: str, upstream: str) -> None:
        self._pins[session_id] = (upstream, time.monotonic())
        self._pins.move_to_end(session_id)
        while len(self._pins) > self.size:
            self._pins.popitem(last=False)

    def drop(self, session_id: str) -> None:
        self._pins.pop(session_id, None)


@dataclass
class EdgeStores:
    """What an edge replica needs from a shared store, opened from one URL."""

    switches: Switches
    sticky: StickyUploads
    push_pins: StickyUploads | None = None
    """Pins of pushes in flight per repository (short-lived): see `state.push_pin_key`."""

    async def aclose(self) -> None:
        await self.switches.store.aclose()


def open_stores(
    url: str, *, prefix: str = "wharf:edge", upload_ttl: float | None = None
) -> EdgeStores:
    """`redis://` / `rediss://` / `unix://` for Redis, a database URL otherwise."""
    from wharf.edge.state import PUSH_STICKINESS_S, UPLOAD_STICKINESS_S

    ttl = upload_ttl or UPLOAD_STICKINESS_S
    if url.split(":", 1)[0] in ("redis", "rediss", "unix"):
        from wharf.edge.store_redis import connect_redis

        return connect_redis(url, prefix=prefix, upload_ttl=ttl)
    from wharf.db.engine import Database
    from wharf.edge.store_sql import SqlStickyUploads, SqlSwitchStore

    db = Database(url)
    return EdgeStores(
        Switches(SqlSwitchStore(db, owns_db=True)),
        SqlStickyUploads(db, ttl=ttl),
        SqlStickyUploads(db, ttl=PUSH_STICKINESS_S),
    )
