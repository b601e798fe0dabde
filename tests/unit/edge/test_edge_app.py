"""The edge app at the ASGI level, with in-process upstreams only: no sockets.

Error formats, the catch-all, a failing pin store, metrics, the access log, lifespans.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest
from starlette.types import Message, Receive, Scope, Send

from wharf.edge import pins as edge_pins
from wharf.edge.app import EdgeApp, create_edge_app
from wharf.edge.metrics import metrics_response
from wharf.edge.state import MemoryStickyUploads, StaticTable, VersionedTable
from wharf.edge.table import parse_table_yaml

TABLE = """
upstreams:
  registry: {url: "inproc:registry"}
  legacy: {url: "inproc:legacy"}
  ghost: {url: "inproc:ghost"}
default_owner: registry
capabilities:
  registry-push:
    canary: {upstream: legacy, organisations: [old]}
  ghosts: {match: {prefix: [/v2/ghost/, /api/ghost]}, owner: ghost}
"""


class Recorder:
    """An in-process app that answers 200 with what it saw, and remembers it."""

    def __init__(self, name: str, status: int = 200, body: bytes = b"ok") -> None:
        self.name, self.status, self.body = name, status, body
        self.scopes: list[Scope] = []
        self.bodies: list[bytes] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        self.scopes.append(scope)
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        self.bodies.append(b"".join(chunks))
        headers = [(b"x-upstream", self.name.encode()), (b"connection", b"x-private")]
        headers += [(b"x-private", b"1"), (b"content-length", b"%d" % len(self.body))]
        await send({"type": "http.response.start", "status": self.status, "headers": headers})
        await send({"type": "http.response.body", "body": self.body})


class Response:
    def __init__(self, messages: list[Message]) -> None:
        start = messages[0]
        self.status: int = start["status"]
        self.headers: dict[bytes, bytes] = dict(start["headers"])
        self.body = b"".join(m.get("body", b"") for m in messages[1:])

    def json(self) -> Any:
        return json.loads(self.body)


async def call(
    app: EdgeApp,
    method: str,
    path: str,
    *,
    headers: list[tuple[bytes, bytes]] | None = None,
    body: list[bytes] | None = None,
    query: bytes = b"",
) -> Response:
    chunks = list(body or [b""])
    sent: list[Message] = []

    async def receive() -> Message:
        if chunks:
            chunk = chunks.pop(0)
            return {"type": "http.request", "body": chunk, "more_body": bool(chunks)}
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query,
        "root_path": "",
        "headers": [(b"host", b"edge.test"), *(headers or [])],
        "client": ("192.0.2.10", 5000),
        "server": ("127.0.0.1", 80),
    }
    await app(scope, receive, send)
    return Response(sent)


@pytest.fixture
def apps() -> dict[str, Recorder]:
    return {"registry": Recorder("registry"), "legacy": Recorder("legacy")}


@pytest.fixture
def edge(apps: dict[str, Recorder]) -> EdgeApp:
    tables = StaticTable(parse_table_yaml(TABLE))
    return create_edge_app(tables, MemoryStickyUploads(), in_process=apps)


async def test_in_process_dispatch_applies_the_header_rules(
    edge: EdgeApp, apps: dict[str, Recorder]
) -> None:
    response = await call(
        edge,
        "PUT",
        "/v2/orga/app/manifests/v1",
        headers=[(b"content-length", b"6"), (b"connection", b"x-hop"), (b"x-hop", b"1")],
        body=[b"abc", b"def"],
    )
    assert response.status == 200
    assert response.headers[b"x-upstream"] == b"registry"
    assert b"x-private" not in response.headers
    seen = dict(apps["registry"].scopes[0]["headers"])
    assert b"x-hop" not in seen
    assert b"connection" not in seen
    assert seen[b"x-forwarded-for"] == b"192.0.2.10"
    assert seen[b"x-forwarded-host"] == b"edge.test"
    assert seen[b"x-request-id"] == response.headers[b"x-request-id"]
    assert apps["registry"].bodies == [b"abcdef"]
    response = await call(edge, "PUT", "/v2/old/app/manifests/v1")
    assert response.headers[b"x-upstream"] == b"legacy"  # canary-org


async def test_missing_in_process_app_is_503_in_both_formats(edge: EdgeApp) -> None:
    response = await call(edge, "GET", "/v2/ghost/app/manifests/v1")
    assert response.status == 503
    assert response.headers[b"retry-after"] == b"5"
    assert response.json() == {
        "errors": [
            {
                "code": "UNAVAILABLE",
                "message": "ghost is not running",
                "detail": {"upstream": "ghost"},
            }
        ]
    }
    response = await call(edge, "GET", "/api/ghost/x")
    assert response.status == 503
    assert response.json()["error_type"] == "unavailable"
    assert response.json()["detail"] == {"upstream": "ghost"}
    response = await call(edge, "HEAD", "/v2/ghost/app/manifests/v1")
    assert response.status == 503
    assert response.body == b""
    assert int(response.headers[b"content-length"]) > 0  # what a GET would have had
    errors = edge.metrics.registry.get_sample_value(
        "wharf_edge_upstream_errors_total", {"upstream": "ghost", "kind": "not-running"}
    )
    assert errors == 3


class BrokenTables:
    def current(self) -> VersionedTable:
        raise RuntimeError("boom: internal detail")


async def test_a_bug_in_the_edge_is_a_json_500_without_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    edge = create_edge_app(BrokenTables(), MemoryStickyUploads())
    response = await call(edge, "GET", "/v2/orga/app/manifests/v1")
    assert response.status == 500
    document = response.json()
    assert document["errors"][0]["code"] == "UNKNOWN"
    assert (
        document["errors"][0]["detail"]["request_id"] == response.headers[b"x-request-id"].decode()
    )
    assert b"boom" not in response.body
    assert b"Traceback" not in response.body
    assert any("edge failed" in r.getMessage() and r.exc_info for r in caplog.records)
    response = await call(edge, "GET", "/api/v1/user")
    assert response.status == 500
    assert response.json()["error_type"] == "unknown"


async def test_an_in_process_app_that_raises_is_a_500(edge: EdgeApp) -> None:
    async def broken(scope: Scope, receive: Receive, send: Send) -> None:
        raise ValueError("in the service")

    edge.in_process["registry"] = broken
    response = await call(edge, "GET", "/v2/orga/app/manifests/v1")
    assert response.status == 500
    assert response.json()["errors"][0]["detail"] == {"upstream": "registry"}


class FailingSticky(MemoryStickyUploads):
    def __init__(self, hang: bool) -> None:
        super().__init__()
        self.hang = hang

    async def _fail(self) -> None:
        if self.hang:
            await asyncio.sleep(3600)
        raise ConnectionError("redis is down")

    async def pin(self, session_id: str, upstream: str) -> None:
        await self._fail()

    async def upstream_of(self, session_id: str) -> str | None:
        await self._fail()
        return None


@pytest.mark.parametrize("hang", [False, True])
async def test_a_failing_pin_store_never_stops_routing(
    apps: dict[str, Recorder], monkeypatch: pytest.MonkeyPatch, hang: bool
) -> None:
    monkeypatch.setattr(edge_pins, "STICKY_TIMEOUT_S", 0.05)
    apps["registry"].status, apps["registry"].body = 202, b""

    async def starts_upload(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        headers = [(b"location", b"/v2/orga/app/blobs/uploads/u1"), (b"content-length", b"0")]
        await send({"type": "http.response.start", "status": 202, "headers": headers})
        await send({"type": "http.response.body", "body": b""})

    edge = create_edge_app(
        StaticTable(parse_table_yaml(TABLE)),
        FailingSticky(hang),
        in_process={**apps, "registry": starts_upload},
    )
    response = await call(edge, "POST", "/v2/orga/app/blobs/uploads/")
    assert response.status == 202
    response = await call(edge, "PATCH", "/v2/orga/app/blobs/uploads/u1")
    assert response.status == 202
    for operation in ("pin", "upstream_of"):
        value = edge.metrics.registry.get_sample_value(
            "wharf_edge_sticky_store_errors_total", {"operation": operation}
        )
        assert value == 1


async def test_sticky_pins_with_in_process_upstreams(apps: dict[str, Recorder]) -> None:
    async def registry(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        status = {"POST": 202, "PATCH": 202, "PUT": 201}[scope["method"]]
        location = b"/v2/old/app/blobs/uploads/s1?_state=x"
        headers = [(b"location", location), (b"content-length", b"0")]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": b""})

    sticky = MemoryStickyUploads()
    tables = StaticTable(parse_table_yaml(TABLE.replace("organisations: [old]", "percent: 0.01")))
    edge = create_edge_app(tables, sticky, in_process={**apps, "registry": registry})
    assert (await call(edge, "POST", "/v2/old/app/blobs/uploads/")).status == 202
    assert await sticky.upstream_of("s1") == "registry"
    tables.replace(parse_table_yaml(TABLE))  # now `old` goes to legacy
    response = await call(edge, "PATCH", "/v2/old/app/blobs/uploads/s1")
    assert response.status == 202  # the registry answered, not the legacy recorder
    assert (
        await call(edge, "PUT", "/v2/old/app/blobs/uploads/s1", query=b"digest=x")
    ).status == 201
    assert await sticky.upstream_of("s1") is None
    reasons = {
        s.labels["reason"]
        for m in edge.metrics.registry.collect()
        if m.name == "wharf_edge_requests"
        for s in m.samples
        if s.name.endswith("_total")
    }
    assert reasons == {"owner", "sticky"}


async def test_access_log_fields(edge: EdgeApp, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="wharf.edge.access")
    await call(
        edge,
        "PUT",
        "/v2/orga/app/blobs/uploads/u9",
        headers=[(b"authorization", b"Bearer s3cr3t-token"), (b"x-request-id", b"req-1")],
        body=[b"12345"],
        query=b"digest=sha256:aa&_state=s3cr3t-state",
    )
    [record] = [r for r in caplog.records if r.name == "wharf.edge.access"]
    line = record.getMessage()
    assert "s3cr3t" not in line
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["request_id"] == "req-1"
    assert entry["method"] == "PUT"
    assert entry["path"] == "/v2/orga/app/blobs/uploads/u9"
    assert entry["query"] == "digest=sha256%3Aaa&_state=-"
    assert entry["status"] == 200
    assert entry["bytes_in"] == 5
    assert entry["bytes_out"] == 2
    assert entry["upstream"] == "registry"
    assert entry["reason"] == "owner"
    assert entry["capability"] == "registry-push"
    assert entry["table_version"] == 1
    assert entry["client"] == "192.0.2.10"
    assert entry["duration_ms"] >= 0
    assert entry["time"].endswith("+00:00")
    assert record.access == entry  # type: ignore[attr-defined]


async def test_metrics_only_on_the_edge_port_when_asked(apps: dict[str, Recorder]) -> None:
    tables = StaticTable(parse_table_yaml(TABLE))
    quiet = create_edge_app(tables, MemoryStickyUploads(), in_process=apps)
    assert (await call(quiet, "GET", "/metrics")).headers[b"x-upstream"] == b"registry"
    loud = create_edge_app(tables, MemoryStickyUploads(), in_process=apps, metrics_path="/metrics")
    await call(loud, "GET", "/v2/orga/app/manifests/v1")
    response = await call(loud, "GET", "/metrics")
    assert response.status == 200
    assert b"x-upstream" not in response.headers
    assert b'wharf_edge_requests_total{capability="registry-pull"' in response.body
    assert b"wharf_edge_table_version 1.0" in response.body
    # Two apps, two registries: no collision, each counts its own.
    rendered = metrics_response(quiet.metrics).body
    assert (
        b'{capability="catch-all",reason="owner",status_class="2xx",upstream="registry"} 1.0'
        in (rendered)
    )
    assert b"registry-pull" not in rendered


async def test_lifespans_of_in_process_apps(caplog: pytest.LogCaptureFixture) -> None:
    events: list[str] = []

    def lifespan_app(name: str, fail: bool = False) -> Any:
        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == "http":
                body = json.dumps(scope["state"]).encode()
                await send({"type": "http.response.start", "status": 200, "headers": []})
                await send({"type": "http.response.body", "body": body})
                return
            assert (await receive())["type"] == "lifespan.startup"
            if fail:
                await send({"type": "lifespan.startup.failed", "message": "no database"})
                return
            scope["state"]["who"] = name
            events.append(f"{name} up")
            await send({"type": "lifespan.startup.complete"})
            assert (await receive())["type"] == "lifespan.shutdown"
            events.append(f"{name} down")
            await send({"type": "lifespan.shutdown.complete"})

        return app

    async def no_lifespan(scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "http"

    tables = StaticTable(parse_table_yaml(TABLE))
    edge = create_edge_app(
        tables,
        MemoryStickyUploads(),
        in_process={"registry": lifespan_app("registry"), "legacy": no_lifespan},
    )
    inbox: asyncio.Queue[Message] = asyncio.Queue()
    outbox: list[Message] = []

    async def send(message: Message) -> None:
        outbox.append(message)

    await inbox.put({"type": "lifespan.startup"})
    running = asyncio.create_task(edge({"type": "lifespan"}, inbox.get, send))
    while not outbox:
        await asyncio.sleep(0.01)
    assert outbox == [{"type": "lifespan.startup.complete"}]
    assert (await call(edge, "GET", "/v2/x/y/manifests/z")).json() == {"who": "registry"}
    await inbox.put({"type": "lifespan.shutdown"})
    await running
    assert outbox[-1] == {"type": "lifespan.shutdown.complete"}
    assert events == ["registry up", "registry down"]

    failing = create_edge_app(
        tables, MemoryStickyUploads(), in_process={"registry": lifespan_app("r", fail=True)}
    )
    outbox.clear()
    await inbox.put({"type": "lifespan.startup"})
    await failing({"type": "lifespan"}, inbox.get, send)
    assert outbox[0]["type"] == "lifespan.startup.failed"
    assert "no database" in outbox[0]["message"]


async def test_websockets_are_refused(edge: EdgeApp) -> None:
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    async def receive() -> Message:
        return {"type": "websocket.connect"}

    await edge({"type": "websocket", "path": "/", "headers": []}, receive, send)
    assert sent == [{"type": "websocket.close", "code": 1008}]
