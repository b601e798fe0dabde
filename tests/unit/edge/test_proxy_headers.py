"""The proxy's header rules, the upload id in a Location, and the access log's redaction."""

from __future__ import annotations

import re

import pytest

from wharf.edge.accesslog import redact_query
from wharf.edge.pins import session_from_location
from wharf.edge.proxy import (
    client_response_headers,
    has_body,
    request_id_of,
    upstream_request_headers,
)

HEX32 = re.compile(rb"[0-9a-f]{32}")


def _names(headers: list[tuple[bytes, bytes]]) -> list[bytes]:
    return [name for name, _ in headers]


def test_request_drops_hop_by_hop_and_what_connection_names() -> None:
    headers = upstream_request_headers(
        [
            (b"host", b"registry.example.com:8443"),
            (b"connection", b"keep-alive, X-Private-Hop"),
            (b"keep-alive", b"timeout=5"),
            (b"x-private-hop", b"secret"),
            (b"te", b"trailers"),
            (b"trailer", b"x-sum"),
            (b"transfer-encoding", b"chunked"),
            (b"upgrade", b"h2c"),
            (b"proxy-authorization", b"Basic abc"),
            (b"proxy-connection", b"keep-alive"),
            (b"expect", b"100-continue"),
            (b"authorization", b"Bearer token"),
            (b"accept", b"application/json"),
            (b"accept", b"text/plain"),
        ],
        request_id=b"rid",
        client_host="192.0.2.1",
        scheme="https",
    )
    assert headers == [
        (b"host", b"registry.example.com:8443"),
        (b"authorization", b"Bearer token"),
        (b"accept", b"application/json"),
        (b"accept", b"text/plain"),
        (b"x-forwarded-for", b"192.0.2.1"),
        (b"x-forwarded-proto", b"https"),
        (b"x-forwarded-host", b"registry.example.com:8443"),
        (b"x-request-id", b"rid"),
    ]


def test_forwarded_for_is_appended_and_the_rest_replaced() -> None:
    headers = upstream_request_headers(
        [
            (b"host", b"edge"),
            (b"x-forwarded-for", b"203.0.113.7"),
            (b"x-forwarded-for", b"198.51.100.2"),
            (b"x-forwarded-proto", b"gopher"),
            (b"x-forwarded-host", b"evil.example"),
            (b"x-request-id", b"from-client"),
        ],
        request_id=b"chosen",
        client_host="10.0.0.9",
        scheme="http",
    )
    assert dict(headers)[b"x-forwarded-for"] == b"203.0.113.7, 198.51.100.2, 10.0.0.9"
    assert dict(headers)[b"x-forwarded-proto"] == b"http"
    assert dict(headers)[b"x-forwarded-host"] == b"edge"
    assert dict(headers)[b"x-request-id"] == b"chosen"
    for name in (b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host", b"x-request-id"):
        assert _names(headers).count(name) == 1


def test_an_address_a_trusted_proxy_reported_is_not_added_twice() -> None:
    # uvicorn with --forwarded-allow-ips already made the last X-Forwarded-For the client.
    headers = upstream_request_headers(
        [(b"x-forwarded-for", b"203.0.113.7, 198.51.100.2")],
        request_id=b"r",
        client_host="198.51.100.2",
        scheme="https",
    )
    assert dict(headers)[b"x-forwarded-for"] == b"203.0.113.7, 198.51.100.2"


def test_host_is_forwarded_even_if_connection_names_it() -> None:
    headers = upstream_request_headers(
        [(b"host", b"edge:80"), (b"connection", b"host")],
        request_id=b"r",
        client_host=None,
        scheme="http",
    )
    assert (b"host", b"edge:80") in headers
    assert b"x-forwarded-for" not in _names(headers)  # no client address known, none invented


def test_response_keeps_end_to_end_headers_in_order() -> None:
    headers = client_response_headers(
        [
            (b"Content-Type", b"application/json"),
            (b"Connection", b"close, X-Hop"),
            (b"X-Hop", b"1"),
            (b"Keep-Alive", b"timeout=5"),
            (b"Transfer-Encoding", b"chunked"),
            (b"Proxy-Authenticate", b"Basic"),
            (b"Trailer", b"x-sum"),
            (b"Set-Cookie", b"a=1"),
            (b"Location", b"HTTP://Other.example/v2/a/b/blobs/uploads/x?_state=%2F%3D"),
            (b"Set-Cookie", b"b=2"),
            (b"Date", b"Mon, 01 Jan 2024 00:00:00 GMT"),
            (b"Server", b"legacy"),
            (b"X-Request-ID", b"upstream-made"),
            (b"Docker-Content-Digest", b"sha256:00"),
        ],
        b"ours",
    )
    assert headers == [
        (b"content-type", b"application/json"),
        (b"set-cookie", b"a=1"),
        (b"location", b"HTTP://Other.example/v2/a/b/blobs/uploads/x?_state=%2F%3D"),
        (b"set-cookie", b"b=2"),
        (b"docker-content-digest", b"sha256:00"),
        (b"x-request-id", b"ours"),
    ]


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ([(b"x-request-id", b"abc-123_4.5:6")], b"abc-123_4.5:6"),
        ([(b"x-request-id", b"a" * 128)], b"a" * 128),
        ([(b"x-request-id", b"a" * 129)], None),
        ([(b"x-request-id", b"with space")], None),
        ([(b"x-request-id", b"")], None),
        ([(b"x-request-id", b'"quoted"')], None),
        ([], None),
    ],
)
def test_request_id_passed_on_when_it_is_an_id(
    headers: list[tuple[bytes, bytes]], expected: bytes | None
) -> None:
    chosen = request_id_of(headers)
    if expected is None:
        assert HEX32.fullmatch(chosen)
    else:
        assert chosen == expected


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ([(b"content-length", b"10")], True),
        ([(b"content-length", b"0")], False),
        ([(b"transfer-encoding", b"chunked")], True),
        ([(b"accept", b"*/*")], False),
    ],
)
def test_has_body(headers: list[tuple[bytes, bytes]], expected: bool) -> None:
    assert has_body(headers) is expected


@pytest.mark.parametrize(
    ("location", "expected"),
    [
        (b"/v2/orga/app/blobs/uploads/abc-123", "abc-123"),
        (b"/v2/orga/app/blobs/uploads/abc-123?_state=xyz%3D&digest=", "abc-123"),
        (b"https://edge.example:8443/v2/o/r/blobs/uploads/u1?x=1", "u1"),
        (b"/v2/orga/app/blobs/sha256:aa", None),
        (b"/v2/orga/app/blobs/uploads/", None),
        (b"/v2/orga/app/blobs/uploads/abc/extra", None),
    ],
)
def test_upload_id_from_location(location: bytes, expected: str | None) -> None:
    assert session_from_location([(b"content-length", b"0"), (b"location", location)]) == expected


def test_no_location_no_upload_id() -> None:
    assert session_from_location([(b"content-length", b"0")]) is None


def test_query_values_are_redacted_except_the_registry_ones() -> None:
    query = "scope=repository:orga/app:pull&service=wharf&token=s3cr3t&X-Amz-Signature=abc&n=5"
    assert redact_query(query) == (
        "scope=repository%3Aorga%2Fapp%3Apull&service=wharf&token=-&X-Amz-Signature=-&n=5"
    )
    assert redact_query("") == ""
