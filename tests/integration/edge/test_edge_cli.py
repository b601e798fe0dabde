"""`wharf edge status|plan|set|rollback|history|kill-switch` as subprocesses against a running
replica's admin API: outputs, audit, exit codes (0 done, 1 refused, 2 usage/connection)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.edge.test_replicas import TOKEN, Process, start_replica, wharf_command
from tests.postgres import free_port

TABLE = """upstreams:
  legacy: {url: "http://127.0.0.1:9"}
  wharf: {url: "http://127.0.0.1:9/wharf"}
default_owner: legacy
capabilities:
  registry-pull:
    canary: {upstream: wharf, repositories: ["orgb/*"]}
"""
CANARY = TABLE.replace('["orgb/*"]', '["orgb/*", "orga/*"]')


@pytest.fixture
def replica(tmp_path: Path) -> Iterator[Process]:
    table = tmp_path / "table.yaml"
    table.write_text(TABLE)
    store = f"sqlite+aiosqlite:///{tmp_path / 'edge.db'}"
    access_log = tmp_path / "access.log"
    running = start_replica(tmp_path, "cli", store, table, "--access-log", str(access_log))
    running.extra["access_log"] = str(access_log)
    yield running
    running.stop()


def wharf(
    replica: Process, *args: str, token: str | None = TOKEN, admin: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WHARF_EDGE_")}
    if token is not None:
        env["WHARF_EDGE_ADMIN_TOKEN"] = token
    command, *rest = args
    return subprocess.run(
        wharf_command(
            "edge", command, "--admin-url", admin or replica.admin, "--author", "alice", *rest
        ),
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def test_the_switch_workflow(replica: Process, tmp_path: Path) -> None:
    status = wharf(replica, "status")
    assert status.returncode == 0, status.stderr
    lines = status.stdout.splitlines()
    assert lines[0].startswith("route table v1, set ")
    assert lines[0].endswith(" by bootstrap: initial table")
    assert "kill switch: off" in lines
    assert "  registry-pull        legacy; canary -> wharf: repositories orgb/*" in lines
    assert wharf(replica, "status", "--yaml").stdout == TABLE

    # Traffic for the access log (the upstreams are down: 502s, logged all the same).
    for path in (
        "/v2/orga/app/manifests/v1",
        "/v2/orga/app/blobs/sha256:00",
        "/v2/orgc/x/tags/list",
    ):
        httpx.get(f"{replica.proxy}{path}", timeout=10)
    proposed = tmp_path / "canary.yaml"
    proposed.write_text(CANARY)
    plan = wharf(
        replica, "plan", str(proposed), "--path", "GET /v2/orga/web/manifests/v1",
        "--path", "GET /v2/orgd/x/manifests/v1", "--from-log", "100",
    )  # fmt: skip
    assert plan.returncode == 0, plan.stderr
    assert plan.stdout.splitlines() == [
        "plan against v1 (nothing applied)",
        "table changes:",
        "  registry-pull: canary repositories +orga/*",
        "requests:",
        "  GET /v2/orga/web/manifests/v1: legacy (owner) -> wharf (canary-repo)  MOVES",
        "  GET /v2/orgd/x/manifests/v1: stays, legacy (owner)",
        "access log: 3 requests (0 other lines): 2 would move, 1 stay",
        "  registry-pull: legacy -> wharf: 2 requests, e.g. GET /v2/orga/app/manifests/v1,"
        " GET /v2/orga/app/blobs/sha256:00",
    ]
    local = wharf(replica, "plan", str(proposed), "--log-file", replica.extra["access_log"])
    assert "access log: 3 requests" in local.stdout

    applied = wharf(replica, "set", str(proposed), "--reason", "canary orga")
    assert applied.returncode == 0, applied.stderr
    assert applied.stdout.splitlines() == [
        "route table v2 in force (was v1), by alice (token ops): canary orga",
        "  registry-pull: canary repositories +orga/*",
    ]
    stale = wharf(replica, "set", str(proposed), "--reason", "x", "--expected-version", "1")
    assert stale.returncode == 1
    assert "refused (HTTP 409): the table is at version 2, not 1" in stale.stderr

    rollback = wharf(replica, "rollback", "--reason", "errors")
    assert rollback.returncode == 0, rollback.stderr
    assert rollback.stdout.splitlines()[0] == (
        "route table v3 in force (was v2), by alice (token ops): rollback to v1: errors"
    )
    killed = wharf(replica, "kill-switch", "legacy", "--reason", "incident")
    assert killed.stdout.splitlines()[1] == "  kill switch: off -> legacy"
    assert "kill switch: legacy (every request goes there)" in wharf(replica, "status").stdout
    cleared = wharf(replica, "kill-switch", "--clear", "--reason", "over")
    assert cleared.returncode == 0

    history = wharf(replica, "history", "--limit", "3")
    assert [line.split(None, 2)[2] for line in history.stdout.splitlines()] == [
        "alice (token ops): over",
        "alice (token ops): incident",
        "alice (token ops): rollback to v1: errors",
    ]
    diff = wharf(replica, "history", "--limit", "1", "--diff").stdout
    assert "    -kill_switch: legacy\n    +kill_switch: null\n" in diff
    as_json = wharf(replica, "history", "--json", "--limit", "5")
    assert '"previous_yaml"' in as_json.stdout


def test_refusals_and_connection_problems(replica: Process, tmp_path: Path) -> None:
    bad_token = wharf(replica, "status", token="wrong-token-0123456789")
    assert bad_token.returncode == 1
    assert bad_token.stderr == (
        "wharf edge: the admin API refused the token"
        " (check --token-file or $WHARF_EDGE_ADMIN_TOKEN)\n"
    )
    no_token = wharf(replica, "status", token=None)
    assert no_token.returncode == 2
    assert "no admin token" in no_token.stderr

    token_file = tmp_path / "token"
    token_file.write_text(f"# mine\n{TOKEN}\n")
    via_file = wharf(replica, "history", "--token-file", str(token_file), token=None)
    assert via_file.returncode == 0, via_file.stderr

    unreachable = wharf(replica, "status", admin=f"http://127.0.0.1:{free_port()}")
    assert unreachable.returncode == 2
    assert "cannot reach the edge admin API at http://127.0.0.1:" in unreachable.stderr
    assert "Traceback" not in unreachable.stderr

    invalid = tmp_path / "invalid.yaml"
    invalid.write_text(TABLE.replace("wharf, rep", "nowhere, rep") + "kill_switch: gone\n")
    refused = wharf(replica, "set", str(invalid), "--reason", "typo")
    assert refused.returncode == 1
    assert refused.stderr.splitlines() == [
        "wharf edge: the table is invalid, nothing changed:",
        "  - kill_switch: unknown upstream 'gone'",
        "  - capabilities.registry-pull.canary.upstream: unknown upstream 'nowhere'",
    ]
    plan = wharf(replica, "plan", str(invalid))
    assert plan.returncode == 1
    missing = wharf(replica, "set", str(tmp_path / "missing.yaml"), "--reason", "x")
    assert missing.returncode == 2
    assert "cannot read" in missing.stderr
    usage = wharf(replica, "set", str(invalid))  # no --reason
    assert usage.returncode == 2
    assert "--reason" in usage.stderr
    nothing = wharf(replica, "rollback", "--reason", "x")
    assert nothing.returncode == 1
    assert "no version 0 to roll back to" in nothing.stderr
    assert "route table v1," in wharf(replica, "status").stdout  # nothing was changed
