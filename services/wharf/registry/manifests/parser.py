"""`parse_manifest`: one pushed manifest, validated and reduced to what the registry needs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from wharf.registry.manifests.descriptors import (
    EMPTY_ANNOTATIONS,
    MAX_SIZE,
    Descriptor,
    optional_artifact_type,
    parse_annotations,
    parse_descriptor,
    require_array,
    require_string,
)
from wharf.registry.manifests.digests import digest_of, parse_digest
from wharf.registry.manifests.errors import ManifestInvalid, ManifestTooLarge, ManifestUnsupported
from wharf.registry.manifests.mediatypes import (
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    IMAGE_MANIFEST_TYPES,
    INDEX_TYPES,
    OCI_ARTIFACT_MANIFEST,
    OCI_EMPTY,
    OCI_INDEX,
    OCI_MANIFEST,
    OCI_TYPES,
    SCHEMA1_REFUSAL,
    SCHEMA1_TYPES,
    SUPPORTED_MANIFEST_TYPES,
    normalize_content_type,
)
from wharf.registry.manifests.strictjson import decode_object, json_kind

MAX_MANIFEST_BYTES = 4 * 1024 * 1024
"""4 MiB: "Client and registry implementations SHOULD expect to be able to support manifest
pushes of at least 4 megabytes" (distribution-spec, Pushing Manifests)."""

MediaTypeSource = Literal["mediaType", "Content-Type", "inferred"]


@dataclass(frozen=True, slots=True)
class ParsedManifest:
    """A valid manifest. `text` is the body exactly as received (stored as Quay's text column);
    `size` and `digest` (sha256) are those of the received bytes."""

    media_type: str
    media_type_source: MediaTypeSource
    text: str
    size: int
    digest: str
    config: Descriptor | None = None
    layers: tuple[Descriptor, ...] = ()
    manifests: tuple[Descriptor, ...] = ()
    subject: Descriptor | None = None
    artifact_type: str | None = None
    annotations: Mapping[str, str] = field(default_factory=lambda: EMPTY_ANNOTATIONS)

    @property
    def is_index(self) -> bool:
        """An OCI index or a Docker manifest list."""
        return self.media_type in INDEX_TYPES

    @property
    def is_oci(self) -> bool:
        return self.media_type in OCI_TYPES

    @property
    def config_media_type(self) -> str | None:
        return self.config.media_type if self.config else None

    @property
    def foreign_layers(self) -> tuple[Descriptor, ...]:
        """Layers the registry must not require (Docker foreign, OCI non-distributable)."""
        return tuple(layer for layer in self.layers if layer.foreign)

    @property
    def blob_digests(self) -> tuple[str, ...]:
        """The blobs that must exist in the repository: the config, then every layer that is
        not foreign, each digest once, in manifest order. Empty for an index."""
        ordered = [self.config] if self.config else []
        ordered += [layer for layer in self.layers if not layer.foreign]
        return tuple(dict.fromkeys(d.digest for d in ordered))

    @property
    def child_digests(self) -> tuple[str, ...]:
        """Every entry of an index or list, each digest once, in order. Entries whose media
        type is not a manifest type (`Descriptor.is_manifest`) are included: the registry
        decides how to treat them."""
        return tuple(dict.fromkeys(d.digest for d in self.manifests))

    @property
    def layers_compressed_size(self) -> int | None:
        """Sum of `layers[].size` (Quay's `manifest.layers_compressed_size`); None for lists."""
        return None if self.is_index else sum(layer.size for layer in self.layers)


def check_manifest_size(size: int, limit: int = MAX_MANIFEST_BYTES) -> None:
    """`ManifestTooLarge` when `size` (bytes, e.g. a Content-Length) is over `limit`."""
    if size > limit:
        raise ManifestTooLarge(size, limit)


