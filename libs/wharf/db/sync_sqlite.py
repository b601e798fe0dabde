"""Plain (pysqlite) engines on a SQLite file, used from threads by `Database.read` and
`Database.write`: a whole transaction in one thread-pool hop instead of aiosqlite's hop per
statement, per BEGIN and per COMMIT (see engine.py)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.exc import DBAPIError

if TYPE_CHECKING:
    from wharf.db.engine import PoolSettings


def make_sync_sqlite_reader(url: URL, pool: PoolSettings, busy_timeout_ms: int) -> Engine:
    """Query-only connections with a deferred BEGIN; no WAL switch (the async engines make
    it; it persists in the file)."""
    return _make(
        url,
        busy_timeout_ms,
        writer=False,
        pool_size=pool.pool_size,
        max_overflow=pool.max_overflow,
        pool_timeout=pool.pool_timeout,
        pool_recycle=pool.pool_recycle,
    )


def make_sync_sqlite_writer(url: URL, busy_timeout_ms: int) -> Engine:
    """One connection that writes with `BEGIN IMMEDIATE`, as the async writer does, so the
    two queue on the busy timeout instead of failing when a read turns into a write."""
    return _make(url, busy_timeout_ms, writer=True, pool_size=1, max_overflow=0)


def _make(url: URL, busy_timeout_ms: int, *, writer: bool, **pool: Any) -> Engine:
    engine = create_engine(
        url.set(drivername="sqlite"),
        **pool,
        connect_args={"timeout": busy_timeout_ms / 1000, "check_same_thread": False},
    )
    begin = "BEGIN IMMEDIATE" if writer else "BEGIN"

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            cursor.execute("PRAGMA foreign_keys = ON")
            if writer:
                # Per connection, like the async writer's: WAL commits without an fsync.
                cursor.execute("PRAGMA synchronous = NORMAL")
            else:
                cursor.execute("PRAGMA query_only = ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        connection.exec_driver_sql(begin)

    return engine


# -- one statement straight on the DB-API connection (hot paths) ------------------------------


def fetch_one_raw(engine: Engine, sql: str, params: Mapping[str, Any]) -> Sequence[Any] | None:
    """The first row of `sql` (`:name` parameters, which sqlite3 understands), or None."""
    with _as_sqlalchemy_errors(sql, params):
        connection = engine.raw_connection()
        try:
            row: Sequence[Any] | None = connection.cursor().execute(sql, params).fetchone()
            return row
        finally:
            connection.close()


def execute_raw(engine: Engine, sql: str, params: Mapping[str, Any]) -> int:
    """Run one write statement in a transaction of its own; the number of rows it changed."""
    with _as_sqlalchemy_errors(sql, params):
        connection = engine.raw_connection()
        try:
            cursor = connection.cursor()
            # Not an implicit transaction: in WAL mode its read snapshot could go stale
            # before it takes the write lock, which fails at once instead of waiting out
            # the busy timeout.
            cursor.execute("BEGIN IMMEDIATE")
            try:
                changed: int = cursor.execute(sql, params).rowcount
            except BaseException:
                cursor.execute("ROLLBACK")
                raise
            cursor.execute("COMMIT")
            return changed
        finally:
            connection.close()


@contextmanager
def _as_sqlalchemy_errors(sql: str, params: Mapping[str, Any]) -> Iterator[None]:
    """DB-API errors raised outside SQLAlchemy, wrapped as SQLAlchemy wraps them (a locked
    file is an `OperationalError`), so callers handle one family of errors."""
    try:
        yield
    except sqlite3.Error as error:
        raise DBAPIError.instance(sql, dict(params), error, sqlite3.Error) from error
