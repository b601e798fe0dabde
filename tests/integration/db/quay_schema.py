"""Load Quay's real DDL (`../shared/reference/quay-schema.sql`) into a PostgreSQL database.

The file is a `pg_dump --schema-only -t <tables>` of a database Quay's migrations built, so
two kinds of statement cannot run on their own in an empty database, and are skipped:
- foreign keys to tables the dump left out (`team`, `imagestoragesignaturekind`,
  `servicekeyapproval`);
- nothing else, as long as the pg_trgm extension can be created first: `pg_dump -t` does not
  dump extensions, yet two indexes use `public.gin_trgm_ops`. Without pg_trgm, those two
  indexes are skipped too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from tests.postgres import asyncpg_dsn
from tests.servers import unavailable

REPO_ROOT = Path(__file__).resolve().parents[3]
QUAY_SCHEMA = REPO_ROOT.parent / "shared" / "reference" / "quay-schema.sql"
QUAY_HEAD = "9fa37f66a9b6"

_CREATE_TABLE = re.compile(r"CREATE TABLE public\.\"?(\w+)\"?", re.IGNORECASE)
_REFERENCES = re.compile(r"REFERENCES public\.\"?(\w+)\"?\(", re.IGNORECASE)


def quay_schema_sql() -> str:
    """The text of quay-schema.sql; skip (fail under CI=true) when it is not there."""
    if not QUAY_SCHEMA.is_file():
        unavailable(
            f"Quay's reference DDL at {QUAY_SCHEMA} (the repository's ../shared/reference/"
            "quay-schema.sql)"
        )
    return QUAY_SCHEMA.read_text()


def split_statements(sql: str) -> list[str]:
    """Statements of a pg_dump file: no functions or dollar quoting, so `;` at line end splits."""
    lines = [line for line in sql.splitlines() if not line.startswith("--")]
    statements = []
    for chunk in "\n".join(lines).split(";\n"):
        statement = chunk.strip().rstrip(";").strip()
        if statement:
            statements.append(statement)
    return statements


@dataclass
class LoadReport:
    executed: int = 0
    skipped: list[str] = field(default_factory=list)
    tables: set[str] = field(default_factory=set)


async def load_quay_schema(database_url: str) -> LoadReport:
    """Run quay-schema.sql against an empty database; report what had to be skipped."""
    import asyncpg

    statements = split_statements(quay_schema_sql())
    report = LoadReport()
    report.tables = {m.group(1) for s in statements if (m := _CREATE_TABLE.search(s))}
    connection = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        available = await connection.fetchval(
            "SELECT count(*) FROM pg_available_extensions WHERE name = 'pg_trgm'"
        )
        if available:
            await connection.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm WITH SCHEMA public")
        async with connection.transaction():
            for statement in statements:
                referenced = _REFERENCES.search(statement)
                if referenced and referenced.group(1) not in report.tables:
                    report.skipped.append(statement)
                    continue
                if "gin_trgm_ops" in statement and not available:
                    report.skipped.append(statement)
                    continue
                await connection.execute(statement)
                report.executed += 1
        # The dump ends with `set_config('search_path', '', false)` in effect: reset it.
        await connection.execute("RESET search_path")
    finally:
        await connection.close()
    return report
