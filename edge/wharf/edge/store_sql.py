"""The switch store and upload pins in a SQL database (SQLite or PostgreSQL).

Wharf's own two tables, on a MetaData of their own and created with `create_all(checkfirst)`:
Quay's tables and Wharf's Alembic history are never touched, so the edge can share the
registry's database (Quay's included) or use one of its own.

- `wharf_edge_table`: one row per version (the version is the primary key, which is what
  makes a concurrent second insert of the same version fail), carrying the audit fields.
- `wharf_edge_upload`: session id -> upstream, with an expiry pushed back while in use.

Reads go to the primary (`reader(fresh=True)`): a read replica's lag would delay a switch.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import (
    Column,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    delete,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from wharf.db.engine import Database
from wharf.edge.store import (
    LocalPins,
    StoreUnavailable,
    TableRecord,
    now,
)
from wharf.logs import RateLimitedLog

log = logging.getLogger("wharf.edge.store")
T = TypeVar("T")

metadata = MetaData()
edge_table = Table(
    "wharf_edge_table",
    metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("yaml", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("author", String(255), nullable=False),
    Column("reason", Text, nullable=False),
)
edge_upload = Table(
    "wharf_edge_upload",
    metadata,
    Column("session_id", String(255), primary_key=True),
    Column("upstream", String(255), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False, index=True),
)
# Two replicas starting at once on an empty PostgreSQL would race in CREATE TABLE; they
# queue on this transaction-level advisory lock instead ("wharfedg" as an int64).
_SCHEMA_LOCK = 0x7768617266656467


def _aware(value: datetime) -> datetime:
    """SQLite hands back naive datetimes; everything stored is UTC."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _unavailable(error: BaseException) -> StoreUnavailable:
    # The driver's message names host and port at most; the URL (with a password) never.
    reason = getattr(error, "orig", None) or error
    return StoreUnavailable(f"{type(reason).__name__}: {str(reason).splitlines()[0][:200]}")


async def ensure_schema(db: Database) -> None:
    try:
        async with db.writer_engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                await connection.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SCHEMA_LOCK}
                )
            await connection.run_sync(metadata.create_all, checkfirst=True)
    except (SQLAlchemyError, OSError) as error:
        raise _unavailable(error) from error


class SqlSwitchStore:
    """`SwitchStore` on `wharf_edge_table`."""

    def __init__(self, db: Database, *, owns_db: bool = False) -> None:
        self.db = db
        self.kind = db.dialect
        self._owns_db = owns_db
        self._opened = False

    async def open(self) -> None:
        if not self._opened:
            await ensure_schema(self.db)
            self._opened = True

    async def aclose(self) -> None:
        if self._owns_db:
            self._owns_db = False  # once: the sticky store shares this Database
            await self.db.dispose()

    async def _read(self, query: Callable[[AsyncSession], Coroutine[Any, Any, T]]) -> T:
        try:
            async with self.db.reader(fresh=True) as session:
                return await query(session)
        except (SQLAlchemyError, OSError) as error:
            raise _unavailable(error) from error

    async def latest_version(self) -> int:
        async def query(session: AsyncSession) -> int:
            found = await session.scalar(select(func.max(edge_table.c.version)))
            return int(found or 0)

        return await self._read(query)

    async def read(self, version: int) -> TableRecord | None:
        async def query(session: AsyncSession) -> TableRecord | None:
            row = (
                await session.execute(select(edge_table).where(edge_table.c.version == version))
            ).first()
            return _record(row) if row else None

        return await self._read(query)

    async def read_recent(self, limit: int) -> list[TableRecord]:
        async def query(session: AsyncSession) -> list[TableRecord]:
            rows = await session.execute(
                select(edge_table).order_by(edge_table.c.version.desc()).limit(limit)
            )
            return [_record(row) for row in rows]

        return await self._read(query)

    async def insert(self, record: TableRecord) -> bool:
        try:
            async with self.db.writer() as session:
                await session.execute(
                    insert(edge_table).values(
                        version=record.version,
                        yaml=record.yaml,
                        created_at=record.created_at,
                        author=record.author[:255],
                        reason=record.reason,
                    )
                )
        except IntegrityError:
            return False
        except (SQLAlchemyError, OSError) as error:
            raise _unavailable(error) from error
        return True