def parse_manifest(raw: bytes, content_type: str | None) -> ParsedManifest:
    """Validate a pushed manifest and extract what the registry stores and checks.

    Raises `ManifestTooLarge`, or `ManifestInvalid` (`ManifestUnsupported` for Docker schema 1,
    unknown manifest media types and unsupported digest algorithms), never anything else.
    The media type rule is in this package's docstring.
    """
    raw = bytes(raw)
    check_manifest_size(len(raw))
    text, doc = decode_object(raw)
    declared = normalize_content_type(content_type)
    if declared in SCHEMA1_TYPES or _is_schema1(doc):
        raise ManifestUnsupported(SCHEMA1_REFUSAL)
    media_type, source = _media_type(doc, declared)
    _check_schema_version(doc)
    _check_unambiguous(doc, media_type)
    oci = media_type in OCI_TYPES
    annotations: Mapping[str, str] = EMPTY_ANNOTATIONS
    subject: Descriptor | None = None
    if oci:
        if "annotations" in doc:
            annotations = parse_annotations(doc["annotations"], "annotations")
        if "subject" in doc:
            subject = parse_descriptor(doc["subject"], "subject", oci=True)
    config: Descriptor | None = None
    layers: tuple[Descriptor, ...] = ()
    manifests: tuple[Descriptor, ...] = ()
    if media_type in IMAGE_MANIFEST_TYPES:
        config, layers, artifact_type = _image_manifest(doc, oci)
    else:
        manifests, artifact_type = _index(doc, oci)
    return ParsedManifest(
        media_type=media_type,
        media_type_source=source,
        text=text,
        size=len(raw),
        digest=digest_of(raw),
        config=config,
        layers=layers,
        manifests=manifests,
        subject=subject,
        artifact_type=artifact_type,
        annotations=annotations,
    )


def _is_schema1(doc: Mapping[str, object]) -> bool:
    version, media_type = doc.get("schemaVersion"), doc.get("mediaType")
    return (type(version) is int and version == 1) or (
        isinstance(media_type, str) and media_type in SCHEMA1_TYPES
    )


def _media_type(doc: Mapping[str, object], declared: str | None) -> tuple[str, MediaTypeSource]:
    """The body's `mediaType` when present (and then the Content-Type, if any, must be the
    same); else the Content-Type; else inferred from the members."""
    if "mediaType" in doc:
        body = require_string(doc["mediaType"], "mediaType")
        _require_supported(body, "mediaType")
        if declared is not None and declared != body:
            raise ManifestInvalid(
                f"the Content-Type {declared!r} does not match the manifest's mediaType "
                f"{body!r} (clients MUST send the mediaType as the Content-Type)"
            )
        return body, "mediaType"
    if declared is not None:
        _require_supported(declared, "the Content-Type")
        return declared, "Content-Type"
    has_image = "config" in doc or "layers" in doc
    if "manifests" in doc and not has_image:
        return OCI_INDEX, "inferred"
    if has_image and "manifests" not in doc:
        return OCI_MANIFEST, "inferred"
    if has_image:
        raise ManifestInvalid(
            "the manifest has no mediaType and no Content-Type, and has both 'manifests' and "
            "'config'/'layers': it is ambiguous"
        )
    raise ManifestInvalid(
        "the manifest has no mediaType and no Content-Type, and neither 'config'/'layers' nor "
        "'manifests': its type cannot be determined"
    )


def _require_supported(media_type: str, where: str) -> None:
    if media_type in SUPPORTED_MANIFEST_TYPES:
        return
    if media_type == OCI_ARTIFACT_MANIFEST:
        raise ManifestUnsupported(
            f"{media_type!r} was removed before image-spec 1.1.0; push an image manifest with "
            "an artifactType instead",
            field=where,
        )
    raise ManifestUnsupported(
        f"{media_type!r} is not a supported manifest media type (supported: "
        f"{OCI_MANIFEST}, {OCI_INDEX}, {DOCKER_MANIFEST}, {DOCKER_MANIFEST_LIST})",
        field=where,
    )


