"""Registries the end-to-end tests drive real clients against, each a subprocess on loopback.

* `wharf`: `wharf serve --mode mirror` on a scratch data dir; user `admin` may push anywhere.
* `distribution`: Debian's CNCF distribution (`docker-registry serve`) with a config written
  here (filesystem storage in a scratch dir, 127.0.0.1 only, no auth). It is the reference the
  tests themselves are checked against: a test that fails there is wrong, not Wharf.

`WHARF_E2E_REGISTRIES` (comma-separated, default both) picks which ones run.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import httpx

from tests.servers import unavailable

KINDS = ("wharf", "distribution")
DISTRIBUTION_BIN = "/usr/bin/docker-registry"
READY_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
ADMIN = "admin"

DISTRIBUTION_CONFIG = """\
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {root}
  delete:
    enabled: true
  redirect:
    disable: true
http:
  addr: 127.0.0.1:{port}
  # Fixed, or a restarted distribution rejects the `_state` of uploads started before.
  secret: {secret}
"""


def selected_kinds() -> list[str]:
    wanted = os.environ.get("WHARF_E2E_REGISTRIES", ",".join(KINDS))
    return [kind for kind in KINDS if kind in {w.strip() for w in wanted.split(",")}]


def free_port() -> int:
    # Bind-then-close leaves a tiny race with other processes; the readiness check then fails
    # with the server's log in the message.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wharf_bin() -> str | None:
    beside_python = Path(sys.executable).with_name("wharf")
    if os.access(beside_python, os.X_OK):
        return str(beside_python)
    return shutil.which("wharf")


@dataclass
class Registry:
    """One registry server and what a client needs to reach it. `restart()` keeps the data
    directory and the port, so upload URLs handed out before still point at it."""

    kind: str
    workdir: Path
    port: int = field(default_factory=free_port)
    password: str = field(default_factory=lambda: secrets.token_urlsafe(12))
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0
    mode: str = "mirror"
    config_file: Path | None = None
    """Wharf's `--config`; standalone and full modes need one."""
    username: str = ADMIN
    service: str = "all"
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    @property
    def has_auth(self) -> bool:
        return self.kind == "wharf"

    @property
    def has_referrers_api(self) -> bool:
        # distribution 2.8 predates the OCI 1.1 referrers API.
        return self.kind == "wharf"

    def credentials(self) -> tuple[str, str]:
        return self.username, self.password

    def __enter__(self) -> Registry:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _command(self) -> tuple[list[str], dict[str, str]]:
        if self.kind == "wharf":
            binary = wharf_bin()
            if binary is None:
                unavailable("the wharf command")
            data = self.workdir / "wharf-data"
            command = [str(binary), "serve", "--mode", self.mode, "--data-dir", str(data)]
            if self.config_file is not None:
                command += ["--config", str(self.config_file)]
            command += ["--service", self.service]
            command += ["--host", "127.0.0.1", "--port", str(self.port)]
            return command, {**os.environ, "WHARF_ADMIN_PASSWORD": self.password, **self.extra_env}
        if not os.access(DISTRIBUTION_BIN, os.X_OK):
            unavailable("docker-registry (CNCF distribution)")
        root = self.workdir / "distribution-data"
        root.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "distribution.yml"
        if not config.exists():
            text = DISTRIBUTION_CONFIG.format(root=root, port=self.port, secret=self.password)
            config.write_text(text)
        return [DISTRIBUTION_BIN, "serve", str(config)], dict(os.environ)

    def log_path(self) -> Path:
        return self.workdir / f"{self.kind}-{self.starts}.log"

    def start(self) -> None:
        command, env = self._command()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.starts += 1
        # A file, not a pipe: nobody reads a pipe while the tests run, and a full one would
        # block the server.
        with open(self.log_path(), "wb") as log:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=self.workdir
            )
        self._wait_ready()

    def _wait_ready(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"{self.kind} exited with {self.process.returncode}:\n{self.log_tail()}"
                )
            try:
                httpx.get(f"{self.url}/v2/", timeout=1.0)
                return
            except httpx.TransportError:
                time.sleep(0.05)
        raise RuntimeError(f"{self.kind} not ready after {READY_TIMEOUT} s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path().read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(sig)
        try:
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def restart(self, sig: signal.Signals = signal.SIGTERM) -> None:
        self.stop(sig)
        self.start()


def bearer_token(registry: Registry, scope: str, *, anonymous: bool = False) -> str | None:
    """A token for `scope`, fetched the way a Docker client does (challenge on `/v2/`, then the
    realm with Basic credentials); None when the registry asks for no auth."""
    challenge = httpx.get(f"{registry.url}/v2/", timeout=10.0)
    if challenge.status_code != 401:
        return None
    header = challenge.headers.get("www-authenticate", "")
    params = dict(re.findall(r'(\w+)="([^"]*)"', header))
    assert header.startswith("Bearer "), f"odd challenge {header!r}"
    assert "realm" in params, f"odd challenge {header!r}"
    query = {"scope": scope}
    if "service" in params:
        query["service"] = params["service"]
    auth = None if anonymous else registry.credentials()
    answer = httpx.get(params["realm"], params=query, auth=auth, timeout=30.0)
    assert answer.status_code == 200, f"token request: {answer.status_code} {answer.text}"
    token: str = answer.json()["token"]
    return token


def api_client(registry: Registry, repository: str, actions: str = "pull,push") -> httpx.Client:
    """An httpx client on the registry's base URL, with a bearer token for `repository`."""
    token = bearer_token(registry, f"repository:{repository}:{actions}")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=registry.url, headers=headers, timeout=60.0)
