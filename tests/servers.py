"""Where the real servers the tests talk to are, and what happens when one is missing.

Endpoints come from the environment (`bash .ci/object-stores.sh env` prints them). A test that
needs a server which is not configured or not reachable skips on a developer's machine and
fails under CI=true, so a green CI run means every server-backed test really ran.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

import pytest


@dataclass(frozen=True)
class S3Server:
    name: str
    endpoint: str
    access_key: str
    secret_key: str
    checks_signatures: bool

    @property
    def hostport(self) -> str:
        return urlsplit(self.endpoint).netloc


def running_in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def unavailable(what: str) -> None:
    message = f"{what} is not available"
    if running_in_ci():
        pytest.fail(f"{message}, and CI=true requires it", pytrace=False)
    pytest.skip(message)


def reachable(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "", parts.port or 80), timeout=2):
            return True
    except OSError:
        return False


def s3_server(name: str) -> S3Server:
    """`rgw` is Ceph RGW (real S3, checks signatures); `moto` is the moto server (a mock)."""
    if name == "rgw":
        endpoint = os.environ.get("WHARF_TEST_S3_ENDPOINT")
        server = S3Server(
            "rgw",
            endpoint or "",
            os.environ.get("WHARF_TEST_S3_ACCESS_KEY", "testkey"),
            os.environ.get("WHARF_TEST_S3_SECRET_KEY", "testsecret"),
            checks_signatures=True,
        )
    else:
        endpoint = os.environ.get("WHARF_TEST_S3MOTO_ENDPOINT")
        server = S3Server("moto", endpoint or "", "testing", "testing", checks_signatures=False)
    if not endpoint:
        unavailable(f"S3 server {name} (set the endpoint with .ci/object-stores.sh env)")
    elif not reachable(endpoint):
        unavailable(f"S3 server {name} at {endpoint}")
    return server
