"""Backends that are down or answer garbage: one precise, retryable error, nothing written."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

import pytest
from botocore.exceptions import ClientError
from botocore.parsers import ResponseParserError

from tests.unit.fake_http import FakeBackend, fake_backend
from wharf.storage import BackendUnavailable, StorageDriver, build_driver
from wharf.storage.streams import iterate_bytes

MiB = 1024 * 1024
MALFORMED_HTML = b"<html><body><p>502 Bad Gateway</body>"
"""What a proxy in front of the backend may answer: HTML that is not even well-formed XML."""
WELL_FORMED_HTML = b"<html><body><h1>Welcome</h1></body></html>"
"""HTML that happens to parse as XML, so only its missing S3 elements give it away."""
ROLE_ARN = "arn:aws:iam::123456789012:role/quay"


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def s3_at(endpoint: str) -> StorageDriver:
    return build_driver(
        "broken",
        "S3Storage",
        {
            "endpoint_url": endpoint,
            "s3_bucket": "b",
            "storage_path": "/r",
            "s3_access_key": "a",
            "s3_secret_key": "s",
        },
    )


def sts_at(endpoint: str) -> StorageDriver:
    return build_driver(
        "broken",
        "STSS3Storage",
        {
            "endpoint_url": endpoint,
            "s3_bucket": "b",
            "storage_path": "/r",
            "sts_role_arn": ROLE_ARN,
            "sts_user_access_key": "user",
            "sts_user_secret_key": "secret",
        },
    )


def assert_unavailable(error: BaseException, driver: str) -> None:
    """Exactly the retryable class (not a subclass, not a raw botocore error), with its origin."""
    assert type(error) is BackendUnavailable
    assert error.retryable
    assert error.location == "broken"
    assert error.driver == driver


async def test_backend_down_is_unavailable_and_retryable() -> None:
    driver = s3_at(f"http://127.0.0.1:{closed_port()}")
    with pytest.raises(BackendUnavailable) as info:
        await driver.get_content("k")
    assert_unavailable(info.value, "S3Storage")
    await driver.aclose()


@pytest.fixture
async def html_500_server() -> AsyncIterator[FakeBackend]:
    """Answers HEAD with 200 and everything else with a 500 whose body is HTML, not S3 XML."""
    async with fake_backend(b"500 Oops", MALFORMED_HTML) as backend:
        yield backend


@pytest.fixture
async def malformed_200_server() -> AsyncIterator[FakeBackend]:
    """Answers HEAD with 200 and everything else with a 200 whose body is not XML at all."""
    async with fake_backend(b"200 OK", MALFORMED_HTML) as backend:
        yield backend


@pytest.fixture
async def well_formed_200_server() -> AsyncIterator[FakeBackend]:
    """Answers HEAD with 200 and everything else with a 200 of well-formed, non-S3 XML."""
    async with fake_backend(b"200 OK", WELL_FORMED_HTML) as backend:
        yield backend


async def test_backend_answering_500_html_is_unavailable(html_500_server: FakeBackend) -> None:
    driver = s3_at(html_500_server.endpoint)
    with pytest.raises(BackendUnavailable) as info:
        await driver.put_content("k", b"v")
    assert_unavailable(info.value, "S3Storage")
    with pytest.raises(BackendUnavailable) as info:
        await driver.get_content("k")
    assert_unavailable(info.value, "S3Storage")
    await driver.aclose()


async def test_s3_answering_200_non_xml_is_unavailable(malformed_200_server: FakeBackend) -> None:
    """Operations whose success answer is parsed as XML: CreateMultipartUpload, CopyObject."""
    driver = s3_at(malformed_200_server.endpoint)
    with pytest.raises(BackendUnavailable) as info:
        # Over one part (8 MiB), so the write starts with CreateMultipartUpload.
        await driver.stream_write("big", iterate_bytes(b"x" * (9 * MiB)))
    assert_unavailable(info.value, "S3Storage")
    # botocore itself turns an S3 200 that is not XML into a 500 (S3 may report a failure
    # inside a 200), so this reaches us as a ClientError rather than a ResponseParserError.
    assert isinstance(info.value.__cause__, ClientError)

    with pytest.raises(BackendUnavailable) as info:
        # One chunk: completion is a single CopyObject.
        await driver.complete_chunked_upload(
            "upload", "final", {"chunks": [["uploads/chunk", 0, 5]]}
        )
    assert_unavailable(info.value, "S3Storage")
    # A completion that failed must keep its chunks, so that the client can retry it.
    assert not [r for r in malformed_200_server.requests if r.method == "DELETE"]
    await driver.aclose()


async def test_sts_answering_200_non_xml_is_unavailable(
    malformed_200_server: FakeBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """STS (query protocol) gets no 200-to-500 rewrite: the parser error itself reaches us."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", malformed_200_server.endpoint)
    driver = sts_at(malformed_200_server.endpoint)
    with pytest.raises(BackendUnavailable, match="not S3") as info:
        await driver.get_content("k")
    assert_unavailable(info.value, "STSS3Storage")
    assert isinstance(info.value.__cause__, ResponseParserError)
    # The AssumeRole failed, so no S3 request went out with missing credentials.
    assert [r.method for r in malformed_200_server.requests] == ["POST"]
    await driver.aclose()


async def test_s3_answering_200_well_formed_non_s3_xml_is_unavailable(
    well_formed_200_server: FakeBackend,
) -> None:
    """botocore parses it; what is missing is the UploadId that S3 always sends."""
    driver = s3_at(well_formed_200_server.endpoint)
    with pytest.raises(BackendUnavailable, match="UploadId") as info:
        await driver.stream_write("big", iterate_bytes(b"x" * (9 * MiB)))
    assert_unavailable(info.value, "S3Storage")
    await driver.aclose()


async def test_sts_answering_200_well_formed_non_sts_xml_is_unavailable(
    well_formed_200_server: FakeBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", well_formed_200_server.endpoint)
    driver = sts_at(well_formed_200_server.endpoint)
    with pytest.raises(BackendUnavailable) as info:
        await driver.get_content("k")
    assert_unavailable(info.value, "STSS3Storage")
    await driver.aclose()
