"""In-process upstreams (`inproc:<name>`): the edge calls an app of its own process, as
`wharf serve` will, with the same header rules, sticky pins and streaming as over HTTP.

A FastAPI app (lifespan state, a streamed 64 MiB body), then Wharf's real registry behind
the edge: a chunked blob push through the edge with Docker token auth, and the pull back.
"""

from __future__ import annotations

import hashlib
import tracemalloc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

from tests.integration.edge.proxy_servers import MiB, edge_server, pattern, pattern_digest
from tests.integration.registry.conftest import (
    ADMIN,
    ADMIN_PASSWORD,
    SERVICE,
    DockerTokenAuth,
    signing_key,
)
from wharf.cli.main import ADMIN_PASSWORD_ENV, ADMIN_PASSWORD_FILE, ensure_admin_user
from wharf.db.engine import Database
from wharf.edge.app import create_edge_app
from wharf.edge.state import MemoryStickyUploads, StaticTable
from wharf.edge.table import parse_table_yaml
from wharf.registry.app import create_app, prepare_context
from wharf.registry.auth import AccessPolicy
from wharf.registry.context import RegistryAuth
from wharf.storage import DistributedStorage, load_storage_config

BIG = 64 * MiB


def service_app() -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, str]]:
        yield {"greeting": "hello from the lifespan"}

    app = FastAPI(lifespan=lifespan)

    @app.get("/api/v1/hello")
    async def hello(request: Request) -> JSONResponse:
        return JSONResponse(
            {
                "greeting": request.state.greeting,
                "headers": dict(request.headers),
                "client": request.client.host if request.client else None,
                "base_url": str(request.base_url),
            },
            headers={"connection": "x-internal", "x-internal": "1", "location": "/a%2Fb?c=d"},
        )

    @app.post("/api/v1/upload")
    async def upload(request: Request) -> JSONResponse:
        digest, size = hashlib.sha256(), 0
        async for chunk in request.stream():
            digest.update(chunk)
            size += len(chunk)
        return JSONResponse({"size": size, "sha256": digest.hexdigest()})

    @app.get("/api/v1/bytes/{size}")
    async def download(size: int) -> StreamingResponse:
        async def blocks() -> AsyncIterator[bytes]:
            for block in pattern(size):
                yield block

        return StreamingResponse(blocks(), headers={"content-length": str(size)})

    @app.get("/api/v1/boom")
    async def boom() -> None:
        raise RuntimeError("a bug in the service")

    return app


TABLE = """
upstreams:
  api: {url: "inproc:api"}
  missing: {url: "inproc:not-started"}
default_owner: api
capabilities:
  nowhere: {match: {prefix: /v2/nowhere/}, owner: missing}
"""


@pytest.fixture
async def api_edge() -> AsyncIterator[httpx.AsyncClient]:
    app = create_edge_app(
        StaticTable(parse_table_yaml(TABLE)),
        MemoryStickyUploads(),
        in_process={"api": service_app()},
    )
    async with (
        edge_server(app, lifespan="on") as url,
        httpx.AsyncClient(base_url=url, timeout=60) as client,
    ):
        yield client


async def test_in_process_app_sees_its_lifespan_and_the_header_rules(
    api_edge: httpx.AsyncClient,
) -> None:
    response = await api_edge.get(
        "/api/v1/hello", headers={"Host": "wharf.example", "X-Request-ID": "rid-7"}
    )
    assert response.status_code == 200
    seen = response.json()
    assert seen["greeting"] == "hello from the lifespan"
    assert seen["headers"]["x-request-id"] == "rid-7"
    assert seen["headers"]["x-forwarded-for"] == "127.0.0.1"
    assert seen["headers"]["x-forwarded-host"] == "wharf.example"
    assert seen["client"] == "127.0.0.1"
    assert seen["base_url"] == "http://wharf.example/"
    assert response.headers["x-request-id"] == "rid-7"
    assert response.headers["location"] == "/a%2Fb?c=d"
    assert "x-internal" not in response.headers


