"""Engines and sessions: one writer, an optional reader (read replica), bounded pools.

One `Database` per process: its pools are shared by every request. Sessions are short: open
one around the queries, close it before streaming bytes to a client, so that a slow download
never holds a database connection.

SQLite (`sqlite+aiosqlite:///path`) runs in WAL mode with a busy timeout and foreign keys on.
Writer transactions start with `BEGIN IMMEDIATE`, so two writers queue on the busy timeout
instead of failing when a read transaction tries to become a write one; reads use a second
pool on the same file with plain `BEGIN` and `PRAGMA query_only`, and never wait for writers.
PostgreSQL goes through asyncpg (`postgresql+asyncpg://`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool, StaticPool
from sqlalchemy.sql.elements import TextClause
from sqlalchemy.util.concurrency import await_

from wharf.db.sync_sqlite import (
    execute_raw,
    fetch_one_raw,
    make_sync_sqlite_reader,
    make_sync_sqlite_writer,
)

# Schemes people write in configs (Quay's DB_URI is `postgresql://...`) -> the async driver.
_ASYNC_DRIVERS = {
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
    "postgresql+asyncpg": "postgresql+asyncpg",
    "sqlite": "sqlite+aiosqlite",
    "sqlite+aiosqlite": "sqlite+aiosqlite",
}


T = TypeVar("T")


class DatabaseConfigError(ValueError):
    """A database URL or pool setting Wharf cannot use."""


def async_url(url: str | URL) -> URL:
    """Parse a database URL and switch it to Wharf's async driver for that database."""
    parsed = make_url(url)
    driver = _ASYNC_DRIVERS.get(parsed.drivername)
    if driver is None:
        raise DatabaseConfigError(
            f"unsupported database URL scheme {parsed.drivername!r}: use "
            "postgresql+asyncpg://user:password@host/db or sqlite+aiosqlite:///path/to/file.db"
        )
    return parsed.set(drivername=driver)


def is_sqlite(url: URL) -> bool:
    return url.get_backend_name() == "sqlite"


def is_memory_sqlite(url: URL) -> bool:
    return is_sqlite(url) and url.database in (None, "", ":memory:")


@dataclass(frozen=True)
class PoolSettings:
    """Bounds of one engine's connection pool (ignored for in-memory SQLite)."""

    pool_size: int = 5
    max_overflow: int = 10
    pool_timeout: float = 30.0  # seconds to wait for a free connection
    pool_recycle: int = 1800  # seconds; -1 keeps connections forever
    pool_pre_ping: bool = True

    def __post_init__(self) -> None:
        if self.pool_size < 1 or self.max_overflow < 0 or self.pool_timeout <= 0:
            raise DatabaseConfigError(
                f"invalid pool settings: pool_size={self.pool_size} (>= 1), "
                f"max_overflow={self.max_overflow} (>= 0), pool_timeout={self.pool_timeout} (> 0)"
            )


def make_engine(
    url: str | URL,
    *,
    pool: PoolSettings | None = None,
    sqlite_writer: bool = True,
    sqlite_busy_timeout_ms: int = 5000,
    application_name: str = "wharf",
    echo: bool = False,
) -> AsyncEngine:
    """Build one async engine. `pool=None` means no pooling (one connection per use).

    For SQLite, `sqlite_writer` chooses `BEGIN IMMEDIATE` (writer) or a deferred, query-only
    reader.
    """
    parsed = async_url(url)
    kwargs: dict[str, Any] = {"echo": echo}
    if is_memory_sqlite(parsed):
        kwargs["poolclass"] = StaticPool
        kwargs["connect_args"] = {"check_same_thread": False}
    elif pool is None:
        kwargs["poolclass"] = NullPool
    else:
        kwargs.update(
            pool_size=pool.pool_size,
            max_overflow=pool.max_overflow,
            pool_timeout=pool.pool_timeout,
            pool_recycle=pool.pool_recycle,
            # A SQLite file cannot go away under a pooled connection: no ping round trip.
            pool_pre_ping=pool.pool_pre_ping and not is_sqlite(parsed),
        )
    if is_sqlite(parsed):
        connect_args = kwargs.setdefault("connect_args", {})
        connect_args["timeout"] = sqlite_busy_timeout_ms / 1000
    else:
        kwargs["connect_args"] = {"server_settings": {"application_name": application_name}}
    engine = create_async_engine(parsed, **kwargs)
    if is_sqlite(parsed):
        _configure_sqlite(
            engine,
            writer=sqlite_writer,
            busy_timeout_ms=sqlite_busy_timeout_ms,
            wal=not is_memory_sqlite(parsed),
        )
    return engine


