"""A one-answer HTTP server that records what it receives: a stand-in for a broken S3 backend."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field


@dataclass
class RecordedRequest:
    method: str
    target: str
    headers: dict[str, str]
    """Header names in lower case."""


@dataclass
class FakeBackend:
    endpoint: str
    requests: list[RecordedRequest] = field(default_factory=list)


@asynccontextmanager
async def fake_backend(status: bytes, body: bytes) -> AsyncIterator[FakeBackend]:
    """Answers HEAD with an empty 200 (so the driver's bucket check passes) and every other
    request with `status` and `body`, sent as HTML."""
    backend = FakeBackend("")

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        request_line, *header_lines = head.rstrip("\r\n").split("\r\n")
        method, target, _ = request_line.split(" ", 2)
        headers = {
            name.strip().lower(): value.strip()
            for name, value in (line.split(":", 1) for line in header_lines)
        }
        backend.requests.append(RecordedRequest(method, target, headers))
        # Read the request body first: closing on unread bytes resets the connection, and the
        # client would then report a connection error instead of our answer. botocore sends
        # its uploads only once told to go on.
        if headers.get("expect", "").lower() == "100-continue":
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            await writer.drain()
        await reader.readexactly(int(headers.get("content-length", "0")))
        answer_status, answer_body = (b"200 OK", b"") if method == "HEAD" else (status, body)
        writer.write(
            b"HTTP/1.1 "
            + answer_status
            + b"\r\nContent-Type: text/html\r\nContent-Length: "
            + str(len(answer_body)).encode()
            + b"\r\nConnection: close\r\n\r\n"
            + answer_body
        )
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    backend.endpoint = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    try:
        yield backend
    finally:
        server.close()
        await server.wait_closed()
