"""A database that is down, locked or out of connections: registry errors a client can retry
(503 or 429 with `Retry-After`), never a 500."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import exc as sql_errors
from sqlalchemy import text

from tests.integration.registry.conftest import local_context
from wharf.db.engine import Database, PoolSettings
from wharf.registry import routes
from wharf.registry.app import create_app
from wharf.registry.auth import SigningKey
from wharf.registry.auth.scopes import Grant
from wharf.registry.context import RegistryAuth, RegistryContext

SERVICE = "wharf-test"
REPO = "ns/app"


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port  # nothing listens there once the probe is closed


@pytest.fixture
async def context(tmp_path: Path) -> AsyncIterator[RegistryContext]:
    auth = RegistryAuth.create(SigningKey.generate(), service=SERVICE)
    made = await local_context(tmp_path, tmp_path / "wharf.db", auth=auth)
    yield made
    await made.db.dispose()


def client_of(context: RegistryContext) -> httpx.AsyncClient:
    grants = [Grant("repository", REPO, ("pull", "push"))]
    token = context.auth.issuer.issue("admin", grants).token
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(context)),
        base_url="http://registry",
        headers={"Authorization": f"Bearer {token}"},
    )


def assert_retryable(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["errors"][0]["code"] == code
    assert int(response.headers["Retry-After"]) >= 1
    assert "Traceback" not in response.text
    assert "postgresql" not in response.text  # no database URL in an answer


async def test_an_unreachable_database_is_503(context: RegistryContext) -> None:
    sqlite_db = context.db
    context.db = Database(
        f"postgresql+asyncpg://wharf:secret@127.0.0.1:{closed_port()}/quay",
        pool=PoolSettings(pool_timeout=2),
    )
    try:
        async with client_of(context) as client:
            for method, path in (
                ("GET", f"/v2/{REPO}/tags/list"),
                ("GET", f"/v2/{REPO}/manifests/latest"),
                ("HEAD", f"/v2/{REPO}/blobs/sha256:{'a' * 64}"),
                ("POST", f"/v2/{REPO}/blobs/uploads/"),
            ):
                response = await client.request(method, path)
                if method == "HEAD":
                    assert response.status_code == 503
                    assert int(response.headers["Retry-After"]) >= 1
                else:
                    assert_retryable(response, 503, "UNAVAILABLE")
    finally:
        await context.db.dispose()
        context.db = sqlite_db


async def test_a_saturated_pool_is_429(context: RegistryContext, tmp_path: Path) -> None:
    await context.db.dispose()
    context.db = Database(
        f"sqlite+aiosqlite:///{tmp_path / 'wharf.db'}",
        pool=PoolSettings(pool_size=1, max_overflow=0, pool_timeout=0.2),
    )
    async with client_of(context) as client:
        # Both pools held (the writer's and the readers'): every request must wait for one.
        async with context.db.writer() as writing, context.db.reader() as reading:
            await writing.execute(text("select 1"))
            await reading.execute(text("select 1"))
            response = await client.post(f"/v2/{REPO}/blobs/uploads/")
            assert_retryable(response, 429, "TOOMANYREQUESTS")
        # Released: the database answers again (no such repository yet).
        response = await client.post(f"/v2/{REPO}/blobs/uploads/")
        assert response.json()["errors"][0]["code"] == "NAME_UNKNOWN"


async def test_a_locked_sqlite_file_is_503(context: RegistryContext, tmp_path: Path) -> None:
    await context.db.dispose()
    context.db = Database(
        f"sqlite+aiosqlite:///{tmp_path / 'wharf.db'}", sqlite_busy_timeout_ms=100
    )
    other = Database(f"sqlite+aiosqlite:///{tmp_path / 'wharf.db'}")
    try:
        async with client_of(context) as client, other.writer() as holder:
            # Another writer holds the file's write lock past the busy timeout.
            await holder.execute(text("select 1"))
            response = await asyncio.wait_for(client.post(f"/v2/{REPO}/blobs/uploads/"), 10)
            assert_retryable(response, 503, "UNAVAILABLE")
    finally:
        await other.dispose()


class DriverError(Exception):
    """What SQLAlchemy's asyncpg adapter wraps: a message and a SQLSTATE."""

    def __init__(self, sqlstate: str) -> None:
        super().__init__(f"server said no ({sqlstate})")
        self.sqlstate = sqlstate


def dbapi_error(sqlstate: str, *, invalidated: bool = False) -> sql_errors.DBAPIError:
    return sql_errors.DBAPIError(
        "select 1", {}, DriverError(sqlstate), connection_invalidated=invalidated
    )


@pytest.mark.parametrize(
    ("failure", "status"),
    [
        (dbapi_error("57P01"), 503),  # admin shutdown: a restart or failover
        (dbapi_error("57P03"), 503),  # the database system is starting up
        (dbapi_error("08006"), 503),  # connection failure
        (dbapi_error("53300"), 503),  # too many connections
        (dbapi_error("XX000", invalidated=True), 503),  # the connection died under the query
        (socket.gaierror(-2, "Name or service not known"), 503),
        (TimeoutError(), 503),
        (ConnectionResetError(104, "Connection reset by peer"), 503),
        (dbapi_error("23505"), 500),  # a unique violation the code did not expect: a bug
        (PermissionError(13, "Permission denied"), 500),
    ],
    ids=lambda value: type(value).__name__ if not isinstance(value, int) else str(value),
)
async def test_which_database_failures_are_retryable(
    context: RegistryContext,
    monkeypatch: pytest.MonkeyPatch,
    failure: BaseException,
    status: int,
) -> None:
    async def failing(*args: object, **kwargs: object) -> None:
        raise failure

    monkeypatch.setattr(routes, "resolve_repository", failing)
    async with client_of(context) as client:
        response = await client.post(f"/v2/{REPO}/blobs/uploads/")
    assert response.status_code == status, response.text
    if status == 503:
        assert_retryable(response, 503, "UNAVAILABLE")
    else:
        assert response.json()["errors"][0]["code"] == "UNKNOWN"
        assert "select 1" not in response.text
