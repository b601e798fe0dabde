"""The S3 family: the shared contract on Ceph RGW (real S3) and moto, plus S3-only behaviour."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from botocore.exceptions import ClientError

from tests.conftest import raw_s3_client
from tests.contract.storage_contract import (
    Broken,
    StorageContract,
    failing_after,
    payload,
    persisted,
)
from tests.servers import S3Server
from wharf.storage import (
    BackendUnavailable,
    ObjectNotFound,
    StorageConfigError,
    StorageDriver,
    build_driver,
    content_path,
)
from wharf.storage.drivers.s3 import driver as s3_driver_module
from wharf.storage.drivers.s3.client import S3Connection
from wharf.storage.drivers.s3.driver import S3FamilyDriver
from wharf.storage.protocol import JSONDict
from wharf.storage.streams import iterate_bytes

MiB = 1024 * 1024


def s3_driver(
    server: S3Server, bucket: str, storage_path: str, location: str = "s3_us", **overrides: Any
) -> StorageDriver:
    """RadosGWStorage on RGW (RGW refuses Quay's SSE header), S3Storage on moto."""
    if server.name == "rgw":
        params: dict[str, Any] = {
            "hostname": server.hostport,
            "is_secure": False,
            "access_key": server.access_key,
            "secret_key": server.secret_key,
            "bucket_name": bucket,
            "storage_path": storage_path,
        }
        return build_driver(location, "RadosGWStorage", {**params, **overrides})
    params = {
        "endpoint_url": server.endpoint,
        "s3_access_key": server.access_key,
        "s3_secret_key": server.secret_key,
        "s3_bucket": bucket,
        "storage_path": storage_path,
    }
    return build_driver(location, "S3Storage", {**params, **overrides})


def lister(server: S3Server, bucket: str, storage_path: str) -> Callable[[], list[str]]:
    client = raw_s3_client(server)
    prefix = storage_path.strip("/") + "/"

    def keys() -> list[str]:
        found = []
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            found += [entry["Key"][len(prefix) :] for entry in page.get("Contents", [])]
        return sorted(found)

    return keys


@pytest.fixture
def storage_path() -> str:
    return f"/registry/{uuid.uuid4().hex[:10]}"


class TestS3Contract(StorageContract):
    @pytest.fixture
    async def driver(
        self, s3: tuple[S3Server, str], storage_path: str
    ) -> AsyncIterator[StorageDriver]:
        driver = s3_driver(*s3, storage_path)
        yield driver
        await driver.aclose()

    @pytest.fixture
    async def other_driver(
        self, s3: tuple[S3Server, str], storage_path: str
    ) -> AsyncIterator[StorageDriver]:
        driver = s3_driver(*s3, storage_path + "-other", location="s3_eu")
        yield driver
        await driver.aclose()

    @pytest.fixture
    def backend_keys(self, s3: tuple[S3Server, str], storage_path: str) -> Callable[[], list[str]]:
        return lister(*s3, storage_path)


@pytest.fixture
async def driver(s3: tuple[S3Server, str], storage_path: str) -> AsyncIterator[StorageDriver]:
    driver = s3_driver(*s3, storage_path)
    yield driver
    await driver.aclose()


async def test_storage_path_prefix_and_blob_key(
    s3: tuple[S3Server, str], storage_path: str, driver: StorageDriver
) -> None:
    digest = "sha256:" + "ab" * 32
    await driver.put_content(content_path(digest), b"x")
    # Quay: join(storage_path, key), then one leading "/" dropped.
    expected = f"{storage_path.lstrip('/')}/sha256/ab/{'ab' * 32}"
    head = raw_s3_client(s3[0]).head_object(Bucket=s3[1], Key=expected)
    assert head["ContentLength"] == 1


async def test_chunk_metadata_has_quays_shape(driver: StorageDriver) -> None:
    upload_id, metadata = await driver.initiate_chunked_upload()
    assert metadata == {"chunks": []}
    first = await driver.upload_chunk(upload_id, 0, iterate_bytes(b"abc"), metadata)
    second = await driver.upload_chunk(upload_id, 3, iterate_bytes(b"defg"), first.metadata)
    chunks = persisted(second.metadata)["chunks"]
    assert [c[1:] for c in chunks] == [[0, 3], [3, 4]]
    assert all(c[0].startswith("uploads/") and uuid.UUID(c[0][8:]) for c in chunks)
    await driver.cancel_chunked_upload(upload_id, second.metadata)


async def test_quay_written_metadata_completes(driver: StorageDriver) -> None:
    """Chunks that Quay recorded without Content-Range all carry offset 0; order still counts."""
    await driver.put_content("uploads/11111111-1111-1111-1111-111111111111", b"hello ")
    await driver.put_content("uploads/22222222-2222-2222-2222-222222222222", b"world")
    metadata = {
        "chunks": [
            ["uploads/11111111-1111-1111-1111-111111111111", 0, 6],
            ["uploads/22222222-2222-2222-2222-222222222222", 0, 5],
        ]
    }
    await driver.complete_chunked_upload("any", "joined", metadata)
    assert await driver.get_content("joined") == b"hello world"


async def test_large_chunks_assemble_server_side_small_ones_client_side(
    driver: StorageDriver, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    real = s3_driver_module.copy_assemble

    async def spy(*args: Any, **kwargs: Any) -> None:
        calls.append(len(args[3]))
        await real(*args, **kwargs)

    monkeypatch.setattr(s3_driver_module, "copy_assemble", spy)
    for sizes, server_side in (([6 * MiB, 6 * MiB, 10], True), ([MiB, 6 * MiB], False)):
        calls.clear()
        data = payload(sum(sizes))
        upload_id, metadata = await upload_in_chunks(driver, data, sizes)
        await driver.complete_chunked_upload(upload_id, "assembled", metadata)
        assert await driver.get_content("assembled") == data
        assert calls == ([len(sizes)] if server_side else [])


async def test_copy_parts_are_split_to_the_maximum_chunk_size(
    rgw: tuple[S3Server, str], storage_path: str
) -> None:
    driver = s3_driver(*rgw, storage_path, maximum_chunk_size_mb=6)
    data = payload(13 * MiB)
    upload_id, metadata = await driver.initiate_chunked_upload()
    first = await driver.upload_chunk(upload_id, 0, iterate_bytes(data[: 12 * MiB]), metadata)
    second = await driver.upload_chunk(
        upload_id, 12 * MiB, iterate_bytes(data[12 * MiB :]), first.metadata
    )
    await driver.complete_chunked_upload(upload_id, "split", second.metadata)
    assert await driver.get_content("split") == data
    await driver.aclose()


async def upload_in_chunks(
    driver: StorageDriver, data: bytes, sizes: list[int]
) -> tuple[str, JSONDict]:
    """A chunked upload of `data` cut at `sizes`, left uncompleted: its id and metadata."""
    upload_id, metadata = await driver.initiate_chunked_upload()
    offset = 0
    for size in sizes:
        result = await driver.upload_chunk(
            upload_id, offset, iterate_bytes(data[offset : offset + size]), metadata
        )
        metadata, offset = result.metadata, offset + size
    return upload_id, metadata


@pytest.mark.parametrize(
    ("failing_call", "calls_before_failure"),
    [("upload_part_copy", 1), ("complete_multipart_upload", 0)],
)
async def test_failed_server_side_assembly_leaves_no_object_and_no_upload(
    s3: tuple[S3Server, str],
    storage_path: str,
    driver: StorageDriver,
    monkeypatch: pytest.MonkeyPatch,
    failing_call: str,
    calls_before_failure: int,
) -> None:
    server, bucket = s3
    assert isinstance(driver, S3FamilyDriver)
    sizes = [6 * MiB, 6 * MiB, 10]  # every chunk but the last over 5 MiB: UploadPartCopy
    data = payload(sum(sizes))
    upload_id, metadata = await upload_in_chunks(driver, data, sizes)
    chunk_keys = lister(server, bucket, storage_path)()
    assert len(chunk_keys) == 3

    client = await driver.connection.client()
    real = getattr(client, failing_call)
    calls = 0
    internal_error: Any = {
        "Error": {"Code": "InternalError", "Message": "injected"},
        "ResponseMetadata": {"HTTPStatusCode": 500},
    }

    async def fail_midway(**request: Any) -> Any:
        # The backend gives up partway through: earlier parts copied, the upload left open.
        nonlocal calls
        calls += 1
        if calls > calls_before_failure:
            raise ClientError(internal_error, failing_call)
        return await real(**request)

    monkeypatch.setattr(client, failing_call, fail_midway)
    with pytest.raises(BackendUnavailable) as info:
        await driver.complete_chunked_upload(upload_id, "assembled", metadata)
    assert calls > calls_before_failure  # the failure came from the server-side assembly
    assert (info.value.location, info.value.path) == ("s3_us", "assembled")

    final_key = f"{storage_path.lstrip('/')}/assembled"
    assert lister(server, bucket, storage_path)() == chunk_keys  # no object, chunks kept
    uploads = raw_s3_client(server).list_multipart_uploads(Bucket=bucket, Prefix=final_key)
    assert uploads.get("Uploads", []) == []

    # The chunks survived, so the client's retry of the completion succeeds.
    monkeypatch.setattr(client, failing_call, real)
    await driver.complete_chunked_upload(upload_id, "assembled", metadata)
    assert await driver.get_content("assembled") == data
    assert lister(server, bucket, storage_path)() == ["assembled"]


async def test_failed_write_aborts_its_multipart_upload(
    s3: tuple[S3Server, str], storage_path: str, driver: StorageDriver
) -> None:
    with pytest.raises(Broken):
        await driver.stream_write("half", failing_after(payload(20 * MiB)))
    uploads = raw_s3_client(s3[0]).list_multipart_uploads(
        Bucket=s3[1], Prefix=storage_path.lstrip("/")
    )
    assert uploads.get("Uploads", []) == []


async def test_clean_orphaned_multipart_uploads(
    s3: tuple[S3Server, str], storage_path: str, driver: StorageDriver
) -> None:
    from datetime import timedelta

    client = raw_s3_client(s3[0])
    client.create_multipart_upload(Bucket=s3[1], Key=f"{storage_path.lstrip('/')}/orphan")
    cleaner = driver.clean_orphaned_multipart_uploads
    if s3[0].name == "rgw":  # moto reports a fixed initiation date in 2010
        assert await cleaner(timedelta(days=1)) == 0
    assert await cleaner(timedelta(seconds=-60)) == 1
    assert await cleaner(timedelta(seconds=-60)) == 0


async def test_presigned_urls_serve_ranges(s3: tuple[S3Server, str], driver: StorageDriver) -> None:
    data = payload(10_000)
    await driver.put_content("presigned", data)
    url = await driver.direct_download_url("presigned", expires_in=60)
    assert url is not None
    async with httpx.AsyncClient() as http:
        whole = await http.get(url)
        part = await http.get(url, headers={"Range": "bytes=100-199"})
        head_url = await driver.direct_download_url("presigned", head=True)
        assert head_url is not None
        head = await http.head(head_url)
        if s3[0].checks_signatures:
            # SigV4 (`X-Amz-Signature`) or, with botocore's default for RadosGW, SigV2.
            query = dict(httpx.URL(url).params)
            name = "X-Amz-Signature" if "X-Amz-Signature" in query else "Signature"
            query[name] = query[name][:-2] + ("AA" if query[name][-2:] != "AA" else "BB")
            tampered = await http.get(httpx.URL(url).copy_with(params=query))
            assert tampered.status_code == 403
    assert whole.content == data
    assert part.status_code == 206
    assert part.content == data[100:200]
    assert head.status_code == 200
    assert driver.supports_resumable_downloads()


async def test_radosgw_gives_no_url_when_cors_is_needed(
    s3: tuple[S3Server, str], driver: StorageDriver
) -> None:
    await driver.put_content("cors", b"x")
    url = await driver.direct_download_url("cors", requires_cors=True)
    assert (url is None) == (s3[0].name == "rgw")


async def test_missing_bucket_is_a_config_error(s3: tuple[S3Server, str]) -> None:
    driver = s3_driver(s3[0], f"missing-{uuid.uuid4().hex[:8]}", "/x")
    with pytest.raises(StorageConfigError, match="does not exist") as info:
        await driver.get_content("k")
    assert info.value.location == "s3_us"
    await driver.aclose()


async def test_wrong_credentials_are_a_config_error(rgw: tuple[S3Server, str]) -> None:
    server, bucket = rgw
    wrong = S3Server("rgw", server.endpoint, server.access_key, "wrong", True)
    driver = s3_driver(wrong, bucket, "/x")
    with pytest.raises(StorageConfigError, match="credentials"):
        await driver.put_content("k", b"v")
    await driver.aclose()


def sts_driver(server: S3Server, bucket: str, storage_path: str) -> StorageDriver:
    """STSS3Storage on moto, which answers AssumeRole (AWS_ENDPOINT_URL_STS points there)."""
    return build_driver(
        "sts",
        "STSS3Storage",
        {
            "storage_path": storage_path,
            "s3_bucket": bucket,
            "sts_role_arn": "arn:aws:iam::123456789012:role/quay",
            "sts_user_access_key": "user",
            "sts_user_secret_key": "secret",
            "endpoint_url": server.endpoint,
        },
    )


async def test_sts_assumed_role_reads_and_writes(
    moto: tuple[S3Server, str], storage_path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    server, bucket = moto
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", server.endpoint)
    driver = sts_driver(server, bucket, storage_path)
    await driver.put_content("k", b"assumed")
    assert await driver.get_content("k") == b"assumed"
    with pytest.raises(ObjectNotFound):
        await driver.get_content("absent")
    await driver.aclose()


def signing_key(request: Any) -> str:
    """The access key in a SigV4 `Authorization: ... Credential=<key>/<date>/...` header."""
    authorization = request.headers["Authorization"]
    if isinstance(authorization, bytes):
        authorization = authorization.decode()
    return str(authorization.split("Credential=", 1)[1].split("/", 1)[0])


async def test_sts_credentials_are_refreshed_before_they_expire(
    moto: tuple[S3Server, str], storage_path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    server, bucket = moto
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", server.endpoint)
    assumed: list[str] = []
    real_refresher = S3Connection._assume_role_refresher

    def recording_refresher(connection: S3Connection) -> Any:
        # The driver's own refresher, really calling moto's AssumeRole; we only note each key.
        refresh = real_refresher(connection)

        async def recorded() -> dict[str, Any]:
            credentials: dict[str, Any] = await refresh()
            assumed.append(credentials["access_key"])
            return credentials

        return recorded

    monkeypatch.setattr(S3Connection, "_assume_role_refresher", recording_refresher)
    driver = sts_driver(server, bucket, storage_path)
    assert isinstance(driver, S3FamilyDriver)
    await driver.put_content("k", b"assumed")
    assert len(assumed) == 1

    client = await driver.connection.client()
    signed_with: list[str] = []
    client.meta.events.register(
        "before-send.s3", lambda request, **_: signed_with.append(signing_key(request))
    )
    # Five minutes before the assumed role expires, as botocore's clock sees it: inside its
    # mandatory refresh window (10 minutes), so the next request must assume the role again.
    credentials = client._request_signer._credentials  # type: ignore[attr-defined]
    expiry: datetime = credentials._expiry_time
    credentials._time_fetcher = lambda: expiry - timedelta(minutes=5)

    assert await driver.get_content("k") == b"assumed"
    assert len(assumed) == 2
    assert assumed[1] != assumed[0]
    assert signed_with == [assumed[1]]  # the request went out with the new credentials
    await driver.aclose()


def test_rgw_is_the_real_thing(rgw: tuple[S3Server, str]) -> None:
    """RGW must be present under CI: moto alone would not check signatures."""
    assert rgw[0].checks_signatures


@pytest.mark.parametrize("driver_name", ["RHOCSStorage", "IBMCloudStorage"])
async def test_other_s3_compatible_drivers_on_rgw(
    rgw: tuple[S3Server, str], storage_path: str, driver_name: str
) -> None:
    server, bucket = rgw
    driver = build_driver(
        "compat",
        driver_name,
        {
            "hostname": f"http://{server.hostport}",
            "is_secure": True,  # an explicit scheme in the hostname wins, as in Quay
            "access_key": server.access_key,
            "secret_key": server.secret_key,
            "bucket_name": bucket,
            "storage_path": storage_path,
        },
    )
    data = payload(6 * MiB + 5)
    upload_id, metadata = await driver.initiate_chunked_upload()
    first = await driver.upload_chunk(upload_id, 0, iterate_bytes(data[: 6 * MiB]), metadata)
    second = await driver.upload_chunk(
        upload_id, 6 * MiB, iterate_bytes(data[6 * MiB :]), first.metadata
    )
    await driver.complete_chunked_upload(
        upload_id, content_path("sha256:" + "c" * 64), second.metadata
    )
    assert await driver.get_content(content_path("sha256:" + "c" * 64)) == data
    assert lister(server, bucket, storage_path)() == [f"sha256/cc/{'c' * 64}"]
    await driver.aclose()
