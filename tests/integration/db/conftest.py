"""Databases for the metadata tests: SQLite files, and databases on a throwaway PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.integration.db.quay_schema import LoadReport, load_quay_schema
from tests.postgres import create_database, drop_database, postgres_url  # noqa: F401


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'wharf.db'}"


@pytest.fixture
async def pg_url(postgres_url: str) -> AsyncIterator[str]:  # noqa: F811
    """A fresh, empty PostgreSQL database, dropped after the test."""
    url = await create_database(postgres_url)
    yield url
    await drop_database(url)


@pytest.fixture
async def quay_db(postgres_url: str) -> AsyncIterator[tuple[str, LoadReport]]:  # noqa: F811
    """A PostgreSQL database holding Quay's schema, loaded from quay-schema.sql."""
    url = await create_database(postgres_url, prefix="quay_test")
    try:
        report = await load_quay_schema(url)
        yield url, report
    finally:
        await drop_database(url)


@pytest.fixture(params=["sqlite", "postgresql"])
async def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """An empty database of each kind (the PostgreSQL one needs the server)."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'wharf.db'}"
        return
    server = request.getfixturevalue("postgres_url")
    url = await create_database(server)
    yield url
    await drop_database(url)
