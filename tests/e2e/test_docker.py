"""The Docker CLI and dockerd pushing and pulling images.

One dockerd for the session, private in everything: data, exec root, pidfile, socket and
daemon config all in a scratch dir, no iptables, no bridge, the `vfs` storage driver (no
kernel support needed) and the containerd it starts itself. Nothing here runs a container.
Registries on 127.0.0.0/8 are insecure (plain HTTP) to dockerd by default, so it needs no
`insecure-registries`. Images come in with `docker load`, from a docker-archive skopeo makes
from an OCI layout (Docker 20.10 cannot load an OCI layout itself).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.images import layered_image, random_layers, served
from tests.e2e.ocilayout import Descriptor, Layout
from tests.e2e.registries import Registry
from tests.e2e.test_skopeo import skopeo
from tests.servers import unavailable

READY_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0
RUN_DOCKER = Path("/run/docker")
DOCKER_TIMEOUT = 120.0
PUSHED = re.compile(r"^\S+: digest: (sha256:[0-9a-f]{64}) size: \d+$", re.MULTILINE)
PULLED = re.compile(r"^Digest: (sha256:[0-9a-f]{64})$", re.MULTILINE)


def docker_cli() -> str | None:
    """The CLI of the docker.io package, beside its dockerd, before any other on PATH."""
    return shutil.which("docker", path="/usr/bin") or shutil.which("docker")


@dataclass
class Dockerd:
    process: subprocess.Popen[bytes]
    root: Path
    cli: str

    @property
    def socket(self) -> Path:
        return self.root / "docker.sock"

    @property
    def log(self) -> Path:
        return self.root / "dockerd.log"

    def log_tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def version(self) -> subprocess.CompletedProcess[bytes]:
        command = [self.cli, "-H", f"unix://{self.socket}", "version"]
        return subprocess.run(command, capture_output=True, timeout=10.0, check=False)

    def wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"dockerd exited with {self.process.returncode}:\n{self.log_tail()}"
                )
            if self.socket.exists() and self.version().returncode == 0:
                return
            time.sleep(0.1)
        raise RuntimeError(f"dockerd not ready after {READY_TIMEOUT} s:\n{self.log_tail()}")

    def stop(self) -> None:
        """SIGTERM, which also stops the containerd dockerd started; SIGKILL to both if that
        takes too long."""
        containerd = self.root / "exec" / "containerd" / "containerd.pid"
        containerd_pid = int(containerd.read_text()) if containerd.exists() else None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                if containerd_pid is not None:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(containerd_pid, signal.SIGKILL)


@pytest.fixture(scope="session")
def dockerd() -> Iterator[Dockerd]:
    binary = shutil.which("dockerd", path=f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin")
    cli = docker_cli()
    if binary is None or cli is None:
        unavailable("dockerd and the docker CLI (docker.io)")
    if os.geteuid() != 0:
        unavailable("root, which dockerd needs")
    # Short and outside tmp_path: unix socket paths under the exec root must fit in 108 bytes.
    root = Path(tempfile.mkdtemp(prefix="dockerd-", dir="/tmp"))
    # Not /etc/docker/daemon.json; and the engine's identity key (a config key, no flag) not
    # in /etc/docker/key.json either.
    (root / "daemon.json").write_text(json.dumps({"deprecated-key-path": str(root / "key.json")}))
    command = [
        str(binary),
        f"--config-file={root / 'daemon.json'}",
        f"--data-root={root / 'data'}",
        f"--exec-root={root / 'exec'}",
        f"--pidfile={root / 'dockerd.pid'}",
        f"--host=unix://{root / 'docker.sock'}",
        "--iptables=false",
        "--ip6tables=false",
        "--bridge=none",
        "--userland-proxy=false",
        "--storage-driver=vfs",
        "--debug",
    ]
    # dockerd makes /run/docker/plugins whatever its flags say; rmdir leaves it if not empty.
    run_dirs = [] if RUN_DOCKER.exists() else [RUN_DOCKER / "plugins", RUN_DOCKER]
    with open(root / "dockerd.log", "wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=root)
    daemon = Dockerd(process, root, str(cli))
    try:
        daemon.wait_ready()
        yield daemon
    finally:
        daemon.stop()
        shutil.rmtree(root, ignore_errors=True)
        for directory in run_dirs:
            with contextlib.suppress(OSError):
                directory.rmdir()


@dataclass
class Docker:
    """The CLI on the session's dockerd, with a config dir (credentials) of the test's own."""

    daemon: Dockerd
    config: Path

    def run(self, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
        command = [self.daemon.cli, "--config", str(self.config)]
        command += ["-H", f"unix://{self.daemon.socket}", *args]
        return subprocess.run(
            command, input=stdin, capture_output=True, timeout=DOCKER_TIMEOUT, check=False
        )

    def __call__(self, *args: str, stdin: bytes | None = None) -> str:
        done = self.run(*args, stdin=stdin)
        assert done.returncode == 0, (
            f"docker {' '.join(args)}:\n{done.stdout.decode()}{done.stderr.decode()}\n"
            f"dockerd log:\n{self.daemon.log_tail()}"
        )
        return done.stdout.decode()

    def login(self, registry: Registry) -> None:
        if registry.has_auth:
            user, password = registry.credentials()
            login = ["login", "-u", user, "--password-stdin", registry.host]
            assert "Login Succeeded" in self(*login, stdin=password.encode())

    def load(self, layout: Layout, manifest: Descriptor, name: str) -> str:
        """`docker load` `manifest` as `name` (no registry in it); returns the image ID."""
        layout.tag("image", manifest)
        archive = self.config.parent / f"{uuid.uuid4().hex}.tar"
        skopeo("copy", f"oci:{layout.root}:image", f"docker-archive:{archive}:{name}")
        assert f"Loaded image: {name}" in self("load", "-i", str(archive))
        archive.unlink()
        return self.image_id(name)

    def image_id(self, name: str) -> str:
        return self("image", "inspect", "--format", "{{.Id}}", name).strip()

    def repo_digests(self, name: str) -> list[str]:
        found: list[str] = json.loads(
            self("image", "inspect", "--format", "{{json .RepoDigests}}", name)
        )
        return found

    def push(self, name: str) -> tuple[str, str]:
        """Push `name`; returns the output and the manifest digest docker reports."""
        output = self("push", name)
        match = PUSHED.search(output)
        assert match, f"no digest in:\n{output}"
        return output, match.group(1)

    def pull(self, reference: str) -> str:
        output = self("pull", reference)
        match = PULLED.search(output)
        assert match, f"no digest in:\n{output}"
        return match.group(1)

    def remove(self, *names: str) -> None:
        self("rmi", *names)
        for name in names:
            assert self.run("image", "inspect", name).returncode != 0, f"{name} still there"


@pytest.fixture
def docker(dockerd: Dockerd, tmp_path: Path, home: Path) -> Docker:
    """`home`: skopeo, which makes the archives, keeps its blob-info cache there."""
    config = tmp_path / "docker-config"
    config.mkdir()
    return Docker(dockerd, config)


def config_digest(layout: Layout, manifest: Descriptor) -> str:
    digest: str = json.loads(layout.blob(manifest.digest))["config"]["digest"]
    return digest


def local_name() -> str:
    return f"wharf-e2e/{uuid.uuid4().hex[:10]}:v1"


def test_push_then_pull_by_tag_and_by_digest(
    registry: Registry, repo: str, docker: Docker, tmp_path: Path
) -> None:
    layout = Layout(tmp_path / "layout")
    manifest = layered_image(layout, random_layers(3))
    loaded = local_name()
    image_id = docker.load(layout, manifest, loaded)
    assert image_id == config_digest(layout, manifest)

    docker.login(registry)
    name = f"{registry.host}/{repo}:v1"
    docker("tag", loaded, name)
    _, digest = docker.push(name)
    pushed = served(registry, repo, "v1")
    assert pushed.digest == digest
    assert pushed.manifest["config"]["digest"] == image_id
    repo_digest = f"{registry.host}/{repo}@{digest}"
    assert docker.repo_digests(name) == [repo_digest]

    docker.remove(loaded, name)
    for reference in (name, repo_digest):
        assert docker.pull(reference) == digest
        assert docker.image_id(reference) == image_id
        assert docker.repo_digests(reference) == [repo_digest]
        docker.remove(reference)


def test_second_push_mounts_shared_layers(
    registry: Registry, repo: str, docker: Docker, tmp_path: Path
) -> None:
    """Docker remembers which repository it pushed a layer to; pushing that layer to another
    repository of the same registry, it asks for `POST .../blobs/uploads/?mount=&from=`."""
    layout = Layout(tmp_path / "layout")
    base, first_top, second_top = random_layers(3)
    first, second = f"{registry.host}/{repo}:v1", f"{registry.host}/{repo}-other:v1"
    for layers, name in (([base, first_top], first), ([base, second_top], second)):
        loaded = local_name()
        docker.load(layout, layered_image(layout, layers), loaded)
        docker("tag", loaded, name)
        docker("rmi", loaded)
    docker.login(registry)

    docker.push(first)
    # The same image under another tag: every layer is found by HEAD.
    docker("tag", first, f"{registry.host}/{repo}:v2")
    output, _ = docker.push(f"{registry.host}/{repo}:v2")
    assert output.count("Layer already exists") == 2, output
    assert served(registry, repo, "v2") == served(registry, repo, "v1")

    output, digest = docker.push(second)
    assert output.count(f"Mounted from {repo}") == 1, output
    assert output.count("Pushed") == 1, output
    pushed = served(registry, f"{repo}-other", "v1")
    assert pushed.digest == digest
    shared = served(registry, repo, "v1").manifest["layers"][0]
    assert pushed.manifest["layers"][0] == shared
