"""Images for the client e2e tests: built in an OCI layout, checked as the registry serves
them (`served` reads every blob back and checks the layers against the config)."""

from __future__ import annotations

import gzip
import json
import os
from dataclasses import dataclass
from typing import Any

from tests.e2e.ocilayout import (
    OCI_CONFIG,
    OCI_LAYER_GZIP,
    OCI_MANIFEST,
    Descriptor,
    Layout,
    canonical,
    sha256,
    tar_layer,
)
from tests.e2e.registries import Registry, api_client

LAYER_SIZE = 128 << 10
MANIFEST_TYPES = ", ".join(
    [
        OCI_MANIFEST,
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    ]
)


def layered_image(layout: Layout, layers: list[bytes]) -> Descriptor:
    """An image manifest over `layers` (uncompressed tars, stored gzipped), in `layout`."""
    stored = [layout.add_blob(gzip.compress(tar, 1, mtime=0), OCI_LAYER_GZIP) for tar in layers]
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Cmd": ["/payload.bin"]},
        "rootfs": {"type": "layers", "diff_ids": [sha256(tar) for tar in layers]},
    }
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": layout.add_blob(canonical(config), OCI_CONFIG).to_json(),
        "layers": [layer.to_json() for layer in stored],
    }
    return layout.add_blob(canonical(manifest), OCI_MANIFEST)


def random_layers(count: int) -> list[bytes]:
    return [tar_layer(os.urandom(LAYER_SIZE)) for _ in range(count)]


@dataclass(frozen=True)
class Served:
    """What the registry serves for a reference: the manifest's digest and its JSON."""

    digest: str
    manifest: dict[str, Any]


def served(registry: Registry, repo: str, reference: str) -> Served:
    """The registry's own answer to a manifest GET, with every layer checked against the
    config's `diff_ids` (layers decompressed here), so the content is what was pushed."""
    with api_client(registry, repo, "pull") as client:
        answer = client.get(f"/v2/{repo}/manifests/{reference}", headers={"Accept": MANIFEST_TYPES})
        assert answer.status_code == 200, f"GET manifest {reference}: {answer.text}"
        digest = sha256(answer.content)
        assert answer.headers["docker-content-digest"] == digest
        manifest = json.loads(answer.content)
        config = json.loads(client.get(f"/v2/{repo}/blobs/{manifest['config']['digest']}").content)
        diff_ids = []
        for layer in manifest["layers"]:
            blob = client.get(f"/v2/{repo}/blobs/{layer['digest']}")
            assert blob.status_code == 200, f"GET blob {layer['digest']}: {blob.status_code}"
            assert sha256(blob.content) == layer["digest"]
            tar = gzip.decompress(blob.content) if "gzip" in layer["mediaType"] else blob.content
            diff_ids.append(sha256(tar))
        assert diff_ids == config["rootfs"]["diff_ids"]
    return Served(digest, manifest)
