"""podman pushing images from its own storage and pulling them back, no network but loopback.

Storage is private to each test (`--root`, `--runroot`, `--tmpdir` under tmp_path, the `vfs`
driver, which needs no kernel support), and so is the credentials file (`--authfile`).

As root, containers/image keeps its blob-info cache in /var/lib/containers/cache whatever
HOME says (see test_skopeo.py); `_CONTAINERS_ROOTLESS_UID`, the variable rootless podman
sets for its own children, makes the cache follow XDG_DATA_HOME (the `home` fixture) instead,
while podman itself still runs as root. The cache matters: it is what tells a push which
blobs a registry already holds elsewhere, and so what makes podman try a cross-repository
mount.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

from tests.e2e.images import layered_image, random_layers, served
from tests.e2e.ocilayout import (
    Descriptor,
    Layout,
)
from tests.e2e.registries import Registry
from tests.servers import unavailable

PODMAN_TIMEOUT = 120.0

REQUEST_LOG = re.compile(r'level=debug msg="(GET|HEAD|POST|PUT|PATCH|DELETE) (http[^"\s]+)"')


def blob_writes(requests: list[tuple[str, str]]) -> tuple[dict[str, str], set[str]]:
    """From a push's requests: the cross-repository mounts asked for (digest: from) and the
    digests of the blob uploads finished (`PUT .../blobs/uploads/...?digest=`)."""
    mounts: dict[str, str] = {}
    uploads: set[str] = set()
    for method, url in requests:
        parts = urlsplit(url)
        query = dict(parse_qsl(parts.query))
        if "/blobs/uploads/" not in parts.path:
            continue
        if method == "POST" and "mount" in query:
            mounts[query["mount"]] = query.get("from", "")
        elif method == "PUT":
            uploads.add(query["digest"])
    return mounts, uploads


@dataclass
class Podman:
    """podman on storage of its own, talking plain HTTP to loopback registries."""

    workdir: Path
    runroot: Path
    """Short, outside tmp_path: podman refuses a runroot longer than 50 characters."""
    binary: str

    @property
    def authfile(self) -> Path:
        return self.workdir / "auth.json"

    def run(self, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
        command = [
            self.binary,
            "--root",
            str(self.workdir / "root"),
            "--runroot",
            str(self.runroot),
            "--tmpdir",
            str(self.workdir / "libpod-tmp"),
            "--storage-driver",
            "vfs",
            "--events-backend",
            "none",
            "--cgroup-manager",
            "cgroupfs",
            *args,
        ]
        env = {**os.environ, "TMPDIR": str(self.workdir / "tmp")}
        if os.geteuid() == 0:
            env["_CONTAINERS_ROOTLESS_UID"] = "65534"
        return subprocess.run(
            command, input=stdin, capture_output=True, env=env, timeout=PODMAN_TIMEOUT, check=False
        )

    def __call__(self, *args: str, stdin: bytes | None = None) -> str:
        """podman's stdout; a non-zero exit fails the test."""
        done = self.run(*args, stdin=stdin)
        assert done.returncode == 0, f"podman {' '.join(args)}:\n{done.stderr.decode()}"
        return done.stdout.decode()

    def remote(self, verb: str, *args: str, stdin: bytes | None = None) -> str:
        return self(verb, "--tls-verify=false", f"--authfile={self.authfile}", *args, stdin=stdin)

    def login(self, registry: Registry) -> None:
        if registry.has_auth:
            user, password = registry.credentials()
            login = ["-u", user, "--password-stdin", registry.host]
            self.remote("login", *login, stdin=password.encode())

    def load(self, layout: Layout, manifest: Descriptor, name: str) -> str:
        """`podman load` `manifest` as `name`; returns the image ID. An oci-archive, named by
        its `ref.name` annotation: `podman pull oci:<dir>` would name the image after the
        directory, which a tmp_path with capitals or `-_` in it turns into an invalid name."""
        layout.tag(name, manifest)
        archive = self.workdir / "tmp" / "image.tar"
        with tarfile.open(archive, "w") as tar:
            for path in sorted(layout.root.rglob("*")):
                tar.add(path, arcname=str(path.relative_to(layout.root)), recursive=False)
        assert f"Loaded image: {name}" in self("load", "-i", str(archive))
        archive.unlink()
        image_id: str = self.inspect(name)["Id"]
        return image_id

    def push_logged(self, name: str) -> list[tuple[str, str]]:
        """Push `name` at debug level; returns the HTTP requests podman logged, in order."""
        flags = ["--log-level=debug", "--tls-verify=false", f"--authfile={self.authfile}"]
        done = self.run("push", *flags, name)
        assert done.returncode == 0, f"podman push {name}:\n{done.stderr.decode()}"
        return REQUEST_LOG.findall(done.stderr.decode())

    def inspect(self, name: str) -> dict[str, Any]:
        found: list[dict[str, Any]] = json.loads(self("image", "inspect", name))
        return found[0]

    def exists(self, name: str) -> bool:
        return self.run("image", "exists", name).returncode == 0


