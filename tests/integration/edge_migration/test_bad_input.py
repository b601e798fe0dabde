"""Bad input and broken neighbours through the edge: a dead legacy registry, a client that
leaves in the middle of an upload, malformed and oversized requests on a raw socket. Each
time the edge answers precisely, keeps serving, and leaves no request in flight.

Raw sockets, because an HTTP client library refuses to send most of this.
"""

from __future__ import annotations

import os
import socket
import struct
import time

import httpx
import pytest

from tests.integration.edge_migration.client import (
    RegistryClient,
    digest_of,
    path_of,
    token_through,
)
from tests.integration.edge_migration.topology import Replica, Topology, wait_until_idle

pytestmark = pytest.mark.server("docker-registry")

UPSTREAMS = ("legacy", "wharf")


def port_of(replica: Replica) -> int:
    return int(replica.host.rpartition(":")[2])


def exchange(replica: Replica, data: bytes, timeout: float = 10.0) -> bytes:
    """Send raw bytes to the replica's proxy port; everything it answers until it closes."""
    with socket.create_connection(("127.0.0.1", port_of(replica)), timeout=timeout) as conn:
        conn.sendall(data)
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    return answer


def push_whole(replica: Replica, repository: str, auth: dict[str, str]) -> int:
    """A one-chunk upload (POST, then PUT with the body); the PUT's status."""
    data = os.urandom(4096)
    started = httpx.post(
        f"{replica.proxy}/v2/{repository}/blobs/uploads/", headers=auth, timeout=10
    )
    assert started.status_code == 202, started.text
    url = f"{replica.proxy}{path_of(started.headers['location'])}"
    url += ("&" if "?" in url else "?") + f"digest={digest_of(data)}"
    return httpx.put(url, headers=auth, content=data, timeout=10).status_code


def assert_serving(topology: Topology) -> None:
    """Both replicas alive and answering for both upstreams."""
    for replica in topology.replicas:
        assert replica.process.poll() is None, replica.log_text()
        assert httpx.get(f"{replica.proxy}/v2/orgb/any/tags/list", timeout=5).status_code == 404
        assert httpx.get(f"{replica.proxy}/v2/orga/app/tags/list", timeout=5).status_code == 401
    wait_until_idle(topology.replicas, UPSTREAMS)


async def test_a_dead_legacy_registry(topology: Topology) -> None:
    topology.legacy.stop()
    try:
        for replica in topology.replicas:
            for method, path in (
                ("GET", "/v2/orgb/other/manifests/v1"),
                ("HEAD", "/v2/orgb/other/blobs/sha256:" + "0" * 64),
                ("POST", "/v2/orgb/other/blobs/uploads/"),
                ("GET", "/v2/"),  # no repository: the owner's
            ):
                answer = httpx.request(method, f"{replica.proxy}{path}", timeout=10)
                assert answer.status_code == 502, f"{method} {path}: {answer.status_code}"
                assert int(answer.headers["retry-after"]) > 0
                assert answer.headers["docker-distribution-api-version"] == "registry/2.0"
                if method != "HEAD":
                    (error,) = answer.json()["errors"]
                    assert error["code"] == "UNAVAILABLE"
                    assert error["detail"]["upstream"] == "legacy"
            # Outside /v2/, the same failure in Quay's API error format.
            api = httpx.get(f"{replica.proxy}/api/v1/repository/orgb/other", timeout=10)
            assert api.status_code == 502
            assert int(api.headers["retry-after"]) > 0
            assert api.json()["status"] == 502
            assert api.json()["error_type"] == "unavailable"

        # The canary lives on: a two-chunk push and a read of orga/app through both replicas.
        bases = [replica.proxy for replica in topology.replicas]
        data = os.urandom(32 << 10)
        async with httpx.AsyncClient(timeout=30) as http:
            client = RegistryClient(http, topology.wharf.credentials())
            digest = await client.push_blob(bases, "orga/app", data)
            pulled = await client.request("GET", f"{bases[1]}/v2/orga/app/blobs/{digest}")
            assert pulled.status_code == 200, pulled.text
            assert pulled.content == data
    finally:
        topology.legacy.start()  # same port and data directory
    # The pools' dead connections to legacy are not reused: the next requests get through.
    assert_serving(topology)


