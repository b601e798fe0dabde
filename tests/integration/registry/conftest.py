from __future__ import annotations

import functools
import re
from collections.abc import AsyncIterator, Generator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from tests.integration.db.quay_schema import load_quay_schema
from tests.postgres import create_database, drop_database, postgres_url  # noqa: F401
from wharf.cli.main import ADMIN_PASSWORD_ENV, ADMIN_PASSWORD_FILE, ensure_admin_user
from wharf.db.engine import Database
from wharf.db.models import User
from wharf.registry.app import create_app, prepare_context
from wharf.registry.auth import AccessPolicy, SigningKey, hash_password
from wharf.registry.context import RegistryAuth, RegistryContext
from wharf.storage import DistributedStorage, load_storage_config

SERVICE = "registry"
ADMIN = "admin"
ADMIN_PASSWORD = "admin-secret-for-tests"
_CHALLENGE_PARAM_RE = re.compile(r'(\w+)="([^"]*)"')


@functools.cache
def signing_key() -> SigningKey:
    """One RSA key for the whole run (generating one per test is slow)."""
    return SigningKey.generate()


class DockerTokenAuth(httpx.Auth):
    """What docker does: on a 401 with a Bearer challenge, fetch a token from the realm (with
    Basic credentials, or anonymously) for every scope seen so far, then retry once. A mount
    (`?from=`) also asks for pull on the source repository, as docker does."""

    requires_response_body = True

    def __init__(self, username: str | None = None, password: str | None = None) -> None:
        self.basic = (
            httpx.BasicAuth(username, password) if username and password is not None else None
        )
        self.scopes: dict[str, set[str]] = {}
        self.token: str | None = None
        self.fetched = 0

    def _add(self, scope: str) -> None:
        resource, _, actions = scope.rpartition(":")
        if resource:
            self.scopes.setdefault(resource, set()).update(actions.split(","))

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if self.token:
            request.headers["Authorization"] = f"Bearer {self.token}"
        response = yield request
        challenge = response.headers.get("www-authenticate", "")
        if response.status_code != 401 or not challenge.startswith("Bearer "):
            return
        params = dict(_CHALLENGE_PARAM_RE.findall(challenge))
        for scope in params.get("scope", "").split(" "):
            self._add(scope)
        source = request.url.params.get("from")
        if source:
            self._add(f"repository:{source}:pull")
        query = [("service", params["service"])] + [
            ("scope", f"{resource}:{','.join(sorted(actions))}")
            for resource, actions in self.scopes.items()
        ]
        token_request = httpx.Request("GET", params["realm"], params=query)
        if self.basic is not None:
            token_request = next(self.basic.auth_flow(token_request))
        token_response = yield token_request
        self.fetched += 1
        if token_response.status_code != 200:
            return
        self.token = token_response.json()["token"]
        request.headers["Authorization"] = f"Bearer {self.token}"
        yield request


class RegistryUnderTest:
    """A registry on SQLite and local disk in a temp dir; `client()` opens a fresh app on the
    same data, the way a restarted process or a second replica would see it.

    Auth is mirror mode's: `admin` (password `ADMIN_PASSWORD`, created on the first `client()`)
    may push anywhere, anonymous clients may pull public repositories. `client()` logs in as
    admin the way docker does; `client(login=None)` sends no credentials at all."""

    def __init__(self, root: Path, db_url: str) -> None:
        self.root = root
        self.db_url = db_url
        self.storage_root = root / "storage"
        self.auth = RegistryAuth.create(
            signing_key(),
            service=SERVICE,
            policy=AccessPolicy(push_anywhere=frozenset({ADMIN}), anonymous_access=True),
        )
        self._open: list[tuple[httpx.AsyncClient, Database]] = []
        self._admin_ready = False
        self._anonymous: httpx.AsyncClient | None = None

    async def client(
        self,
        login: tuple[str, str] | None = (ADMIN, ADMIN_PASSWORD),
        *,
        storage: DistributedStorage | None = None,
        blob_redirects: bool = True,
    ) -> httpx.AsyncClient:
        """A client of a fresh app; with `login`, it gets tokens from /v2/auth as docker does.

        `storage` replaces the local disk under `storage_root` (it must name `local_us`)."""
        if storage is None:
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
        context = await prepare_context(storage, db, public_on_create=True, auth=self.auth)
        context.blob_redirects = blob_redirects
        if not self._admin_ready:
            (self.root / ADMIN_PASSWORD_FILE).write_text(ADMIN_PASSWORD)
            await ensure_admin_user(db, self.root, rounds=4)
            self._admin_ready = True
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=create_app(context)),
            base_url="http://registry",
            auth=DockerTokenAuth(*login) if login is not None else None,
        )
        self._open.append((client, db))
        return client

    async def add_user(self, username: str, password: str) -> None:
        """A user who logs in with `password` (bcrypt at cost 4, to keep the tests fast)."""
        db = Database(self.db_url)
        try:
            async with db.writer() as session:
                hashed = hash_password(password, rounds=4)
                session.add(User(username=username, password_hash=hashed, verified=True))
        finally:
            await db.dispose()

    async def token(
        self, *scopes: str, login: tuple[str, str] | None = (ADMIN, ADMIN_PASSWORD)
    ) -> str:
        """A token from /v2/auth for `scopes` (anonymous when `login` is None)."""
        if self._anonymous is None:
            self._anonymous = await self.client(login=None)
        response = await self._anonymous.get(
            "/v2/auth",
            params=[("service", SERVICE), *(("scope", scope) for scope in scopes)],
            auth=httpx.BasicAuth(*login) if login is not None else None,
        )
        assert response.status_code == 200, response.text
        token: str = response.json()["token"]
        return token

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
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[RegistryUnderTest]:
    """The registry on SQLite, on an empty PostgreSQL (Wharf creates the schema), and on a
    PostgreSQL whose schema Quay's own DDL created (Wharf must use it as it is)."""
    monkeypatch.delenv(ADMIN_PASSWORD_ENV, raising=False)
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


def local_storage(root: Path, location: str = "local") -> DistributedStorage:
    """One LocalStorage location under `root`."""
    return DistributedStorage.from_config(
        load_storage_config(
            {
                "DISTRIBUTED_STORAGE_CONFIG": {
                    location: ["LocalStorage", {"storage_path": str(root)}]
                }
            }
        )
    )


async def local_context(
    storage_root: Path, db_file: Path, *, auth: RegistryAuth | None = None
) -> RegistryContext:
    """A registry context on local disk and a SQLite file, schema created; the caller
    disposes of `context.db`."""
    db = Database(f"sqlite+aiosqlite:///{db_file}")
    return await prepare_context(local_storage(storage_root), db, public_on_create=True, auth=auth)