def _record(row: Any) -> TableRecord:
    return TableRecord(
        version=row.version,
        yaml=row.yaml,
        author=row.author,
        reason=row.reason,
        created_at=_aware(row.created_at),
    )


class SqlStickyUploads:
    """`StickyUploads` on `wharf_edge_upload`, with a local cache in front.

    When the database fails, a pin is logged and skipped and a lookup answers None: the
    request is routed by the table, which is right unless the switch flipped during that
    upload. Failing every chunk of every upload instead would turn a database hiccup into
    an outage of all pushes.
    """

    PURGE_EVERY_S = 300.0

    def __init__(self, db: Database, *, ttl: float) -> None:
        self.db, self.ttl = db, ttl
        self._local = LocalPins(ttl)
        self._log = RateLimitedLog(log)
        self._purged = time.monotonic()
        self._schema = False

    @asynccontextmanager
    async def _writer(self) -> AsyncIterator[AsyncSession]:
        if not self._schema:
            await ensure_schema(self.db)
            self._schema = True
        async with self.db.writer() as session:
            yield session

    def _upsert(self, session_id: str, upstream: str) -> Any:
        values = {
            "session_id": session_id,
            "upstream": upstream,
            "expires_at": now() + timedelta(seconds=self.ttl),
        }
        dialect = postgresql if self.db.dialect == "postgresql" else sqlite
        statement = dialect.insert(edge_upload).values(**values)
        return statement.on_conflict_do_update(
            index_elements=[edge_upload.c.session_id],
            set_={"upstream": upstream, "expires_at": values["expires_at"]},
        )

    async def pin(self, session_id: str, upstream: str) -> None:
        self._local.put(session_id, upstream)
        try:
            async with self._writer() as session:
                await session.execute(self._upsert(session_id, upstream))
                if time.monotonic() - self._purged > self.PURGE_EVERY_S:
                    self._purged = time.monotonic()
                    await session.execute(
                        delete(edge_upload).where(edge_upload.c.expires_at < now())
                    )
        except (SQLAlchemyError, OSError, StoreUnavailable) as error:
            self._log.warning("pin", f"cannot store upload pin: {_unavailable(error)}")

    async def upstream_of(self, session_id: str) -> str | None:
        cached = self._local.get(session_id)
        if cached is not None:
            upstream, stale = cached
            if stale:
                await self._touch(session_id, upstream)
            return upstream
        try:
            async with self.db.reader(fresh=True) as session:
                found = await session.scalar(
                    select(edge_upload.c.upstream).where(
                        edge_upload.c.session_id == session_id, edge_upload.c.expires_at > now()
                    )
                )
        except (SQLAlchemyError, OSError) as error:
            self._log.warning("lookup", f"cannot read upload pins: {_unavailable(error)}")
            return None
        if found is None:
            return None  # not cached: a pin may appear later (written by another replica)
        self._local.put(session_id, str(found))
        return str(found)

    async def _touch(self, session_id: str, upstream: str) -> None:
        self._local.put(session_id, upstream)
        try:
            async with self._writer() as session:
                await session.execute(
                    update(edge_upload)
                    .where(edge_upload.c.session_id == session_id)
                    .values(expires_at=now() + timedelta(seconds=self.ttl))
                )
        except (SQLAlchemyError, OSError, StoreUnavailable) as error:
            self._log.warning("pin", f"cannot extend upload pin: {_unavailable(error)}")

    async def release(self, session_id: str) -> None:
        self._local.drop(session_id)
        try:
            async with self._writer() as session:
                await session.execute(
                    delete(edge_upload).where(edge_upload.c.session_id == session_id)
                )
        except (SQLAlchemyError, OSError, StoreUnavailable) as error:
            self._log.warning("release", f"cannot remove upload pin: {_unavailable(error)}")