def test_a_client_that_leaves_mid_upload(topology: Topology) -> None:
    credentials = topology.wharf.credentials()
    for repository in ("orgb/left", "orga/app"):  # one upload on each upstream
        token = token_through(topology.a.proxy, repository, credentials)
        auth = {"Authorization": f"Bearer {token}"} if token else {}
        started = httpx.post(
            f"{topology.a.proxy}/v2/{repository}/blobs/uploads/", headers=auth, timeout=10
        )
        assert started.status_code == 202, started.text
        session = path_of(started.headers["location"])

        # Through the other replica: announce 1 MiB, send 64 KiB, and reset the connection.
        head = (
            f"PATCH {session} HTTP/1.1\r\nHost: {topology.b.host}\r\n"
            "Content-Type: application/octet-stream\r\nContent-Length: 1048576\r\n"
            + "".join(f"{name}: {value}\r\n" for name, value in auth.items())
            + "\r\n"
        )
        conn = socket.create_connection(("127.0.0.1", port_of(topology.b)), timeout=10)
        conn.sendall(head.encode() + os.urandom(64 << 10))
        time.sleep(0.2)  # let the edge start relaying the body upstream
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()

        wait_until_idle(topology.replicas, UPSTREAMS)
        # The edge noticed (a 499 in its access log), and the next upload of the same
        # repository through the same replica goes through.
        assert push_whole(topology.b, repository, auth) == 201
        path = session.split("?")[0]
        logged = [entry for entry in topology.b.access_log() if entry["path"] == path]
        assert [(entry["method"], entry["status"]) for entry in logged] == [("PATCH", 499)]
    assert_serving(topology)


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GARBAGE\r\n\r\n",
        b"GET /v2/ HTTP/1.1\r\nHost: edge\r\nno colon here\r\n\r\n",
        b"GET /v2/\x00/tags/list HTTP/1.1\r\nHost: edge\r\n\r\n",
        b"GET /v2/ HTTP/1.1\r\nHost: edge\r\nContent-Length: -5\r\n\r\n",
        b"POST /v2/orgb/x/blobs/uploads/ HTTP/1.1\r\nHost: edge\r\n"
        b"Transfer-Encoding: chunked\r\n\r\nnot-hex\r\n\r\n",
    ],
    ids=["request-line", "header-line", "nul-in-path", "negative-length", "bad-chunk"],
)
def test_a_malformed_request(topology: Topology, request_bytes: bytes) -> None:
    answer = exchange(topology.a, request_bytes)
    assert answer.startswith(b"HTTP/1.1 400 "), answer[:200]
    assert_serving(topology)


def test_an_oversized_header_does_not_hurt_the_edge(topology: Topology) -> None:
    for size in (64 << 10, 4 << 20):
        big = b"X-Big: " + b"a" * size + b"\r\n"
        answer = exchange(
            topology.a,
            b"GET /v2/orgb/big/tags/list HTTP/1.1\r\nHost: edge\r\nConnection: close\r\n"
            + big
            + b"\r\n",
        )
        assert answer.startswith(b"HTTP/1.1 4"), answer[:200]
    assert_serving(topology)


def test_an_oversized_header_is_refused_by_the_edge(topology: Topology) -> None:
    """1 MiB of one header: nginx would refuse it at 8 KiB, uvicorn's h11 at 16 KiB. Sent for
    a canary repository, Wharf (no header limit either) answers if it gets through."""
    answer = exchange(
        topology.a,
        b"GET /v2/orga/app/tags/list HTTP/1.1\r\nHost: edge\r\nConnection: close\r\n"
        + b"X-Big: " + b"a" * (1 << 20) + b"\r\n\r\n",
    )  # fmt: skip
    status = answer.split(b"\r\n", 1)[0]
    assert status in (b"HTTP/1.1 431 Request Header Fields Too Large", b"HTTP/1.1 400 Bad Request")
