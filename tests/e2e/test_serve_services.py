"""`wharf serve --service all|registry|edge`: the edge in front by default, one service alone
for compose and Helm, and the edge's admin API under /_edge when a token is configured."""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx

from tests.e2e.registries import Registry, wharf_bin
from tests.servers import unavailable

ADMIN_TOKEN = "edge-admin-token-for-tests"


def test_all_puts_the_edge_in_front(tmp_path: Path) -> None:
    registry = Registry("wharf", tmp_path, extra_env={"WHARF_EDGE_ADMIN_TOKEN": ADMIN_TOKEN})
    with registry:
        version = httpx.get(f"{registry.url}/v2/")
        assert version.status_code == 401  # the registry's challenge, through the edge
        assert version.headers["Docker-Distribution-API-Version"] == "registry/2.0"
        assert version.headers["X-Request-ID"]  # set by the edge
        status = httpx.get(
            f"{registry.url}/_edge/status", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
        )
        assert status.status_code == 200, status.text
        assert status.json()["version"] == 1
        assert "inproc:registry" in str(status.json())
        refused = httpx.get(f"{registry.url}/_edge/status")
        assert refused.status_code == 401


def test_registry_alone(tmp_path: Path) -> None:
    with Registry("wharf", tmp_path, service="registry") as registry:
        version = httpx.get(f"{registry.url}/v2/")
        assert version.status_code == 401
        assert "X-Request-ID" not in version.headers
        assert httpx.get(f"{registry.url}/_edge/status").status_code == 404


def test_edge_alone_needs_a_table(tmp_path: Path) -> None:
    binary = wharf_bin()
    if binary is None:
        unavailable("the wharf command")
    result = subprocess.run(
        [str(binary), "serve", "--service", "edge", "--data-dir", str(tmp_path / "d")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "--service edge needs WHARF_EDGE_TABLE" in result.stderr
