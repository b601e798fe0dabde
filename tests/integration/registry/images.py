"""Building and pushing small images through the API, for the manifest tests."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from typing import Any

import httpx

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
EMPTY_JSON = b"{}"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def descriptor(media_type: str, data: bytes, **extra: Any) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": sha256(data), "size": len(data), **extra}


def encode(document: dict[str, Any]) -> bytes:
    # Not canonical on purpose: the registry must keep these exact bytes.
    return json.dumps(document, indent=3).encode()


@dataclass
class Image:
    manifest: bytes
    media_type: str
    blobs: dict[str, bytes]

    @property
    def digest(self) -> str:
        return sha256(self.manifest)


def oci_image(
    *,
    layer: bytes | None = None,
    subject: dict[str, Any] | None = None,
    artifact_type: str | None = None,
    annotations: dict[str, str] | None = None,
) -> Image:
    layer = layer if layer is not None else os.urandom(64)
    if artifact_type is not None:
        config = EMPTY_JSON
        config_descriptor = descriptor(OCI_EMPTY, config)
    else:
        config = json.dumps({"architecture": "amd64", "os": "linux", "salt": layer.hex()}).encode()
        config_descriptor = descriptor(OCI_CONFIG, config)
    document: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config_descriptor,
        "layers": [descriptor(OCI_LAYER, layer)],
    }
    if artifact_type is not None:
        document["artifactType"] = artifact_type
    if subject is not None:
        document["subject"] = subject
    if annotations:
        document["annotations"] = annotations
    return Image(encode(document), OCI_MANIFEST, {sha256(config): config, sha256(layer): layer})


def docker_image() -> Image:
    layer = os.urandom(64)
    config = json.dumps({"architecture": "arm64", "os": "linux", "rootfs": {}}).encode()
    document = {
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": descriptor(DOCKER_CONFIG, config),
        "layers": [descriptor(DOCKER_LAYER, layer)],
    }
    return Image(encode(document), DOCKER_MANIFEST, {sha256(config): config, sha256(layer): layer})


def index_of(*children: Image, media_type: str = OCI_INDEX) -> Image:
    platforms = [("amd64", "linux"), ("arm64", "linux"), ("s390x", "linux")]
    entries = [
        descriptor(
            child.media_type,
            child.manifest,
            platform={"architecture": arch, "os": os_name},
        )
        for child, (arch, os_name) in zip(children, platforms, strict=False)
    ]
    document = {"schemaVersion": 2, "mediaType": media_type, "manifests": entries}
    return Image(encode(document), media_type, {})


async def push_blobs(client: httpx.AsyncClient, repo: str, image: Image) -> None:
    for digest, data in image.blobs.items():
        response = await client.post(f"/v2/{repo}/blobs/uploads/?digest={digest}", content=data)
        assert response.status_code == 201, response.text


async def put_manifest(
    client: httpx.AsyncClient, repo: str, reference: str, image: Image, **kwargs: Any
) -> httpx.Response:
    return await client.put(
        f"/v2/{repo}/manifests/{reference}",
        content=image.manifest,
        headers={"Content-Type": image.media_type},
        **kwargs,
    )


async def push_image(
    client: httpx.AsyncClient, repo: str, reference: str, image: Image
) -> httpx.Response:
    await push_blobs(client, repo, image)
    response = await put_manifest(client, repo, reference, image)
    assert response.status_code == 201, response.text
    return response
