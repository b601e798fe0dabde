"""A chunked blob upload that outlives the server process: the bytes a PATCH acknowledged
are on disk, and a new process on the same data directory carries on from there."""

from __future__ import annotations

import os
import signal

import httpx

from tests.e2e.ocilayout import sha256
from tests.e2e.registries import Registry, api_client

REPO = "ns/app"
# A 5 MiB first chunk, then one chunk after each restart; odd sizes, so no boundary is round.
CHUNKS = (5 << 20, (2 << 20) + 17, (1 << 20) + 4321)
OCTETS = {"Content-Type": "application/octet-stream"}


def patch(client: httpx.Client, location: str, data: bytes, start: int) -> str:
    headers = {**OCTETS, "Content-Range": f"{start}-{start + len(data) - 1}"}
    answer = client.patch(location, content=data, headers=headers)
    assert answer.status_code == 202, f"PATCH {start}+{len(data)}: {answer.text}"
    assert answer.headers["Range"] == f"0-{start + len(data) - 1}"
    # Follow the latest Location: distribution carries the upload's state in it.
    return answer.headers["Location"]


def resume(client: httpx.Client, location: str, received: int) -> str:
    """The upload's status after a restart: it must show every byte acknowledged before."""
    status = client.get(location)
    assert status.status_code == 204, f"GET {location}: {status.status_code} {status.text}"
    assert status.headers["Range"] == f"0-{received - 1}"
    # The spec requires the Location here too; distribution puts a fresh `_state` in it.
    return status.headers["Location"]


def test_upload_resumes_after_restarts(own_registry: Registry) -> None:
    data = os.urandom(sum(CHUNKS))
    first, second, _ = CHUNKS
    with api_client(own_registry, REPO) as client:
        started = client.post(f"/v2/{REPO}/blobs/uploads/", headers={"Content-Length": "0"})
        assert started.status_code == 202, started.text
        location = patch(client, started.headers["Location"], data[:first], 0)

    # A clean shutdown first, then a crash: neither may lose an acknowledged byte.
    # Each time a fresh token, as a client whose old one was refused would fetch.
    own_registry.restart(signal.SIGTERM)
    with api_client(own_registry, REPO) as client:
        location = resume(client, location, first)
        location = patch(client, location, data[first : first + second], first)

    own_registry.restart(signal.SIGKILL)
    with api_client(own_registry, REPO) as client:
        location = resume(client, location, first + second)
        location = patch(client, location, data[first + second :], first + second)
        separator = "&" if "?" in location else "?"
        digest = sha256(data)
        done = client.put(f"{location}{separator}digest={digest}", headers=OCTETS)
        assert done.status_code == 201, f"PUT ?digest: {done.status_code} {done.text}"
        assert done.headers["Docker-Content-Digest"] == digest

        fetched = client.get(f"/v2/{REPO}/blobs/{digest}", follow_redirects=True)
        assert fetched.status_code == 200, fetched.text
        assert len(fetched.content) == len(data)
        assert fetched.content == data
    assert own_registry.starts == 3
