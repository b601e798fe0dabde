"""Stores for the switch tests: a SQLite file, a database on the throwaway PostgreSQL, and a
redis-server of our own (`redis-server --port N --save '' --appendonly no`, in a temporary
directory, stopped by its PID). Imported by the test modules (not a conftest.py, so that it
cannot collide with another edge test package's fixtures)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.postgres import create_database, drop_database, free_port, postgres_url
from tests.servers import unavailable

__all__ = ["RedisServer", "pg_url", "postgres_url", "redis_url", "sqlite_url", "store_url"]


@dataclass
class RedisServer:
    root: Path
    port: int = 0
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, port: int | None = None) -> None:
        """On `port` (a restart), or on a fresh ephemeral one (retried if it was taken)."""
        binary = shutil.which("redis-server")
        if binary is None:
            unavailable("redis-server (apt-get install redis-server)")
        for _attempt in range(5):
            self.port = port or free_port()
            log = (self.root / "redis.log").open("ab")
            arguments = [
                "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--dir", str(self.root),
            ]  # fmt: skip
            self.process = subprocess.Popen(
                [str(binary), *arguments],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.root,
                start_new_session=True,
            )
            log.close()
            if self._wait_ready():
                return
            self.stop()
            if port is not None:
                break
        raise RuntimeError(f"redis-server did not start: {(self.root / 'redis.log').read_text()}")

    def _wait_ready(self) -> bool:
        assert self.process is not None
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            if self.ping():
                return True
            time.sleep(0.02)
        return False

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as conn:
                conn.sendall(b"PING\r\n")
                return conn.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def flush(self) -> None:
        with socket.create_connection(("127.0.0.1", self.port), timeout=2) as conn:
            conn.sendall(b"FLUSHALL\r\n")
            assert conn.recv(16).startswith(b"+OK")

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


@pytest.fixture(scope="session")
def redis_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_url(redis_session: RedisServer) -> str:
    """The session's Redis, emptied for this test."""
    redis_session.flush()
    return redis_session.url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'edge.db'}"


@pytest.fixture
async def pg_url(postgres_url: str) -> AsyncIterator[str]:
    """A fresh PostgreSQL database, dropped after the test."""
    url = await create_database(postgres_url, prefix="wharf_edge")
    yield url
    await drop_database(url)


@pytest.fixture(params=["sqlite", "postgresql", "redis"])
def store_url(request: pytest.FixtureRequest) -> str:
    fixture = {"sqlite": "sqlite_url", "postgresql": "pg_url", "redis": "redis_url"}
    return str(request.getfixturevalue(fixture[request.param]))