def _enable_wal(cursor: Any, busy_timeout_ms: int) -> None:
    """Put the database file in WAL mode (a setting stored in the file itself).

    Changing the journal mode can fail with "database is locked" at once, without waiting
    for the busy timeout, while another connection writes (say, a concurrent migration):
    so it is skipped when the file is already in WAL mode, and retried until the timeout.
    """
    cursor.execute("PRAGMA journal_mode")
    if str(cursor.fetchone()[0]).lower() == "wal":
        return
    deadline = time.monotonic() + busy_timeout_ms / 1000
    while True:
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except Exception as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            # Connect handlers run in SQLAlchemy's greenlet on the event loop: wait async.
            await_(asyncio.sleep(0.02))


def _configure_sqlite(
    engine: AsyncEngine, *, writer: bool, busy_timeout_ms: int, wal: bool
) -> None:
    begin = "BEGIN IMMEDIATE" if writer else "BEGIN"

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # The driver must not open transactions on its own: SQLAlchemy emits BEGIN below.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            if wal:
                _enable_wal(cursor, busy_timeout_ms)
                cursor.execute("PRAGMA synchronous = NORMAL")
            cursor.execute("PRAGMA foreign_keys = ON")
            if not writer:
                cursor.execute("PRAGMA query_only = ON")
        finally:
            cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Connection) -> None:
        connection.exec_driver_sql(begin)


