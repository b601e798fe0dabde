"""The table the proxy reads: the last good one, in memory, kept in step with a switch store.

A background task asks the store for its newest version every 0.25 s (by default) and swaps
in the new table once it has been read and validated; when the store is down or holds a
table this process cannot apply, the last good table keeps serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime
from typing import Any

from wharf.edge.state import VersionedTable
from wharf.edge.store import (
    BOOTSTRAP_AUTHOR,
    StoreUnavailable,
    Switches,
    TableRecord,
    VersionConflict,
    now,
    validate_text,
)
from wharf.edge.table import TableError, parse_table_yaml
from wharf.logs import RateLimitedLog

log = logging.getLogger("wharf.edge.store")


class PolledTableSource:
    """A `TableSource` kept in step with a switch store.

    `current()` never touches the store. A background task asks for the newest version every
    `interval` seconds and swaps in the new table once it has been read and validated; when
    the store is down or holds a table this process cannot apply, the last good table stays.
    With an empty store, `start()` stores `bootstrap_yaml` as version 1 (author "bootstrap");
    with a store unreachable at start, that table is served as version 0 until it answers.
    """

    def __init__(
        self,
        switches: Switches,
        *,
        bootstrap_yaml: str | None = None,
        interval: float = 0.25,
        timeout: float = 2.0,
        log_every: float = 30.0,
    ) -> None:
        if bootstrap_yaml is not None:
            validate_text(bootstrap_yaml)  # a bad file fails at start-up, not on first poll
        self.switches = switches
        self.bootstrap_yaml = bootstrap_yaml
        self.interval, self.timeout = interval, timeout
        self._current: VersionedTable | None = None
        self._record: TableRecord | None = None
        self._rejected: int | None = None
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._opened = False
        self._recheck = False
        self._log = RateLimitedLog(log, log_every)
        self.last_ok: datetime | None = None
        self.last_error: str | None = None

    def current(self) -> VersionedTable:
        if self._current is None:
            raise RuntimeError("PolledTableSource.start() has not loaded a table yet")
        return self._current

    @property
    def record(self) -> TableRecord | None:
        """The stored record of the current table (None while serving the bootstrap v0)."""
        return self._record

    def health(self) -> dict[str, Any]:
        return {
            "kind": self.switches.store.kind,
            "last_ok": self.last_ok.isoformat() if self.last_ok else None,
            "error": self.last_error,
            "rejected_version": self._rejected,
        }

    async def start(self) -> None:
        try:
            await self.refresh()
        except StoreUnavailable as error:
            if self.bootstrap_yaml is None:
                raise
            self._failed(error)
            self._current = VersionedTable(0, parse_table_yaml(self.bootstrap_yaml))
        if self._current is None:
            raise RuntimeError("the switch store is empty and no initial table was given")
        self._task = asyncio.create_task(self._poll(), name="wharf-edge-table-poll")

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.switches.store.aclose()

    async def refresh(self) -> bool:
        """Load the newest version if it differs from ours; True when the table changed.
        Raises StoreUnavailable; also called by the admin API right after a write."""
        try:
            async with self._lock, asyncio.timeout(self.timeout):
                if not self._opened:  # creates the tables; retried until the store answers
                    await self.switches.store.open()
                    self._opened = True
                return await self._refresh(seed=True)
        except TimeoutError:
            raise StoreUnavailable(f"no answer within {self.timeout} s") from None

    async def _refresh(self, *, seed: bool) -> bool:
        store = self.switches.store
        latest = await store.latest_version()
        self._ok()
        if latest == 0:
            return await self._seed() if seed else False
        held = self._current.version if self._current else None
        recheck, self._recheck = self._recheck, False
        if latest == self._rejected or (latest == held and not recheck):
            return False
        record = await store.read(latest)
        if record is None:  # removed between the two queries: look again next time
            return False
        if latest == held and record == self._record:
            return False  # after an outage, the same record: nothing happened meanwhile
        try:
            table = parse_table_yaml(record.yaml)
        except TableError as error:
            self._rejected = latest
            self._log.warning(
                "invalid", f"stored table v{latest} is invalid, keeping v{held}: {error}"
            )
            return False
        self._current, self._record, self._rejected = VersionedTable(latest, table), record, None
        was = f"v{held}" if held is not None else "none"
        log.info("route table v%d in force (was %s, by %s)", latest, was, record.author)
        return True

    async def _seed(self) -> bool:
        if self._record is not None:
            # We served a stored table and the store is now empty (a Redis without
            # persistence restarted, say): keep ours rather than fall back to the bootstrap.
            held = self._record.version
            self._log.warning("empty", f"the switch store is empty; keeping v{held}")
            return False
        if self.bootstrap_yaml is None:
            return False
        with contextlib.suppress(VersionConflict):  # another replica seeded it first
            await self.switches.set(
                self.bootstrap_yaml,
                author=BOOTSTRAP_AUTHOR,
                reason="initial table",
                expected_version=0,
            )
        return await self._refresh(seed=False)

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.refresh()
            except StoreUnavailable as error:
                self._failed(error)
            except Exception as error:  # the poller must outlive any one bad answer
                self._failed(error)

    def _ok(self) -> None:
        self.last_ok, self.last_error = now(), None
        self._log.recovered("store", "switch store reachable again")

    def _failed(self, error: Exception) -> None:
        # A store that comes back may have been replaced or reset and rewritten up to our
        # version number meanwhile: the first poll after an outage compares the record too.
        self._recheck = True
        unexpected = not isinstance(error, StoreUnavailable)
        self.last_error = f"{type(error).__name__}: {error}" if unexpected else str(error)
        held = self._current.version if self._current else "none"
        self._log.warning("store", f"switch store unavailable, serving v{held}: {self.last_error}")
