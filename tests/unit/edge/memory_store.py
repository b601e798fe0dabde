"""A `SwitchStore` in memory for unit tests, which can be made to fail or to hang."""

from __future__ import annotations

import asyncio

from wharf.edge.store import StoreUnavailable, TableRecord

TABLE = """upstreams:
  legacy: {url: "http://127.0.0.1:5000"}
  wharf: {url: "http://127.0.0.1:8080"}
default_owner: legacy
capabilities:
  registry-pull:
    canary: {upstream: wharf, repositories: ["orgb/*"]}
"""
TABLE_2 = TABLE.replace('["orgb/*"]', '["orgb/*", "orga/app"]')
TABLE_3 = TABLE.replace('["orgb/*"]', '["orgb/*", "orga/*"]')


class MemorySwitchStore:
    kind = "memory"

    def __init__(self) -> None:
        self.records: dict[int, TableRecord] = {}
        self.down = False
        self.hang = False
        self.lose_inserts = 0
        """The next N inserts fail as if another writer had taken the version."""
        self.opened = 0
        self.closed = 0

    async def _check(self) -> None:
        if self.hang:
            await asyncio.sleep(3600)
        if self.down:
            raise StoreUnavailable("ConnectionRefusedError: the test says so")

    async def open(self) -> None:
        await self._check()
        self.opened += 1

    async def aclose(self) -> None:
        self.closed += 1

    async def latest_version(self) -> int:
        await self._check()
        return max(self.records, default=0)

    async def read(self, version: int) -> TableRecord | None:
        await self._check()
        return self.records.get(version)

    async def read_recent(self, limit: int) -> list[TableRecord]:
        await self._check()
        return [self.records[v] for v in sorted(self.records, reverse=True)[:limit]]

    async def insert(self, record: TableRecord) -> bool:
        await self._check()
        if self.lose_inserts:
            self.lose_inserts -= 1
            self.records[record.version] = TableRecord(
                record.version, TABLE, "someone else", "raced", record.created_at
            )
            return False
        if record.version in self.records:
            return False
        self.records[record.version] = record
        return True
