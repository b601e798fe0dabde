"""Wharf's schema against Quay's real DDL, on PostgreSQL, column by column.

One database is built from quay-schema.sql (Quay's migrations at head, dumped by pg_dump),
another by Wharf's Alembic migration; every table Wharf models must come out the same in
both: columns (type, length, nullability, default), unique indexes, all index definitions
and names, primary and foreign keys. The differences Wharf makes on purpose are listed here,
and nowhere else.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from tests.integration.db.introspect import PgSchema, pg_schema
from tests.integration.db.quay_schema import (
    QUAY_HEAD,
    LoadReport,
    load_quay_schema,
    quay_schema_sql,
)
from tests.postgres import create_database, drop_database
from wharf.db.migrate import upgrade_database
from wharf.db.models import Base

pytestmark = pytest.mark.server("postgres")

WHARF_TABLES = set(Base.metadata.tables)

# (table, column) -> why the database default differs.
DEFAULT_DIFFERENCES = {
    ("blobupload", "created"): "Quay's default is its migration's run time, frozen; Wharf has none",
}
# Constraints Quay has and Wharf does not create (table -> constraint name).
MISSING_CONSTRAINTS = {
    # Wharf does not create Quay's `team` table. (The loader skips it too: `team` is not dumped.)
    "repositorypermission": {"fk_repositorypermission_team_id_team"},
}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def both(postgres_url: str) -> AsyncIterator[tuple[PgSchema, PgSchema]]:
    """(Quay's schema, Wharf's schema), read once for the whole module."""
    quay_schema_sql()  # skip (or fail under CI) before creating anything if the file is absent
    quay_url = await create_database(postgres_url, prefix="quay_test")
    wharf_url = await create_database(postgres_url)
    try:
        await load_quay_schema(quay_url)
        await upgrade_database(wharf_url)
        yield await pg_schema(quay_url, WHARF_TABLES), await pg_schema(wharf_url, WHARF_TABLES)
    finally:
        await drop_database(quay_url)
        await drop_database(wharf_url)


def test_the_reference_ddl_loads_with_only_known_skips(quay_db: tuple[str, LoadReport]) -> None:
    _url, report = quay_db
    skipped = sorted(s.split("ADD CONSTRAINT ")[1].split()[0] for s in report.skipped)
    # Foreign keys to tables pg_dump -t left out of the file; nothing else.
    assert skipped == [
        "fk_imagestoragesignature_kind_id_imagestoragesignaturekind",
        "fk_repositorypermission_team_id_team",
        "fk_servicekey_approval_id_servicekeyapproval",
    ]
    assert report.tables >= WHARF_TABLES, WHARF_TABLES - report.tables


def test_every_wharf_table_exists_in_quay_schema(both: tuple[PgSchema, PgSchema]) -> None:
    quay, wharf = both
    assert set(quay.columns) == WHARF_TABLES
    assert set(wharf.columns) == WHARF_TABLES


@pytest.mark.parametrize("table", sorted(WHARF_TABLES))
def test_columns_match(both: tuple[PgSchema, PgSchema], table: str) -> None:
    quay, wharf = both
    quay_columns, wharf_columns = quay.columns[table], wharf.columns[table]
    assert set(wharf_columns) == set(quay_columns), "column names differ"
    for name, (kind, length, nullable, default) in quay_columns.items():
        w_kind, w_length, w_nullable, w_default = wharf_columns[name]
        where = f"{table}.{name}"
        assert (w_kind, w_length) == (kind, length), f"{where}: type"
        assert w_nullable == nullable, f"{where}: nullability"
        if (table, name) in DEFAULT_DIFFERENCES:
            assert w_default != default
        else:
            assert w_default == default, f"{where}: database default"


@pytest.mark.parametrize("table", sorted(WHARF_TABLES))
def test_unique_constraints_match(both: tuple[PgSchema, PgSchema], table: str) -> None:
    """Quay makes every uniqueness a UNIQUE INDEX (none are constraints): so must Wharf."""
    quay, wharf = both
    assert wharf.unique_indexes.get(table, {}) == quay.unique_indexes.get(table, {})
    assert wharf.unique_constraints.get(table, set()) == quay.unique_constraints.get(table, set())


@pytest.mark.parametrize("table", sorted(WHARF_TABLES))
def test_indexes_match_by_name_and_definition(both: tuple[PgSchema, PgSchema], table: str) -> None:
    quay, wharf = both
    assert wharf.indexes.get(table, {}) == quay.indexes.get(table, {})


@pytest.mark.parametrize("table", sorted(WHARF_TABLES))
def test_primary_and_foreign_keys_match(both: tuple[PgSchema, PgSchema], table: str) -> None:
    quay, wharf = both
    expected = {
        name: definition
        for name, definition in quay.constraints.get(table, {}).items()
        if name not in MISSING_CONSTRAINTS.get(table, set())
    }
    assert wharf.constraints.get(table, {}) == expected


async def test_quay_database_keeps_its_own_alembic_history(
    quay_db: tuple[str, LoadReport],
) -> None:
    import asyncpg

    from tests.postgres import asyncpg_dsn

    url, _ = quay_db
    connection = await asyncpg.connect(asyncpg_dsn(url))
    try:
        assert await connection.fetchval("SELECT version_num FROM alembic_version") == QUAY_HEAD
    finally:
        await connection.close()
