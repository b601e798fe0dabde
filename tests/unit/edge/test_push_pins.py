"""A push in flight stays on its upstream across a flip, manifest included; a new push
(another token) follows the new table."""

from __future__ import annotations

import httpx
from starlette.types import Receive, Scope, Send

from wharf.edge.app import create_edge_app
from wharf.edge.state import MemoryStickyUploads, StaticTable
from wharf.edge.table import parse_table_yaml


def table(push_owner: str) -> str:
    return f"""
upstreams:
  legacy: {{url: "inproc:legacy"}}
  wharf: {{url: "inproc:wharf"}}
default_owner: legacy
capabilities:
  registry-push: {{owner: {push_owner}}}
"""


def fake_registry(name: str):  # type: ignore[no-untyped-def]
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        while (await receive()).get("more_body"):
            pass
        method, path = scope["method"], scope["path"]
        headers = [(b"x-upstream", name.encode())]
        status = 200
        if method == "POST":
            status = 202
            headers.append((b"location", f"{path}{name}-session".encode()))
        elif method == "PUT":
            status = 201
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": b""})

    return app


async def test_push_pins_follow_the_client_not_the_table() -> None:
    tables = StaticTable(parse_table_yaml(table("legacy")))
    edge = create_edge_app(
        tables,
        MemoryStickyUploads(),
        in_process={"legacy": fake_registry("legacy"), "wharf": fake_registry("wharf")},
        push_pins=MemoryStickyUploads(ttl=600),
    )
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=edge), base_url="http://edge")
    alice = {"Authorization": "Bearer alice-push-1"}
    started = await client.post("/v2/orgm/app/blobs/uploads/", headers=alice)
    assert started.headers["x-upstream"] == "legacy"

    tables.replace(parse_table_yaml(table("wharf")))  # the flip, mid-push
    manifest = await client.put("/v2/orgm/app/manifests/v1", headers=alice, content=b"{}")
    assert manifest.headers["x-upstream"] == "legacy"  # where its blobs are
    bob = {"Authorization": "Bearer bob-push-1"}
    fresh = await client.post("/v2/orgm/app/blobs/uploads/", headers=bob)
    assert fresh.headers["x-upstream"] == "wharf"
    other_repo = await client.post("/v2/orgm/other/blobs/uploads/", headers=alice)
    assert other_repo.headers["x-upstream"] == "wharf"  # pins are per repository
    pulled = await client.get("/v2/orgm/app/manifests/v1", headers=alice)
    assert pulled.headers["x-upstream"] == "legacy"  # reads follow the table (pull owner)
    await client.aclose()
    await edge.aclose()


async def test_oversized_headers_are_refused_not_forwarded() -> None:
    tables = StaticTable(parse_table_yaml(table("legacy")))
    forwarded = []

    async def upstream(scope: Scope, receive: Receive, send: Send) -> None:
        forwarded.append(scope["path"])
        await fake_registry("legacy")(scope, receive, send)

    edge = create_edge_app(
        tables, MemoryStickyUploads(), in_process={"legacy": upstream, "wharf": upstream}
    )
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=edge), base_url="http://edge")
    huge = {"X-Junk": "x" * (100 * 1024)}
    refused = await client.get("/v2/orga/app/tags/list", headers=huge)
    assert refused.status_code == 431
    assert refused.json()["errors"][0]["detail"] == {"limit_bytes": 64 * 1024}
    assert forwarded == []
    assert (await client.get("/v2/orga/app/tags/list")).status_code == 200
    await client.aclose()
    await edge.aclose()
