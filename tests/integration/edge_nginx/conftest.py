"""Fixtures for the nginx tests: the nginx binary and the two upstreams (see harness.py)."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator

import pytest

from tests.integration.edge_nginx.harness import EchoServer, Upstreams, free_port
from tests.servers import unavailable

NGINX_CANDIDATES = ("/usr/sbin/nginx", "nginx")


@pytest.fixture(scope="session")
def nginx_binary() -> str:
    for candidate in NGINX_CANDIDATES:
        if found := shutil.which(candidate):
            return found
    unavailable("nginx (Debian's nginx package, /usr/sbin/nginx)")
    raise AssertionError("unreachable")


@pytest.fixture(scope="session")
def upstreams() -> Iterator[Upstreams]:
    servers = [EchoServer("legacy"), EchoServer("wharf")]
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in servers]
    for thread in threads:
        thread.start()
    urls = [f"http://127.0.0.1:{s.server_address[1]}" for s in servers]
    yield Upstreams(urls[0], urls[1], f"http://127.0.0.1:{free_port()}")
    for server in servers:
        server.shutdown()
        server.server_close()
