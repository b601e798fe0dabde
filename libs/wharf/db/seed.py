"""The rows Quay's migrations seed, and the storage locations Quay's boot adds from config.

Ids are Quay's: code may rely on names only, but a Wharf-created database gets the same ids a
Quay-created one has (`repository.kind_id` defaults to 1 = `image` in the database itself).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Table, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.sql.dml import Insert

from wharf.db.models import Base

VISIBILITIES: tuple[str, ...] = ("public", "private")
REPOSITORY_KINDS: tuple[str, ...] = ("image", "application")
TAG_KINDS: tuple[str, ...] = ("tag",)
ROLES: tuple[str, ...] = ("admin", "write", "read")
# (name, mutable)
LABEL_SOURCE_TYPES: tuple[tuple[str, bool], ...] = (
    ("manifest", False),
    ("api", True),
    ("internal", False),
)
MEDIA_TYPES: tuple[str, ...] = (
    "text/plain",
    "application/json",
    "text/markdown",
    "application/vnd.cnr.blob.v0.tar+gzip",
    "application/vnd.cnr.package-manifest.helm.v0.json",
    "application/vnd.cnr.package-manifest.kpm.v0.json",
    "application/vnd.cnr.package-manifest.docker-compose.v0.json",
    "application/vnd.cnr.package.kpm.v0.tar+gzip",
    "application/vnd.cnr.package.helm.v0.tar+gzip",
    "application/vnd.cnr.package.docker-compose.v0.tar+gzip",
    "application/vnd.cnr.manifests.v0.json",
    "application/vnd.cnr.manifest.list.v0.json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
    "application/vnd.docker.distribution.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
)
# The locations Quay's migrations create; config locations (e.g. `default`) come after them.
STORAGE_LOCATIONS: tuple[str, ...] = (
    "s3_us_east_1",
    "s3_eu_west_1",
    "s3_ap_southeast_1",
    "s3_ap_southeast_2",
    "s3_ap_northeast_1",
    "s3_sa_east_1",
    "local",
    "s3_us_west_1",
)


def _named(names: Iterable[str]) -> list[dict[str, Any]]:
    return [{"id": i, "name": name} for i, name in enumerate(names, start=1)]


def seed_rows() -> dict[Table, list[dict[str, Any]]]:
    """Every seed row, keyed by table, with Quay's ids (1-based, in Quay's order)."""
    tables = Base.metadata.tables
    return {
        tables["visibility"]: _named(VISIBILITIES),
        tables["repositorykind"]: _named(REPOSITORY_KINDS),
        tables["tagkind"]: _named(TAG_KINDS),
        tables["role"]: _named(ROLES),
        tables["labelsourcetype"]: [
            {"id": i, "name": name, "mutable": mutable}
            for i, (name, mutable) in enumerate(LABEL_SOURCE_TYPES, start=1)
        ],
        tables["mediatype"]: _named(MEDIA_TYPES),
        tables["imagestoragelocation"]: _named(STORAGE_LOCATIONS),
    }


Executor = AsyncConnection | AsyncSession


def _insert_ignoring_conflicts(dialect: str, table: Table) -> Insert:
    if dialect == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing()
    if dialect == "sqlite":
        return sqlite.insert(table).on_conflict_do_nothing()
    raise NotImplementedError(f"unsupported database dialect {dialect!r}")


def _insert_ignoring_name_conflicts(dialect: str, table: Table) -> Insert:
    if dialect == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing(index_elements=["name"])
    if dialect == "sqlite":
        return sqlite.insert(table).on_conflict_do_nothing(index_elements=["name"])
    raise NotImplementedError(f"unsupported database dialect {dialect!r}")


async def _advance_sequence(executor: Executor, table_name: str) -> None:
    """Move a serial sequence past the table's ids, never backwards.

    Rows copied in with explicit ids (a restored dump, Quay's seeds) leave the sequence
    behind; a sequence already ahead (ids used by rolled-back inserts) stays where it is, so
    a live Quay inserting at the same moment cannot be handed an id twice.
    """
    await executor.execute(
        text(
            "SELECT setval(s, GREATEST("  # noqa: S608 - table_name is one of ours, never input
            f"(SELECT COALESCE(max(id), 1) FROM {table_name}), nextval(s) - 1)) "
            f"FROM pg_get_serial_sequence('{table_name}', 'id') AS s"
        )
    )


def _dialect_name(executor: Executor) -> str:
    bind = executor.get_bind() if isinstance(executor, AsyncSession) else executor
    return bind.dialect.name


async def _sync_sequence(executor: Executor, table: Table) -> None:
    """After inserting explicit ids on PostgreSQL, move the serial sequence past them."""
    if _dialect_name(executor) != "postgresql":
        return
    quoted = table.name if table.name != "user" else '"user"'
    await executor.execute(
        text(
            f"SELECT setval(pg_get_serial_sequence('{quoted}', 'id'), "  # noqa: S608 - table names are ours
            f"(SELECT max(id) FROM {quoted}))"
        )
    )


async def ensure_seed_rows(executor: Executor) -> int:
    """Insert every missing seed row (matched by name), keeping Quay's id when it is free.

    Idempotent and safe to run concurrently (conflicts are ignored). Returns how many rows were
    missing (0 when there was nothing to do). Runs in the caller's transaction; the caller
    commits.
    """
    dialect = _dialect_name(executor)
    missing_count = 0
    for table, rows in seed_rows().items():
        existing = (await executor.execute(select(table.c.id, table.c.name))).all()
        taken_ids = {row.id for row in existing}
        present = {row.name for row in existing}
        missing = [row for row in rows if row["name"] not in present]
        if not missing:
            continue
        missing_count += len(missing)
        with_id = [row for row in missing if row["id"] not in taken_ids]
        without_id = [
            {k: v for k, v in row.items() if k != "id"} for row in missing if row["id"] in taken_ids
        ]
        for batch in (with_id, without_id):
            if batch:
                await executor.execute(_insert_ignoring_conflicts(dialect, table), batch)
        if with_id:
            await _sync_sequence(executor, table)
    return missing_count


async def ensure_storage_locations(executor: Executor, names: Sequence[str]) -> dict[str, int]:
    """Make sure an `imagestoragelocation` row exists for every name; return name -> id.

    Quay's boot does the same for every key of DISTRIBUTED_STORAGE_CONFIG. New rows take the
    next id. Runs in the caller's transaction; the caller commits.
    """
    table = Base.metadata.tables["imagestoragelocation"]
    wanted = list(dict.fromkeys(names))
    known = await location_ids(executor)
    missing = [name for name in wanted if name not in known]
    if missing:
        dialect = _dialect_name(executor)
        if dialect == "postgresql":
            await _advance_sequence(executor, table.name)
        # Only a concurrent insert of the same name is ignored; any other clash is an error.
        insert = _insert_ignoring_name_conflicts(dialect, table)
        await executor.execute(insert, [{"name": name} for name in missing])
        known = await location_ids(executor)
    return {name: known[name] for name in wanted}


async def location_ids(executor: Executor) -> Mapping[str, int]:
    """Every storage location, name -> id."""
    table = Base.metadata.tables["imagestoragelocation"]
    rows = await executor.execute(select(table.c.name, table.c.id).order_by(table.c.id))
    return {row.name: row.id for row in rows}
