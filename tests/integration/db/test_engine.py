"""`Database`: SQLite pragmas and transaction modes, reader/writer split, bounded pools."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

import pytest
import sqlalchemy.exc
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from wharf.db import Database, DatabaseConfigError, PoolSettings, async_url
from wharf.db.migrate import upgrade_database
from wharf.db.models import ImageStorageLocation


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgresql://u:p@db:5432/quay", "postgresql+asyncpg://u:***@db:5432/quay"),
        ("postgres://u@db/quay", "postgresql+asyncpg://u@db/quay"),
        ("postgresql+asyncpg://u@db/quay", "postgresql+asyncpg://u@db/quay"),
        ("sqlite:////var/lib/wharf/wharf.db", "sqlite+aiosqlite:////var/lib/wharf/wharf.db"),
    ],
)
def test_urls_get_the_async_driver(given: str, expected: str) -> None:
    assert str(async_url(given)) == expected


@pytest.mark.parametrize("url", ["mysql://u@db/quay", "postgresql+psycopg2://u@db/quay"])
def test_unsupported_urls_are_refused(url: str) -> None:
    with pytest.raises(DatabaseConfigError, match="unsupported database URL scheme"):
        async_url(url)


def test_pool_settings_are_checked() -> None:
    with pytest.raises(DatabaseConfigError, match="pool_size"):
        PoolSettings(pool_size=0)


async def test_sqlite_connections_use_wal_busy_timeout_and_foreign_keys(sqlite_url: str) -> None:
    async with Database(sqlite_url, sqlite_busy_timeout_ms=1234) as db:
        async with db.writer() as session:
            pragmas = {
                name: (await session.execute(text(f"PRAGMA {name}"))).scalar()
                for name in ("journal_mode", "busy_timeout", "foreign_keys", "query_only")
            }
        assert pragmas == {
            "journal_mode": "wal",
            "busy_timeout": 1234,
            "foreign_keys": 1,
            "query_only": 0,
        }
        async with db.reader() as session:
            assert (await session.execute(text("PRAGMA query_only"))).scalar() == 1
        assert db.reader_engine is not db.writer_engine  # separate pool for readers


async def test_writer_commits_or_rolls_back_and_readers_see_commits(sqlite_url: str) -> None:
    await upgrade_database(sqlite_url)
    async with Database(sqlite_url) as db:
        async with db.writer() as session:
            session.add(ImageStorageLocation(name="default"))

        async def write_then_fail() -> None:
            async with db.writer() as session:
                session.add(ImageStorageLocation(name="rolled-back"))
                await session.flush()
                raise RuntimeError("abort")

        with pytest.raises(RuntimeError):
            await write_then_fail()
        async with db.reader() as session:
            names = set((await session.execute(select(ImageStorageLocation.name))).scalars())
        assert "default" in names
        assert "rolled-back" not in names
        with pytest.raises(sqlalchemy.exc.OperationalError, match=r"readonly|read-only"):
            async with db.reader() as session:
                await session.execute(text("DELETE FROM imagestoragelocation"))


def _names(session: Session) -> set[str]:
    return set(session.execute(select(ImageStorageLocation.name)).scalars())


async def _write_commits_or_rolls_back(db: Database) -> None:
    def add(session: Session) -> str:
        session.add(ImageStorageLocation(name="written"))
        session.flush()
        return threading.current_thread().name

    def add_then_fail(session: Session) -> None:
        session.add(ImageStorageLocation(name="rolled-back"))
        session.flush()
        raise RuntimeError("abort")

    thread = await db.write(add)
    with pytest.raises(RuntimeError, match="abort"):
        await db.write(add_then_fail)
    names = await db.read(_names, fresh=True)
    assert "written" in names
    assert "rolled-back" not in names
    if db.dialect == "sqlite":
        assert thread.startswith("wharf-sqlite-write")  # one hop for the whole transaction
    else:
        assert thread == threading.main_thread().name  # run_sync on the event loop's thread


async def test_write_commits_or_rolls_back_in_one_hop_on_sqlite(sqlite_url: str) -> None:
    await upgrade_database(sqlite_url)
    async with Database(sqlite_url) as db:
        await _write_commits_or_rolls_back(db)

        def pragmas(session: Session) -> tuple[object, ...]:
            return tuple(
                session.execute(text(f"PRAGMA {name}")).scalar()
                for name in ("synchronous", "foreign_keys", "query_only")
            )

        assert await db.write(pragmas) == (1, 1, 0)  # NORMAL, like the async writer


async def test_write_and_async_writers_queue_on_one_sqlite_file(sqlite_url: str) -> None:
    """The writer thread and the async writer pool take turns through BEGIN IMMEDIATE."""
    await upgrade_database(sqlite_url)
    async with Database(sqlite_url) as db:

        def add(index: int) -> Callable[[Session], None]:
            def statements(session: Session) -> None:
                session.add(ImageStorageLocation(name=f"thread-{index}"))

            return statements

        async def add_async(index: int) -> None:
            async with db.writer() as session:
                session.add(ImageStorageLocation(name=f"async-{index}"))
                await asyncio.sleep(0.005)

        await asyncio.gather(
            *(db.write(add(i)) for i in range(10)), *(add_async(i) for i in range(10))
        )
        names = await db.read(_names)
        assert {f"thread-{i}" for i in range(10)} | {f"async-{i}" for i in range(10)} <= names


@pytest.mark.server("postgres")
async def test_write_commits_or_rolls_back_on_postgresql(pg_url: str) -> None:
    await upgrade_database(pg_url)
    async with Database(pg_url) as db:
        await _write_commits_or_rolls_back(db)
        await _one_statement_reads_and_writes(db)


RENAME = text("UPDATE imagestoragelocation SET name = :new WHERE name = :old")
BY_NAME = text("SELECT id, name FROM imagestoragelocation WHERE name = :name")


async def _one_statement_reads_and_writes(db: Database) -> None:
    await db.write(
        lambda session: session.add_all(ImageStorageLocation(name=n) for n in ("before", "taken"))
    )
    assert await db.execute(RENAME, {"new": "after", "old": "before"}) == 1
    assert await db.execute(RENAME, {"new": "again", "old": "before"}) == 0
    row = await db.fetch_one(BY_NAME, {"name": "after"}, fresh=True)
    assert row is not None
    assert row[1] == "after"
    assert await db.fetch_one(BY_NAME, {"name": "before"}, fresh=True) is None
    # Errors come wrapped as SQLAlchemy wraps them, whichever path ran the statement.
    with pytest.raises(sqlalchemy.exc.DBAPIError):
        await db.fetch_one(text("SELECT nope FROM imagestoragelocation"), {})
    with pytest.raises(sqlalchemy.exc.IntegrityError):  # the name is unique
        await db.execute(RENAME, {"new": "taken", "old": "after"})
    assert await db.fetch_one(BY_NAME, {"name": "after"}, fresh=True) is not None


async def test_one_statement_reads_and_writes_on_sqlite(sqlite_url: str) -> None:
    await upgrade_database(sqlite_url)
    async with Database(sqlite_url) as db:
        await _one_statement_reads_and_writes(db)


async def test_a_locked_sqlite_file_is_an_operational_error_on_the_raw_path(
    sqlite_url: str,
) -> None:
    await upgrade_database(sqlite_url)
    async with (
        Database(sqlite_url, sqlite_busy_timeout_ms=100) as db,
        db.writer() as session,  # holds the write lock past the busy timeout
    ):
        await session.execute(text("DELETE FROM imagestoragelocation WHERE name = 'x'"))
        with pytest.raises(sqlalchemy.exc.OperationalError, match="locked"):
            await db.execute(RENAME, {"new": "a", "old": "b"})


async def test_sqlite_writers_queue_instead_of_failing(sqlite_url: str) -> None:
    """Read-then-write transactions in parallel: BEGIN IMMEDIATE + busy timeout serialise them."""
    await upgrade_database(sqlite_url)
    async with Database(sqlite_url, pool=PoolSettings(pool_size=8, max_overflow=0)) as db:

        async def add(i: int) -> None:
            async with db.writer() as session:
                count = (
                    await session.execute(select(func.count()).select_from(ImageStorageLocation))
                ).scalar_one()
                await asyncio.sleep(0.01)
                session.add(ImageStorageLocation(name=f"loc-{i}-{count}"))

        await asyncio.gather(*(add(i) for i in range(16)))
        async with db.reader() as session:
            total = (
                await session.execute(select(func.count()).select_from(ImageStorageLocation))
            ).scalar_one()
        assert total == 8 + 16


@pytest.mark.server("postgres")
async def test_postgresql_pool_is_bounded(pg_url: str) -> None:
    settings = PoolSettings(pool_size=1, max_overflow=0, pool_timeout=0.5)
    async with Database(pg_url, pool=settings) as db:
        assert db.dialect == "postgresql"
        assert db.reader_engine is db.writer_engine  # no replica configured
        async with db.writer() as session:
            await session.execute(text("SELECT 1"))
            with pytest.raises(sqlalchemy.exc.TimeoutError):
                async with db.writer() as other:
                    await other.execute(text("SELECT 1"))
        async with db.writer() as session:  # the connection went back to the pool
            assert (await session.execute(text("SELECT 1"))).scalar() == 1


@pytest.mark.server("postgres")
async def test_postgresql_reader_engine_and_fresh_reads(pg_url: str) -> None:
    await upgrade_database(pg_url)
    async with Database(pg_url, reader_url=pg_url) as db:
        assert db.reader_engine is not db.writer_engine
        async with db.writer() as session:
            session.add(ImageStorageLocation(name="default"))
        for fresh in (False, True):
            async with db.reader(fresh=fresh) as session:
                names = set((await session.execute(select(ImageStorageLocation.name))).scalars())
                assert "default" in names
                bind = session.get_bind()
                expected = db.writer_engine if fresh else db.reader_engine
                assert bind is expected.sync_engine
        async with db.reader() as session:
            app = (await session.execute(text("SHOW application_name"))).scalar()
        assert app == "wharf"
