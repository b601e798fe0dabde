"""A throwaway PostgreSQL cluster for the tests, started from the installed server binaries.

`postgres_url` (session scope) yields `postgresql+asyncpg://wharf@127.0.0.1:<port>/postgres`
for a cluster made with `initdb` in a temporary directory, listening on an ephemeral loopback
port, with `wharf` as superuser (trust authentication, loopback only). The postmaster is our
own child process; the fixture stops it by its PID and removes the directory afterwards.

PostgreSQL refuses to run as root. Running as root, the cluster runs as the `postgres` system
user (Debian's package creates it); if there is none, as a system user `wharf-pg` created
for it. `WHARF_TEST_POSTGRES_URL` points the tests at an existing server instead (its user must
be allowed to create databases). Without binaries or asyncpg the tests skip, or fail under
CI=true (see tests/servers.py).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from tests.servers import unavailable

SUPERUSER = "wharf"
FALLBACK_OS_USER = "wharf-pg"
START_TIMEOUT_S = 60.0


def find_bindir() -> Path | None:
    """The directory holding `initdb` and `postgres`: $WHARF_TEST_PG_BIN, PATH, then Debian's."""
    candidates: list[Path] = []
    if os.environ.get("WHARF_TEST_PG_BIN"):
        candidates.append(Path(os.environ["WHARF_TEST_PG_BIN"]))
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(Path(initdb).resolve().parent)
    candidates.extend(sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True))
    for directory in candidates:
        if (directory / "initdb").is_file() and (directory / "postgres").is_file():
            return directory
    return None


@dataclass(frozen=True)
class OsUser:
    name: str
    uid: int
    gid: int


def server_os_user() -> OsUser | None:
    """Who runs the server: None (ourselves) unless we are root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", FALLBACK_OS_USER):
        with contextlib.suppress(KeyError):
            entry = pwd.getpwnam(name)
            return OsUser(name, entry.pw_uid, entry.pw_gid)
    useradd = ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin"]
    subprocess.run([*useradd, FALLBACK_OS_USER], check=True, capture_output=True)
    entry = pwd.getpwnam(FALLBACK_OS_USER)
    return OsUser(FALLBACK_OS_USER, entry.pw_uid, entry.pw_gid)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class PostgresCluster:
    bindir: Path
    root: Path
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    os_user: OsUser | None = field(default=None)

    @property
    def datadir(self) -> Path:
        return self.root / "data"

    @property
    def logfile(self) -> Path:
        return self.root / "postgres.log"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+asyncpg://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def _run_as(self) -> dict[str, object]:
        if self.os_user is None:
            return {}
        return {"user": self.os_user.uid, "group": self.os_user.gid, "extra_groups": []}

    def init(self) -> None:
        if self.os_user is not None:
            os.chown(self.root, self.os_user.uid, self.os_user.gid)
        self.root.chmod(0o700)
        result = subprocess.run(
            [
                str(self.bindir / "initdb"),
                "--pgdata",
                str(self.datadir),
                "--username",
                SUPERUSER,
                "--auth",
                "trust",
                "--encoding",
                "UTF8",
                "--no-locale",
                "--no-sync",
            ],
            capture_output=True,
            cwd=self.root,
            env={**os.environ, "LC_ALL": "C"},
            check=False,
            **self._run_as(),
        )
        if result.returncode != 0:
            raise RuntimeError(f"initdb failed: {result.stderr.decode(errors='replace')}")

    def start(self) -> None:
        for _attempt in range(5):
            self.port = free_port()
            log = self.logfile.open("ab")
            try:
                self.process = subprocess.Popen(
                    [
                        str(self.bindir / "postgres"),
                        "-D",
                        str(self.datadir),
                        "-p",
                        str(self.port),
                        "-h",
                        "127.0.0.1",
                        "-k",
                        str(self.root),
                        "-c",
                        "fsync=off",
                        "-c",
                        "synchronous_commit=off",
                        "-c",
                        "full_page_writes=off",
                        "-c",
                        "max_connections=200",
                    ],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=self.root,
                    start_new_session=True,
                    env={**os.environ, "LC_ALL": "C"},
                    **self._run_as(),
                )
            finally:
                log.close()
            if self._wait_ready():
                return
            self.stop()
            if "could not bind" not in self._log_tail():
                break
        raise RuntimeError(f"PostgreSQL did not start:\n{self._log_tail()}")

    def _wait_ready(self) -> bool:
        assert self.process is not None
        deadline = time.monotonic() + START_TIMEOUT_S
        pidfile = self.datadir / "postmaster.pid"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            with contextlib.suppress(OSError):
                lines = pidfile.read_text().splitlines()
                if len(lines) >= 8 and lines[7].strip() == "ready":
                    return True
            time.sleep(0.05)
        return False

    def _log_tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.logfile.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def stop(self) -> None:
        """Fast shutdown (SIGINT) of our postmaster by its PID; SIGKILL if it hangs."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        os.kill(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def start_cluster(bindir: Path) -> PostgresCluster:
    os_user = server_os_user()
    # Another OS user must reach the directory: /tmp, unless $WHARF_TEST_PG_TMP says otherwise.
    parent = os.environ.get("WHARF_TEST_PG_TMP") or ("/tmp" if os_user else None)
    root = Path(tempfile.mkdtemp(prefix="wharf-pg-", dir=parent))
    cluster = PostgresCluster(bindir=bindir, root=root, os_user=os_user)
    try:
        cluster.init()
        cluster.start()
    except BaseException:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)
        raise
    return cluster


def asyncpg_dsn(url: str) -> str:
    """The plain libpq-style DSN asyncpg wants, from a SQLAlchemy URL."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def with_database(url: str, database: str) -> str:
    return make_url(url).set(database=database).render_as_string(hide_password=False)


async def create_database(server_url: str, prefix: str = "wharf_test") -> str:
    """Create an empty database on the server of `server_url`; return its URL."""
    import asyncpg

    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    connection = await asyncpg.connect(asyncpg_dsn(server_url))
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    return with_database(server_url, name)


async def drop_database(database_url: str) -> None:
    import asyncpg

    name = make_url(database_url).database
    connection = await asyncpg.connect(asyncpg_dsn(with_database(database_url, "postgres")))
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A PostgreSQL server for this test session (the `postgres` database's URL)."""
    external = os.environ.get("WHARF_TEST_POSTGRES_URL")
    if external:
        yield external
        return
    try:
        import asyncpg  # noqa: F401
    except ImportError:
        unavailable("asyncpg (install wharf[postgres])")
        return
    bindir = find_bindir()
    if bindir is None:
        unavailable("PostgreSQL server binaries (initdb, postgres; apt install postgresql)")
        return
    cluster = start_cluster(bindir)
    try:
        yield cluster.url()
    finally:
        cluster.stop()
        shutil.rmtree(cluster.root, ignore_errors=True)
