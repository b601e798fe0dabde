"""Media types of manifests and of what they reference; the RFC 6838 grammar; Content-Type."""

from __future__ import annotations

import re

from wharf.registry.manifests.errors import ManifestInvalid

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
"""The empty descriptor's media type: content `{}`, size 2 (image-spec 1.1, manifest.md)."""
OCI_IMAGE_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_ARTIFACT_MANIFEST = "application/vnd.oci.artifact.manifest.v1+json"
"""Proposed in the image-spec 1.1 release candidates and removed before 1.1.0: refused."""
OCI_LAYER_NONDISTRIBUTABLE_TAR = "application/vnd.oci.image.layer.nondistributable.v1.tar"
OCI_LAYER_NONDISTRIBUTABLE_GZIP = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
OCI_LAYER_NONDISTRIBUTABLE_ZSTD = "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+json"
DOCKER_SCHEMA1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_FOREIGN_LAYER = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"

EMPTY_JSON_DIGEST = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
EMPTY_JSON_SIZE = 2

IMAGE_MANIFEST_TYPES = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_MANIFEST_LIST})
OCI_TYPES = frozenset({OCI_MANIFEST, OCI_INDEX})
SUPPORTED_MANIFEST_TYPES = IMAGE_MANIFEST_TYPES | INDEX_TYPES
SCHEMA1_TYPES = frozenset({DOCKER_SCHEMA1, DOCKER_SCHEMA1_SIGNED})
MANIFEST_TYPES = SUPPORTED_MANIFEST_TYPES | SCHEMA1_TYPES
"""Every media type that names a manifest (a descriptor of one of these points at a manifest)."""

FOREIGN_LAYER_TYPES = frozenset(
    {
        DOCKER_FOREIGN_LAYER,
        OCI_LAYER_NONDISTRIBUTABLE_TAR,
        OCI_LAYER_NONDISTRIBUTABLE_GZIP,
        OCI_LAYER_NONDISTRIBUTABLE_ZSTD,
    }
)
"""Layers a client is told not to push ("should never be pushed", Docker; "SHOULD NOT upload
layers tagged with this media type", OCI layer.md), so the registry must not require them."""

SCHEMA1_REFUSAL = (
    "Docker schema 1 manifests are not supported (deprecated and insecure); "
    "push an OCI or Docker schema 2 manifest instead"
)

# The image-spec's own JSON schema (defs-descriptor.json) for RFC 6838 section 4.2 names:
# type "/" subtype, each 1-127 of the restricted-name characters, no parameters.
_MEDIA_TYPE = re.compile(
    r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}"
)


def is_media_type(value: str) -> bool:
    """Whether `value` is an RFC 6838 media type name (type/subtype, no parameters)."""
    return _MEDIA_TYPE.fullmatch(value) is not None


def normalize_content_type(value: str | None) -> str | None:
    """The media type a request's Content-Type declares, or None when it declares none.

    Parameters are dropped ("The registry SHOULD ignore parameters on the Content-Type
    header") and case is folded (RFC 6838: type and subtype names are case-insensitive). An
    absent or blank header declares nothing.
    """
    if value is None or not value.strip(" \t"):
        return None
    media_type = value.split(";", 1)[0].strip(" \t").lower()
    if not is_media_type(media_type):
        raise ManifestInvalid(f"the Content-Type header {_show(value)} is not a media type")
    return media_type


def _show(value: str, limit: int = 80) -> str:
    return repr(value if len(value) <= limit else value[:limit] + "...")
