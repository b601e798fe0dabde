"""The two registries the registry benchmark compares, started as subprocesses on loopback.

* distribution: Debian's CNCF distribution 2.8 (`docker-registry serve`) with a config written
  here (filesystem storage in a scratch dir, 127.0.0.1 only, no auth). Debian's packaged
  config listens on every interface with htpasswd, so it is never used.
* Wharf: `wharf serve --mode mirror` on a scratch data dir, one Docker bearer token fetched up
  front with the admin's password and sent on every request.

Also: a sampler of a server process's RSS, to see how much memory a 1 GiB stream costs it.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.perf.benchlib import REPO_ROOT
from wharf.storage import content_path

DISTRIBUTION_BIN = "/usr/bin/docker-registry"
WHARF_BIN = REPO_ROOT / ".venv" / "bin" / "wharf"
READY_TIMEOUT = 30.0
BENCH_SCOPES = ("repository:bench/blob:pull,push", "repository:bench/img:pull,push")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


@dataclass
class Server:
    """A running registry: where it listens, what to send on every request, its process."""

    name: str
    base_url: str
    process: subprocess.Popen[bytes]
    version: str
    blob_file: Callable[[str], Path]
    """Where the server keeps a blob's bytes on disk (its own layout)."""
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.process.pid


def free_port() -> int:
    # Bind-then-close leaves a tiny race with other processes; the readiness check would
    # then time out with the server's log in the message, which is clear enough.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def distribution_available() -> bool:
    return os.access(DISTRIBUTION_BIN, os.X_OK)


def wharf_available() -> bool:
    return os.access(WHARF_BIN, os.X_OK)


def _distribution_version() -> str:
    done = subprocess.run(
        [DISTRIBUTION_BIN, "--version"], capture_output=True, text=True, check=False
    )
    return done.stdout.strip() or "unknown"


def _wait_ready(url: str, process: subprocess.Popen[bytes], log: Path) -> httpx.Response:
    """Poll `GET /v2/` until the server answers anything (Wharf answers 401)."""
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url} exited with {process.returncode}:\n{log.read_text()}")
        try:
            return httpx.get(f"{url}/v2/", timeout=1.0)
        except httpx.TransportError:
            time.sleep(0.05)
    raise RuntimeError(f"{url} not ready after {READY_TIMEOUT} s:\n{log.read_text()}")


def _stop(name: str, process: subprocess.Popen[bytes], log: Path) -> None:
    if process.poll() is not None:
        # It died under the benchmark: the reason is in its log, which goes with the scratch
        # directory, so show the end of it now.
        tail = log.read_text(errors="replace")[-4000:]
        print(f"\n{name} exited with {process.returncode}; log tail:\n{tail}")
        return
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


DISTRIBUTION_CONFIG = """\
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {root}
  cache:
    blobdescriptor: inmemory
  redirect:
    disable: true
http:
  addr: 127.0.0.1:{port}
"""


@contextmanager
def distribution(workdir: Path) -> Iterator[Server]:
    root = workdir / "distribution"
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config = workdir / "distribution.yml"
    config.write_text(DISTRIBUTION_CONFIG.format(root=root, port=port))
    log = workdir / "distribution.log"
    with open(log, "wb") as output:
        process = subprocess.Popen(
            [DISTRIBUTION_BIN, "serve", str(config)], stdout=output, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"
    try:
        answer = _wait_ready(url, process, log)
        assert answer.status_code == 200, f"distribution asks for auth: {answer.headers}"

        def blob_file(digest: str) -> Path:
            algorithm, _, hexpart = digest.partition(":")
            return root / "docker/registry/v2/blobs" / algorithm / hexpart[:2] / hexpart / "data"

        yield Server("distribution", url, process, _distribution_version(), blob_file)
    finally:
        _stop("distribution", process, log)


@contextmanager
def wharf(workdir: Path, service: str | None = None, name: str = "wharf") -> Iterator[Server]:
    """`service`: `wharf serve --service` (`registry`, `all`); None keeps the command's default.
    `name` names the data dir and log under `workdir` as well, so several can share it."""
    data = workdir / name
    port = free_port()
    password = os.urandom(12).hex()
    log = workdir / f"{name}.log"
    # uvicorn logs every request at info level; the log goes to a file, which is what a
    # deployment pays for too, and a pipe nobody reads could fill up and block the server.
    env = {**os.environ, "WHARF_ADMIN_PASSWORD": password}
    command = [str(WHARF_BIN), "serve", "--mode", "mirror", "--data-dir", str(data)]
    command += ["--host", "127.0.0.1", "--port", str(port)]
    command += ["--service", service] if service else []
    with open(log, "wb") as output:
        process = subprocess.Popen(
            command,
            stdout=output,
            stderr=subprocess.STDOUT,
            env=env,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        challenge = _wait_ready(url, process, log).headers.get("www-authenticate", "")
        match = re.search(r'service="([^"]*)"', challenge)
        assert match, f"no service in Wharf's challenge {challenge!r}"
        params = [("service", match.group(1))] + [("scope", scope) for scope in BENCH_SCOPES]
        answer = httpx.get(f"{url}/v2/auth", params=params, auth=("admin", password), timeout=30.0)
        answer.raise_for_status()
        token = answer.json()["token"]
        headers = {"Authorization": f"Bearer {token}"}

        def blob_file(digest: str) -> Path:
            return data / "storage" / content_path(digest)

        version = "wharf (this tree)" + (f", --service {service}" if service else "")
        yield Server(name, url, process, version, blob_file, headers)
    finally:
        _stop(name, process, log)


def have_py_spy() -> str | None:
    found = shutil.which("py-spy") or (REPO_ROOT / ".venv" / "bin" / "py-spy")
    return str(found) if found and os.access(found, os.X_OK) else None


# -- memory of a server process --------------------------------------------------------------


def rss(pid: int) -> int:
    with open(f"/proc/{pid}/statm") as statm:
        return int(statm.read().split()[1]) * PAGE_SIZE


def page_faults(pid: int) -> int:
    """Minor and major page faults of a process so far (/proc/<pid>/stat fields 10 and 12)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return int(fields[7]) + int(fields[9])


def _reset_hwm(pid: int) -> bool:
    """Reset the process's VmHWM to its current RSS (Linux >= 4.0, our own children only)."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
    except OSError:
        return False
    return True


def _hwm(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


class PeakRSS(threading.Thread):
    """`with PeakRSS(pid) as peak:` samples the process's RSS every 10 ms; `peak.bytes` is the
    larger of the sampled maximum and the kernel's VmHWM (reset on entry), so a spike between
    two samples still counts."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.bytes = 0
        self._hwm_reset = False
        self._stop_event = threading.Event()

    def __enter__(self) -> PeakRSS:
        self._hwm_reset = _reset_hwm(self.pid)
        self.bytes = rss(self.pid)
        self.start()
        return self

    def run(self) -> None:
        while not self._stop_event.wait(0.01):
            self.bytes = max(self.bytes, rss(self.pid))

    def __exit__(self, *exc: object) -> None:
        self._stop_event.set()
        self.join()
        self.bytes = max(self.bytes, rss(self.pid))
        if self._hwm_reset:
            self.bytes = max(self.bytes, _hwm(self.pid))