def _check_schema_version(doc: Mapping[str, object]) -> None:
    if "schemaVersion" not in doc:
        raise ManifestInvalid("the manifest has no 'schemaVersion' (it MUST be 2)")
    version = doc["schemaVersion"]
    if type(version) is not int:
        raise ManifestInvalid(
            f"must be the integer 2, not {json_kind(version)}", field="schemaVersion"
        )
    if version != 2:
        raise ManifestInvalid(f"must be 2, got {version}", field="schemaVersion")


def _check_unambiguous(doc: Mapping[str, object], media_type: str) -> None:
    """An image manifest with `manifests`, or an index with `config`/`layers`, reads as
    another document type to some client (CVE-2021-41190): refused, as distribution does."""
    if media_type in IMAGE_MANIFEST_TYPES and "manifests" in doc:
        raise ManifestInvalid(
            f"an image manifest ({media_type}) must not have a 'manifests' member"
        )
    if media_type in INDEX_TYPES and ("config" in doc or "layers" in doc):
        raise ManifestInvalid(
            f"an index ({media_type}) must not have a 'config' or 'layers' member"
        )


def _image_manifest(
    doc: Mapping[str, object], oci: bool
) -> tuple[Descriptor, tuple[Descriptor, ...], str | None]:
    """The config, the layers and the artifact type of an image manifest."""
    if "config" not in doc:
        raise ManifestInvalid("the image manifest has no 'config' descriptor")
    if "layers" not in doc:
        raise ManifestInvalid("the image manifest has no 'layers' array")
    config = parse_descriptor(doc["config"], "config", oci=oci)
    items = require_array(doc["layers"], "layers")
    layers = tuple(parse_descriptor(item, f"layers[{i}]", oci=oci) for i, item in enumerate(items))
    if not oci:
        return config, layers, None
    artifact_type = optional_artifact_type(doc, "")
    if artifact_type is None and config.media_type == OCI_EMPTY:
        # "This MUST be set when config.mediaType is set to the empty value."
        raise ManifestInvalid(f"'artifactType' is required when config.mediaType is {OCI_EMPTY}")
    if artifact_type is None:
        # "If the artifactType is empty or missing in the image manifest, the value of
        # artifactType MUST be set to the config descriptor mediaType value."
        artifact_type = config.media_type
    return config, layers, artifact_type


def _index(doc: Mapping[str, object], oci: bool) -> tuple[tuple[Descriptor, ...], str | None]:
    """The entries and the artifact type of an index or list."""
    if "manifests" not in doc:
        raise ManifestInvalid("the index has no 'manifests' array (it MUST be present)")
    items = require_array(doc["manifests"], "manifests")
    manifests = tuple(
        parse_descriptor(item, f"manifests[{i}]", oci=oci, with_platform=True)
        for i, item in enumerate(items)
    )
    # "If the artifactType is empty or missing in an index, the artifactType MUST be omitted."
    return manifests, optional_artifact_type(doc, "") if oci else None


def referrer_descriptor(parsed: ParsedManifest, digest: str, size: int) -> dict[str, object]:
    """The descriptor of `parsed` in a referrers index (distribution-spec, Listing Referrers):
    mediaType, digest, size; `artifactType` (the manifest's, else for an image manifest its
    config mediaType, omitted for an index without one); the manifest's annotations ("The
    descriptors MUST include annotations from the image manifest or index"), omitted if none.
    """
    parse_digest(digest)
    if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= MAX_SIZE:
        raise ValueError(f"size must be an int64 byte count, got {size!r}")
    if size != parsed.size:
        raise ValueError(f"size {size} is not the manifest's length ({parsed.size} bytes)")
    descriptor: dict[str, object] = {
        "mediaType": parsed.media_type,
        "digest": digest,
        "size": size,
    }
    if parsed.artifact_type is not None:
        descriptor["artifactType"] = parsed.artifact_type
    if parsed.annotations:
        descriptor["annotations"] = dict(parsed.annotations)
    return descriptor
