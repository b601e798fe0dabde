"""Manifest validation: every accepted shape, every refusal, and properties over arbitrary input."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wharf.registry.manifests import (
    DOCKER_CONFIG,
    DOCKER_FOREIGN_LAYER,
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    DOCKER_SCHEMA1,
    DOCKER_SCHEMA1_SIGNED,
    EMPTY_JSON_DIGEST,
    MAX_MANIFEST_BYTES,
    OCI_ARTIFACT_MANIFEST,
    OCI_EMPTY,
    OCI_IMAGE_CONFIG,
    OCI_INDEX,
    OCI_MANIFEST,
    DigestError,
    DigestInvalid,
    DigestUnsupported,
    ManifestError,
    ManifestInvalid,
    ManifestTooLarge,
    ManifestUnsupported,
    ParsedDigest,
    ParsedManifest,
    check_manifest_size,
    digest_of,
    is_media_type,
    normalize_content_type,
    parse_digest,
    parse_manifest,
    referrer_descriptor,
)

LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
NONDISTRIBUTABLE = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
ARTIFACT = "application/vnd.example.sbom.v1+json"


def dg(n: int) -> str:
    return f"sha256:{n:064x}"


def desc(media_type: object = LAYER, n: int = 1, size: object = 10, **extra: Any) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": dg(n), "size": size, **extra}


def empty_desc(**extra: Any) -> dict[str, Any]:
    return {"mediaType": OCI_EMPTY, "digest": EMPTY_JSON_DIGEST, "size": 2, **extra}


def oci_image(**members: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": desc(OCI_IMAGE_CONFIG, 100, 7023),
        "layers": [desc(LAYER, 1, 32654), desc(LAYER, 2, 16724)],
    }
    doc.update(members)
    return doc


def oci_index(**members: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            desc(OCI_MANIFEST, 11, 7143, platform={"architecture": "ppc64le", "os": "linux"}),
            desc(OCI_MANIFEST, 12, 7682, platform={"architecture": "amd64", "os": "linux"}),
        ],
    }
    doc.update(members)
    return doc


def docker_image(**members: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": desc(DOCKER_CONFIG, 100, 7023),
        "layers": [desc(DOCKER_LAYER, 1, 32654), desc(DOCKER_LAYER, 2, 16724)],
    }
    doc.update(members)
    return doc


def docker_list(**members: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST_LIST,
        "manifests": [
            desc(DOCKER_MANIFEST, 11, 7143, platform={"architecture": "ppc64le", "os": "linux"}),
            desc(
                DOCKER_MANIFEST,
                12,
                7682,
                platform={"architecture": "amd64", "os": "linux", "features": ["sse4"]},
            ),
        ],
    }
    doc.update(members)
    return doc


def artifact(**members: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": ARTIFACT,
        "config": empty_desc(data="e30="),
        "layers": [desc(ARTIFACT, 5, 1234, annotations={"org.example.format": "json"})],
        "subject": desc(OCI_MANIFEST, 42, 7682),
        "annotations": {"org.opencontainers.image.created": "2024-01-02T03:04:05Z"},
    }
    doc.update(members)
    return doc


def encode(doc: object) -> bytes:
    return json.dumps(doc).encode()


def parse(doc: object, content_type: str | None = None) -> ParsedManifest:
    return parse_manifest(encode(doc), content_type)


def refused(
    doc: object, expected: type[ManifestError], match: str, content_type: str | None = None
) -> ManifestError:
    raw = doc if isinstance(doc, bytes) else encode(doc)
    with pytest.raises(expected, match=match) as info:
        parse_manifest(raw, content_type)
    return info.value


# --- accepted documents ---------------------------------------------------------------------


def test_oci_image_manifest() -> None:
    doc = oci_image(annotations={"com.example.key1": "value1"})
    raw = encode(doc)
    parsed = parse_manifest(raw, OCI_MANIFEST)
    assert parsed.media_type == OCI_MANIFEST
    assert parsed.media_type_source == "mediaType"
    assert parsed.is_oci
    assert not parsed.is_index
    assert parsed.text == raw.decode()
    assert parsed.size == len(raw)
    assert parsed.digest == "sha256:" + hashlib.sha256(raw).hexdigest()
    assert parsed.config is not None
    assert (parsed.config.media_type, parsed.config.digest, parsed.config.size) == (
        OCI_IMAGE_CONFIG,
        dg(100),
        7023,
    )
    assert [layer.digest for layer in parsed.layers] == [dg(1), dg(2)]
    assert parsed.blob_digests == (dg(100), dg(1), dg(2))
    assert parsed.child_digests == ()
    assert parsed.manifests == ()
    assert parsed.subject is None
    assert parsed.artifact_type == OCI_IMAGE_CONFIG
    assert dict(parsed.annotations) == {"com.example.key1": "value1"}
    assert parsed.config_media_type == OCI_IMAGE_CONFIG
    assert parsed.layers_compressed_size == 32654 + 16724
    assert parsed.foreign_layers == ()


def test_blob_digests_are_deduplicated_in_manifest_order() -> None:
    doc = oci_image(layers=[desc(LAYER, 2), desc(LAYER, 100), desc(LAYER, 1), desc(LAYER, 2)])
    assert parse(doc).blob_digests == (dg(100), dg(2), dg(1))


def test_an_image_manifest_may_have_no_layers() -> None:
    # "For portability, layers SHOULD have at least one entry": a SHOULD, not a MUST.
    parsed = parse(oci_image(layers=[]))
    assert parsed.layers == ()
    assert parsed.blob_digests == (dg(100),)
    assert parsed.layers_compressed_size == 0


def test_oci_index() -> None:
    parsed = parse(oci_index(annotations={"a": "b"}), OCI_INDEX)
    assert parsed.is_index
    assert parsed.is_oci
    assert parsed.config is None
    assert parsed.layers == ()
    assert parsed.child_digests == (dg(11), dg(12))
    assert parsed.blob_digests == ()
    assert parsed.artifact_type is None
    assert parsed.layers_compressed_size is None
    assert parsed.config_media_type is None
    platform = parsed.manifests[0].platform
    assert platform is not None
    assert (platform.architecture, platform.os) == ("ppc64le", "linux")
    assert dict(parsed.annotations) == {"a": "b"}


def test_index_children_are_deduplicated() -> None:
    doc = oci_index(manifests=[desc(OCI_MANIFEST, 3), desc(OCI_INDEX, 4), desc(OCI_MANIFEST, 3)])
    assert parse(doc).child_digests == (dg(3), dg(4))


def test_an_index_may_be_empty() -> None:
    # "While this property MUST be present, the size of the array MAY be zero."
    assert parse(oci_index(manifests=[])).manifests == ()


def test_full_platform() -> None:
    platform = {
        "architecture": "amd64",
        "os": "windows",
        "os.version": "10.0.14393.1066",
        "os.features": ["win32k"],
        "variant": "v8",
        "features": {"reserved": "not read"},
    }
    parsed = parse(oci_index(manifests=[desc(OCI_MANIFEST, 3, platform=platform)]))
    got = parsed.manifests[0].platform
    assert got is not None
    assert got.os_version == "10.0.14393.1066"
    assert got.os_features == ("win32k",)
    assert got.variant == "v8"


def test_index_entries_of_unknown_media_types_are_kept() -> None:
    # "MUST NOT error on encountering a mediaType that is unknown to the implementation."
    doc = oci_index(manifests=[desc("application/vnd.buildkit.cacheconfig.v0", 7)])
    parsed = parse(doc)
    assert parsed.child_digests == (dg(7),)
    assert not parsed.manifests[0].is_manifest


def test_index_with_artifact_type_and_subject() -> None:
    parsed = parse(oci_index(artifactType=ARTIFACT, subject=desc(OCI_MANIFEST, 42)))
    assert parsed.artifact_type == ARTIFACT
    assert parsed.subject is not None
    assert parsed.subject.digest == dg(42)


def test_artifact_with_subject_and_artifact_type() -> None:
    parsed = parse(artifact(), OCI_MANIFEST)
    assert parsed.artifact_type == ARTIFACT
    assert parsed.subject is not None
    assert (parsed.subject.media_type, parsed.subject.digest) == (OCI_MANIFEST, dg(42))
    assert parsed.config is not None
    assert parsed.config.data == b"{}"
    assert parsed.blob_digests == (EMPTY_JSON_DIGEST, dg(5))
    assert dict(parsed.layers[0].annotations) == {"org.example.format": "json"}


def test_artifact_type_falls_back_to_the_config_media_type() -> None:
    doc = artifact(config=desc("application/vnd.example.config.v1+json", 9, 123))
    del doc["artifactType"]
    assert parse(doc).artifact_type == "application/vnd.example.config.v1+json"


def test_an_empty_artifact_type_counts_as_missing() -> None:
    # "If the artifactType is empty or missing in the image manifest, ... config mediaType."
    assert parse(oci_image(artifactType="")).artifact_type == OCI_IMAGE_CONFIG
    assert parse(oci_index(artifactType="")).artifact_type is None


def test_docker_manifest_with_foreign_layers() -> None:
    foreign = desc(DOCKER_FOREIGN_LAYER, 3, 500, urls=["https://example.com/layer.tar.gz"])
    parsed = parse(docker_image(layers=[foreign, desc(DOCKER_LAYER, 1)]), DOCKER_MANIFEST)
    assert not parsed.is_oci
    assert not parsed.is_index
    assert parsed.foreign_layers == (parsed.layers[0],)
    assert parsed.layers[0].foreign
    assert not parsed.layers[1].foreign
    assert parsed.layers[0].urls == ("https://example.com/layer.tar.gz",)
    assert parsed.blob_digests == (dg(100), dg(1))
    assert parsed.artifact_type is None


def test_oci_non_distributable_layers_are_foreign() -> None:
    parsed = parse(oci_image(layers=[desc(NONDISTRIBUTABLE, 3), desc(LAYER, 1)]))
    assert [layer.foreign for layer in parsed.layers] == [True, False]
    assert parsed.blob_digests == (dg(100), dg(1))


def test_docker_manifest_list() -> None:
    parsed = parse(docker_list(), DOCKER_MANIFEST_LIST)
    assert parsed.is_index
    assert not parsed.is_oci
    assert parsed.child_digests == (dg(11), dg(12))
    assert parsed.annotations == {}


def test_a_docker_list_may_reference_a_schema1_manifest() -> None:
    assert parse(docker_list(manifests=[desc(DOCKER_SCHEMA1, 3)])).manifests[0].is_manifest


def test_oci_only_members_are_ignored_in_docker_documents() -> None:
    # Unknown properties are ignored: a Docker manifest has no subject, artifactType,
    # annotations, and its descriptors no data or artifactType.
    doc = docker_image(
        subject="not a descriptor",
        artifactType=7,
        annotations=None,
        config=desc(DOCKER_CONFIG, 100, data="!!", artifactType=[]),
    )
    parsed = parse(doc)
    assert parsed.subject is None
    assert parsed.artifact_type is None
    assert parsed.annotations == {}
    assert parsed.config is not None
    assert parsed.config.data is None


def test_unknown_properties_are_ignored() -> None:
    doc = oci_image(future={"x": [1, None]}, layers=[desc(LAYER, 1, future=True)])
    assert parse(doc).blob_digests == (dg(100), dg(1))


def test_sha512_digests_are_accepted() -> None:
    parsed = parse(oci_image(layers=[desc() | {"digest": "sha512:" + "ab" * 64}]))
    assert parsed.layers[0].digest == "sha512:" + "ab" * 64


def test_a_size_of_int64_max_is_accepted() -> None:
    assert parse(oci_image(layers=[desc(size=2**63 - 1)])).layers[0].size == 2**63 - 1


def test_data_is_decoded_and_verified() -> None:
    content = b"hello, world"
    layer = {
        "mediaType": "text/plain",
        "digest": "sha256:" + hashlib.sha256(content).hexdigest(),
        "size": len(content),
        "data": base64.b64encode(content).decode(),
    }
    assert parse(oci_image(layers=[layer])).layers[0].data == content


def test_data_of_an_empty_blob() -> None:
    layer = {"mediaType": "text/plain", "digest": digest_of(b""), "size": 0, "data": ""}
    assert parse(oci_image(layers=[layer])).layers[0].data == b""


def test_unicode_outside_the_bmp_is_fine() -> None:
    doc = oci_image(annotations={"title": "snow \u2603 and a \U0001f433"})
    raw = json.dumps(doc, ensure_ascii=False).encode()
    parsed = parse_manifest(raw, None)
    assert parsed.annotations["title"] == "snow \u2603 and a \U0001f433"
    assert parsed.text.encode() == raw
    escaped = parse(doc)  # as \ud83d\udc33: a paired surrogate escape is one character
    assert escaped.annotations["title"].endswith("\U0001f433")


# --- the media type rule ----------------------------------------------------------------------


def test_content_type_parameters_and_case_are_ignored() -> None:
    content_type = "Application/VND.oci.image.manifest.v1+JSON ; charset=utf-8"
    assert parse(oci_image(), content_type).media_type == OCI_MANIFEST


@pytest.mark.parametrize("content_type", [None, "", "  "])
def test_no_content_type_declares_nothing(content_type: str | None) -> None:
    assert parse(oci_image(), content_type).media_type_source == "mediaType"


@pytest.mark.parametrize(
    ("doc", "content_type"),
    [
        (oci_image(), OCI_MANIFEST),
        (oci_index(), OCI_INDEX),
        (docker_image(), DOCKER_MANIFEST),
        (docker_list(), DOCKER_MANIFEST_LIST),
    ],
)
def test_without_media_type_the_content_type_decides(
    doc: dict[str, Any], content_type: str
) -> None:
    del doc["mediaType"]
    parsed = parse(doc, content_type)
    assert (parsed.media_type, parsed.media_type_source) == (content_type, "Content-Type")


@pytest.mark.parametrize(
    ("doc", "expected"), [(oci_image(), OCI_MANIFEST), (oci_index(), OCI_INDEX)]
)
def test_without_either_the_members_decide(doc: dict[str, Any], expected: str) -> None:
    del doc["mediaType"]
    parsed = parse(doc)
    assert (parsed.media_type, parsed.media_type_source) == (expected, "inferred")


def test_inference_from_config_alone_reports_the_missing_layers() -> None:
    doc = oci_image()
    del doc["mediaType"], doc["layers"]
    refused(doc, ManifestInvalid, "no 'layers' array")


# --- refusals: the body ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        (b"", "body is empty"),
        (b"{\x00}", r"NUL byte \(offset 1\)"),
        (b'{"a": "\xff"}', "not valid UTF-8"),
        (b'{"a": "\xed\xa0\x80"}', "not valid UTF-8"),  # an encoded surrogate
        (b"\xef\xbb\xbf{}", "byte order mark"),
        (b"{", "not valid JSON"),
        (b"{'a': 1}", "not valid JSON"),
        (b'{"a": 1,}', "not valid JSON"),
        (b"{} {}", "not valid JSON"),
        (b'{"a": "tab\there"}', "not valid JSON"),
        (b'{"a": NaN}', "NaN is not a JSON number"),
        (b'{"a": -Infinity}', "-Infinity is not a JSON number"),
        (b'{"a": ' + b"9" * 5000 + b"}", "not valid JSON"),
        (b"[" * 50_000 + b"]" * 50_000, "nested too deeply"),
        (b"[]", "must be a JSON object, not an array"),
        (b'"manifest"', "must be a JSON object, not a string"),
        (b"2", "must be a JSON object, not a number"),
        (b"null", "must be a JSON object, not null"),
        (b'{"a": 1, "a": 1}', "'a' appears twice"),
        (b'{"config": {"digest": "x", "digest": "y"}}', "'digest' appears twice"),
        (b'{"annotations": {"k": "a\\u0000b"}}', r"annotations\.k: contains an escaped NUL"),
        (b'{"x": ["\\udc00"]}', r"x\[0\]: contains an unpaired UTF-16 surrogate"),
        (b'{"\\ud800": 1}', "member name in the top-level object: contains an unpaired"),
    ],
)
def test_bodies_that_are_not_one_storable_json_object(raw: bytes, match: str) -> None:
    refused(raw, ManifestInvalid, match)


def test_too_large() -> None:
    raw = b" " * MAX_MANIFEST_BYTES + b"{}"
    with pytest.raises(ManifestTooLarge) as info:
        parse_manifest(raw, None)
    assert (info.value.size, info.value.limit) == (len(raw), MAX_MANIFEST_BYTES)
    assert not isinstance(info.value, ManifestInvalid)


def test_the_size_limit_itself() -> None:
    check_manifest_size(MAX_MANIFEST_BYTES)
    check_manifest_size(10, limit=10)
    with pytest.raises(ManifestTooLarge, match="11 bytes, more than the limit of 10"):
        check_manifest_size(11, limit=10)
    assert MAX_MANIFEST_BYTES == 4 * 1024 * 1024


def test_a_manifest_of_exactly_the_limit_is_parsed() -> None:
    raw = encode(oci_image())
    padded = raw + b" " * (MAX_MANIFEST_BYTES - len(raw))
    assert parse_manifest(padded, None).size == MAX_MANIFEST_BYTES


# --- refusals: schema version and media type ------------------------------------------------


@pytest.mark.parametrize(
    ("version", "match"),
    [
        (3, "must be 2, got 3"),
        (0, "must be 2, got 0"),
        ("2", "must be the integer 2, not a string"),
        (2.0, "must be the integer 2, not a number"),
        (True, "must be the integer 2, not a boolean"),
        (None, "must be the integer 2, not null"),
    ],
)
def test_schema_version_must_be_the_integer_2(version: object, match: str) -> None:
    err = refused(oci_image(schemaVersion=version), ManifestInvalid, match)
    assert err.field == "schemaVersion"


def test_schema_version_is_required() -> None:
    doc = oci_image()
    del doc["schemaVersion"]
    refused(doc, ManifestInvalid, "no 'schemaVersion'")


@pytest.mark.parametrize(
    ("doc", "content_type"),
    [
        ({"schemaVersion": 1, "name": "a/b", "tag": "1", "fsLayers": [], "signatures": []}, None),
        ({"schemaVersion": 1, "fsLayers": []}, DOCKER_SCHEMA1_SIGNED),
        ({"schemaVersion": 2, "mediaType": DOCKER_SCHEMA1}, None),
        (oci_image(), DOCKER_SCHEMA1_SIGNED),
        ({"schemaVersion": 1}, OCI_MANIFEST),
    ],
)
def test_docker_schema1_is_refused(doc: dict[str, Any], content_type: str | None) -> None:
    refused(doc, ManifestUnsupported, "schema 1 manifests are not supported", content_type)


@pytest.mark.parametrize(
    ("doc", "content_type"),
    [
        (oci_image(), OCI_INDEX),
        (oci_image(), DOCKER_MANIFEST),
        (oci_index(), OCI_MANIFEST),
        (docker_image(), OCI_MANIFEST),
        (oci_image(), "application/json"),
        (oci_image(), "application/octet-stream"),
    ],
)
def test_a_content_type_other_than_the_media_type_is_refused(
    doc: dict[str, Any], content_type: str
) -> None:
    refused(doc, ManifestInvalid, "does not match the manifest's mediaType", content_type)


@pytest.mark.parametrize(
    ("media_type", "match"),
    [
        ("application/vnd.oci.descriptor.v1+json", "not a supported manifest media type"),
        ("application/json", "not a supported manifest media type"),
        ("", "not a supported manifest media type"),
        (OCI_MANIFEST.upper(), "not a supported manifest media type"),
        (OCI_ARTIFACT_MANIFEST, "removed before image-spec 1.1.0"),
    ],
)
def test_unsupported_body_media_types(media_type: str, match: str) -> None:
    err = refused(oci_image(mediaType=media_type), ManifestUnsupported, match)
    assert err.field == "mediaType"


@pytest.mark.parametrize("content_type", ["application/json", "text/plain", OCI_EMPTY])
def test_without_media_type_an_unsupported_content_type_is_refused(content_type: str) -> None:
    doc = oci_image()
    del doc["mediaType"]
    refused(doc, ManifestUnsupported, "not a supported manifest media type", content_type)


@pytest.mark.parametrize("value", [None, 2, ["x"], {"a": "b"}])
def test_media_type_must_be_a_string(value: object) -> None:
    refused(oci_image(mediaType=value), ManifestInvalid, "mediaType: must be a string")


@pytest.mark.parametrize("content_type", ["garbage", "; charset=utf-8", "a/b/c", "*/*"])
def test_a_content_type_that_is_not_a_media_type_is_refused(content_type: str) -> None:
    refused(oci_image(), ManifestInvalid, "is not a media type", content_type)


def test_inference_refuses_ambiguous_and_unknown_documents() -> None:
    refused({"schemaVersion": 2, "config": {}, "manifests": []}, ManifestInvalid, "ambiguous")
    refused({"schemaVersion": 2}, ManifestInvalid, "cannot be determined")
    refused({}, ManifestInvalid, "cannot be determined")


@pytest.mark.parametrize(
    ("doc", "match"),
    [
        (oci_image(manifests=[]), "must not have a 'manifests' member"),
        (docker_image(manifests=[]), "must not have a 'manifests' member"),
        (oci_index(layers=[]), "must not have a 'config' or 'layers' member"),
        (oci_index(config=desc()), "must not have a 'config' or 'layers' member"),
        (docker_list(layers=[]), "must not have a 'config' or 'layers' member"),
    ],
)
def test_documents_that_read_as_two_types_are_refused(doc: dict[str, Any], match: str) -> None:
    refused(doc, ManifestInvalid, match)


# --- refusals: structure ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("doc", "match"),
    [
        ({k: v for k, v in oci_image().items() if k != "config"}, "no 'config' descriptor"),
        ({k: v for k, v in oci_image().items() if k != "layers"}, "no 'layers' array"),
        ({k: v for k, v in docker_image().items() if k != "layers"}, "no 'layers' array"),
        ({k: v for k, v in oci_index().items() if k != "manifests"}, "no 'manifests' array"),
        (oci_image(layers=None), "layers: must be an array, not null"),
        (oci_image(layers={"0": desc()}), "layers: must be an array, not an object"),
        (oci_image(config=[desc()]), "config: must be an object, not an array"),
        (oci_image(config=None), "config: must be an object, not null"),
        (oci_index(manifests="x"), "manifests: must be an array, not a string"),
        (oci_image(layers=[desc(), "sha256:x"]), r"layers\[1\]: must be an object"),
        (oci_image(annotations=None), "annotations: must be an object, not null"),
        (oci_image(annotations=["a"]), "annotations: must be an object, not an array"),
        (oci_image(annotations={"a": 1}), "the value of 'a' must be a string, not a number"),
        (oci_index(annotations={"a": None}), "the value of 'a' must be a string, not null"),
        (oci_image(subject="sha256:abc"), "subject: must be an object, not a string"),
        (oci_image(subject=None), "subject: must be an object, not null"),
        (oci_image(subject={"mediaType": OCI_MANIFEST}), "subject: the descriptor has no"),
        (oci_image(artifactType=5), "artifactType: must be a string"),
        (oci_image(artifactType="sbom"), "artifactType: 'sbom' is not a media type"),
        (oci_index(artifactType="a b/c"), "artifactType: 'a b/c' is not a media type"),
    ],
)
def test_structural_refusals(doc: dict[str, Any], match: str) -> None:
    refused(doc, ManifestInvalid, match)


def test_an_empty_config_requires_an_artifact_type() -> None:
    # "This MUST be set when config.mediaType is set to the empty value."
    doc = artifact()
    del doc["artifactType"]
    refused(doc, ManifestInvalid, "'artifactType' is required when config.mediaType")
    refused(artifact(artifactType=""), ManifestInvalid, "'artifactType' is required")


# --- refusals: descriptors --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("layer", "match"),
    [
        ({"digest": dg(1), "size": 1}, "the descriptor has no 'mediaType'"),
        ({"mediaType": LAYER, "size": 1}, "the descriptor has no 'digest'"),
        ({"mediaType": LAYER, "digest": dg(1)}, "the descriptor has no 'size'"),
        (desc(None), r"mediaType: must be a string, not null"),
        (desc("tar"), "'tar' is not a media type"),
        (desc(LAYER + "; charset=utf-8"), "is not a media type"),
        (desc("application/" + "x" * 128), "is not a media type"),
        (desc("/json"), "is not a media type"),
        (desc("application/ json"), "is not a media type"),
        (desc() | {"digest": 5}, "digest: must be a string, not a number"),
        (desc() | {"digest": "sha256:" + "A" * 64}, "64 lowercase hexadecimal"),
        (desc() | {"digest": "sha256:" + "a" * 63}, "64 lowercase hexadecimal"),
        (desc() | {"digest": "sha256:" + "a" * 65}, "64 lowercase hexadecimal"),
        (desc() | {"digest": "sha512:" + "a" * 64}, "128 lowercase hexadecimal"),
        (desc() | {"digest": "a" * 64}, "is not a digest"),
        (desc() | {"digest": "SHA256:" + "a" * 64}, "is not a digest"),
        (desc() | {"digest": "sha256:"}, "is not a digest"),
        (desc() | {"digest": "sha256:" + "a" * 64 + "\n"}, "is not a digest"),
        (desc() | {"digest": "sha256::" + "a" * 64}, "is not a digest"),
        (desc(size=-1), "size: must not be negative, got -1"),
        (desc(size=2**63), "size: must fit an int64"),
        (desc(size=True), "size: must be an integer, not a boolean"),
        (desc(size=10.0), "size: must be an integer, not a number"),
        (desc(size="10"), "size: must be an integer, not a string"),
        (desc(size=None), "size: must be an integer, not null"),
        (desc(annotations="a=b"), r"layers\[0\]\.annotations: must be an object"),
        (desc(annotations={"a": ["b"]}), "the value of 'a' must be a string, not an array"),
        (desc(urls="https://example.com"), r"urls: must be an array, not a string"),
        (desc(urls=[None]), r"urls\[0\]: must be a string, not null"),
        (desc(urls=["not a uri"]), r"urls\[0\]: 'not a uri' is not an RFC 3986 URI"),
        (desc(urls=["/relative/path"]), "is not an RFC 3986 URI"),
        (desc(urls=["https://example.com/a b"]), "is not an RFC 3986 URI"),
        (desc(urls=["https://example.com/%zz"]), "is not an RFC 3986 URI"),
        (desc(artifactType=["x"]), r"layers\[0\]\.artifactType: must be a string"),
        (desc(artifactType="x"), r"layers\[0\]\.artifactType: 'x' is not a media type"),
    ],
)
def test_invalid_descriptors(layer: dict[str, Any], match: str) -> None:
    refused(oci_image(layers=[layer]), ManifestInvalid, match)


@pytest.mark.parametrize(
    "digest", ["sha384:" + "a" * 96, "sha256+b64u:LCa0a2j_xo_5m0U8HTBBNBNCLXBkg7-g-YpeiGJm564"]
)
def test_unsupported_digest_algorithms(digest: str) -> None:
    err = refused(
        oci_image(config=desc() | {"digest": digest}), ManifestUnsupported, "not supported"
    )
    assert err.field == "config.digest"
    assert isinstance(err.__cause__, DigestUnsupported)


def test_invalid_digests_are_invalid_not_unsupported() -> None:
    err = refused(oci_image(config=desc() | {"digest": "sha256:xyz"}), ManifestInvalid, "digest")
    assert not isinstance(err, ManifestUnsupported)
    assert isinstance(err.__cause__, DigestInvalid)


def test_the_field_is_named_in_the_reason() -> None:
    err = refused(oci_image(layers=[desc(), desc(size=-5)]), ManifestInvalid, "negative")
    assert err.field == "layers[1].size"
    assert err.reason == "layers[1].size: must not be negative, got -5"
    assert str(err) == err.reason


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ("e30", "is not RFC 4648 base64"),  # padding missing
        ("e3 0=", "is not RFC 4648 base64"),
        ("e30=\n", "is not RFC 4648 base64"),
        ("e3-_", "is not RFC 4648 base64"),  # the URL-safe alphabet
        ("\u00e9e30=", "is not RFC 4648 base64"),
        ("e30=e30=", "is not RFC 4648 base64"),
        ("e31=", None),  # non-canonical padding bits decode to "{}" as well: accepted
        ("Wzld", "decodes to 3 bytes but the descriptor's size is 2"),
        ("W10=", "does not match the descriptor's digest"),  # "[]"
        (7, "data: must be a string, not a number"),
        (None, "data: must be a string, not null"),
    ],
)
def test_embedded_data_must_be_the_content(data: object, match: str | None) -> None:
    doc = artifact(config=empty_desc(data=data))
    if match is None:
        assert parse(doc).config is not None
    else:
        refused(doc, ManifestInvalid, match)


@pytest.mark.parametrize(
    ("platform", "match"),
    [
        ("linux/amd64", "platform: must be an object, not a string"),
        (None, "platform: must be an object, not null"),
        ({"os": "linux"}, "the platform has no 'architecture'"),
        ({"architecture": "amd64"}, "the platform has no 'os'"),
        ({"architecture": 64, "os": "linux"}, r"platform\.architecture: must be a string"),
        ({"architecture": "amd64", "os": None}, r"platform\.os: must be a string, not null"),
        ({"architecture": "arm", "os": "linux", "variant": 7}, r"platform\.variant: must be"),
        ({"architecture": "a", "os": "w", "os.version": 10}, r"platform\.os\.version: must be"),
        ({"architecture": "a", "os": "w", "os.features": "win32k"}, r"os\.features: must be an"),
        ({"architecture": "a", "os": "w", "os.features": [1]}, r"os\.features\[0\]: must be a"),
    ],
)
def test_invalid_platforms(platform: object, match: str) -> None:
    refused(oci_index(manifests=[desc(OCI_MANIFEST, platform=platform)]), ManifestInvalid, match)
    refused(
        docker_list(manifests=[desc(DOCKER_MANIFEST, platform=platform)]), ManifestInvalid, match
    )


def test_platform_is_only_read_in_an_index() -> None:
    assert parse(oci_image(layers=[desc(platform="x")])).layers[0].platform is None


def test_index_entries_and_subjects_are_validated_as_descriptors() -> None:
    refused(oci_index(manifests=[desc(OCI_MANIFEST, size=-1)]), ManifestInvalid, "manifests")
    refused(artifact(subject=desc(OCI_MANIFEST) | {"digest": "md5:x"}), ManifestUnsupported, "md5")


# --- digests ----------------------------------------------------------------------------------


def test_digest_of_known_values() -> None:
    assert digest_of(b"") == (
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )
    assert digest_of(b"{}") == EMPTY_JSON_DIGEST
    assert digest_of(b"", "sha512") == "sha512:" + hashlib.sha512(b"").hexdigest()


@pytest.mark.parametrize("algorithm", ["md5", "sha384", "SHA256", ""])
def test_digest_of_refuses_other_algorithms(algorithm: str) -> None:
    with pytest.raises(DigestUnsupported):
        digest_of(b"x", algorithm)


def test_parse_digest() -> None:
    parsed = parse_digest(EMPTY_JSON_DIGEST)
    assert parsed == ("sha256", EMPTY_JSON_DIGEST.removeprefix("sha256:"))
    assert isinstance(parsed, ParsedDigest)
    assert (parsed.algorithm, parsed.hex) == tuple(parsed)
    assert str(parsed) == EMPTY_JSON_DIGEST
    assert parse_digest("sha512:" + "0" * 128).algorithm == "sha512"


@pytest.mark.parametrize(
    "value",
    [
        "",
        "sha256",
        "sha256:",
        ":" + "a" * 64,
        "sha256:" + "g" * 64,
        "sha256:" + "A" * 64,
        "Sha256:" + "a" * 64,
        "sha256 :" + "a" * 64,
        "sha256:" + "a" * 64 + " ",
        "sha256:" + "a" * 64 + "\n",
        "sha256-:" + "a" * 64,
        "sha256:+" + "a" * 64,
        "sha512:" + "a" * 127,
    ],
)
def test_parse_digest_refuses_malformed_digests(value: str) -> None:
    with pytest.raises(DigestInvalid):
        parse_digest(value)


@pytest.mark.parametrize(
    "value",
    [
        "sha384:" + "a" * 96,
        "md5:d41d8cd98f00b204e9800998ecf8427e",
        "multihash+base58:QmRZxt2b1FVZPNqd8hsiykDL3TdBDeTSPX9Kv46HmX4Gx8",
        "sha256+b64u:LCa0a2j_xo_5m0U8HTBBNBNCLXBkg7-g-YpeiGJm564",
    ],
)
def test_parse_digest_refuses_unsupported_algorithms(value: str) -> None:
    with pytest.raises(DigestUnsupported, match="not supported"):
        parse_digest(value)


def test_parse_digest_refuses_non_strings() -> None:
    with pytest.raises(DigestInvalid, match="must be a string"):
        parse_digest(b"sha256:abc")  # type: ignore[arg-type]


def test_digest_errors_are_value_errors() -> None:
    assert issubclass(DigestError, ValueError)
    assert issubclass(DigestInvalid, DigestError)
    assert issubclass(DigestUnsupported, DigestError)
    assert issubclass(ManifestUnsupported, ManifestInvalid)
    assert not issubclass(ManifestTooLarge, ManifestInvalid)


# --- media type helpers -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (OCI_MANIFEST, True),
        ("application/vnd.cncf.helm.config.v1+json", True),
        ("text/plain", True),
        ("a/b", True),
        ("a!#$&^_.+-/b!#$&^_.+-", True),
        ("x" * 127 + "/" + "y" * 127, True),
        ("x" * 128 + "/y", False),
        ("text", False),
        ("text/", False),
        ("/plain", False),
        ("text/plain; charset=utf-8", False),
        ("text/plain\n", False),
        (".text/plain", False),
        ("te xt/plain", False),
        ("", False),
    ],
)
def test_is_media_type(value: str, expected: bool) -> None:
    assert is_media_type(value) is expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("", None),
        (" \t", None),
        (OCI_MANIFEST, OCI_MANIFEST),
        ("  " + OCI_MANIFEST + " ", OCI_MANIFEST),
        (OCI_MANIFEST + ";charset=utf-8", OCI_MANIFEST),
        ("APPLICATION/JSON", "application/json"),
    ],
)
def test_normalize_content_type(value: str | None, expected: str | None) -> None:
    assert normalize_content_type(value) == expected


# --- referrer descriptors ---------------------------------------------------------------------


def test_referrer_descriptor_of_an_artifact() -> None:
    raw = encode(artifact())
    parsed = parse_manifest(raw, None)
    assert referrer_descriptor(parsed, parsed.digest, len(raw)) == {
        "mediaType": OCI_MANIFEST,
        "digest": parsed.digest,
        "size": len(raw),
        "artifactType": ARTIFACT,
        "annotations": {"org.opencontainers.image.created": "2024-01-02T03:04:05Z"},
    }


def test_referrer_descriptor_falls_back_to_the_config_media_type() -> None:
    doc = artifact(config=desc("application/vnd.example.config.v1+json", 9, 123))
    del doc["artifactType"], doc["annotations"]
    parsed = parse(doc)
    assert referrer_descriptor(parsed, parsed.digest, parsed.size) == {
        "mediaType": OCI_MANIFEST,
        "digest": parsed.digest,
        "size": parsed.size,
        "artifactType": "application/vnd.example.config.v1+json",
    }


def test_referrer_descriptor_of_an_index() -> None:
    parsed = parse(oci_index(subject=desc(OCI_MANIFEST, 42), annotations={"k": "v"}))
    described = referrer_descriptor(parsed, parsed.digest, parsed.size)
    assert "artifactType" not in described  # "MUST be omitted"
    assert described["annotations"] == {"k": "v"}
    assert described["mediaType"] == OCI_INDEX
    with_type = parse(oci_index(subject=desc(OCI_MANIFEST, 42), artifactType=ARTIFACT))
    assert referrer_descriptor(with_type, with_type.digest, with_type.size)["artifactType"] == (
        ARTIFACT
    )


def test_referrer_descriptor_with_another_digest_algorithm() -> None:
    raw = encode(artifact())
    parsed = parse_manifest(raw, None)
    sha512 = digest_of(raw, "sha512")
    assert referrer_descriptor(parsed, sha512, len(raw))["digest"] == sha512


def test_referrer_descriptor_uses_the_determined_media_type() -> None:
    doc = artifact()
    del doc["mediaType"]
    parsed = parse(doc)
    assert referrer_descriptor(parsed, parsed.digest, parsed.size)["mediaType"] == OCI_MANIFEST


def test_referrer_descriptor_refuses_bad_arguments() -> None:
    parsed = parse(artifact())
    with pytest.raises(DigestInvalid):
        referrer_descriptor(parsed, "sha256:nope", parsed.size)
    with pytest.raises(DigestUnsupported):
        referrer_descriptor(parsed, "md5:d41d8cd98f00b204e9800998ecf8427e", parsed.size)
    for size in (-1, True, 2**63, parsed.size + 1):
        with pytest.raises(ValueError, match="size"):
            referrer_descriptor(parsed, parsed.digest, size)


def test_parsed_manifests_are_immutable() -> None:
    parsed = parse(artifact())
    with pytest.raises(AttributeError):
        parsed.media_type = OCI_INDEX  # type: ignore[misc]
    with pytest.raises(TypeError):
        parsed.annotations["x"] = "y"  # type: ignore[index]


# --- properties -------------------------------------------------------------------------------

storable_text = st.text(
    alphabet=st.characters(exclude_categories=["Cs"], exclude_characters="\x00"),
    max_size=10,
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)


@given(st.binary(max_size=256), st.sampled_from(["sha256", "sha512"]))
def test_digest_round_trip(raw: bytes, algorithm: str) -> None:
    digest = digest_of(raw, algorithm)
    parsed = parse_digest(digest)
    assert parsed == (algorithm, hashlib.new(algorithm, raw).hexdigest())
    assert str(parsed) == digest


@given(st.text(alphabet="sha256:0123456789abcdefABCDEF+._-=xyz", max_size=80) | st.text())
def test_parse_digest_accepts_exactly_its_grammar(value: str) -> None:
    try:
        parsed = parse_digest(value)
    except DigestError:
        return
    assert str(parsed) == value
    assert len(parsed.hex) == (64 if parsed.algorithm == "sha256" else 128)


@given(st.binary(max_size=512), st.none() | st.text(max_size=40))
def test_arbitrary_bytes_raise_only_manifest_errors(raw: bytes, content_type: str | None) -> None:
    with contextlib.suppress(ManifestError):
        parse_manifest(raw, content_type)


@given(json_values, st.sampled_from([None, OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST]))
def test_arbitrary_json_raises_only_manifest_errors(
    value: object, content_type: str | None
) -> None:
    with contextlib.suppress(ManifestError):
        parse_manifest(encode(value), content_type)


MUTABLE_PATHS: list[tuple[str | int, ...]] = [
    ("schemaVersion",),
    ("mediaType",),
    ("artifactType",),
    ("annotations",),
    ("config",),
    ("config", "mediaType"),
    ("config", "digest"),
    ("config", "size"),
    ("config", "data"),
    ("layers",),
    ("layers", 0),
    ("layers", 0, "size"),
    ("layers", 0, "annotations"),
    ("layers", 0, "urls"),
    ("subject",),
    ("subject", "digest"),
    ("manifests",),
]


def _replace(doc: Any, path: tuple[str | int, ...], value: object) -> bool:
    """Set `doc[path]` to `value` when every step but the last exists."""
    target = doc
    for step in path[:-1]:
        try:
            target = target[step]
        except (KeyError, IndexError, TypeError):
            return False
    last = path[-1]
    if isinstance(target, dict) and isinstance(last, str):
        target[last] = value
        return True
    if isinstance(target, list) and isinstance(last, int) and last < len(target):
        target[last] = value
        return True
    return False


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(["artifact", "oci_index", "docker_image", "docker_list"]),
    st.sampled_from(MUTABLE_PATHS),
    json_values,
)
def test_a_valid_manifest_with_one_value_replaced_raises_only_manifest_errors(
    kind: str, path: tuple[str | int, ...], value: object
) -> None:
    builders = {
        "artifact": artifact,
        "oci_index": oci_index,
        "docker_image": docker_image,
        "docker_list": docker_list,
    }
    doc = builders[kind]()
    if not _replace(doc, path, value):
        return
    try:
        parsed = parse(doc)
    except ManifestError:
        return
    assert parsed.media_type in {OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST}


layer_descriptors = st.builds(
    lambda n, size, media_type: desc(media_type, n, size),
    st.integers(min_value=0, max_value=20),
    st.integers(min_value=0, max_value=2**63 - 1),
    st.sampled_from([LAYER, DOCKER_LAYER, NONDISTRIBUTABLE, DOCKER_FOREIGN_LAYER, ARTIFACT]),
)


@given(
    st.lists(layer_descriptors, max_size=8),
    st.dictionaries(storable_text, storable_text, max_size=4),
    st.integers(min_value=0, max_value=20),
)
def test_generated_image_manifests(
    layers: list[dict[str, Any]], annotations: dict[str, str], config_n: int
) -> None:
    doc = oci_image(config=desc(OCI_IMAGE_CONFIG, config_n), layers=layers, annotations=annotations)
    parsed = parse(doc, OCI_MANIFEST + "; charset=UTF-8")
    expected = [dg(config_n)] + [
        layer["digest"]
        for layer in layers
        if layer["mediaType"] not in (NONDISTRIBUTABLE, DOCKER_FOREIGN_LAYER)
    ]
    assert parsed.blob_digests == tuple(dict.fromkeys(expected))
    assert len(parsed.foreign_layers) == len(layers) - sum(
        layer["mediaType"] not in (NONDISTRIBUTABLE, DOCKER_FOREIGN_LAYER) for layer in layers
    )
    assert dict(parsed.annotations) == annotations
    assert parsed.layers_compressed_size == sum(layer["size"] for layer in layers)
    assert referrer_descriptor(parsed, parsed.digest, parsed.size).get("annotations", {}) == (
        annotations
    )


@given(
    st.sampled_from([OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST]),
    st.lists(st.sampled_from(["charset=utf-8", "q=1", 'x="a;b"', ""]), max_size=3),
    st.booleans(),
)
def test_content_type_parameters_never_matter(
    media_type: str, parameters: list[str], upper: bool
) -> None:
    doc = {
        OCI_MANIFEST: oci_image,
        OCI_INDEX: oci_index,
        DOCKER_MANIFEST: docker_image,
        DOCKER_MANIFEST_LIST: docker_list,
    }[media_type]()
    header = ";".join([media_type.upper() if upper else media_type, *parameters])
    assert parse(doc, header).media_type == media_type