@dataclass
class Database:
    """The writer engine, the reader engine and their session factories.

    - `async with db.writer() as session:` one transaction on the primary, committed when the
      block ends, rolled back if it raises.
    - `async with db.reader() as session:` reads from the replica when `reader_url` is set
      (otherwise from the primary). `db.reader(fresh=True)` reads from the primary, for a
      request that wrote and must see its own writes. Nothing is committed.
    """

    url: str | URL
    reader_url: str | URL | None = None
    pool: PoolSettings = field(default_factory=PoolSettings)
    reader_pool: PoolSettings | None = None
    sqlite_busy_timeout_ms: int = 5000
    echo: bool = False

    def __post_init__(self) -> None:
        writer_url = async_url(self.url)
        self.writer_engine: AsyncEngine = make_engine(
            writer_url,
            pool=self.pool,
            sqlite_busy_timeout_ms=self.sqlite_busy_timeout_ms,
            echo=self.echo,
        )
        self.has_replica = self.reader_url is not None
        if self.reader_url is not None:
            reader_url = async_url(self.reader_url)
        elif is_sqlite(writer_url) and not is_memory_sqlite(writer_url):
            reader_url = writer_url  # same file, separate pool of deferred, query-only readers
        else:
            reader_url = None
        if reader_url is None:
            self.reader_engine: AsyncEngine = self.writer_engine
        else:
            self.reader_engine = make_engine(
                reader_url,
                pool=self.reader_pool or self.pool,
                sqlite_writer=False,
                sqlite_busy_timeout_ms=self.sqlite_busy_timeout_ms,
                echo=self.echo,
            )
        self._writer_sessions = async_sessionmaker(self.writer_engine, expire_on_commit=False)
        self._reader_sessions = async_sessionmaker(self.reader_engine, expire_on_commit=False)
        self._sync_reads: sessionmaker[Session] | None = None
        self._read_threads: ThreadPoolExecutor | None = None
        self._sync_writes: sessionmaker[Session] | None = None
        self._write_thread: ThreadPoolExecutor | None = None
        if is_sqlite(writer_url) and not is_memory_sqlite(writer_url):
            writer_engine = make_sync_sqlite_writer(writer_url, self.sqlite_busy_timeout_ms)
            self._sync_writes = sessionmaker(writer_engine, expire_on_commit=False)
            self._write_thread = ThreadPoolExecutor(
                max_workers=1, thread_name_prefix="wharf-sqlite-write"
            )
        if reader_url is not None and is_sqlite(reader_url) and not self.has_replica:
            read_pool = self.reader_pool or self.pool
            sync_engine = make_sync_sqlite_reader(
                reader_url, read_pool, self.sqlite_busy_timeout_ms
            )
            self._sync_reads = sessionmaker(sync_engine, expire_on_commit=False)
            self._read_threads = ThreadPoolExecutor(
                max_workers=read_pool.pool_size, thread_name_prefix="wharf-sqlite-read"
            )

    @property
    def dialect(self) -> str:
        """`postgresql` or `sqlite`."""
        return self.writer_engine.dialect.name

    @asynccontextmanager
    async def writer(self) -> AsyncIterator[AsyncSession]:
        async with self._writer_sessions() as session, session.begin():
            yield session

    @asynccontextmanager
    async def reader(self, *, fresh: bool = False) -> AsyncIterator[AsyncSession]:
        # A SQLite reader reads the writer's file, so it always sees committed writes.
        use_primary = fresh and self.has_replica
        factory = self._writer_sessions if use_primary else self._reader_sessions
        async with factory() as session:
            yield session

    async def read(self, query: Callable[[Session], T], *, fresh: bool = False) -> T:
        """Run `query` (plain synchronous ORM code, returning plain values) in one read
        transaction. On a SQLite file it runs in a reader thread: one hop for the whole
        query instead of one per statement and per BEGIN/ROLLBACK, which made aiosqlite the
        largest cost of a manifest GET. Elsewhere it runs on the async reader (`run_sync`)."""
        if self._sync_reads is not None and self._read_threads is not None:
            sessions = self._sync_reads

            def run() -> T:
                with sessions() as session:
                    return query(session)

            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._read_threads, run)
        async with self.reader(fresh=fresh) as session:
            return await session.run_sync(query)

    async def write(self, statements: Callable[[Session], T]) -> T:
        """Run `statements` (plain synchronous ORM or Core code, returning plain values) in
        one write transaction: committed when it returns, rolled back if it raises.

        On a SQLite file it runs on the one writer thread: `BEGIN IMMEDIATE`, the statements
        and `COMMIT` in a single hop. Through aiosqlite each of them is a hop of its own, and
        saving an upload's row after every chunk took 1.5-2 ms that way while a push kept
        both CPUs busy. Elsewhere it runs in an async writer session (`run_sync`)."""
        if self._sync_writes is not None and self._write_thread is not None:
            sessions = self._sync_writes

            def run() -> T:
                with sessions() as session, session.begin():
                    return statements(session)

            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._write_thread, run)
        async with self.writer() as session:
            return await session.run_sync(statements)

    async def fetch_one(
        self, statement: TextClause, params: Mapping[str, Any], *, fresh: bool = False
    ) -> Sequence[Any] | None:
        """The first row of one plain SQL statement (`text()`, `:name` parameters), or None.

        For statements on a hot path: on a SQLite file it runs straight on the DB-API
        connection in a reader thread, without an ORM session (6 us instead of 120 us for an
        upload's lookup, several times more while a push keeps the CPUs busy)."""
        if self._sync_reads is not None and self._read_threads is not None:
            engine, sql = self._sync_reads.kw["bind"], str(statement)
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(
                self._read_threads, fetch_one_raw, engine, sql, params
            )
        async with self.reader(fresh=fresh) as session:
            return (await session.execute(statement, params)).first()

    async def execute(self, statement: TextClause, params: Mapping[str, Any]) -> int:
        """Run one plain SQL write statement as a transaction of its own; the number of rows
        it changed. On a SQLite file: straight on the writer thread's DB-API connection, in
        `BEGIN IMMEDIATE` like every SQLite write, for the same reason as `fetch_one`."""
        if self._sync_writes is not None and self._write_thread is not None:
            engine, sql = self._sync_writes.kw["bind"], str(statement)
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._write_thread, execute_raw, engine, sql, params)
        async with self.writer() as session:
            result = await session.execute(statement, params)
            return int(result.rowcount)  # type: ignore[attr-defined]

    async def dispose(self) -> None:
        for factory in (self._sync_reads, self._sync_writes):
            if factory is not None:
                engine = factory.kw["bind"]
                assert isinstance(engine, Engine)
                engine.dispose()
        for threads in (self._read_threads, self._write_thread):
            if threads is not None:
                threads.shutdown(wait=False)
        if self.reader_engine is not self.writer_engine:
            await self.reader_engine.dispose()
        await self.writer_engine.dispose()

    async def __aenter__(self) -> Database:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.dispose()
