"""Content descriptors (image-spec descriptor.md) and index platforms, validated field by field."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from wharf.registry.manifests.digests import digest_of, parse_digest
from wharf.registry.manifests.errors import (
    DigestInvalid,
    DigestUnsupported,
    ManifestInvalid,
    ManifestUnsupported,
)
from wharf.registry.manifests.mediatypes import FOREIGN_LAYER_TYPES, MANIFEST_TYPES, is_media_type
from wharf.registry.manifests.strictjson import json_kind

MAX_SIZE = 2**63 - 1
"""`size` is an int64 (descriptor.md)."""

EMPTY_ANNOTATIONS: Mapping[str, str] = MappingProxyType({})

# RFC 3986 URI: a scheme, then only characters a URI may hold (or percent-escapes).
_URI = re.compile(
    r"[A-Za-z][A-Za-z0-9+.-]*:(?:[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=]|%[0-9A-Fa-f]{2})*"
)


@dataclass(frozen=True, slots=True)
class Platform:
    """An index entry's `platform` (image-index.md): what the manifest runs on."""

    architecture: str
    os: str
    os_version: str | None = None
    os_features: tuple[str, ...] = ()
    variant: str | None = None


@dataclass(frozen=True, slots=True)
class Descriptor:
    """A validated descriptor. `data` is the decoded embedded content, already verified."""

    media_type: str
    digest: str
    size: int
    urls: tuple[str, ...] = ()
    annotations: Mapping[str, str] = field(default_factory=lambda: EMPTY_ANNOTATIONS)
    artifact_type: str | None = None
    data: bytes | None = None
    platform: Platform | None = None

    @property
    def foreign(self) -> bool:
        """A layer clients are told never to push (Docker foreign, OCI non-distributable)."""
        return self.media_type in FOREIGN_LAYER_TYPES

    @property
    def is_manifest(self) -> bool:
        """Whether the media type names a manifest (else, in an index: some other content)."""
        return self.media_type in MANIFEST_TYPES


def require_object(value: object, where: str) -> dict[str, object]:
    if not isinstance(value, dict):
        raise ManifestInvalid(f"must be an object, not {json_kind(value)}", field=where)
    return value


def require_array(value: object, where: str) -> list[object]:
    if not isinstance(value, list):
        raise ManifestInvalid(f"must be an array, not {json_kind(value)}", field=where)
    return value


def require_string(value: object, where: str) -> str:
    if not isinstance(value, str):
        raise ManifestInvalid(f"must be a string, not {json_kind(value)}", field=where)
    return value


def require_media_type(value: object, where: str) -> str:
    text = require_string(value, where)
    if not is_media_type(text):
        raise ManifestInvalid(
            f"{_show(text)} is not a media type (RFC 6838: type/subtype, no parameters)",
            field=where,
        )
    return text


def optional_artifact_type(obj: Mapping[str, object], where: str) -> str | None:
    """`artifactType`: absent or "" mean none ("If the artifactType is empty or missing", the
    distribution-spec); any other value "MUST comply with RFC 6838"."""
    if "artifactType" not in obj:
        return None
    value = require_string(obj["artifactType"], f"{where}artifactType")
    if value == "":
        return None
    return require_media_type(value, f"{where}artifactType")


def parse_annotations(value: object, where: str) -> Mapping[str, str]:
    """A string-string map: "both the key and value MUST be strings"; no annotations means
    absent or `{}` ("MUST either be absent or be an empty map"), so `null` is refused."""
    obj = require_object(value, where)
    result: dict[str, str] = {}
    for name, item in obj.items():
        if not isinstance(item, str):
            raise ManifestInvalid(
                f"the value of {_show(name)} must be a string, not {json_kind(item)}",
                field=where,
            )
        result[name] = item
    return MappingProxyType(result) if result else EMPTY_ANNOTATIONS


def parse_digest_field(value: object, where: str) -> str:
    text = require_string(value, where)
    try:
        parse_digest(text)
    except DigestUnsupported as exc:
        raise ManifestUnsupported(exc.reason, field=where) from exc
    except DigestInvalid as exc:
        raise ManifestInvalid(exc.reason, field=where) from exc
    return text


