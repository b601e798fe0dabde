"""Blob GETs redirect (307) to storage's direct URL when the driver gives one."""

from __future__ import annotations

import hashlib
import uuid

import httpx

from tests.integration.registry.conftest import RegistryUnderTest
from tests.servers import S3Server
from wharf.storage import DistributedStorage, DownloadContext, build_driver
from wharf.storage.drivers.local import LocalStorage
from wharf.storage.params import LocalStorageParams

REPO = "library/app"


class PresigningLocalStorage(LocalStorage):
    """Local disk that hands out URLs, as an S3 driver's presigned URLs would be."""

    seen: list[DownloadContext] = []

    async def _do_direct_download_url(
        self, path: str, expires_in: int, context: DownloadContext, head: bool, requires_cors: bool
    ) -> str | None:
        self.seen.append(context)
        return f"https://storage.example/{path}?expires={expires_in}"


def presigning(registry: RegistryUnderTest) -> DistributedStorage:
    driver = PresigningLocalStorage(
        "local_us", LocalStorageParams(storage_path=str(registry.storage_root))
    )
    return DistributedStorage({"local_us": driver})


async def test_get_redirects_to_the_direct_url(registry: RegistryUnderTest) -> None:
    client = await registry.client(storage=presigning(registry))
    data = b"redirected layer"
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    pushed = await client.post(f"/v2/{REPO}/blobs/uploads/?digest={digest}", content=data)
    assert pushed.status_code == 201
    response = await client.get(f"/v2/{REPO}/blobs/{digest}")
    assert response.status_code == 307
    hexpart = digest.split(":")[1]
    assert response.headers["Location"] == (
        f"https://storage.example/sha256/{hexpart[:2]}/{hexpart}?expires=600"
    )
    assert response.headers["Docker-Content-Digest"] == digest
    seen = PresigningLocalStorage.seen[-1]
    assert (seen.namespace, seen.repository, seen.username) == ("library", "app", "admin")
    head = await client.head(f"/v2/{REPO}/blobs/{digest}")
    assert head.status_code == 200  # HEAD is answered from the database, no redirect


async def test_redirects_can_be_turned_off(registry: RegistryUnderTest) -> None:
    client = await registry.client(storage=presigning(registry), blob_redirects=False)
    data = b"streamed layer"
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    await client.post(f"/v2/{REPO}/blobs/uploads/?digest={digest}", content=data)
    response = await client.get(f"/v2/{REPO}/blobs/{digest}")
    assert response.status_code == 200
    assert response.content == data


async def test_redirect_to_a_real_presigned_url_on_rgw(
    registry: RegistryUnderTest, rgw: tuple[S3Server, str]
) -> None:
    server, bucket = rgw
    driver = build_driver(
        "local_us",
        "RadosGWStorage",
        {
            "hostname": server.hostport,
            "is_secure": False,
            "access_key": server.access_key,
            "secret_key": server.secret_key,
            "bucket_name": bucket,
            "storage_path": f"/registry-{uuid.uuid4().hex[:8]}",
        },
    )
    client = await registry.client(storage=DistributedStorage({"local_us": driver}))
    data = bytes(range(256)) * 100
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    location = (await client.post(f"/v2/{REPO}/blobs/uploads/")).headers["Location"]
    await client.patch(location, content=data[:1000])
    assert (await client.put(f"{location}?digest={digest}", content=data[1000:])).status_code == 201
    response = await client.get(f"/v2/{REPO}/blobs/{digest}")
    assert response.status_code == 307
    async with httpx.AsyncClient() as plain:  # what docker does next: straight to storage
        fetched = await plain.get(response.headers["Location"])
        ranged = await plain.get(response.headers["Location"], headers={"Range": "bytes=5-9"})
    assert fetched.content == data
    assert ranged.content == data[5:10]
    await driver.aclose()
