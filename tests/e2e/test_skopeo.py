"""skopeo (containers/image, the library podman and buildah share) pushing and pulling images.

`--preserve-digests` everywhere: without it skopeo re-compresses uncompressed layers, and the
point is that the registry hands back exactly the bytes it was given.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.e2e.ocilayout import Layout, image_layout, index_layout
from tests.e2e.registries import Registry
from tests.servers import unavailable

LAYER_SIZE = 256 << 10
SKOPEO_TIMEOUT = 120.0


@functools.cache
def user_namespace() -> tuple[str, ...]:
    """As root, containers/image keeps its blob-info cache in /var/lib/containers/cache
    whatever HOME says, so it would outlive the test and tell the next push which blobs the
    registry "has". In a user namespace of its own skopeo's euid is not 0 and the cache follows
    HOME (the `home` fixture); what it writes still belongs to us outside the namespace."""
    unshare = shutil.which("unshare")
    if os.geteuid() != 0 or unshare is None:
        return ()
    probe = subprocess.run([unshare, "--user", "true"], capture_output=True, check=False)
    return (unshare, "--user") if probe.returncode == 0 else ()


def run_skopeo(*args: str) -> subprocess.CompletedProcess[bytes]:
    binary = shutil.which("skopeo")
    if binary is None:
        unavailable("skopeo")
    return subprocess.run(
        [*user_namespace(), str(binary), *args],
        capture_output=True,
        timeout=SKOPEO_TIMEOUT,
        check=False,
    )


def skopeo(*args: str) -> bytes:
    done = run_skopeo(*args)
    assert done.returncode == 0, f"skopeo {' '.join(args)}:\n{done.stderr.decode()}"
    return done.stdout


def creds(registry: Registry, flag: str = "--creds") -> list[str]:
    """skopeo's credential flag, when the registry asks for credentials at all."""
    if not registry.has_auth:
        return []
    user, password = registry.credentials()
    return [f"{flag}={user}:{password}"]


def push(registry: Registry, source: Path, tag: str, ref: str, *extra: str) -> None:
    skopeo(
        "copy",
        "--preserve-digests",
        "--dest-tls-verify=false",
        *creds(registry, "--dest-creds"),
        *extra,
        f"oci:{source}:{tag}",
        ref,
    )


@pytest.mark.parametrize("compress", [True, False], ids=["gzip", "uncompressed"])
def test_copy_both_ways_keeps_every_byte(
    registry: Registry, repo: str, home: Path, tmp_path: Path, compress: bool
) -> None:
    source = Layout(tmp_path / "source")
    manifest = image_layout(source.root, "v1", LAYER_SIZE, compress=compress)
    ref = f"docker://{registry.host}/{repo}:v1"

    push(registry, source.root, "v1", ref)

    pull_flags = ["--tls-verify=false", *creds(registry)]
    raw = skopeo("inspect", "--raw", *pull_flags, ref)
    assert raw == source.blob(manifest.digest)
    by_digest = f"docker://{registry.host}/{repo}@{manifest.digest}"
    assert skopeo("inspect", "--raw", *pull_flags, by_digest) == raw
    tags = json.loads(skopeo("list-tags", *pull_flags, f"docker://{registry.host}/{repo}"))
    assert tags["Tags"] == ["v1"]

    pulled = Layout(tmp_path / "pulled")
    skopeo(
        "copy",
        "--preserve-digests",
        "--src-tls-verify=false",
        *creds(registry, "--src-creds"),
        ref,
        f"oci:{pulled.root}:v1",
    )
    assert pulled.resolve("v1").digest == manifest.digest
    assert pulled.closure(pulled.resolve("v1")) == source.closure(manifest)


def test_multi_arch_index_copies_with_all(
    registry: Registry, repo: str, home: Path, tmp_path: Path
) -> None:
    source = Layout(tmp_path / "source")
    index = index_layout(source.root, "multi", LAYER_SIZE)
    ref = f"docker://{registry.host}/{repo}:multi"

    push(registry, source.root, "multi", ref, "--all")

    pull_flags = ["--tls-verify=false", *creds(registry)]
    assert skopeo("inspect", "--raw", *pull_flags, ref) == source.blob(index.digest)
    # Resolving one platform goes through the index to a child manifest fetched by digest.
    arm64 = json.loads(skopeo("inspect", "--override-arch=arm64", *pull_flags, ref))
    child = json.loads(source.blob(json.loads(source.blob(index.digest))["manifests"][1]["digest"]))
    assert arm64["Architecture"] == "arm64"
    assert arm64["Layers"] == [layer["digest"] for layer in child["layers"]]

    pulled = Layout(tmp_path / "pulled")
    skopeo(
        "copy",
        "--all",
        "--preserve-digests",
        "--src-tls-verify=false",
        *creds(registry, "--src-creds"),
        ref,
        f"oci:{pulled.root}:multi",
    )
    assert pulled.resolve("multi").digest == index.digest
    assert pulled.closure(pulled.resolve("multi")) == source.closure(index)


def test_anonymous_pull_of_a_public_repository(
    registry: Registry, repo: str, home: Path, tmp_path: Path
) -> None:
    source = Layout(tmp_path / "source")
    manifest = image_layout(source.root, "v1", LAYER_SIZE, compress=True)
    ref = f"docker://{registry.host}/{repo}:v1"
    push(registry, source.root, "v1", ref)

    assert skopeo("inspect", "--raw", "--tls-verify=false", ref) == source.blob(manifest.digest)
    pulled = Layout(tmp_path / "pulled")
    skopeo("copy", "--preserve-digests", "--src-tls-verify=false", ref, f"oci:{pulled.root}:v1")
    assert pulled.closure(pulled.resolve("v1")) == source.closure(manifest)


def test_push_needs_valid_credentials(
    registry: Registry, repo: str, home: Path, tmp_path: Path
) -> None:
    if not registry.has_auth:
        pytest.skip(f"{registry.kind} runs without auth here")
    source = tmp_path / "source"
    image_layout(source, "v1", LAYER_SIZE, compress=True)
    ref = f"docker://{registry.host}/{repo}:v1"
    for credentials in ([], ["--dest-creds=admin:wrong-password"]):
        done = run_skopeo("copy", "--dest-tls-verify=false", *credentials, f"oci:{source}:v1", ref)
        assert done.returncode != 0, f"pushed with {credentials or 'no credentials'}"
        assert b"unauthorized" in done.stderr.lower() or b"denied" in done.stderr.lower()
    assert run_skopeo("inspect", "--raw", "--tls-verify=false", ref).returncode != 0


def test_delete_by_digest(registry: Registry, repo: str, home: Path, tmp_path: Path) -> None:
    source = Layout(tmp_path / "source")
    manifest = image_layout(source.root, "v1", LAYER_SIZE, compress=True)
    push(registry, source.root, "v1", f"docker://{registry.host}/{repo}:v1")
    by_digest = f"docker://{registry.host}/{repo}@{manifest.digest}"

    skopeo("delete", "--tls-verify=false", *creds(registry), by_digest)

    done = run_skopeo("inspect", "--raw", "--tls-verify=false", *creds(registry), by_digest)
    assert done.returncode != 0
    assert b"manifest unknown" in done.stderr.lower(), done.stderr.decode()