def parse_size(value: object, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ManifestInvalid(f"must be an integer, not {json_kind(value)}", field=where)
    if value < 0:
        raise ManifestInvalid(f"must not be negative, got {value}", field=where)
    if value > MAX_SIZE:
        raise ManifestInvalid(f"must fit an int64 (at most {MAX_SIZE}), got {value}", field=where)
    return value


def parse_descriptor(
    value: object, where: str, *, oci: bool, with_platform: bool = False
) -> Descriptor:
    """Validate one descriptor. `oci` adds the OCI-only fields (`artifactType`, `data`); for
    Docker documents they are unknown properties and ignored. `with_platform`: an index entry.
    Other unknown properties are ignored ("MUST ignore unknown properties", considerations.md).
    """
    obj = require_object(value, where)
    prefix = f"{where}."
    for required in ("mediaType", "digest", "size"):
        if required not in obj:
            raise ManifestInvalid(f"the descriptor has no {required!r}", field=where)
    media_type = require_media_type(obj["mediaType"], f"{prefix}mediaType")
    digest = parse_digest_field(obj["digest"], f"{prefix}digest")
    size = parse_size(obj["size"], f"{prefix}size")
    urls: tuple[str, ...] = ()
    if "urls" in obj:
        items = require_array(obj["urls"], f"{prefix}urls")
        urls = tuple(_parse_url(item, f"{prefix}urls[{i}]") for i, item in enumerate(items))
    annotations = EMPTY_ANNOTATIONS
    if "annotations" in obj:
        annotations = parse_annotations(obj["annotations"], f"{prefix}annotations")
    artifact_type = optional_artifact_type(obj, prefix) if oci else None
    data = _parse_data(obj["data"], prefix, digest, size) if oci and "data" in obj else None
    platform = None
    if with_platform and "platform" in obj:
        platform = _parse_platform(obj["platform"], f"{prefix}platform")
    return Descriptor(media_type, digest, size, urls, annotations, artifact_type, data, platform)


def _parse_url(value: object, where: str) -> str:
    """ "Each entry MUST conform to RFC 3986": an absolute URI of URI characters."""
    text = require_string(value, where)
    if _URI.fullmatch(text) is None:
        raise ManifestInvalid(f"{_show(text)} is not an RFC 3986 URI", field=where)
    return text


def _parse_data(value: object, prefix: str, digest: str, size: int) -> bytes:
    """`data`: "Values MUST conform to the Base 64 encoding, as defined in RFC 4648. The decoded
    data MUST be identical to the referenced content", so its length must be `size` and its
    digest `digest`."""
    where = f"{prefix}data"
    text = require_string(value, where)
    try:
        decoded = base64.b64decode(text.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error):
        raise ManifestInvalid(
            "is not RFC 4648 base64 (standard alphabet, padded)", field=where
        ) from None
    if len(decoded) != size:
        raise ManifestInvalid(
            f"decodes to {len(decoded)} bytes but the descriptor's size is {size}", field=where
        )
    algorithm = digest.split(":", 1)[0]
    if digest_of(decoded, algorithm) != digest:
        raise ManifestInvalid("does not match the descriptor's digest", field=where)
    return decoded


def _parse_platform(value: object, where: str) -> Platform:
    """`architecture` and `os` are REQUIRED strings; `os.version`, `variant` strings and
    `os.features` an array of strings when present. `features` is RESERVED: not read."""
    obj = require_object(value, where)
    for required in ("architecture", "os"):
        if required not in obj:
            raise ManifestInvalid(f"the platform has no {required!r}", field=where)
    architecture = require_string(obj["architecture"], f"{where}.architecture")
    os_name = require_string(obj["os"], f"{where}.os")
    os_version = None
    if "os.version" in obj:
        os_version = require_string(obj["os.version"], f"{where}.os.version")
    variant = None
    if "variant" in obj:
        variant = require_string(obj["variant"], f"{where}.variant")
    features: tuple[str, ...] = ()
    if "os.features" in obj:
        items = require_array(obj["os.features"], f"{where}.os.features")
        features = tuple(
            require_string(item, f"{where}.os.features[{i}]") for i, item in enumerate(items)
        )
    return Platform(architecture, os_name, os_version, features, variant)


def _show(value: str, limit: int = 80) -> str:
    return repr(value if len(value) <= limit else value[:limit] + "...")
