from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wharf.registry.errors import ALL_CODES, MANIFEST_UNKNOWN, RANGE_INVALID, RegistryError
from wharf.registry.names import is_digest, is_tag, parse_repository_name
from wharf.registry.ranges import (
    ByteRange,
    RangeError,
    parse_content_range,
    parse_range,
    upload_range_header,
)


@pytest.mark.parametrize(
    ("name", "namespace", "repository"),
    [
        ("library/ubuntu", "library", "ubuntu"),
        ("org.a/app-1", "org.a", "app-1"),
        ("a/b/c", "a", "b/c"),
        ("a__b/c--d", "a__b", "c--d"),
    ],
)
def test_valid_names(name: str, namespace: str, repository: str) -> None:
    parsed = parse_repository_name(name)
    assert (parsed.namespace, parsed.repository) == (namespace, repository)
    assert str(parsed) == name


@pytest.mark.parametrize(
    "name",
    ["ubuntu", "Library/ubuntu", "a//b", "/a/b", "a/b/", "a/-b", "a/b.", "a/b___c", "a/ b", ""],
)
def test_invalid_names(name: str) -> None:
    with pytest.raises(RegistryError) as info:
        parse_repository_name(name)
    assert info.value.code.code == "NAME_INVALID"
    assert info.value.status == 400


def test_overlong_names() -> None:
    with pytest.raises(RegistryError):
        parse_repository_name("a/" + "b" * 256)


def test_tags_and_digests() -> None:
    assert is_tag("latest")
    assert is_tag("_v1.0-rc")
    assert not is_tag(".hidden")
    assert not is_tag("x" * 129)
    assert is_digest("sha256:" + "a" * 64)
    assert not is_digest("latest")
    assert not is_digest("sha256:")


def test_error_format() -> None:
    error = RegistryError(MANIFEST_UNKNOWN, {"tag": "x"})
    response = error.response()
    assert response.status_code == 404
    assert json.loads(response.body) == {
        "errors": [
            {
                "code": "MANIFEST_UNKNOWN",
                "message": "manifest unknown to registry",
                "detail": {"tag": "x"},
            }
        ]
    }
    assert error.response(head=True).body == b""
    assert RegistryError(RANGE_INVALID).status == 416
    assert {code.code for code in ALL_CODES} >= {
        "BLOB_UNKNOWN",
        "BLOB_UPLOAD_INVALID",
        "BLOB_UPLOAD_UNKNOWN",
        "DIGEST_INVALID",
        "MANIFEST_BLOB_UNKNOWN",
        "MANIFEST_INVALID",
        "MANIFEST_UNKNOWN",
        "NAME_INVALID",
        "NAME_UNKNOWN",
        "SIZE_INVALID",
        "UNAUTHORIZED",
        "DENIED",
        "UNSUPPORTED",
        "TOOMANYREQUESTS",  # the spec spells it so; the issue wrote TOO_MANY_REQUESTS
    }


@pytest.mark.parametrize(
    ("value", "expected"),
    [("0-9", ByteRange(0, 10)), ("bytes 10-19/100", ByteRange(10, 10)), ("5-5", ByteRange(5, 1))],
)
def test_content_range(value: str, expected: ByteRange) -> None:
    assert parse_content_range(value) == expected


@pytest.mark.parametrize("value", ["", "10", "a-b", "9-0", "-5", "0-", "1-2-3"])
def test_garbage_content_range(value: str) -> None:
    with pytest.raises(RangeError):
        parse_content_range(value)


def test_download_ranges() -> None:
    assert parse_range("bytes=0-9", 100) == ByteRange(0, 10)
    assert parse_range("bytes=90-", 100) == ByteRange(90, 10)
    assert parse_range("bytes=90-500", 100) == ByteRange(90, 10)
    assert parse_range("bytes=-10", 100) == ByteRange(90, 10)
    assert parse_range("bytes=-500", 100) == ByteRange(0, 100)
    assert parse_range("bytes=0-1,5-6", 100) is None
    assert parse_range("items=0-1", 100) is None
    assert parse_range("bytes=9-5", 100) is None
    with pytest.raises(RangeError):
        parse_range("bytes=100-", 100)
    with pytest.raises(RangeError):
        parse_range("bytes=-0", 100)
    assert ByteRange(90, 10).content_range(100) == "bytes 90-99/100"


@given(st.integers(0, 10**6), st.integers(0, 10**6), st.integers(1, 10**6))
def test_range_always_inside_the_object(first: int, last: int, total: int) -> None:
    try:
        byte_range = parse_range(f"bytes={first}-{last}", total)
    except RangeError:
        assert first >= total
        return
    if byte_range is not None:
        assert 0 <= byte_range.start <= byte_range.end < total


def test_upload_range_header() -> None:
    assert upload_range_header(0) == "0-0"
    assert upload_range_header(10) == "0-9"
