"""The registry benchmark's client: the same aiohttp code drives both registries.

aiohttp was picked over httpx by measurement on this 2-vCPU VM: against a discarding socket
server both push 1 GiB at several GB/s when the body is an iterator of 1 MiB chunks (aiohttp
slows down with 8 MiB chunks, so 1 MiB it is), and aiohttp drained a 1 GiB GET from these
registries at up to 3 GB/s where httpx stayed near 1 GB/s.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from yarl import URL

from tests.perf.registryservers import Server

MiB = 1024 * 1024
BLOB_REPO = "bench/blob"
IMAGE_REPO = "bench/img"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCTETS = "application/octet-stream"


class RegistryRefused(Exception):
    """The registry answered with an unexpected status."""

    def __init__(self, what: str, status: int, body: str) -> None:
        super().__init__(f"{what}: HTTP {status}: {body[:300]}")
        self.status = status


KEEPALIVE_SECONDS = 2.0
"""A pooled connection idle for longer is not reused. uvicorn closes idle keep-alive
connections after 5 s; if its FIN arrives while the client is busy (an os.sync), aiohttp
would reuse the dead connection and fail with ServerDisconnectedError."""


def session(connections: int = 4) -> aiohttp.ClientSession:
    # No total timeout: a slow 1 GiB push is a result, not an error; a stalled socket is.
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=connections, keepalive_timeout=KEEPALIVE_SECONDS),
        timeout=aiohttp.ClientTimeout(total=None, sock_read=120),
    )


# -- data ------------------------------------------------------------------------------------


@dataclass
class BlobSource:
    """1 GiB blobs, each distinct, from one random 1 MiB block: only the last MiB differs.

    Every push stores a new blob (the usual case; a blob the registry already holds takes a
    shortcut in both registries). The SHA-256 of the common prefix is computed once, so each
    blob's digest costs one more MiB of hashing.
    """

    blocks: int
    block: bytes = field(default_factory=lambda: os.urandom(MiB))
    _prefix: hashlib._Hash = field(init=False, repr=False)
    _issued: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        self._prefix = hashlib.sha256()
        for _ in range(self.blocks - 1):
            self._prefix.update(self.block)

    @property
    def size(self) -> int:
        return self.blocks * MiB

    def new(self) -> tuple[bytes, str]:
        """A fresh blob: its last block and its digest."""
        self._issued += 1
        last = self._issued.to_bytes(8, "big") + self.block[8:]
        hasher = self._prefix.copy()
        hasher.update(last)
        return last, f"sha256:{hasher.hexdigest()}"

    async def chunks(
        self, last: bytes, first: int = 0, end: int | None = None
    ) -> AsyncIterator[bytes]:
        """Blocks `first` to `end` (exclusive) of the blob whose last block is `last`."""
        end = self.blocks if end is None else end
        for index in range(first, end):
            yield last if index == self.blocks - 1 else self.block


# -- blobs -----------------------------------------------------------------------------------


def _resolve(server: Server, location: str) -> str:
    """distribution answers an absolute Location, Wharf a path: both become absolute URLs."""
    return str(URL(server.base_url).join(URL(location, encoded=True)))


def _with_digest(location: str, digest: str) -> URL:
    # distribution's Location already carries `?_state=...`; `encoded` keeps it byte-exact.
    separator = "&" if "?" in location else "?"
    return URL(f"{location}{separator}digest={digest}", encoded=True)


async def _expect(response: aiohttp.ClientResponse, status: int, what: str) -> None:
    if response.status != status:
        raise RegistryRefused(what, response.status, await response.text())


async def start_upload(client: aiohttp.ClientSession, server: Server, repo: str) -> str:
    url = f"{server.base_url}/v2/{repo}/blobs/uploads/"
    async with client.post(url, headers=server.headers) as response:
        await _expect(response, 202, "POST upload")
        return _resolve(server, response.headers["Location"])


async def push_whole(
    client: aiohttp.ClientSession, server: Server, source: BlobSource, last: bytes, digest: str
) -> int:
    """POST, then one PUT `?digest=` streaming the whole blob with its Content-Length."""
    location = await start_upload(client, server, BLOB_REPO)
    headers = {**server.headers, "Content-Type": OCTETS, "Content-Length": str(source.size)}
    async with client.put(
        _with_digest(location, digest), data=source.chunks(last), headers=headers
    ) as response:
        await _expect(response, 201, "PUT blob")
    return source.size


async def push_chunked(
    client: aiohttp.ClientSession,
    server: Server,
    source: BlobSource,
    last: bytes,
    digest: str,
    chunk_blocks: int,
) -> int:
    """POST, PATCH `chunk_blocks` MiB at a time with Content-Range, then an empty PUT."""
    location = await start_upload(client, server, BLOB_REPO)
    for first in range(0, source.blocks, chunk_blocks):
        end = min(first + chunk_blocks, source.blocks)
        headers = {
            **server.headers,
            "Content-Type": OCTETS,
            "Content-Length": str((end - first) * MiB),
            "Content-Range": f"{first * MiB}-{end * MiB - 1}",
        }
        url = URL(location, encoded=True)
        body = source.chunks(last, first, end)
        async with client.patch(url, data=body, headers=headers) as response:
            await _expect(response, 202, "PATCH chunk")
            location = _resolve(server, response.headers["Location"])
    headers = {**server.headers, "Content-Length": "0"}
    async with client.put(_with_digest(location, digest), headers=headers) as response:
        await _expect(response, 201, "PUT after chunks")
    return source.size


async def pull(client: aiohttp.ClientSession, server: Server, digest: str) -> int:
    """GET the blob (a redirect would be an error: both must stream it) and drain it."""
    url = f"{server.base_url}/v2/{BLOB_REPO}/blobs/{digest}"
    total = 0
    async with client.get(url, headers=server.headers, allow_redirects=False) as response:
        await _expect(response, 200, "GET blob")
        async for chunk in response.content.iter_any():
            total += len(chunk)
    return total


async def put_small_blob(
    client: aiohttp.ClientSession, server: Server, repo: str, data: bytes
) -> str:
    digest = f"sha256:{hashlib.sha256(data).hexdigest()}"
    location = await start_upload(client, server, repo)
    headers = {**server.headers, "Content-Type": OCTETS}
    async with client.put(_with_digest(location, digest), data=data, headers=headers) as response:
        await _expect(response, 201, "PUT small blob")
    return digest


# -- manifests -------------------------------------------------------------------------------


async def push_image(client: aiohttp.ClientSession, server: Server, tag: str) -> bytes:
    """A small OCI image (config and one layer) under `IMAGE_REPO:tag`; returns the manifest.

    Raises RegistryRefused when the manifest PUT fails (404/405: no manifest endpoints yet).
    """
    config = json.dumps(
        {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}
    ).encode()
    layer = os.urandom(4096)
    config_digest = await put_small_blob(client, server, IMAGE_REPO, config)
    layer_digest = await put_small_blob(client, server, IMAGE_REPO, layer)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": config_digest,
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": layer_digest,
                    "size": len(layer),
                }
            ],
        }
    ).encode()
    url = f"{server.base_url}/v2/{IMAGE_REPO}/manifests/{tag}"
    headers = {**server.headers, "Content-Type": OCI_MANIFEST}
    async with client.put(url, data=manifest, headers=headers) as response:
        await _expect(response, 201, "PUT manifest")
    return manifest


@dataclass
class LoadRun:
    """One run of concurrent GETs: request latencies (seconds) over `seconds` of wall time.

    The CPU seconds, filled in by the caller, show whether the client kept the server busy:
    a client near one full CPU would be the bottleneck.
    """

    seconds: float
    latencies: list[float]
    wrong: int
    server_cpu_seconds: float = 0.0
    client_cpu_seconds: float = 0.0

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds

    def percentile(self, fraction: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]

    def as_dict(self) -> dict[str, Any]:
        count = max(len(self.latencies), 1)
        return {
            "requests": len(self.latencies),
            "seconds": round(self.seconds, 3),
            "requests_per_s": round(self.rate, 1),
            "p50_ms": round(self.percentile(0.50) * 1e3, 2),
            "p99_ms": round(self.percentile(0.99) * 1e3, 2),
            "wrong_answers": self.wrong,
            "server_cpu_ms_per_request": round(self.server_cpu_seconds / count * 1e3, 3),
            "server_cpu_share": round(self.server_cpu_seconds / self.seconds, 2),
            "client_cpu_share": round(self.client_cpu_seconds / self.seconds, 2),
        }


async def manifest_load(
    client: aiohttp.ClientSession,
    server: Server,
    tag: str,
    expected: bytes,
    workers: int,
    duration: float,
) -> LoadRun:
    """`workers` tasks GET the manifest by tag back to back until `duration` has passed.

    `client` must allow `workers` connections, so each worker keeps its own keep-alive one.
    A response that is not 200 with exactly the pushed bytes counts as wrong.
    """
    url = f"{server.base_url}/v2/{IMAGE_REPO}/manifests/{tag}"
    headers = {**server.headers, "Accept": OCI_MANIFEST}
    latencies: list[float] = []
    wrong = 0
    started = time.perf_counter()
    deadline = started + duration

    async def worker() -> None:
        nonlocal wrong
        while (sent := time.perf_counter()) < deadline:
            async with client.get(url, headers=headers) as response:
                body = await response.read()
            latencies.append(time.perf_counter() - sent)
            if response.status != 200 or body != expected:
                wrong += 1

    await asyncio.gather(*(worker() for _ in range(workers)))
    return LoadRun(time.perf_counter() - started, latencies, wrong)
