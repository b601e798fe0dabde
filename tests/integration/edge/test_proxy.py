"""The edge under uvicorn in front of two real upstream servers (and a dead port).

Routing by the table and its canaries, header rules on the wire, sticky uploads across a
table swap, 64 MiB both ways in bounded memory, failures (502/504, a body cut mid-way) and
clients that leave mid-body without leaving a task or a connection behind.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
import tracemalloc
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.integration.edge.proxy_servers import (
    ECHO_LOCATION,
    MiB,
    Upstream,
    dead_port,
    edge_server,
    pattern,
    pattern_digest,
    threaded_server,
)
from wharf.edge.app import EdgeApp, create_edge_app
from wharf.edge.routing import in_percent
from wharf.edge.state import MemoryStickyUploads, StaticTable
from wharf.edge.table import parse_table_yaml

BIG = 64 * MiB
MEMORY_BOUND = 16 * MiB


@dataclass
class Upstreams:
    legacy: Upstream
    legacy_url: str
    wharf: Upstream
    wharf_url: str
    dead: int


@pytest.fixture(scope="module")
def upstreams() -> Iterator[Upstreams]:
    legacy, wharf = Upstream("legacy"), Upstream("wharf")
    with threaded_server(legacy) as legacy_url, threaded_server(wharf) as wharf_url:
        yield Upstreams(legacy, legacy_url, wharf, wharf_url, dead_port())


def table_yaml(u: Upstreams, push_canary: tuple[str, ...] = ("orgb/*",)) -> str:
    push = ", ".join(f'"{glob}"' for glob in push_canary)
    return f"""
upstreams:
  legacy: {{url: "{u.legacy_url}"}}
  wharf: {{url: "{u.wharf_url}"}}
  slowpoke: {{url: "{u.wharf_url}", read_timeout: 0.5}}
  dead: {{url: "http://127.0.0.1:{u.dead}", connect_timeout: 1}}
default_owner: legacy
capabilities:
  slow: {{match: {{prefix: [/v2/slow/, /slow, /stall]}}, owner: slowpoke}}
  dead-end: {{match: {{prefix: [/v2/dead/, /api/dead]}}, owner: dead}}
  registry-pull:
    canary: {{upstream: wharf, repositories: ["orgb/*", "orga/app"], organisations: [orgc],
             percent: 30}}
  registry-push:
    canary: {{upstream: wharf, repositories: [{push}], organisations: [orgc]}}
