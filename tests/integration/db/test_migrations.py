"""`upgrade_database`: creates Wharf's schema on an empty database, is a no-op at head, and
leaves a database that Quay manages exactly as it found it. On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import select, text
from sqlalchemy.engine import Connection

from tests.integration.db.introspect import snapshot
from tests.integration.db.quay_schema import QUAY_HEAD, LoadReport
from wharf.db import Database, ensure_seed_rows, ensure_storage_locations
from wharf.db.engine import make_engine
from wharf.db.migrate import (
    VERSION_TABLE,
    MigrationError,
    SchemaOwner,
    head_revision,
    schema_state,
    upgrade_database,
)
from wharf.db.models import Base, ImageStorageLocation, MediaType
from wharf.db.seed import MEDIA_TYPES, STORAGE_LOCATIONS, seed_rows

WHARF_TABLES = set(Base.metadata.tables)


async def test_upgrade_from_empty_creates_every_table_and_seed_row(empty_url: str) -> None:
    assert (await schema_state(empty_url)).owner is SchemaOwner.EMPTY
    await upgrade_database(empty_url)

    state = await schema_state(empty_url)
    assert state.owner is SchemaOwner.WHARF
    assert state.revision == head_revision() == "wharf_0001"
    assert state.registry_tables == WHARF_TABLES

    tables = await snapshot(empty_url)
    assert set(tables) >= WHARF_TABLES | {VERSION_TABLE}
    assert "alembic_version" not in tables  # Quay's version table is never created
    assert tables[VERSION_TABLE]["content"] == ["wharf_0001"]
    for table, rows in seed_rows().items():
        assert tables[table.name]["rows"] == len(rows), table.name
    async with Database(empty_url) as db, db.reader() as session:
        media = (await session.execute(select(MediaType.id, MediaType.name))).all()
        assert sorted(media) == list(enumerate(MEDIA_TYPES, start=1))


async def test_upgrade_twice_is_a_no_op(empty_url: str) -> None:
    await upgrade_database(empty_url)
    before = await snapshot(empty_url)
    await upgrade_database(empty_url)
    assert await snapshot(empty_url) == before


async def test_concurrent_upgrades_are_serialised(empty_url: str) -> None:
    await asyncio.gather(*(upgrade_database(empty_url) for _ in range(4)))
    tables = await snapshot(empty_url)
    assert tables[VERSION_TABLE]["content"] == ["wharf_0001"]
    assert tables["mediatype"]["rows"] == len(MEDIA_TYPES)


async def test_a_version_this_wharf_does_not_know_is_an_error(empty_url: str) -> None:
    await upgrade_database(empty_url)
    async with Database(empty_url) as db, db.writer() as session:
        await session.execute(text(f"UPDATE {VERSION_TABLE} SET version_num = 'wharf_9999'"))
    with pytest.raises(MigrationError, match="wharf_9999"):
        await upgrade_database(empty_url)


def _diff(connection: Connection) -> list[object]:
    context = MigrationContext.configure(
        connection, opts={"compare_type": True, "version_table": VERSION_TABLE}
    )

    def include(obj: object, name: str | None, kind: str, reflected: bool, _other: object) -> bool:
        # Quay's trigram search indexes exist only in the migration (PostgreSQL-specific).
        return not (kind == "index" and name is not None and name.endswith("__fulltext"))

    context.opts["include_object"] = include
    return list(compare_metadata(context, Base.metadata))


async def test_migration_and_models_agree(empty_url: str) -> None:
    """What the migration created is what the models describe (Alembic's autogenerate diff)."""
    await upgrade_database(empty_url)
    engine = make_engine(empty_url, pool=None, sqlite_writer=False)
    try:
        async with engine.connect() as connection:
            assert await connection.run_sync(_diff) == []
    finally:
        await engine.dispose()


async def test_ensure_seed_rows_restores_missing_rows_with_quays_ids(empty_url: str) -> None:
    await upgrade_database(empty_url)
    async with Database(empty_url) as db:
        async with db.writer() as session:
            await session.execute(text("DELETE FROM mediatype WHERE name = 'text/markdown'"))
            await session.execute(text("DELETE FROM tagkind"))
        async with db.writer() as session:
            assert await ensure_seed_rows(session) == 2
        async with db.writer() as session:
            assert await ensure_seed_rows(session) == 0
            # The sequence moved past the explicit ids: a new row gets the next free id.
            session.add(MediaType(name="application/x-new"))
        async with db.reader() as session:
            rows = dict((await session.execute(select(MediaType.name, MediaType.id))).all())
        assert rows["text/markdown"] == 3
        assert rows["application/x-new"] == len(MEDIA_TYPES) + 1


async def test_storage_locations_from_config_are_added_once(empty_url: str) -> None:
    await upgrade_database(empty_url)
    async with Database(empty_url) as db:
        async with db.writer() as session:
            first = await ensure_storage_locations(session, ["default", "local", "default"])
        async with db.writer() as session:
            again = await ensure_storage_locations(session, ["local", "default", "eu"])
        async with db.reader() as session:
            count = len((await session.execute(select(ImageStorageLocation))).all())
    assert first == {"default": len(STORAGE_LOCATIONS) + 1, "local": 7}
    assert again == {"local": 7, "default": 9, "eu": 10}
    assert count == len(STORAGE_LOCATIONS) + 2


@pytest.mark.server("postgres")
async def test_a_quay_postgresql_database_is_left_untouched(
    quay_db: tuple[str, LoadReport],
) -> None:
    url, _ = quay_db
    before = await snapshot(url)
    state = await schema_state(url)
    assert state.owner is SchemaOwner.FOREIGN
    assert state.registry_tables == WHARF_TABLES

    await upgrade_database(url)
    await upgrade_database(url)

    after = await snapshot(url)
    assert after == before
    assert VERSION_TABLE not in after
    assert after["alembic_version"]["content"] == [QUAY_HEAD]


def _quay_like_sqlite(path: Path) -> None:
    with sqlite3.connect(path) as connection:
        connection.executescript(
            f"""
            CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY);
            INSERT INTO alembic_version VALUES ('{QUAY_HEAD}');
            CREATE TABLE user (id INTEGER PRIMARY KEY, username VARCHAR(255) NOT NULL);
            INSERT INTO user (username) VALUES ('quay-admin');
            """
        )


@pytest.mark.parametrize("what", ["quay tables", "only quay's alembic_version"])
async def test_a_quay_sqlite_database_is_left_untouched(tmp_path: Path, what: str) -> None:
    path = tmp_path / "quay.db"
    _quay_like_sqlite(path)
    if what != "quay tables":
        with sqlite3.connect(path) as connection:
            connection.execute("DROP TABLE user")
    url = f"sqlite+aiosqlite:///{path}"
    before = await snapshot(url)
    assert (await schema_state(url)).owner is SchemaOwner.FOREIGN
    await upgrade_database(url)
    assert await snapshot(url) == before
