"""Read a database's schema back: PostgreSQL's catalog, or a portable snapshot of anything."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, inspect, select, table
from sqlalchemy.engine import Connection

from tests.postgres import asyncpg_dsn
from wharf.db.engine import make_engine

Column = tuple[str, int | None, str, str | None]  # data_type, length, is_nullable, default


@dataclass
class PgSchema:
    columns: dict[str, dict[str, Column]]  # table -> column -> description
    indexes: dict[str, dict[str, str]]  # table -> index name -> pg_get_indexdef
    unique_indexes: dict[str, dict[str, str]]  # the UNIQUE ones (primary keys excluded)
    unique_constraints: dict[str, set[str]]  # table -> UNIQUE constraint definitions
    constraints: dict[str, dict[str, str]]  # table -> PK/FK name -> pg_get_constraintdef


async def pg_schema(url: str, tables: set[str]) -> PgSchema:
    import asyncpg

    connection = await asyncpg.connect(asyncpg_dsn(url))
    try:
        names = sorted(tables)
        schema = PgSchema({}, {}, {}, {}, {})
        for row in await connection.fetch(
            """
            SELECT table_name, column_name, data_type, character_maximum_length,
                   is_nullable, column_default
            FROM information_schema.columns
            WHERE table_schema = 'public' AND table_name = ANY($1::text[])
            """,
            names,
        ):
            schema.columns.setdefault(row["table_name"], {})[row["column_name"]] = (
                row["data_type"],
                row["character_maximum_length"],
                row["is_nullable"],
                row["column_default"],
            )
        for row in await connection.fetch(
            """
            SELECT t.relname AS table_name, i.relname AS index_name, x.indisunique,
                   x.indisprimary, pg_get_indexdef(x.indexrelid) AS definition
            FROM pg_index x
            JOIN pg_class i ON i.oid = x.indexrelid
            JOIN pg_class t ON t.oid = x.indrelid
            JOIN pg_namespace n ON n.oid = t.relnamespace
            WHERE n.nspname = 'public' AND t.relname = ANY($1::text[])
            """,
            names,
        ):
            if row["indisprimary"]:
                continue
            schema.indexes.setdefault(row["table_name"], {})[row["index_name"]] = row["definition"]
            if row["indisunique"]:
                schema.unique_indexes.setdefault(row["table_name"], {})[row["index_name"]] = row[
                    "definition"
                ]
        for row in await connection.fetch(
            """
            SELECT c.conrelid::regclass::text AS table_name, c.conname, c.contype,
                   pg_get_constraintdef(c.oid) AS definition
            FROM pg_constraint c
            WHERE c.connamespace = 'public'::regnamespace AND c.contype IN ('p', 'f', 'u')
            """
        ):
            table_name = row["table_name"].strip('"')
            if table_name not in tables:
                continue
            if row["contype"] == "u":
                schema.unique_constraints.setdefault(table_name, set()).add(row["definition"])
            else:
                schema.constraints.setdefault(table_name, {})[row["conname"]] = row["definition"]
        return schema
    finally:
        await connection.close()


def _snapshot(connection: Connection) -> dict[str, Any]:
    inspector = inspect(connection)
    result: dict[str, Any] = {}
    for name in sorted(inspector.get_table_names()):
        columns = [(c["name"], str(c["type"]), c["nullable"]) for c in inspector.get_columns(name)]
        indexes = sorted(
            (i["name"] or "", tuple(i["column_names"])) for i in inspector.get_indexes(name)
        )
        rows = connection.execute(select(func.count()).select_from(table(name))).scalar_one()
        result[name] = {"columns": columns, "indexes": indexes, "rows": rows}
    for version_table in ("alembic_version", "wharf_alembic_version"):
        if version_table in result:
            result[version_table]["content"] = sorted(
                connection.exec_driver_sql(f"SELECT version_num FROM {version_table}").scalars()
            )
    return result


async def snapshot(url: str) -> dict[str, Any]:
    """Every table's columns, indexes, row count, and the Alembic version tables' content."""
    engine = make_engine(url, pool=None, sqlite_writer=False)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(_snapshot)
    finally:
        await engine.dispose()
