from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest

from wharf.db.engine import Database
from wharf.registry.app import create_app, prepare_context
from wharf.storage import DistributedStorage, load_storage_config

AppFactory = Callable[[], "AsyncIterator[httpx.AsyncClient]"]


class RegistryUnderTest:
    """A registry on SQLite and local disk in a temp dir; `client()` opens a fresh app on the
    same data, the way a restarted process or a second replica would see it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.db_url = f"sqlite+aiosqlite:///{root / 'wharf.db'}"
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

    async def close(self) -> None:
        for client, db in self._open:
            await client.aclose()
            await db.dispose()


@pytest.fixture
async def registry(tmp_path: Path) -> AsyncIterator[RegistryUnderTest]:
    under_test = RegistryUnderTest(tmp_path)
    yield under_test
    await under_test.close()


@pytest.fixture
async def client(registry: RegistryUnderTest) -> httpx.AsyncClient:
    return await registry.client()
