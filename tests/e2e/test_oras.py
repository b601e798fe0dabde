"""oras-py (the ORAS Python SDK, on `requests`) pushing and pulling artifacts, and OCI 1.1
referrers: manifests with a `subject`, listed by `GET /v2/<name>/referrers/<digest>`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.ocilayout import OCI_INDEX, OCI_MANIFEST, canonical, sha256
from tests.e2e.registries import Registry, api_client, bearer_token
from tests.servers import unavailable

try:
    import oras.oci  # type: ignore[import-untyped]
    import oras.provider  # type: ignore[import-untyped]
except ImportError:  # a dev dependency: missing means a broken venv, which CI must not skip
    oras = None

EMPTY = {
    "mediaType": "application/vnd.oci.empty.v1+json",
    "digest": "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
    "size": 2,
}
SIGNATURE_TYPE = "application/vnd.example.signature.v1+json"
SBOM_TYPE = "application/vnd.example.sbom.v1+json"
CREATED = "org.opencontainers.image.created"


def oras_registry(registry: Registry, repo: str) -> Any:
    """An oras-py client with a pull+push token for `repo`, fetched here.

    oras-py 0.2.43 keeps the first token it gets, and a push starts with a HEAD, which earns
    a pull-only one; it only asks again after a 403, while token auth answers 401
    (`insufficient_scope`), so its own first push to a repository fails on any registry with
    token auth (oras-project/oras-py#187)."""
    client = oras.provider.Registry(hostname=registry.host, insecure=True)
    if registry.has_auth:
        client.auth.set_basic_auth(*registry.credentials())
        client.auth.set_token_auth(bearer_token(registry, f"repository:{repo}:pull,push"))
    return client


@pytest.fixture
def workdir(tmp_path: Path, home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    if oras is None:
        unavailable("oras-py (the dev extra)")
    # oras-py refuses to push files outside the working directory.
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write_files(workdir: Path, sizes: dict[str, int]) -> dict[str, bytes]:
    contents = {name: os.urandom(size) for name, size in sizes.items()}
    for name, data in contents.items():
        (workdir / name).write_bytes(data)
    return contents


def push(
    registry: Registry,
    repo: str,
    tag: str,
    files: list[str],
    methods: list[str] | None = None,
    **options: Any,
) -> str:
    """Push with oras-py; returns the digest of the manifest bytes it sent. `methods` gets
    the method of every request it made."""
    client = oras_registry(registry, repo)
    if methods is not None:
        client.session.hooks["response"].append(
            lambda response, *args, **kwargs: methods.append(response.request.method)
        )
    target = f"{registry.host}/{repo}:{tag}"
    response = client.push(target=target, files=files, quiet=True, **options)
    assert response.status_code == 201, response.text
    body = response.request.body
    assert isinstance(body, bytes)
    digest = sha256(body)
    assert response.headers.get("Docker-Content-Digest") == digest
    return digest


def pull(registry: Registry, repo: str, tag: str, outdir: Path) -> dict[str, bytes]:
    target = f"{registry.host}/{repo}:{tag}"
    paths = oras_registry(registry, repo).pull(target=target, outdir=str(outdir))
    return {Path(path).name: Path(path).read_bytes() for path in paths}


@pytest.mark.parametrize("chunked", [False, True], ids=["monolithic", "chunked"])
def test_push_and_pull_two_files(
    registry: Registry, repo: str, workdir: Path, chunked: bool
) -> None:
    # Sizes not multiples of the chunk size, so the last PATCH is a short one.
    files = write_files(workdir, {"model.bin": 700_001, "notes.txt": 1_234})
    options: dict[str, Any] = {"do_chunked": True, "chunk_size": 256 << 10} if chunked else {}

    methods: list[str] = []
    push(registry, repo, "v1", list(files), methods, **options)
    # ceil(700_001 / 256 KiB) + 1 PATCHes when chunked (the `{}` config goes in one PUT).
    assert methods.count("PATCH") == (4 if chunked else 0), methods

    assert pull(registry, repo, "v1", workdir / "out") == files
    assert oras_registry(registry, repo).get_tags(f"{registry.host}/{repo}") == ["v1"]


def put_blob(client: httpx.Client, repo: str, data: bytes) -> dict[str, Any]:
    started = client.post(f"/v2/{repo}/blobs/uploads/")
    assert started.status_code == 202, started.text
    location = started.headers["Location"]
    separator = "&" if "?" in location else "?"
    done = client.put(
        f"{location}{separator}digest={sha256(data)}",
        content=data,
        headers={"Content-Type": "application/octet-stream"},
    )
    assert done.status_code == 201, done.text
    return {"mediaType": "application/octet-stream", "digest": sha256(data), "size": len(data)}


def put_referrer(
    client: httpx.Client, repo: str, subject: dict[str, Any]
) -> tuple[dict[str, Any], httpx.Response]:
    """An OCI 1.1 artifact (empty config, `artifactType`) pointing at `subject`, pushed by
    digest as referrers are; returns the descriptor its referrers listing should show, and
    the answer to the PUT."""
    signature = put_blob(client, repo, b"signed: " + subject["digest"].encode())
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": SIGNATURE_TYPE,
        "config": EMPTY,
        "layers": [signature],
        "subject": subject,
        "annotations": {CREATED: "2024-01-02T03:04:05Z"},
    }
    body = canonical(manifest)
    digest = sha256(body)
    answer = client.put(
        f"/v2/{repo}/manifests/{digest}", content=body, headers={"Content-Type": OCI_MANIFEST}
    )
    assert answer.status_code == 201, f"{answer.status_code} {answer.text}"
    assert answer.headers.get("Docker-Content-Digest") == digest
    descriptor = {
        "mediaType": OCI_MANIFEST,
        "digest": digest,
        "size": len(body),
        "artifactType": SIGNATURE_TYPE,
        "annotations": {CREATED: "2024-01-02T03:04:05Z"},
    }
    return descriptor, answer


def test_referrers_of_an_artifact(registry: Registry, repo: str, workdir: Path) -> None:
    write_files(workdir, {"model.bin": 10_000, "notes.txt": 100})
    subject_digest = push(registry, repo, "v1", ["model.bin", "notes.txt"])
    with api_client(registry, repo) as client:
        fetched = client.get(
            f"/v2/{repo}/manifests/{subject_digest}", headers={"Accept": OCI_MANIFEST}
        )
        assert fetched.status_code == 200, fetched.text
        subject = {
            "mediaType": OCI_MANIFEST,
            "digest": subject_digest,
            "size": len(fetched.content),
        }
        assert sha256(fetched.content) == subject_digest

        # One referrer from oras-py itself: no `artifactType`, so its config's media type
        # stands for it (the config path does not exist, so oras-py sends `{}`).
        write_files(workdir, {"sbom.json": 300})
        sbom_digest = push(
            registry,
            repo,
            "sbom",
            ["sbom.json"],
            subject=oras.oci.Subject(**subject),
            manifest_config=f"absent.json:{SBOM_TYPE}",
        )
        signature, put = put_referrer(client, repo, subject)

        if not registry.has_referrers_api:
            pytest.skip(f"{registry.kind} has no referrers API; the pushes above must still work")
        # The header tells clients the registry indexed the referrer, so they need not keep
        # the fallback tag (`sha256-<hex>`) of registries without the API.
        assert put.headers.get("OCI-Subject") == subject_digest

        listed = client.get(f"/v2/{repo}/referrers/{subject_digest}")
        assert listed.status_code == 200, listed.text
        assert listed.headers["Content-Type"].split(";")[0] == OCI_INDEX
        index = listed.json()
        assert index["schemaVersion"] == 2
        assert index["mediaType"] == OCI_INDEX
        by_digest = {entry["digest"]: entry for entry in index["manifests"]}
        assert set(by_digest) == {sbom_digest, signature["digest"]}
        assert by_digest[signature["digest"]] == signature
        assert by_digest[sbom_digest]["artifactType"] == SBOM_TYPE
        assert "OCI-Filters-Applied" not in listed.headers

        filtered = client.get(
            f"/v2/{repo}/referrers/{subject_digest}", params={"artifactType": SIGNATURE_TYPE}
        )
        assert filtered.status_code == 200, filtered.text
        assert filtered.headers.get("OCI-Filters-Applied") == "artifactType"
        assert filtered.json()["manifests"] == [signature]

        nothing = client.get(f"/v2/{repo}/referrers/{sha256(b'no such manifest')}")
        assert nothing.status_code == 200, nothing.text
        assert nothing.json()["manifests"] == []
