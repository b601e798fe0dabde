"""Backends that are down or answer garbage: one precise, retryable error, nothing written."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest

from wharf.storage import BackendUnavailable, build_driver


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def s3_at(endpoint: str):  # type: ignore[no-untyped-def]
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


async def test_backend_down_is_unavailable_and_retryable() -> None:
    driver = s3_at(f"http://127.0.0.1:{closed_port()}")
    with pytest.raises(BackendUnavailable) as info:
        await driver.get_content("k")
    assert info.value.retryable
    assert info.value.location == "broken"
    assert info.value.driver == "S3Storage"
    await driver.aclose()


@pytest.fixture
async def garbage_server() -> AsyncIterator[str]:
    """Answers HEAD with 200 and everything else with a 200 that is not S3 XML."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await reader.readuntil(b"\r\n\r\n")
        body = b"" if request.startswith(b"HEAD") else b"<html>definitely not S3</html>"
        status = b"200 OK" if request.startswith(b"HEAD") else b"500 Oops"
        writer.write(
            b"HTTP/1.1 "
            + status
            + b"\r\nContent-Type: text/html\r\nContent-Length: "
            + str(len(body)).encode()
            + b"\r\nConnection: close\r\n\r\n"
            + body
        )
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    server.close()
    await server.wait_closed()


async def test_backend_answering_garbage_is_unavailable(garbage_server: str) -> None:
    driver = s3_at(garbage_server)
    with pytest.raises(BackendUnavailable):
        await driver.put_content("k", b"v")
    with pytest.raises(BackendUnavailable):
        await driver.get_content("k")
    await driver.aclose()
