"""The admin API over a store in memory: auth, status, plan, set, rollback, history, kill
switch, and the error answers the CLI turns into messages."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from starlette.responses import PlainTextResponse

from tests.unit.edge.memory_store import TABLE, TABLE_2, MemorySwitchStore
from wharf.edge.admin import AdminAuth, AdminToken, create_admin_app
from wharf.edge.store import Switches
from wharf.edge.table_source import PolledTableSource

OPS_TOKEN = "ops-token-0123456789"
CI_TOKEN = "ci-token-abcdefghijkl"


@pytest.fixture
def store() -> MemorySwitchStore:
    return MemorySwitchStore()


@pytest.fixture
def access_log(tmp_path: Path) -> Path:
    lines = [
        {"method": "GET", "path": "/v2/orga/app/manifests/v1", "status": 200},
        {"method": "HEAD", "path": "/v2/orga/app/blobs/sha256:00", "status": 200},
        {"method": "GET", "path": "/v2/orgx/app/manifests/v1", "status": 200},
    ]
    path = tmp_path / "access.log"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


@pytest.fixture
async def admin(
    store: MemorySwitchStore, access_log: Path
) -> AsyncIterator[tuple[httpx.AsyncClient, PolledTableSource]]:
    switches = Switches(store)
    source = PolledTableSource(switches, bootstrap_yaml=TABLE, interval=3600)
    await source.start()
    auth = AdminAuth([AdminToken("ops", OPS_TOKEN), AdminToken("ci", CI_TOKEN)])
    app = create_admin_app(
        switches,
        source,
        auth,
        access_log=access_log,
        metrics=lambda: PlainTextResponse("wharf_edge_table_version 1\n"),
    )
    transport = httpx.ASGITransport(app=app)
    headers = {"Authorization": f"Bearer {OPS_TOKEN}"}
    async with httpx.AsyncClient(
        transport=transport, base_url="http://admin", headers=headers
    ) as c:
        yield c, source
    await source.aclose()


@pytest.mark.parametrize("path", ["/status", "/history", "/metrics", "/nowhere"])
@pytest.mark.parametrize(
    "authorization", [None, "Bearer wrong-token-0123456789", f"Basic {OPS_TOKEN}", "Bearer "]
)
async def test_every_path_needs_a_valid_token(
    admin: tuple[httpx.AsyncClient, PolledTableSource],
    authorization: str | None,
    path: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    client, _ = admin
    request = client.build_request("GET", path)
    if authorization is None:
        del request.headers["Authorization"]
    else:
        request.headers["Authorization"] = authorization
    with caplog.at_level(logging.DEBUG):
        response = await client.send(request)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="wharf-edge-admin"'
    assert response.json() == {"error": "a valid admin bearer token is required"}
    assert not any(OPS_TOKEN in r.getMessage() for r in caplog.records)


def test_admin_tokens() -> None:
    auth = AdminAuth.parse(f"# ops team\nops {OPS_TOKEN}\n\nci {CI_TOKEN}  # pipelines\n")
    assert [t.name for t in auth.tokens] == ["ops", "ci"]
    assert auth.identify(f"Bearer {CI_TOKEN}") == "ci"
    assert auth.identify(f"bearer  {OPS_TOKEN} ") == "ops"
    assert auth.identify(f"Bearer {OPS_TOKEN}x") is None
    assert auth.identify(None) is None
    assert AdminAuth.parse(OPS_TOKEN + "\n").tokens[0].name == "admin"
    assert OPS_TOKEN not in repr(auth.tokens)
    with pytest.raises(ValueError, match="at least one token"):
        AdminAuth.parse("# nothing\n")
    with pytest.raises(ValueError, match="shorter than 16"):
        AdminAuth.parse("short")


async def test_status(admin: tuple[httpx.AsyncClient, PolledTableSource]) -> None:
    client, _ = admin
    answer = (await client.get("/status")).json()
    assert answer["version"] == 1
    assert answer["set"]["author"] == "bootstrap"
    assert answer["yaml"] == TABLE
    assert answer["upstreams"] == {
        "legacy": "http://127.0.0.1:5000",
        "wharf": "http://127.0.0.1:8080",
    }
    assert answer["kill_switch"] is None
    pull = next(c for c in answer["capabilities"] if c["name"] == "registry-pull")
    assert pull["canary"]["repositories"] == ["orgb/*"]
    assert answer["store"]["kind"] == "memory"
    assert answer["store"]["error"] is None


async def test_plan(admin: tuple[httpx.AsyncClient, PolledTableSource]) -> None:
    client, _ = admin
    body = {
        "yaml": TABLE_2,
        "paths": [
            "GET /v2/orga/app/manifests/v1",
            {"method": "GET", "path": "/v2/orgb/x/tags/list"},
        ],
        "from_log": 100,
    }
    answer = (await client.post("/plan", json=body)).json()
    assert answer["version"] == 1
    assert answer["changes"] == ["registry-pull: canary repositories +orga/app"]
    assert '+    canary: {upstream: wharf, repositories: ["orgb/*", "orga/app"]}' in answer["diff"]
    moved = [r["moved"] for r in answer["requests"]]
    assert moved == [True, False]
    assert answer["requests"][0]["after"]["reason"] == "canary-repo"
    assert answer["log"]["requests"] == 3
    assert answer["log"]["unchanged"] == 1
    assert answer["log"]["moves"] == [
        {
            "capability": "registry-pull",
            "from": "legacy",
            "to": "wharf",
            "count": 2,
            "examples": ["GET /v2/orga/app/manifests/v1", "HEAD /v2/orga/app/blobs/sha256:00"],
        }
    ]
    given = {"yaml": TABLE_2, "log_lines": ["GET /v2/orga/app/manifests/v2", "noise"]}
    answer = (await client.post("/plan", json=given)).json()
    assert answer["log"]["moves"][0]["count"] == 1
    assert answer["log"]["skipped"] == 1
    assert (await client.get("/status")).json()["version"] == 1  # nothing applied


async def test_plan_refusals(admin: tuple[httpx.AsyncClient, PolledTableSource]) -> None:
    client, _ = admin
    invalid = await client.post("/plan", json={"yaml": TABLE.replace("wharf, rep", "x, rep")})
    assert invalid.status_code == 422
    assert invalid.json() == {
        "error": "invalid table",
        "problems": ["capabilities.registry-pull.canary.upstream: unknown upstream 'x'"],
    }
    bad_path = await client.post("/plan", json={"yaml": TABLE, "paths": ["GET nope"]})
    assert bad_path.status_code == 400
    assert bad_path.json()["error"] == "paths: a path starts with '/': 'nope'"
    assert (await client.post("/plan", json={})).json()["error"] == "'yaml' is required"
    assert (await client.post("/plan", content=b"[1]")).status_code == 400
    assert (await client.post("/plan", content=b"{oops")).status_code == 400


async def test_set_and_the_audit_trail(admin: tuple[httpx.AsyncClient, PolledTableSource]) -> None:
    client, source = admin
    response = await client.put(
        "/table",
        json={"yaml": TABLE_2, "reason": "canary orga/app"},
        headers={"X-Wharf-Author": "alice"},
    )
    assert response.status_code == 200
    answer = response.json()
    assert answer["version"] == 2
    assert answer["previous_version"] == 1
    assert answer["author"] == "alice (token ops)"
    assert answer["changes"] == ["registry-pull: canary repositories +orga/app"]
    assert source.current().version == 2  # this replica applies it at once
    same_name = await client.put(
        "/table",
        json={"yaml": TABLE, "reason": "back", "expected_version": 2},
        headers={"X-Wharf-Author": "ops"},
    )
    assert same_name.json()["author"] == "ops"
    as_ci = await client.put(
        "/table",
        json={"yaml": TABLE_2, "reason": "again"},
        headers={"Authorization": f"Bearer {CI_TOKEN}", "X-Wharf-Author": "bob\n\x1b[31m"},
    )
    assert as_ci.json()["author"] == "bob[31m (token ci)"
    history = (await client.get("/history", params={"limit": 2})).json()["entries"]
    assert [e["version"] for e in history] == [4, 3]
    assert history[0]["previous_yaml"] == TABLE
    assert history[0]["yaml"] == TABLE_2
    assert history[0]["reason"] == "again"


async def test_set_refusals(
    admin: tuple[httpx.AsyncClient, PolledTableSource], store: MemorySwitchStore
) -> None:
    client, _ = admin
    invalid = await client.put("/table", json={"yaml": "upstreams: {}", "reason": "r"})
    assert invalid.status_code == 422
    assert (
        "upstreams: at least one upstream is required, as a mapping" in invalid.json()["problems"]
    )
    no_reason = await client.put("/table", json={"yaml": TABLE})
    assert (no_reason.status_code, no_reason.json()["error"]) == (400, "'reason' is required")
    blank = await client.put("/table", json={"yaml": TABLE, "reason": " "})
    assert blank.status_code == 400
    wrong_type = await client.put(
        "/table", json={"yaml": TABLE, "reason": "r", "expected_version": "1"}
    )
    assert wrong_type.json()["error"] == "'expected_version' must be a whole number"
    conflict = await client.put(
        "/table", json={"yaml": TABLE_2, "reason": "r", "expected_version": 7}
    )
    assert conflict.status_code == 409
    assert conflict.json()["current_version"] == 1
    store.down = True
    down = await client.put("/table", json={"yaml": TABLE_2, "reason": "r"})
    assert down.status_code == 503
    assert down.json()["error"].startswith("switch store unavailable: ConnectionRefusedError")
    assert list(store.records) == [1]


async def test_rollback_and_kill_switch(admin: tuple[httpx.AsyncClient, PolledTableSource]) -> None:
    client, source = admin
    nothing = await client.post("/rollback", json={"reason": "r"})
    assert nothing.status_code == 404
    assert nothing.json()["error"] == "no version 0 to roll back to (newest is v1)"
    await client.put("/table", json={"yaml": TABLE_2, "reason": "canary"})
    back = (await client.post("/rollback", json={"reason": "errors"})).json()
    assert back["version"] == 3
    assert back["reason"] == "rollback to v1: errors"
    assert back["changes"] == ["registry-pull: canary repositories -orga/app"]
    assert source.current().table.capability("registry-pull").canary.repositories == ("orgb/*",)  # type: ignore[union-attr]

    killed = (
        await client.post("/kill-switch", json={"upstream": "legacy", "reason": "fire"})
    ).json()
    assert killed["changes"] == ["kill switch: off -> legacy"]
    assert source.current().table.kill_switch == "legacy"
    unknown = await client.post("/kill-switch", json={"upstream": "nope", "reason": "r"})
    assert unknown.status_code == 422
    assert unknown.json()["problems"] == ["kill_switch: unknown upstream 'nope'"]
    cleared = (await client.post("/kill-switch", json={"upstream": None, "reason": "out"})).json()
    assert cleared["changes"] == ["kill switch: legacy -> off"]
    assert source.current().table.kill_switch is None


async def test_history_limit_and_metrics(
    admin: tuple[httpx.AsyncClient, PolledTableSource],
) -> None:
    client, _ = admin
    for limit in ("0", "1001", "x"):
        response = await client.get("/history", params={"limit": limit})
        assert response.status_code == 400
    metrics = await client.get("/metrics")
    assert metrics.text == "wharf_edge_table_version 1\n"


async def test_plan_from_log_needs_a_log_file(store: MemorySwitchStore) -> None:
    switches = Switches(store)
    source = PolledTableSource(switches, bootstrap_yaml=TABLE, interval=3600)
    await source.start()
    app = create_admin_app(switches, source, AdminAuth([AdminToken("ops", OPS_TOKEN)]))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://admin",
        headers={"Authorization": f"Bearer {OPS_TOKEN}"},
    ) as client:
        response = await client.post("/plan", json={"yaml": TABLE, "from_log": 10})
    await source.aclose()
    assert response.status_code == 400
    assert "no access log file configured" in response.json()["error"]
