"""A migration in miniature, every piece a real process on 127.0.0.1 ephemeral ports:

* `legacy`: Debian's CNCF distribution (`docker-registry`), no auth (tests/e2e/registries.py);
* `wharf`: Wharf's registry alone (`wharf serve --service registry --mode mirror`), Docker
  token auth whose realm is built from the request's `Host`: the edge forwards `Host` as the
  client sent it, so the realm a client sees points back at the edge;
* two edge replicas `a` and `b` (`wharf edge serve`) over one SQLite switch store, each with
  its admin API on a port of its own.

The route table starts as `table_yaml()`: default owner legacy, and canaries on
registry-pull, registry-push and registry-auth sending `orga/app` and the organisation `orgc`
to wharf. Tests change it through the admin API and put it back when they are done.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import yaml

from tests.e2e.registries import DISTRIBUTION_BIN, Registry
from tests.integration.edge_migration.client import CHALLENGE_PARAM_RE
from tests.servers import unavailable

TOKEN = "edge-migration-admin-token-0123456789"
ADMIN_AUTH = {"Authorization": f"Bearer {TOKEN}"}
SERVING_RE = re.compile(r"wharf edge: serving proxy=(\S+) admin=(\S+)")
CANARY_REPOSITORIES = ("orga/app",)
CANARY_ORGANISATIONS = ("orgc",)
START_TIMEOUT_S = 60.0
PROPAGATION_LIMIT_S = 1.0
"""The issue's promise: a change is served by every replica within a second."""


def wharf_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "wharf.cli.main", *args]


def table_yaml(
    legacy: str,
    wharf: str,
    *,
    organisations: Sequence[str] = CANARY_ORGANISATIONS,
    base_and_auth_on_wharf: bool = False,
) -> str:
    """The route table. `base_and_auth_on_wharf` adds what a client that authenticates needs
    when the legacy registry asks for no credentials (see test_canary_skopeo.py): `/v2/` and
    every token request answered by wharf."""
    canary = {
        "upstream": "wharf",
        "repositories": list(CANARY_REPOSITORIES),
        "organisations": list(organisations),
    }
    capabilities: dict[str, Any] = {}
    if base_and_auth_on_wharf:
        # A capability of one's own is matched before the defaults; a pattern, because the
        # prefix `/v2/` would cover every registry path.
        capabilities["registry-base"] = {
            "match": {"pattern": "/v2/?", "methods": ["GET", "HEAD"]},
            "owner": "wharf",
        }
    capabilities["registry-pull"] = {"canary": canary}
    capabilities["registry-push"] = {"canary": canary}
    capabilities["registry-auth"] = {"canary": canary}
    if base_and_auth_on_wharf:
        capabilities["registry-auth"]["owner"] = "wharf"
    document = {
        "upstreams": {"legacy": {"url": legacy}, "wharf": {"url": wharf}},
        "default_owner": "legacy",
        "capabilities": capabilities,
    }
    return yaml.safe_dump(document, sort_keys=False)


@dataclass
class Replica:
    name: str
    process: subprocess.Popen[bytes]
    log: Path
    proxy: str = ""
    admin: str = ""

    @property
    def host(self) -> str:
        """`127.0.0.1:port`, as a client names the edge in an image reference."""
        return urlsplit(self.proxy).netloc

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def access_log(self) -> list[dict[str, Any]]:
        """The replica's JSON access log lines (logged to stderr, after a logging prefix)."""
        return [
            json.loads(line[line.index("{") :])
            for line in self.log_text().splitlines()
            if " wharf.edge.access {" in line
        ]

    def wait_serving(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            found = SERVING_RE.search(self.log_text())
            if found:
                self.proxy, self.admin = found.group(1), found.group(2)
                return
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"edge replica {self.name} did not start:\n{self.log_text()}")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=5)

    def status(self) -> dict[str, Any]:
        answer = httpx.get(f"{self.admin}/status", headers=ADMIN_AUTH, timeout=5)
        assert answer.status_code == 200, answer.text
        document: dict[str, Any] = answer.json()
        return document

    def version(self) -> int:
        return int(self.status()["version"])

    def metric(self, line_prefix: str) -> float | None:
        """A sample of the replica's Prometheus metrics, e.g.
        `wharf_edge_in_flight_requests{upstream="legacy"}`; None when absent."""
        text = httpx.get(f"{self.admin}/metrics", headers=ADMIN_AUTH, timeout=5).text
        for line in text.splitlines():
            if line.startswith(line_prefix + " "):
                return float(line.rsplit(" ", 1)[1])
        return None


def start_replica(root: Path, name: str, store: str, table: Path, tokens: Path) -> Replica:
    log = root / f"edge-{name}.log"
    arguments = [
        "edge", "serve", "--store", store, "--table", str(table), "--port", "0",
        "--admin-port", "0", "--admin-token-file", str(tokens),
    ]  # fmt: skip
    with log.open("wb") as sink:
        process = subprocess.Popen(
            wharf_command(*arguments), stdout=sink, stderr=subprocess.STDOUT, cwd=root
        )
    return Replica(name, process, log)