"""


@dataclass
class Edge:
    app: EdgeApp
    tables: StaticTable
    sticky: MemoryStickyUploads
    url: str
    client: httpx.AsyncClient

    def count(self, name: str, **labels: str) -> float:
        value = self.app.metrics.registry.get_sample_value(name, labels)
        return value or 0.0


@pytest.fixture
async def edge(upstreams: Upstreams) -> AsyncIterator[Edge]:
    tables = StaticTable(parse_table_yaml(table_yaml(upstreams)))
    sticky = MemoryStickyUploads()
    app = create_edge_app(tables, sticky)
    async with edge_server(app) as url, httpx.AsyncClient(base_url=url, timeout=30) as client:
        yield Edge(app, tables, sticky, url, client)
    await app.aclose()


def _repository(inside: bool) -> str:
    return next(f"orgp/r{i}" for i in range(1000) if in_percent(f"orgp/r{i}", 30) is inside)


@pytest.mark.parametrize(
    ("path", "upstream", "reason"),
    [
        ("/v2/orga/app/manifests/v1", "wharf", "canary-repo"),
        ("/v2/orgb/anything/blobs/sha256:00", "wharf", "canary-repo"),
        ("/v2/orgc/deep/name/manifests/v1", "wharf", "canary-org"),
        (f"/v2/{_repository(inside=True)}/manifests/v1", "wharf", "percent"),
        (f"/v2/{_repository(inside=False)}/manifests/v1", "legacy", "owner"),
        ("/v2/", "legacy", "owner"),
        ("/api/v1/repository", "legacy", "owner"),
    ],
)
async def test_routes_by_the_table(edge: Edge, path: str, upstream: str, reason: str) -> None:
    response = await edge.client.get(path)
    assert response.status_code == 200
    assert response.headers["x-upstream"] == upstream
    assert response.json()["path"] == path
    capability = "registry-pull" if path.startswith("/v2/") else "api"
    labels = {"capability": capability, "upstream": upstream, "reason": reason}
    assert edge.count("wharf_edge_requests_total", **labels, status_class="2xx") == 1


async def test_header_rules_on_the_wire(edge: Edge) -> None:
    response = await edge.client.post(
        "/v2/orga/app/manifests/a%2Fb",
        params={"n": "1", "last": "a b"},
        content=b"payload",
        headers={
            "Host": "registry.example.com:8443",
            "Connection": "keep-alive, X-Client-Hop",
            "X-Client-Hop": "secret",
            "Keep-Alive": "timeout=5",
            "TE": "trailers",
            "Proxy-Authorization": "Basic Zm9vOmJhcg==",
            "X-Forwarded-For": "203.0.113.7",
            "X-Request-ID": "abc-123",
            "Authorization": "Bearer for-the-upstream",
        },
    )
    assert response.status_code == 200
    echoed = response.json()
    seen: dict[str, list[str]] = {}
    for name, value in echoed["headers"]:
        seen.setdefault(name, []).append(value)
    for dropped in ("connection", "keep-alive", "te", "proxy-authorization", "x-client-hop"):
        assert dropped not in seen
    assert seen["host"] == ["registry.example.com:8443"]
    assert seen["x-forwarded-host"] == ["registry.example.com:8443"]
    assert seen["x-forwarded-proto"] == ["http"]
    assert seen["x-forwarded-for"] == ["203.0.113.7, 127.0.0.1"]
    assert seen["x-request-id"] == ["abc-123"]
    assert seen["authorization"] == ["Bearer for-the-upstream"]
    assert seen["content-length"] == ["7"]
    assert echoed["raw_path"] == "/v2/orga/app/manifests/a%2Fb"
    assert echoed["query"] == "n=1&last=a+b"
    assert echoed["sha256"] == hashlib.sha256(b"payload").hexdigest()

    headers = response.headers
    for dropped in ("x-hop-secret", "keep-alive", "proxy-authenticate", "trailer"):
        assert dropped not in headers
    assert headers.get_list("set-cookie") == ["a=1", "b=2"]
    assert headers.raw[[k.lower() for k, _ in headers.raw].index(b"location")][1] == ECHO_LOCATION
    assert headers.get_list("x-request-id") == ["abc-123"]
    assert headers.get_list("server") == ["uvicorn"]  # the edge's server, not the upstream's
    assert len(headers.get_list("date")) == 1


async def test_request_id_created_when_absent_or_unfit(edge: Edge) -> None:
    for sent in ({}, {"X-Request-ID": "no spaces allowed"}):
        response = await edge.client.get("/v2/orga/app/manifests/v1", headers=sent)
        chosen = response.headers["x-request-id"]
        assert len(chosen) == 32
        assert int(chosen, 16) >= 0
        assert dict(response.json()["headers"])["x-request-id"] == chosen


async def test_sticky_upload_survives_a_table_swap(edge: Edge, upstreams: Upstreams) -> None:
    started = await edge.client.post("/v2/orgs/img/blobs/uploads/")
    assert started.status_code == 202
    assert started.headers["x-upstream"] == "legacy"
    location = started.headers["location"]
    assert location.endswith("?_state=abc%3D")  # untouched
    session = location.split("?")[0].rsplit("/", 1)[1]
    assert await edge.sticky.upstream_of(session) == "legacy"

    edge.tables.replace(parse_table_yaml(table_yaml(upstreams, ("orgb/*", "orgs/*"))))
    other = await edge.client.post("/v2/orgs/img/blobs/uploads/")
    assert other.headers["x-upstream"] == "wharf"  # the flip applies to new uploads...
    patched = await edge.client.patch(location, content=b"chunk")
    assert patched.status_code == 202
    assert patched.headers["x-upstream"] == "legacy"  # ...not to the one in flight
    done = await edge.client.put(location + "&digest=sha256:00")
    assert done.status_code == 201
    assert done.headers["x-upstream"] == "legacy"
    assert await edge.sticky.upstream_of(session) is None
    after = await edge.client.delete(location)
    assert after.status_code == 404  # now routed by the table, to wharf, which never saw it
    assert after.headers["x-upstream"] == "wharf"
    labels = {"capability": "registry-push", "upstream": "legacy", "reason": "sticky"}
    assert edge.count("wharf_edge_requests_total", **labels, status_class="2xx") == 2


async def test_absolute_location_pins_and_delete_releases(edge: Edge) -> None:
    started = await edge.client.post(
        "/v2/orgx/img/blobs/uploads/", params={"absolute": "1"}, headers={"Host": "edge.example"}
    )
    location = started.headers["location"]
    assert location.startswith("http://edge.example/v2/orgx/img/blobs/uploads/")
    session = location.split("?")[0].rsplit("/", 1)[1]
    assert await edge.sticky.upstream_of(session) == "legacy"
    response = await edge.client.delete(location.removeprefix("http://edge.example"))
    assert response.status_code == 204
    assert await edge.sticky.upstream_of(session) is None


async def test_upload_unknown_to_its_upstream_releases_the_pin(edge: Edge) -> None:
    await edge.sticky.pin("lost-session", "wharf")
    response = await edge.client.get("/v2/orgx/img/blobs/uploads/lost-session")
    assert response.status_code == 404
    assert response.headers["x-upstream"] == "wharf"
    assert response.json()["errors"][0]["code"] == "BLOB_UPLOAD_UNKNOWN"
    assert await edge.sticky.upstream_of("lost-session") is None


async def test_64_mib_both_ways_in_bounded_memory(edge: Edge) -> None:
    async def body() -> AsyncIterator[bytes]:
        for block in pattern(BIG):
            yield block

    tracemalloc.start()
    try:
        baseline = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        response = await edge.client.post(
            "/upload", content=body(), headers={"Content-Length": str(BIG)}
        )
        assert response.json()["size"] == BIG
        assert response.json()["sha256"] == pattern_digest(BIG)
        upload_peak = tracemalloc.get_traced_memory()[1] - baseline

        tracemalloc.reset_peak()
        digest, size = hashlib.sha256(), 0
        async with edge.client.stream("GET", f"/bytes/{BIG}") as streamed:
            assert streamed.headers["content-length"] == str(BIG)
            async for chunk in streamed.aiter_raw():
                digest.update(chunk)
                size += len(chunk)
        download_peak = tracemalloc.get_traced_memory()[1] - baseline
    finally:
        tracemalloc.stop()
    assert size == BIG
    assert digest.hexdigest() == pattern_digest(BIG)
    # Everything in this process (client, edge, both upstream servers) stayed far below
    # the 64 MiB that went through: nothing buffered a body.
    assert upload_peak < MEMORY_BOUND, upload_peak
    assert download_peak < MEMORY_BOUND, download_peak
    labels = {"upstream": "legacy", "direction": "in"}
    assert edge.count("wharf_edge_bytes_total", **labels) == BIG


async def test_chunked_request_body_is_streamed(edge: Edge) -> None:
    async def body() -> AsyncIterator[bytes]:
        for block in pattern(3 * MiB + 5):
            yield block

    response = await edge.client.put("/upload", content=body())  # no length: chunked
    assert response.json()["size"] == 3 * MiB + 5
    assert response.json()["sha256"] == pattern_digest(3 * MiB + 5)


async def test_dead_upstream_is_502_in_registry_format(edge: Edge) -> None:
    response = await edge.client.get("/v2/dead/app/manifests/v1")
    assert response.status_code == 502
    assert response.headers["retry-after"] == "5"
    assert response.headers["x-request-id"]
    assert response.json() == {
        "errors": [
            {
                "code": "UNAVAILABLE",
                "message": "upstream refused the connection",
                "detail": {"upstream": "dead"},
            }
        ]
    }
    head = await edge.client.head("/v2/dead/app/manifests/v1")
    assert head.status_code == 502
    assert head.headers["retry-after"] == "5"
    api = await edge.client.get("/api/dead/thing")
    assert api.status_code == 502
    assert api.json()["error_type"] == "unavailable"
    assert api.json()["detail"] == {"upstream": "dead"}
    errors = {"upstream": "dead", "kind": "connect-failed"}
    assert edge.count("wharf_edge_upstream_errors_total", **errors) == 3


async def test_slow_upstream_is_504(edge: Edge) -> None:
    started = time.monotonic()
    response = await edge.client.get("/v2/slow/app/manifests/v1", params={"s": "3"})
    assert time.monotonic() - started < 2.5
    assert response.status_code == 504
    assert response.headers["retry-after"] == "5"
    error = response.json()["errors"][0]
    assert error["code"] == "UNAVAILABLE"
    assert error["detail"] == {"upstream": "slowpoke"}
    plain = await edge.client.get("/slow", params={"s": "3"})
    assert plain.status_code == 504
    assert plain.json()["error_type"] == "unavailable"


async def test_a_body_cut_mid_way_is_never_made_to_look_whole(edge: Edge) -> None:
    with pytest.raises(httpx.RemoteProtocolError):
        await edge.client.get("/stall")
    errors = {"upstream": "slowpoke", "kind": "read-timeout"}
    assert edge.count("wharf_edge_upstream_errors_total", **errors) == 1
    assert (await edge.client.get("/v2/")).status_code == 200  # the edge is fine


async def _wait_for(condition: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def _raw(edge: Edge) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    host, port = edge.url.removeprefix("http://").split(":")
    return await asyncio.open_connection(host, int(port))


def _access_entries(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [
        json.loads(record.getMessage())
        for record in caplog.records
        if record.name == "wharf.edge.access"
    ]


async def test_client_leaving_mid_upload_leaves_nothing_behind(
    edge: Edge, upstreams: Upstreams, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="wharf.edge.access")
    assert (await edge.client.post("/upload", content=b"warm")).status_code == 200
    baseline = len(asyncio.all_tasks())
    disconnects = upstreams.legacy.disconnects
    _reader, writer = await _raw(edge)
    writer.write(b"POST /upload HTTP/1.1\r\nHost: edge\r\nContent-Length: 104857600\r\n\r\n")
    writer.write(bytes(4 * MiB))
    await writer.drain()
    await _wait_for(lambda: len(asyncio.all_tasks()) > baseline, "the request to start")
    await asyncio.sleep(0.2)
    writer.close()
    await writer.wait_closed()
    await _wait_for(lambda: len(asyncio.all_tasks()) == baseline, "the edge's tasks to end")
    # The edge closed its upstream connection (the upstream saw the request end early)...
    await _wait_for(lambda: upstreams.legacy.disconnects > disconnects, "the upstream to see it")
    # ...and logged the request as the client's doing.
    await _wait_for(lambda: any(e["status"] == 499 for e in _access_entries(caplog)), "the log")
    entry = next(e for e in _access_entries(caplog) if e["status"] == 499)
    assert entry["error"] == "client-disconnected"
    assert 0 < entry["bytes_in"] < 104857600
    assert (await edge.client.post("/upload", content=b"again")).json()["size"] == 5


async def test_client_leaving_mid_download_stops_the_upstream(
    edge: Edge, upstreams: Upstreams
) -> None:
    assert (await edge.client.get("/v2/")).status_code == 200
    baseline = len(asyncio.all_tasks())
    disconnects = upstreams.legacy.disconnects
    reader, writer = await _raw(edge)
    writer.write(b"GET /forever HTTP/1.1\r\nHost: edge\r\n\r\n")
    await writer.drain()
    received = 0
    while received < 8 * MiB:
        chunk = await reader.read(MiB)
        assert chunk, "the edge ended the endless response"
        received += len(chunk)
    writer.close()
    await writer.wait_closed()
    await _wait_for(lambda: upstreams.legacy.disconnects > disconnects, "the upstream to stop")
    await _wait_for(lambda: len(asyncio.all_tasks()) == baseline, "the edge's tasks to end")
    labels = {"capability": "catch-all", "upstream": "legacy", "reason": "owner"}
    assert edge.count("wharf_edge_requests_total", **labels, status_class="4xx") == 1


@pytest.mark.parametrize(
    "request_head",
    [
        b"GET /v2/orga/app/manifests/a%zz%/b HTTP/1.1\r\nHost: edge\r\n",
        b"GET /v2/orga/app/manifests/caf\xc3\xa9\xff HTTP/1.1\r\nHost: edge\r\n",
        b"GET /odd?q=%ff%00&x=\xe9 HTTP/1.1\r\nHost: edge\r\n",
        b"GET http://elsewhere.example/v2/ HTTP/1.1\r\nHost: edge\r\n",
        b"GET /v2/ HTTP/1.1\r\nHost: edge\r\nX-Latin: caf\xe9\r\nX-Request-ID: \xff\xfe\r\n",
        b"GET /v2/ HTTP/1.0\r\n",
        b"GET /v2/ HTTP/1.1\r\nHost: edge\r\nX-Big: " + b"a" * 60_000 + b"\r\n",
        b"GET /v2/ HTTP/1.1\r\nHost: edge\r\nContent-Length: 5\r\nContent-Length: 6\r\n",
        b"POST /upload HTTP/1.1\r\nHost: edge\r\nContent-Length: nope\r\n",
        b"GET /v2/ HTTP/1.1\r\nHost: edge\r\n" + b"X-Many: 1\r\n" * 2000,
    ],
)
async def test_bad_requests_are_never_a_500(edge: Edge, request_head: bytes) -> None:
    reader, writer = await _raw(edge)
    writer.write(request_head + b"Connection: close\r\n\r\n")
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    status_line = answer.split(b"\r\n", 1)[0]
    assert status_line.startswith(b"HTTP/1.1 "), answer[:200]
    assert int(status_line.split()[1]) < 500, answer[:500]
    assert (await edge.client.get("/v2/")).status_code == 200


async def test_a_flip_amid_20_concurrent_uploads_lets_every_one_finish(
    edge: Edge, upstreams: Upstreams
) -> None:
    flipped = asyncio.Event()

    async def push(index: int) -> tuple[str, str]:
        name = f"orgs/img{index}"
        started = await edge.client.post(f"/v2/{name}/blobs/uploads/")
        location = started.headers["location"]
        for part in range(4):
            if index == 10 and part == 1:
                edge.tables.replace(parse_table_yaml(table_yaml(upstreams, ("orgs/*",))))
                flipped.set()
            patched = await edge.client.patch(location, content=bytes(64 * 1024))
            assert patched.status_code == 202
            await asyncio.sleep(0.01)
        done = await edge.client.put(location + "&digest=sha256:00")
        assert done.status_code == 201, done.text
        return started.headers["x-upstream"], done.headers["x-upstream"]

    results = await asyncio.gather(*(push(index) for index in range(20)))
    assert flipped.is_set()
    for started_on, finished_on in results:
        assert started_on == finished_on
    assert {started_on for started_on, _ in results} == {"legacy"}
    after = await edge.client.post("/v2/orgs/img0/blobs/uploads/")
    assert after.headers["x-upstream"] == "wharf"