async def test_in_process_streams_64_mib_both_ways_in_bounded_memory(
    api_edge: httpx.AsyncClient,
) -> None:
    async def body() -> AsyncIterator[bytes]:
        for block in pattern(BIG):
            yield block

    tracemalloc.start()
    try:
        baseline = tracemalloc.get_traced_memory()[0]
        response = await api_edge.post(
            "/api/v1/upload", content=body(), headers={"Content-Length": str(BIG)}
        )
        digest, size = hashlib.sha256(), 0
        async with api_edge.stream("GET", f"/api/v1/bytes/{BIG}") as streamed:
            async for chunk in streamed.aiter_raw():
                digest.update(chunk)
                size += len(chunk)
        peak = tracemalloc.get_traced_memory()[1] - baseline
    finally:
        tracemalloc.stop()
    assert response.json() == {"size": BIG, "sha256": pattern_digest(BIG)}
    assert size == BIG
    assert digest.hexdigest() == pattern_digest(BIG)
    assert peak < 16 * MiB, peak


async def test_in_process_failures(api_edge: httpx.AsyncClient) -> None:
    response = await api_edge.get("/v2/nowhere/app/manifests/v1")
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    assert response.json()["errors"][0]["detail"] == {"upstream": "missing"}
    broken = await api_edge.get("/api/v1/boom")
    assert broken.status_code == 500
    assert "a bug in the service" not in broken.text
    assert (await api_edge.get("/api/v1/hello")).status_code == 200


# -- Wharf's registry behind the edge ------------------------------------------------------------


@pytest.fixture
async def registry_edge(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[httpx.AsyncClient, MemoryStickyUploads]]:
    monkeypatch.delenv(ADMIN_PASSWORD_ENV, raising=False)
    storage = DistributedStorage.from_config(
        load_storage_config(
            {
                "DISTRIBUTED_STORAGE_CONFIG": {
                    "local_us": ["LocalStorage", {"storage_path": str(tmp_path / "storage")}]
                }
            }
        )
    )
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'wharf.db'}")
    auth = RegistryAuth.create(
        signing_key(),
        service=SERVICE,
        policy=AccessPolicy(push_anywhere=frozenset({ADMIN}), anonymous_access=True),
    )
    context = await prepare_context(storage, db, public_on_create=True, auth=auth)
    (tmp_path / ADMIN_PASSWORD_FILE).write_text(ADMIN_PASSWORD)
    await ensure_admin_user(db, tmp_path, rounds=4)
    sticky = MemoryStickyUploads()
    table = parse_table_yaml("upstreams: {registry: 'inproc:registry'}\ndefault_owner: registry\n")
    app = create_edge_app(StaticTable(table), sticky, in_process={"registry": create_app(context)})
    try:
        async with (
            edge_server(app, lifespan="on") as url,
            httpx.AsyncClient(
                base_url=url, auth=DockerTokenAuth(ADMIN, ADMIN_PASSWORD), timeout=60
            ) as client,
        ):
            yield client, sticky
    finally:
        await db.dispose()


async def test_chunked_push_and_pull_through_the_edge(
    registry_edge: tuple[httpx.AsyncClient, MemoryStickyUploads],
) -> None:
    client, sticky = registry_edge
    data = bytes(range(256)) * 40_000  # 10 MB in three chunks
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    started = await client.post("/v2/library/edge-test/blobs/uploads/")
    assert started.status_code == 202, started.text
    location = started.headers["location"]
    session = started.headers["docker-upload-uuid"]
    assert location.split("?")[0].endswith(f"/blobs/uploads/{session}")
    assert await sticky.upstream_of(session) == "registry"
    # The token realm names the edge's address: Host went through untouched.
    assert client.auth.token  # type: ignore[union-attr]

    offset = 0
    for chunk in (data[:4_000_000], data[4_000_000:8_000_000]):
        end = offset + len(chunk) - 1
        patched = await client.patch(
            location,
            content=chunk,
            headers={
                "Content-Range": f"{offset}-{end}",
                "Content-Type": "application/octet-stream",
            },
        )
        assert patched.status_code == 202, patched.text
        assert patched.headers["range"] == f"0-{end}"
        location, offset = patched.headers["location"], end + 1
    finished = await client.put(location, params={"digest": digest}, content=data[offset:])
    assert finished.status_code == 201, finished.text
    assert finished.headers["docker-content-digest"] == digest
    assert await sticky.upstream_of(session) is None

    head = await client.head(f"/v2/library/edge-test/blobs/{digest}")
    assert head.status_code == 200
    assert head.headers["content-length"] == str(len(data))
    pulled = await client.get(f"/v2/library/edge-test/blobs/{digest}")
    assert pulled.status_code == 200
    assert pulled.content == data
    assert pulled.headers["x-request-id"]
    assert pulled.headers["docker-distribution-api-version"] == "registry/2.0"