@dataclass
class Topology:
    root: Path
    legacy: Registry
    wharf: Registry
    a: Replica
    b: Replica
    token_file: Path

    @property
    def replicas(self) -> tuple[Replica, Replica]:
        return self.a, self.b

    def wharf_token(self, repositories: Iterable[str], actions: str = "pull") -> str:
        """One token for many repositories, straight from Wharf: each token request checks
        the password with bcrypt, slow enough to matter when a test reads 20 repositories."""
        challenge = httpx.get(f"{self.wharf.url}/v2/", timeout=10)
        params = dict(CHALLENGE_PARAM_RE.findall(challenge.headers["www-authenticate"]))
        query = [("service", params["service"])]
        query += [("scope", f"repository:{name}:{actions}") for name in repositories]
        answer = httpx.get(params["realm"], params=query, auth=self.wharf.credentials(), timeout=30)
        assert answer.status_code == 200, answer.text
        token: str = answer.json()["token"]
        return token

    def table(self, **options: Any) -> str:
        return table_yaml(self.legacy.url, self.wharf.url, **options)

    def put_table(self, text: str, reason: str) -> int:
        """Store a table through replica a's admin API; the new version once both replicas
        serve it."""
        answer = httpx.put(
            f"{self.a.admin}/table",
            headers=ADMIN_AUTH,
            json={"yaml": text, "reason": reason},
            timeout=10,
        )
        assert answer.status_code == 200, answer.text
        version = int(answer.json()["version"])
        self.wait_for_version(version)
        return version

    def rollback(self, reason: str) -> int:
        answer = httpx.post(
            f"{self.a.admin}/rollback", headers=ADMIN_AUTH, json={"reason": reason}, timeout=10
        )
        assert answer.status_code == 200, answer.text
        version = int(answer.json()["version"])
        self.wait_for_version(version)
        return version

    def wait_for_version(self, version: int) -> dict[str, float]:
        """Seconds until each replica serves `version`; fails past PROPAGATION_LIMIT_S."""
        started = time.monotonic()
        delays: dict[str, float] = {}
        while len(delays) < 2:
            elapsed = time.monotonic() - started
            for replica in self.replicas:
                if replica.name not in delays and replica.version() == version:
                    delays[replica.name] = elapsed
            assert elapsed < PROPAGATION_LIMIT_S, f"v{version} not everywhere: {delays}"
            time.sleep(0.01)
        return delays

    @contextlib.contextmanager
    def changed(self, text: str, reason: str) -> Iterator[int]:
        """A table change for the duration of a block, rolled back after it so the module's
        other tests see the initial table."""
        version = self.put_table(text, reason)
        try:
            yield version
        finally:
            self.rollback(f"end of {reason}")

    def stop(self) -> None:
        for replica in self.replicas:
            replica.stop()
        self.wharf.stop()
        self.legacy.stop()


def start_topology(root: Path) -> Topology:
    """Everything starts at once (the ports are chosen first): the replicas need the
    registries' URLs only in their table, not the registries themselves. Starting both
    replicas together on an empty store also races their bootstrap of version 1."""
    if not os.access(DISTRIBUTION_BIN, os.X_OK):
        unavailable("docker-registry (CNCF distribution)")
    legacy = Registry("distribution", root / "legacy")
    wharf = Registry("wharf", root / "wharf", service="registry")
    tokens = root / "edge-admin-tokens"
    tokens.write_text(f"ops {TOKEN}\n")
    table = root / "table.yaml"
    table.write_text(table_yaml(legacy.url, wharf.url))
    store = f"sqlite+aiosqlite:///{root / 'edge.db'}"
    started: list[Replica] = []
    try:
        with ThreadPoolExecutor(2) as pool:
            registries = [pool.submit(server.start) for server in (legacy, wharf)]
            started += [start_replica(root, name, store, table, tokens) for name in "ab"]
            for replica in started:
                replica.wait_serving()
            for future in registries:
                future.result()  # raises what start() raised: pytest.skip/fail, RuntimeError
    except BaseException:
        for replica in started:
            replica.stop()
        wharf.stop()
        legacy.stop()
        raise
    return Topology(root, legacy, wharf, started[0], started[1], tokens)


def check_clean_exit(topology: Topology) -> None:
    """After stop(): each replica exited 0 and logged no traceback (the edge logs one for
    anything unexpected in itself, or a pin store that failed)."""
    problems = []
    for replica in topology.replicas:
        text = replica.log_text()
        if replica.process.returncode != 0 or "Traceback" in text:
            problems.append(f"replica {replica.name} (exit {replica.process.returncode}):\n{text}")
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


def module_topology(tmp_path_factory: pytest.TempPathFactory, name: str) -> Iterator[Topology]:
    """The body of each test module's module-scoped fixture."""
    topology = start_topology(tmp_path_factory.mktemp(name))
    try:
        yield topology
    finally:
        topology.stop()
    check_clean_exit(topology)


def wait_until_idle(replicas: Sequence[Replica], upstreams: Sequence[str]) -> None:
    """Until no request is being relayed to `upstreams` on any replica (a request the edge
    lost track of would keep the gauge up forever)."""
    deadline = time.monotonic() + 5
    while True:
        busy = {
            (replica.name, upstream): value
            for replica in replicas
            for upstream in upstreams
            if (value := replica.metric(f'wharf_edge_in_flight_requests{{upstream="{upstream}"}}'))
        }
        if not busy:
            return
        assert time.monotonic() < deadline, f"requests still in flight: {busy}"
        time.sleep(0.05)
