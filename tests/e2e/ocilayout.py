"""OCI image layouts built offline (no base images here): random-content tar layers, a config
whose `rootfs.diff_ids` match, image manifests, indexes, `index.json` and `oci-layout`.

Also reads a layout back (`resolve`, `closure`), to compare what a client pulled with what
was pushed, blob by blob.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
REF_NAME = "org.opencontainers.image.ref.name"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def canonical(document: dict[str, Any]) -> bytes:
    return json.dumps(document, separators=(",", ":"), sort_keys=True).encode()


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    platform: dict[str, str] | None = None

    def to_json(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "mediaType": self.media_type,
            "digest": self.digest,
            "size": self.size,
        }
        if self.platform:
            document["platform"] = self.platform
        return document

    @classmethod
    def from_json(cls, document: dict[str, Any]) -> Descriptor:
        return cls(document["mediaType"], document["digest"], document["size"])


def tar_layer(payload: bytes) -> bytes:
    """A tar holding one file; fixed metadata, so only the payload varies."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        member = tarfile.TarInfo("payload.bin")
        member.size = len(payload)
        member.mode = 0o644
        archive.addfile(member, io.BytesIO(payload))
    return buffer.getvalue()


class Layout:
    """An OCI image layout directory: blobs under `blobs/sha256/`, tags in `index.json`."""

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
        marker = root / "oci-layout"
        if not marker.exists():
            marker.write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))

    def blob(self, digest: str) -> bytes:
        algorithm, _, hexpart = digest.partition(":")
        data = (self.root / "blobs" / algorithm / hexpart).read_bytes()
        assert sha256(data) == digest, f"{self.root}: blob {digest} does not match its digest"
        return data

    def add_blob(self, data: bytes, media_type: str) -> Descriptor:
        digest = sha256(data)
        (self.root / "blobs" / "sha256" / digest.removeprefix("sha256:")).write_bytes(data)
        return Descriptor(media_type, digest, len(data))

    def add_image(
        self, layer_size: int, *, compress: bool, architecture: str = "amd64"
    ) -> Descriptor:
        """An image manifest with one layer of `layer_size` random bytes; returns its
        descriptor, with the platform an index entry needs."""
        uncompressed = tar_layer(os.urandom(layer_size))
        if compress:
            layer = self.add_blob(gzip.compress(uncompressed, 1, mtime=0), OCI_LAYER_GZIP)
        else:
            layer = self.add_blob(uncompressed, OCI_LAYER)
        config = {
            "architecture": architecture,
            "os": "linux",
            "config": {"Cmd": ["/payload.bin"]},
            "rootfs": {"type": "layers", "diff_ids": [sha256(uncompressed)]},
        }
        config_descriptor = self.add_blob(canonical(config), OCI_CONFIG)
        manifest = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": config_descriptor.to_json(),
            "layers": [layer.to_json()],
        }
        stored = self.add_blob(canonical(manifest), OCI_MANIFEST)
        platform = {"architecture": architecture, "os": "linux"}
        return Descriptor(stored.media_type, stored.digest, stored.size, platform)

    def add_index(self, manifests: list[Descriptor]) -> Descriptor:
        index = {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [descriptor.to_json() for descriptor in manifests],
        }
        return self.add_blob(canonical(index), OCI_INDEX)

    def tag(self, name: str, descriptor: Descriptor) -> None:
        entry = {
            "mediaType": descriptor.media_type,
            "digest": descriptor.digest,
            "size": descriptor.size,
            "annotations": {REF_NAME: name},
        }
        index = {"schemaVersion": 2, "manifests": [entry]}
        (self.root / "index.json").write_text(json.dumps(index))

    def resolve(self, name: str) -> Descriptor:
        index = json.loads((self.root / "index.json").read_text())
        for entry in index["manifests"]:
            if entry.get("annotations", {}).get(REF_NAME) == name:
                return Descriptor.from_json(entry)
        raise KeyError(f"no {name!r} in {self.root}/index.json")

    def closure(self, descriptor: Descriptor) -> dict[str, bytes]:
        """Every blob reachable from `descriptor` (itself included), by digest."""
        data = self.blob(descriptor.digest)
        found = {descriptor.digest: data}
        if descriptor.media_type == OCI_INDEX:
            for child in json.loads(data)["manifests"]:
                found.update(self.closure(Descriptor.from_json(child)))
        elif descriptor.media_type == OCI_MANIFEST:
            document = json.loads(data)
            for blob in [document["config"], *document["layers"]]:
                found[blob["digest"]] = self.blob(blob["digest"])
        return found


def image_layout(root: Path, tag: str, layer_size: int, *, compress: bool) -> Descriptor:
    layout = Layout(root)
    manifest = layout.add_image(layer_size, compress=compress)
    layout.tag(tag, manifest)
    return manifest


def index_layout(root: Path, tag: str, layer_size: int) -> Descriptor:
    """A multi-arch image: an OCI index of two single-layer images (amd64 and arm64)."""
    layout = Layout(root)
    images = [
        layout.add_image(layer_size, compress=True, architecture=architecture)
        for architecture in ("amd64", "arm64")
    ]
    index = layout.add_index(images)
    layout.tag(tag, index)
    return index
