"""Hostile and racing requests: the spec's error codes, never a 500, consistent rows."""

from __future__ import annotations

import asyncio
import os

import httpx
import pytest

from tests.integration.registry.conftest import RegistryUnderTest
from tests.integration.registry.images import sha256

REPO = "library/app"


async def test_concurrent_pushes_of_one_blob(
    client: httpx.AsyncClient, registry: RegistryUnderTest
) -> None:
    data = os.urandom(300_000)
    digest = sha256(data)
    url = f"/v2/{REPO}/blobs/uploads/?digest={digest}"
    await client.post(f"/v2/{REPO}/blobs/uploads/")  # the repository exists before the race
    responses = await asyncio.gather(*(client.post(url, content=data) for _ in range(8)))
    assert [r.status_code for r in responses] == [201] * 8
    assert await registry.rows("select count(*) from imagestorage") == [(1,)]
    assert await registry.rows("select count(*) from imagestorageplacement") == [(1,)]
    assert (await client.get(f"/v2/{REPO}/blobs/{digest}")).content == data
    hexpart = digest.split(":")[1]
    assert (registry.storage_root / "sha256" / hexpart[:2] / hexpart).read_bytes() == data


@pytest.mark.parametrize(
    "content_range",
    ["garbage", "5-0", "-1-4", "0-", "0-99999999999999999999999", "0-4,5-9", " "],
)
async def test_garbage_content_range(client: httpx.AsyncClient, content_range: str) -> None:
    started = await client.post(f"/v2/{REPO}/blobs/uploads/")
    location = started.headers["Location"]
    response = await client.patch(
        location, content=b"12345", headers={"Content-Range": content_range}
    )
    assert response.status_code == 416, content_range
    assert response.json()["errors"][0]["code"] == "BLOB_UPLOAD_INVALID"
    status = await client.get(location)
    assert status.status_code == 204
    assert status.headers["Range"] == "0-0"  # nothing was written


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("PATCH", f"/v2/{REPO}/blobs/uploads/not-a-session"),
        (
            "PUT",
            f"/v2/{REPO}/blobs/uploads/00000000-0000-0000-0000-000000000000?digest=" + sha256(b""),
        ),
        ("GET", f"/v2/{REPO}/blobs/uploads/../../etc"),
        ("DELETE", f"/v2/{REPO}/blobs/uploads/%00"),
    ],
)
async def test_unknown_sessions(client: httpx.AsyncClient, method: str, path: str) -> None:
    await client.post(f"/v2/{REPO}/blobs/uploads/")
    response = await client.request(method, path, content=b"x" if method == "PATCH" else b"")
    assert response.status_code in (400, 404), response.text
    # `..` segments are resolved by the client: that path names no endpoint at all.
    assert response.json()["errors"][0]["code"] in ("BLOB_UPLOAD_UNKNOWN", "UNSUPPORTED")


@pytest.mark.parametrize(
    "path",
    [
        "/v2/UPPER/case/manifests/v1",
        "/v2/a/b/manifests/" + "t" * 129,
        "/v2/a//b/tags/list",
        "/v2/a/b/referrers/md5:abc",
        "/v2/a/b/blobs/sha256:" + "Z" * 64,
    ],
)
async def test_bad_names_and_references(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path)
    assert response.status_code == 400, path
    assert response.json()["errors"][0]["code"] in (
        "NAME_INVALID",
        "MANIFEST_INVALID",
        "DIGEST_INVALID",
    )


async def test_a_declared_length_larger_than_the_body(client: httpx.AsyncClient) -> None:
    started = await client.post(f"/v2/{REPO}/blobs/uploads/")
    location = started.headers["Location"]
    response = await client.patch(
        location,
        content=b"12345",
        headers={"Content-Range": "0-9", "Content-Length": "5"},
    )
    assert response.status_code == 416
    assert (await client.get(location)).headers["Range"] == "0-0"
