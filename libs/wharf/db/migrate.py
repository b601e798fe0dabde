"""Create or upgrade Wharf's schema with Alembic, and never touch a database Quay manages.

Three cases, told apart by the tables present:
- EMPTY: none of the registry tables, no Alembic version table: Wharf creates its schema.
- WHARF: `wharf_alembic_version` exists: Wharf upgrades it to head (nothing to do at head).
- FOREIGN: registry tables or Quay's `alembic_version` exist without `wharf_alembic_version`:
  the schema belongs to Quay (or to someone else); Wharf changes nothing and uses it as is.

Usage: `await upgrade_database(url)`, or `python -m wharf.db.migrate URL` from a shell.
"""

from __future__ import annotations

import argparse
import asyncio
import enum
import logging
from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import String, column, inspect, select, table, text
from sqlalchemy.engine import URL, Connection

from wharf.db.engine import async_url, make_engine
from wharf.db.models import Base

log = logging.getLogger(__name__)

VERSION_TABLE = "wharf_alembic_version"
QUAY_VERSION_TABLE = "alembic_version"
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
# Serialises concurrent upgrades of one PostgreSQL database (any constant would do).
_ADVISORY_LOCK_KEY = int.from_bytes(b"wharf_db", "big") >> 1


class SchemaOwner(enum.Enum):
    EMPTY = "empty"
    WHARF = "wharf"
    FOREIGN = "foreign"


@dataclass(frozen=True)
class SchemaState:
    owner: SchemaOwner
    revision: str | None  # Wharf's revision (WHARF only)
    head: str
    registry_tables: frozenset[str]  # the registry tables that exist

    @property
    def at_head(self) -> bool:
        return self.owner is SchemaOwner.WHARF and self.revision == self.head


class MigrationError(RuntimeError):
    """The database cannot be brought to Wharf's schema."""


def alembic_config(url: str | URL | None = None) -> Config:
    """An Alembic configuration for Wharf's migrations (no alembic.ini needed)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url is not None:
        rendered = async_url(url).render_as_string(hide_password=False)
        config.set_main_option("sqlalchemy.url", rendered.replace("%", "%%"))
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise MigrationError(f"no Alembic revisions found in {MIGRATIONS_DIR}")
    return head


def _schema_state(connection: Connection) -> SchemaState:
    tables = set(inspect(connection).get_table_names())
    registry = frozenset(tables & set(Base.metadata.tables))
    head = head_revision()
    if VERSION_TABLE in tables:
        version_num = column("version_num", String)
        query = select(version_num).select_from(table(VERSION_TABLE, version_num))
        revision = connection.execute(query).scalars().first()
        return SchemaState(SchemaOwner.WHARF, revision, head, registry)
    if registry or QUAY_VERSION_TABLE in tables:
        return SchemaState(SchemaOwner.FOREIGN, None, head, registry)
    return SchemaState(SchemaOwner.EMPTY, None, head, registry)


def _upgrade(connection: Connection, url: str | URL) -> None:
    config = alembic_config(url)
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


async def schema_state(url: str | URL) -> SchemaState:
    """Who owns the schema at `url`, and at which Wharf revision it is."""
    engine = make_engine(url, pool=None, sqlite_writer=False)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(_schema_state)
    finally:
        await engine.dispose()


async def upgrade_database(url: str | URL) -> None:
    """Bring the database at `url` to Wharf's head revision.

    No-op when it is already at head, and when the schema belongs to Quay (or anyone else):
    then nothing is written, and the caller uses the tables as they are. Concurrent callers are
    serialised (an advisory lock on PostgreSQL, `BEGIN IMMEDIATE` on SQLite); the whole upgrade
    is one transaction.
    """
    state = await schema_state(url)  # read-only look first: at head or foreign, write nothing
    if state.at_head:
        return
    if state.owner is SchemaOwner.FOREIGN:
        _log_foreign(state)
        return
    engine = make_engine(url, pool=None)
    try:
        async with engine.connect() as connection, connection.begin():
            if connection.dialect.name == "postgresql":
                await connection.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": _ADVISORY_LOCK_KEY}
                )
            # Look again under the lock: another process may have done the work meanwhile.
            state = await connection.run_sync(_schema_state)
            if state.owner is SchemaOwner.FOREIGN:
                _log_foreign(state)
                return
            if state.at_head:
                return
            log.info(
                "upgrading the database schema from %s to %s",
                state.revision or "nothing",
                state.head,
            )
            try:
                await connection.run_sync(_upgrade, url)
            except Exception as error:
                if "Can't locate revision" in str(error):
                    raise MigrationError(
                        f"the database is at Wharf revision {state.revision!r}, which this "
                        "Wharf does not know (was it written by a newer Wharf?)"
                    ) from error
                raise
    finally:
        await engine.dispose()


def _log_foreign(state: SchemaState) -> None:
    log.info(
        "the database already holds registry tables (%d of %d) and no %s table: it is managed "
        "by Quay or another tool, so Wharf leaves its schema alone",
        len(state.registry_tables),
        len(Base.metadata.tables),
        VERSION_TABLE,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m wharf.db.migrate",
        description="Create or upgrade Wharf's schema (leaves a Quay-managed database alone).",
    )
    parser.add_argument("url", help="postgresql+asyncpg://... or sqlite+aiosqlite:///path")
    parser.add_argument("--status", action="store_true", help="only print who owns the schema")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if not args.status:
        asyncio.run(upgrade_database(args.url))
    state = asyncio.run(schema_state(args.url))
    print(f"owner={state.owner.value} revision={state.revision} head={state.head}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
