"""Two edge replicas as separate processes (`wharf edge serve`) over one store: a change made
through one is served by the other within a second, a rollback too, and an upload started
through one replica continues through the other on the upstream that started it."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.integration.edge.switch_servers import (  # noqa: F401
    pg_url,
    postgres_url,
    redis_session,
    redis_url,
    sqlite_url,
    store_url,
)

TOKEN = "replica-test-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SERVING_RE = re.compile(r"wharf edge: serving proxy=(\S+) admin=(\S+)")
PROPAGATION_LIMIT_S = 1.0
UPSTREAM_SCRIPT = r"""
import sys, uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

NAME = sys.argv[1]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def answer(self, status, headers=()):
        length = int(self.headers.get("content-length") or 0)
        if length:
            self.rfile.read(length)
        body = NAME.encode()
        self.send_response(status)
        for key, value in headers:
            self.send_header(key, value)
        self.send_header("X-Upstream", NAME)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        self.answer(202, [("Location", self.path.rstrip("/") + "/" + uuid.uuid4().hex)])

    def do_PATCH(self):
        self.answer(202)

    def do_GET(self):
        self.answer(200)

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
"""


def wharf_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "wharf.cli.main", *args]


@dataclass
class Process:
    process: subprocess.Popen[bytes]
    log: Path
    urls: tuple[str, str] = ("", "")
    extra: dict[str, str] = field(default_factory=dict)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=5)

    @property
    def proxy(self) -> str:
        return self.urls[0]

    @property
    def admin(self) -> str:
        return self.urls[1]


def start_replica(tmp_path: Path, name: str, store: str, table: Path, *extra: str) -> Process:
    log = tmp_path / f"{name}.log"
    tokens = tmp_path / "tokens"
    tokens.write_text(f"ops {TOKEN}\n")
    with log.open("wb") as sink:
        process = subprocess.Popen(
            wharf_command(
                "edge",
                "serve",
                "--store",
                store,
                "--table",
                str(table),
                "--port",
                "0",
                "--admin-port",
                "0",
                "--admin-token-file",
                str(tokens),
                *extra,
            ),
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    replica = Process(process, log)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = SERVING_RE.search(log.read_text(errors="replace"))
        if found:
            replica.urls = (found.group(1), found.group(2))
            return replica
        if process.poll() is not None:
            break
        time.sleep(0.05)
    replica.stop()
    pytest.fail(f"replica {name} did not start:\n{log.read_text(errors='replace')}")


def start_upstream(name: str) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, "-c", UPSTREAM_SCRIPT, name],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert process.stdout is not None
    port = process.stdout.readline().strip()
    assert port.isdigit(), f"upstream {name} did not start"
    return process, f"http://127.0.0.1:{port}"


@pytest.fixture
def upstreams() -> Iterator[dict[str, str]]:
    started = {name: start_upstream(name) for name in ("legacy", "wharf")}
    yield {name: url for name, (_, url) in started.items()}
    for process, _ in started.values():
        process.terminate()
        process.wait(timeout=10)


def table_text(upstreams: dict[str, str], push_owner: str) -> str:
    return (
        f'upstreams:\n  legacy: {{url: "{upstreams["legacy"]}"}}\n'
        f'  wharf: {{url: "{upstreams["wharf"]}"}}\n'
        "default_owner: legacy\ncapabilities:\n"
        f"  registry-push: {{owner: {push_owner}}}\n"
    )


def version_of(admin: str) -> int:
    return int(httpx.get(f"{admin}/status", headers=AUTH, timeout=5).json()["version"])


def wait_for_version(admin: str, version: int) -> float:
    """Seconds until the replica behind `admin` serves `version` (fails past the limit)."""
    started = time.monotonic()
    while version_of(admin) != version:
        elapsed = time.monotonic() - started
        assert elapsed < PROPAGATION_LIMIT_S, f"v{version} not served after {elapsed:.2f} s"
        time.sleep(0.01)
    return time.monotonic() - started


def test_two_replicas_share_switches_and_uploads(
    tmp_path: Path,
    store_url: str,  # noqa: F811
    upstreams: dict[str, str],
) -> None:
    initial = tmp_path / "table.yaml"
    initial.write_text(table_text(upstreams, "legacy"))
    one = start_replica(tmp_path, "one", store_url, initial)
    two = start_replica(tmp_path, "two", store_url, initial)
    try:
        assert version_of(one.admin) == version_of(two.admin) == 1  # seeded once

        # An upload starts through replica one, on legacy (the push owner).
        started = httpx.post(f"{one.proxy}/v2/orga/app/blobs/uploads/", timeout=10)
        assert started.status_code == 202
        assert started.headers["x-upstream"] == "legacy"
        session = started.headers["location"]

        # Pushes move to wharf through replica one's admin API; replica two follows.
        change = httpx.put(
            f"{one.admin}/table",
            headers=AUTH,
            json={"yaml": table_text(upstreams, "wharf"), "reason": "pushes to wharf"},
            timeout=10,
        )
        assert change.status_code == 200, change.text
        assert change.json()["version"] == 2
        delay = wait_for_version(two.admin, 2)
        print(f"\npropagation to the other replica ({store_url.split(':')[0]}): {delay:.3f} s")

        # The upload continues through replica two, on the upstream that started it.
        patch = httpx.patch(f"{two.proxy}{session}", content=b"chunk", timeout=10)
        assert patch.headers["x-upstream"] == "legacy"
        # The same client's push stays there too (its manifest must find its blobs)...
        same = httpx.post(f"{two.proxy}/v2/orga/app/blobs/uploads/", timeout=10)
        assert same.headers["x-upstream"] == "legacy"
        # ...while a new push (another token) follows the new table.
        other = {"Authorization": "Bearer another-push"}
        fresh = httpx.post(f"{two.proxy}/v2/orga/app/blobs/uploads/", headers=other, timeout=10)
        assert fresh.headers["x-upstream"] == "wharf"

        # One rollback call; both replicas serve the old table again within a second.
        back = httpx.post(f"{one.admin}/rollback", headers=AUTH, json={"reason": "undo"})
        assert back.json()["version"] == 3
        delay = wait_for_version(two.admin, 3)
        print(f"rollback propagation ({store_url.split(':')[0]}): {delay:.3f} s")
        third = {"Authorization": "Bearer a-third-push"}
        again = httpx.post(f"{two.proxy}/v2/orga/app/blobs/uploads/", headers=third, timeout=10)
        assert again.headers["x-upstream"] == "legacy"
        history = httpx.get(f"{two.admin}/history", headers=AUTH).json()["entries"]
        assert [e["reason"] for e in history] == [
            "rollback to v1: undo",
            "pushes to wharf",
            "initial table",
        ]
        assert history[1]["author"] == "ops"
    finally:
        one.stop()
        two.stop()
    for replica in (one, two):
        assert replica.process.returncode == 0, replica.log.read_text(errors="replace")
        assert "Traceback" not in replica.log.read_text(errors="replace")


def test_a_replica_without_a_usable_store(tmp_path: Path) -> None:
    from tests.postgres import free_port

    dead = f"postgresql+asyncpg://wharf@127.0.0.1:{free_port()}/none"
    tokens = tmp_path / "tokens"
    tokens.write_text(TOKEN)
    result = subprocess.run(
        wharf_command("edge", "serve", "--store", dead, "--admin-token-file", str(tokens)),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.startswith("wharf edge: cannot load the route table:")
    assert "Traceback" not in result.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("upstreams: {a: 'ftp://x'}\n")
    result = subprocess.run(
        wharf_command(
            "edge",
            "serve",
            "--store",
            dead,
            "--table",
            str(bad),
            "--admin-token-file",
            str(tokens),
        ),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "invalid initial table" in result.stderr
    assert "upstreams.a.url: must be http(s)://host[:port][/prefix]" in result.stderr
