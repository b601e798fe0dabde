"""A registry client in a few lines, doing what a Docker client does that matters here:

* a `401` with a `Bearer` challenge is answered by fetching a token from the challenge's
  realm (scope `repository:<name>:pull,push`, Basic credentials) and sending the request
  once more; behind the edge the realm is the edge's `/v2/auth`, which the edge routes by the
  scope's repository;
* upload `Location`s are followed by path and query only, so each step of one upload can go
  through a different edge replica (the absolute URL names the replica that answered).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import httpx

CHALLENGE_PARAM_RE = re.compile(r'(\w+)="([^"]*)"')
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def bearer_challenge(response: httpx.Response) -> dict[str, str] | None:
    header = response.headers.get("www-authenticate", "")
    if response.status_code != 401 or not header.startswith("Bearer "):
        return None
    return dict(CHALLENGE_PARAM_RE.findall(header))


def path_of(location: str) -> str:
    """`/v2/.../blobs/uploads/<id>?<state>` from a relative or absolute Location."""
    parts = urlsplit(location)
    return parts.path + (f"?{parts.query}" if parts.query else "")


class RegistryClient:
    def __init__(self, http: httpx.AsyncClient, credentials: tuple[str, str]) -> None:
        self.http = http
        self.credentials = credentials
        self.tokens: dict[str, str] = {}
        self.realms: list[str] = []
        """Every realm a challenge named, for the tests to check where it points."""

    async def request(
        self, method: str, url: str, *, headers: dict[str, str] | None = None, **kwargs: Any
    ) -> httpx.Response:
        repository = repository_of(url)
        sent = dict(headers or {})
        if repository in self.tokens:
            sent["Authorization"] = f"Bearer {self.tokens[repository]}"
        response = await self.http.request(method, url, headers=sent, **kwargs)
        challenge = bearer_challenge(response)
        if challenge is None or repository is None:
            return response
        self.tokens[repository] = await self.token(challenge, repository)
        sent["Authorization"] = f"Bearer {self.tokens[repository]}"
        return await self.http.request(method, url, headers=sent, **kwargs)

    async def token(self, challenge: dict[str, str], repository: str) -> str:
        self.realms.append(challenge["realm"])
        query = {"scope": f"repository:{repository}:pull,push"}
        if "service" in challenge:
            query["service"] = challenge["service"]
        answer = await self.http.get(challenge["realm"], params=query, auth=self.credentials)
        assert answer.status_code == 200, (
            f"token for {repository}: {answer.status_code} {answer.text}"
        )
        token: str = answer.json()["token"]
        return token

    async def start_upload(self, base: str, repository: str) -> httpx.Response:
        return await self.request("POST", f"{base}/v2/{repository}/blobs/uploads/")

    async def patch(self, base: str, location: str, offset: int, chunk: bytes) -> httpx.Response:
        headers = {
            "Content-Type": "application/octet-stream",
            "Content-Range": f"{offset}-{offset + len(chunk) - 1}",
        }
        return await self.request("PATCH", base + path_of(location), headers=headers, content=chunk)

    async def finish(self, base: str, location: str, digest: str) -> httpx.Response:
        separator = "&" if "?" in location else "?"
        url = f"{base}{path_of(location)}{separator}digest={digest}"
        return await self.request("PUT", url, headers={"Content-Length": "0"})

    async def push_blob(self, bases: Sequence[str], repository: str, data: bytes) -> str:
        """A two-chunk upload, its steps alternating over `bases`; the blob's digest."""
        started = await self.start_upload(bases[0], repository)
        assert started.status_code == 202, started.text
        location, half = started.headers["location"], len(data) // 2
        for step, (offset, chunk) in enumerate(((0, data[:half]), (half, data[half:]))):
            patched = await self.patch(bases[(step + 1) % len(bases)], location, offset, chunk)
            assert patched.status_code == 202, patched.text
            location = patched.headers["location"]
        done = await self.finish(bases[0], location, digest_of(data))
        assert done.status_code == 201, done.text
        return digest_of(data)

    async def put_manifest(
        self, base: str, repository: str, tag: str, body: bytes
    ) -> httpx.Response:
        url = f"{base}/v2/{repository}/manifests/{tag}"
        return await self.request("PUT", url, headers={"Content-Type": OCI_MANIFEST}, content=body)


def repository_of(url: str) -> str | None:
    found = re.match(r"/v2/(.+?)/(?:blobs|manifests|tags)/", urlsplit(url).path)
    return found.group(1) if found else None


def manifest_for(config: bytes, layers: Sequence[bytes]) -> bytes:
    """An OCI image manifest over a config blob and layer blobs already pushed."""
    document = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": digest_of(config), "size": len(config)},
        "layers": [
            {"mediaType": OCI_LAYER, "digest": digest_of(layer), "size": len(layer)}
            for layer in layers
        ],
    }
    return json.dumps(document, separators=(",", ":")).encode()


def token_through(base: str, repository: str, credentials: tuple[str, str]) -> str | None:
    """A pull-and-push token for `repository`, fetched as a client of the registry at `base`
    (an edge replica) would: the challenge of a tag list, then its realm. None when the
    registry behind asks for no auth."""
    challenge = bearer_challenge(httpx.get(f"{base}/v2/{repository}/tags/list", timeout=10))
    if challenge is None:
        return None
    query = {"scope": f"repository:{repository}:pull,push", "service": challenge["service"]}
    answer = httpx.get(challenge["realm"], params=query, auth=credentials, timeout=30)
    assert answer.status_code == 200, f"token for {repository}: {answer.status_code} {answer.text}"
    token: str = answer.json()["token"]
    return token
