from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from tests.integration.db.quay_schema import load_quay_schema
from tests.postgres import create_database, drop_database, postgres_url  # noqa: F401
from wharf.db.engine import Database
from wharf.registry.app import create_app, prepare_context
from wharf.storage import DistributedStorage, load_storage_config


class RegistryUnderTest:
    """A registry on SQLite and local disk in a temp dir; `client()` opens a fresh app on the
    same data, the way a restarted process or a second replica would see it."""

    def __init__(self, root: Path, db_url: str) -> None:
        self.root = root
        self.db_url = db_url
        self.storage_root = root / "storage"
        self._open: list[tuple[httpx.AsyncClient, Database]] = []

    async def client(self) -> httpx.AsyncClient:
        storage = DistributedStorage.from_config(
            load_storage_config(
                {
                    "DISTRIBUTED_STORAGE_CONFIG": {
                        "local_us": ["LocalStorage", {"storage_path": str(self.storage_root)}]
                    }
                }
            )
        )
        db = Database(self.db_url)
        context = await prepare_context(storage, db, public_on_create=True)
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=create_app(context)), base_url="http://registry"
        )
        self._open.append((client, db))
        return client

    async def rows(self, query: str) -> list[tuple[object, ...]]:
        """Run SQL against the registry's database (to look at, or damage, Quay's tables)."""
        db = Database(self.db_url)
        try:
            async with db.writer() as session:
                result = await session.execute(text(query))
                return [tuple(row) for row in result] if result.returns_rows else []
        finally:
            await db.dispose()

    async def close(self) -> None:
        for client, db in self._open:
            await client.aclose()
            await db.dispose()


@pytest.fixture(params=["sqlite", "postgresql", "quay-schema"])
async def registry(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[RegistryUnderTest]:
    """The registry on SQLite, on an empty PostgreSQL (Wharf creates the schema), and on a
    PostgreSQL whose schema Quay's own DDL created (Wharf must use it as it is)."""
    if request.param == "sqlite":
        under_test = RegistryUnderTest(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'wharf.db'}")
        yield under_test
        await under_test.close()
        return
    server = request.getfixturevalue("postgres_url")
    url = await create_database(server, prefix="wharf_api")
    try:
        if request.param == "quay-schema":
            await load_quay_schema(url)
        under_test = RegistryUnderTest(tmp_path, url)
        yield under_test
        await under_test.close()
    finally:
        await drop_database(url)


@pytest.fixture
async def client(registry: RegistryUnderTest) -> httpx.AsyncClient:
    return await registry.client()
