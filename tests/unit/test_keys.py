"""Quay's key layout, byte for byte, and the refusal of hostile keys."""

from __future__ import annotations

import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wharf.storage import InvalidDigest, InvalidPath, check_key, content_path, parse_digest
from wharf.storage.keys import prefixed_key, upload_path, v1_image_layer_path

# Every example from Quay's own tests, as recorded in the reference.
QUAY_EXAMPLES = [
    ("sha256:123123", "sha256/12/123123"),
    ("tarsum.v1+sha256:123123", "tarsum/v1/sha256/12/123123"),
    ("tarsum.v123123+sha1:123deadbeef", "tarsum/v123123/sha1/12/123deadbeef"),
    ("md5:1", "md5/01/1"),
    ("md5.....+++:1", "md5/01/1"),
    (".md5.:1", "md5/01/1"),
]


@pytest.mark.parametrize(("digest", "expected"), QUAY_EXAMPLES)
def test_content_path_matches_quay(digest: str, expected: str) -> None:
    assert content_path(digest) == expected


def test_case_is_preserved() -> None:
    assert content_path("sha256:ABCdef") == "sha256/AB/ABCdef"


@pytest.mark.parametrize(
    "digest",
    ["", "sha256", "sha256:", ":abc", "sha256:xyz", "sha 256:ab", "sha256:ab\n", "sha256:ab:cd"],
)
def test_malformed_digests_are_refused(digest: str) -> None:
    with pytest.raises(InvalidDigest):
        content_path(digest)


hexes = st.text(alphabet="0123456789abcdef", min_size=1, max_size=128)


@given(hexes)
def test_sha256_layout(hexpart: str) -> None:
    assert content_path(f"sha256:{hexpart}") == f"sha256/{hexpart[:2].zfill(2)}/{hexpart}"


@given(st.text(alphabet=string.ascii_letters + string.digits + "_+.-", min_size=1), hexes)
def test_every_valid_digest_maps_to_a_safe_key(algorithm: str, hexpart: str) -> None:
    key = content_path(f"{algorithm}:{hexpart}")
    assert check_key(key) == key
    assert key.endswith(f"/{hexpart}") or key == f"{hexpart[:2].zfill(2)}/{hexpart}"
    assert parse_digest(f"{algorithm}:{hexpart}").hex == hexpart


@pytest.mark.parametrize(
    "key",
    ["", "/abs", "../x", "a/../b", "a/./b", ".", "a//b", "a/", "a\x00b", "a\nb", "a\\b"],
)
def test_hostile_keys_are_refused(key: str) -> None:
    with pytest.raises(InvalidPath):
        check_key(key)


@given(st.text(min_size=1))
def test_check_key_never_accepts_an_escape(key: str) -> None:
    try:
        check_key(key)
    except InvalidPath:
        return
    segments = key.split("/")
    assert ".." not in segments
    assert "\x00" not in key
    assert not key.startswith("/")


@pytest.mark.parametrize(
    ("storage_path", "key", "expected"),
    [
        ("/registry", "sha256/ab/abc", "registry/sha256/ab/abc"),
        ("registry", "sha256/ab/abc", "registry/sha256/ab/abc"),
        ("/registry/", "uploads/u", "registry/uploads/u"),
        ("", "uploads/u", "uploads/u"),
        ("/", "uploads/u", "uploads/u"),
        ("//double", "k", "/double/k"),
    ],
)
def test_s3_prefix_rule(storage_path: str, key: str, expected: str) -> None:
    assert prefixed_key(storage_path, key) == expected


def test_other_quay_keys() -> None:
    assert upload_path("abc-123") == "uploads/abc-123"
    assert v1_image_layer_path("some-uuid") == "sharedimages/some-uuid/layer"
    with pytest.raises(InvalidPath):
        v1_image_layer_path("../x")
