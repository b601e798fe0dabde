"""Manifest validation for pushes: pure functions, no HTTP, no database.

Accepted: OCI image manifests and indexes (image-spec 1.1), Docker schema 2 manifests and
manifest lists. Refused with `ManifestUnsupported`: Docker schema 1 (signed or not), the
withdrawn OCI artifact manifest, any other media type.

The media type of a pushed manifest:

1. The request's Content-Type is read without parameters and case-insensitively; an absent or
   blank header declares nothing.
2. When the body has `mediaType`, that is the type; it must be one of the four supported types
   exactly, and a Content-Type that declares something else is refused ("If a manifest
   includes a mediaType field, clients MUST set the Content-Type header to the value specified
   by the mediaType field").
3. Without `mediaType` (the image-spec only says it SHOULD be used), the Content-Type decides;
   it must be one of the four supported types.
4. With neither, the members decide: `config` or `layers` (and no `manifests`) is an OCI image
   manifest; `manifests` (and no `config`/`layers`) an OCI index; both or none is refused.
   Docker types are never inferred: Docker clients always send `mediaType`.

Then, whatever decided the type, an image manifest with `manifests` or an index with `config`
or `layers` is refused as ambiguous (CVE-2021-41190), and `schemaVersion` MUST be the integer 2.
"""

from wharf.registry.manifests.descriptors import MAX_SIZE, Descriptor, Platform
from wharf.registry.manifests.digests import (
    SUPPORTED_ALGORITHMS,
    ParsedDigest,
    digest_of,
    parse_digest,
)
from wharf.registry.manifests.errors import (
    DigestError,
    DigestInvalid,
    DigestUnsupported,
    ManifestError,
    ManifestInvalid,
    ManifestTooLarge,
    ManifestUnsupported,
)
from wharf.registry.manifests.mediatypes import (
    DOCKER_CONFIG,
    DOCKER_FOREIGN_LAYER,
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    DOCKER_SCHEMA1,
    DOCKER_SCHEMA1_SIGNED,
    EMPTY_JSON_DIGEST,
    EMPTY_JSON_SIZE,
    FOREIGN_LAYER_TYPES,
    IMAGE_MANIFEST_TYPES,
    INDEX_TYPES,
    MANIFEST_TYPES,
    OCI_ARTIFACT_MANIFEST,
    OCI_EMPTY,
    OCI_IMAGE_CONFIG,
    OCI_INDEX,
    OCI_MANIFEST,
    SCHEMA1_TYPES,
    SUPPORTED_MANIFEST_TYPES,
    is_media_type,
    normalize_content_type,
)
from wharf.registry.manifests.parser import (
    MAX_MANIFEST_BYTES,
    ParsedManifest,
    check_manifest_size,
    parse_manifest,
    referrer_descriptor,
)

__all__ = [
    "DOCKER_CONFIG",
    "DOCKER_FOREIGN_LAYER",
    "DOCKER_MANIFEST",
    "DOCKER_MANIFEST_LIST",
    "DOCKER_SCHEMA1",
    "DOCKER_SCHEMA1_SIGNED",
    "EMPTY_JSON_DIGEST",
    "EMPTY_JSON_SIZE",
    "FOREIGN_LAYER_TYPES",
    "IMAGE_MANIFEST_TYPES",
    "INDEX_TYPES",
    "MANIFEST_TYPES",
    "MAX_MANIFEST_BYTES",
    "MAX_SIZE",
    "OCI_ARTIFACT_MANIFEST",
    "OCI_EMPTY",
    "OCI_IMAGE_CONFIG",
    "OCI_INDEX",
    "OCI_MANIFEST",
    "SCHEMA1_TYPES",
    "SUPPORTED_ALGORITHMS",
    "SUPPORTED_MANIFEST_TYPES",
    "Descriptor",
    "DigestError",
    "DigestInvalid",
    "DigestUnsupported",
    "ManifestError",
    "ManifestInvalid",
    "ManifestTooLarge",
    "ManifestUnsupported",
    "ParsedDigest",
    "ParsedManifest",
    "Platform",
    "check_manifest_size",
    "digest_of",
    "is_media_type",
    "normalize_content_type",
    "parse_digest",
    "parse_manifest",
    "referrer_descriptor",
]