@pytest.fixture
def podman(tmp_path: Path, home: Path) -> Iterator[Podman]:
    binary = shutil.which("podman")
    if binary is None:
        unavailable("podman")
    workdir = tmp_path / "podman"
    (workdir / "tmp").mkdir(parents=True)
    # Made here: when XDG_RUNTIME_DIR does not exist podman falls back to /run/user/<uid>.
    Path(os.environ["XDG_RUNTIME_DIR"]).mkdir(mode=0o700, parents=True, exist_ok=True)
    (workdir / "auth.json").write_text('{"auths": {}}')  # podman wants the file to exist
    runroot = Path(tempfile.mkdtemp(prefix="podman-run-", dir="/tmp"))
    try:
        yield Podman(workdir, runroot, str(binary))
    finally:
        shutil.rmtree(runroot, ignore_errors=True)


def config_of(layout: Layout, manifest: Descriptor) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(layout.blob(manifest.digest))
    config: dict[str, Any] = json.loads(layout.blob(document["config"]["digest"]))
    return {"digest": document["config"]["digest"], **config}


def assert_pulled(podman: Podman, name: str, image_id: str, repo_digest: str) -> None:
    image = podman.inspect(name)
    assert image["Id"] == image_id
    assert image["Digest"] == repo_digest.partition("@")[2]
    assert repo_digest in image["RepoDigests"]


@pytest.mark.parametrize("count", [1, 3], ids=["one-layer", "three-layers"])
def test_push_then_pull_by_tag_and_by_digest(
    registry: Registry, repo: str, podman: Podman, tmp_path: Path, count: int
) -> None:
    layout = Layout(tmp_path / "layout")
    manifest = layered_image(layout, random_layers(count))
    config = config_of(layout, manifest)
    name = f"{registry.host}/{repo}:v1"
    image_id = podman.load(layout, manifest, name)
    assert f"sha256:{image_id}" == config["digest"]

    podman.login(registry)
    digestfile = tmp_path / "pushed-digest"
    podman.remote("push", f"--digestfile={digestfile}", name)
    pushed = served(registry, repo, "v1")
    assert digestfile.read_text().strip() == pushed.digest
    # The config travels untouched, so the image ID survives the round trip; the layers may
    # be recompressed, which `served` checked against the config's diff_ids.
    assert pushed.manifest["config"]["digest"] == config["digest"]
    assert len(pushed.manifest["layers"]) == count

    repo_digest = f"{registry.host}/{repo}@{pushed.digest}"
    for reference in (name, repo_digest):
        podman("rmi", "--force", image_id)
        assert not podman.exists(image_id)
        assert podman.remote("pull", "-q", reference).strip() == image_id
        assert_pulled(podman, reference, image_id, repo_digest)
        assert podman.inspect(reference)["RootFS"]["Layers"] == config["rootfs"]["diff_ids"]
    assert served(registry, repo, pushed.digest).digest == pushed.digest


def test_second_push_finds_the_blobs_already_there(
    registry: Registry, repo: str, podman: Podman, tmp_path: Path
) -> None:
    layout = Layout(tmp_path / "layout")
    manifest = layered_image(layout, random_layers(2))
    first = f"{registry.host}/{repo}:v1"
    image_id = podman.load(layout, manifest, first)
    podman.login(registry)
    podman.remote("push", first)
    pushed = served(registry, repo, "v1")
    layers = {layer["digest"] for layer in pushed.manifest["layers"]}
    config = pushed.manifest["config"]["digest"]

    # Same repository, another tag: HEAD finds every blob, nothing is uploaded.
    podman("tag", image_id, f"{registry.host}/{repo}:v2")
    exchange = podman.push_logged(f"{registry.host}/{repo}:v2")
    heads = {url.rpartition("/")[2] for method, url in exchange if method == "HEAD"}
    assert heads >= layers | {config}, exchange
    assert blob_writes(exchange) == ({}, set()), exchange
    assert served(registry, repo, "v2") == pushed

    # Another repository: the blob-info cache remembers where the layers went, so podman
    # mounts them from there; containers/image does not try that for the config.
    other = f"{repo}-copy"
    podman("tag", image_id, f"{registry.host}/{other}:v1")
    exchange = podman.push_logged(f"{registry.host}/{other}:v1")
    mounts, uploads = blob_writes(exchange)
    assert mounts == {digest: repo for digest in layers}, exchange
    assert uploads <= {config}, exchange
    assert served(registry, other, "v1") == pushed
