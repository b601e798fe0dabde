"""Blob uploads and downloads through the HTTP API, on SQLite and local disk."""

from __future__ import annotations

import hashlib

import httpx
import pytest

from tests.integration.registry.conftest import RegistryUnderTest

MiB = 1024 * 1024
REPO = "library/app"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


async def test_version_check(client: httpx.AsyncClient) -> None:
    response = await client.get("/v2/")
    assert response.status_code == 200
    assert response.headers["Docker-Distribution-API-Version"] == "registry/2.0"


async def test_monolithic_upload_then_pull(
    client: httpx.AsyncClient, registry: RegistryUnderTest
) -> None:
    data = b"a layer" * 1000
    digest = sha256(data)
    response = await client.post(f"/v2/{REPO}/blobs/uploads/?digest={digest}", content=data)
    assert response.status_code == 201
    assert response.headers["Location"] == f"/v2/{REPO}/blobs/{digest}"
    assert response.headers["Docker-Content-Digest"] == digest

    head = await client.head(f"/v2/{REPO}/blobs/{digest}")
    assert head.status_code == 200
    assert head.headers["Content-Length"] == str(len(data))
    assert head.headers["Docker-Content-Digest"] == digest
    assert head.content == b""
    got = await client.get(f"/v2/{REPO}/blobs/{digest}")
    assert got.content == data
    part = await client.get(f"/v2/{REPO}/blobs/{digest}", headers={"Range": "bytes=10-19"})
    assert part.status_code == 206
    assert part.content == data[10:20]
    assert part.headers["Content-Range"] == f"bytes 10-19/{len(data)}"
    bad = await client.get(f"/v2/{REPO}/blobs/{digest}", headers={"Range": "bytes=99999-"})
    assert bad.status_code == 416

    hexpart = digest.split(":")[1]
    assert (registry.storage_root / "sha256" / hexpart[:2] / hexpart).read_bytes() == data
    stored = await registry.rows("select content_checksum, image_size, cas_path from imagestorage")
    assert stored == [(digest, len(data), True)]
    assert len(await registry.rows("select id from imagestorageplacement")) == 1
    assert len(await registry.rows("select id from uploadedblob")) == 1
    assert await registry.rows("select id from blobupload") == []


async def test_chunked_upload_with_status_and_ranges(
    client: httpx.AsyncClient, registry: RegistryUnderTest
) -> None:
    data = bytes(range(256)) * 40000  # ~10 MiB
    start = await client.post(f"/v2/{REPO}/blobs/uploads/")
    assert start.status_code == 202
    location = start.headers["Location"]
    upload_id = start.headers["Docker-Upload-UUID"]
    assert location == f"/v2/{REPO}/blobs/uploads/{upload_id}"
    assert start.headers["Range"] == "0-0"

    offset = 0
    for size in (3 * MiB, 1, 4 * MiB):
        chunk = data[offset : offset + size]
        response = await client.patch(
            location,
            content=chunk,
            headers={"Content-Range": f"{offset}-{offset + size - 1}"},
        )
        assert response.status_code == 202, response.text
        offset += size
        assert response.headers["Range"] == f"0-{offset - 1}"
    status = await client.get(location)
    assert status.status_code == 204
    assert status.headers["Range"] == f"0-{offset - 1}"
    assert await registry.rows("select byte_count, chunk_count from blobupload") == [(offset, 3)]

    done = await client.put(f"{location}?digest={sha256(data)}", content=data[offset:])
    assert done.status_code == 201, done.text
    assert (await client.get(f"/v2/{REPO}/blobs/{sha256(data)}")).content == data


async def test_out_of_order_chunk_is_416_with_the_current_range(client: httpx.AsyncClient) -> None:
    location = (await client.post(f"/v2/{REPO}/blobs/uploads/")).headers["Location"]
    await client.patch(location, content=b"0123456789", headers={"Content-Range": "0-9"})
    response = await client.patch(location, content=b"zz", headers={"Content-Range": "20-21"})
    assert response.status_code == 416
    assert response.headers["Range"] == "0-9"
    assert response.json()["errors"][0]["code"] == "BLOB_UPLOAD_INVALID"
    garbage = await client.patch(location, content=b"zz", headers={"Content-Range": "x-y"})
    assert garbage.status_code == 416


async def test_resent_overlap_is_skipped(client: httpx.AsyncClient) -> None:
    location = (await client.post(f"/v2/{REPO}/blobs/uploads/")).headers["Location"]
    await client.patch(location, content=b"0123456789", headers={"Content-Range": "0-9"})
    response = await client.patch(location, content=b"89ab", headers={"Content-Range": "8-11"})
    assert response.headers["Range"] == "0-11"
    done = await client.put(f"{location}?digest={sha256(b'0123456789ab')}")
    assert done.status_code == 201


async def test_upload_survives_a_restart_between_chunks(registry: RegistryUnderTest) -> None:
    data = b"x" * (2 * MiB) + b"y" * MiB
    first = await registry.client()
    location = (await first.post(f"/v2/{REPO}/blobs/uploads/")).headers["Location"]
    await first.patch(location, content=data[: 2 * MiB])
    second = await registry.client()  # a new process: nothing shared but the db and the disk
    await second.patch(location, content=data[2 * MiB :])
    done = await second.put(f"{location}?digest={sha256(data)}")
    assert done.status_code == 201, done.text
    assert (await first.get(f"/v2/{REPO}/blobs/{sha256(data)}")).content == data


async def test_digest_mismatch_leaves_nothing(
    client: httpx.AsyncClient, registry: RegistryUnderTest
) -> None:
    wrong = sha256(b"something else")
    response = await client.post(f"/v2/{REPO}/blobs/uploads/?digest={wrong}", content=b"data")
    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == "DIGEST_INVALID"
    assert await registry.rows("select id from imagestorage") == []
    assert await registry.rows("select id from blobupload") == []
    assert not (registry.storage_root / "sha256").exists()
    assert not list((registry.storage_root / "uploads").iterdir())


async def test_sha512_digests(client: httpx.AsyncClient) -> None:
    data = b"sha512 layer"
    digest = "sha512:" + hashlib.sha512(data).hexdigest()
    response = await client.post(f"/v2/{REPO}/blobs/uploads/?digest={digest}", content=data)
    assert response.status_code == 201, response.text
    assert (await client.get(f"/v2/{REPO}/blobs/{digest}")).content == data


async def test_cancel_and_unknown_uploads(client: httpx.AsyncClient) -> None:
    location = (await client.post(f"/v2/{REPO}/blobs/uploads/")).headers["Location"]
    assert (await client.delete(location)).status_code == 204
    for response in (
        await client.get(location),
        await client.patch(location, content=b"x"),
        await client.put(f"{location}?digest={sha256(b'x')}", content=b"x"),
    ):
        assert response.status_code == 404
        assert response.json()["errors"][0]["code"] == "BLOB_UPLOAD_UNKNOWN"


async def test_cross_repository_mount(client: httpx.AsyncClient) -> None:
    data = b"shared layer"
    await client.post(f"/v2/{REPO}/blobs/uploads/?digest={sha256(data)}", content=data)
    mounted = await client.post(f"/v2/other/app/blobs/uploads/?mount={sha256(data)}&from={REPO}")
    assert mounted.status_code == 201
    assert (await client.get(f"/v2/other/app/blobs/{sha256(data)}")).content == data
    fallback = await client.post(
        f"/v2/other/app/blobs/uploads/?mount={sha256(b'absent')}&from={REPO}"
    )
    assert fallback.status_code == 202
    assert "Docker-Upload-UUID" in fallback.headers


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("GET", "/v2/Bad Name/blobs/sha256:" + "a" * 64, 400, "NAME_INVALID"),
        ("GET", "/v2/nobody/here/blobs/sha256:" + "a" * 64, 404, "NAME_UNKNOWN"),
        ("GET", f"/v2/{REPO}/blobs/sha256:short", 400, "DIGEST_INVALID"),
        ("GET", f"/v2/{REPO}/blobs/md5:" + "a" * 32, 400, "DIGEST_INVALID"),
        ("DELETE", f"/v2/{REPO}/blobs/sha256:" + "a" * 64, 405, "UNSUPPORTED"),
    ],
)
async def test_errors(
    client: httpx.AsyncClient, method: str, path: str, status: int, code: str
) -> None:
    await client.post(f"/v2/{REPO}/blobs/uploads/")  # creates the repository
    response = await client.request(method, path)
    assert response.status_code == status
    assert response.json()["errors"][0]["code"] == code


async def test_unknown_blob(client: httpx.AsyncClient) -> None:
    await client.post(f"/v2/{REPO}/blobs/uploads/")
    response = await client.get(f"/v2/{REPO}/blobs/sha256:" + "b" * 64)
    assert response.status_code == 404
    assert response.json()["errors"][0]["code"] == "BLOB_UNKNOWN"
    head = await client.head(f"/v2/{REPO}/blobs/sha256:" + "b" * 64)
    assert head.status_code == 404
    assert head.content == b""


async def test_hash_state_is_kept_in_quays_format(
    client: httpx.AsyncClient, registry: RegistryUnderTest
) -> None:
    location = (await client.post(f"/v2/{REPO}/blobs/uploads/")).headers["Location"]
    await client.patch(location, content=b"abc" * 1000)
    [(state,)] = await registry.rows("select sha_state from blobupload")
    assert isinstance(state, str)
    assert len(state) == 216  # base64 of Quay's 160-byte resumablesha256 pickle
    assert state.startswith("gASVlQAAAAAAAACMD3Jlc3VtYWJsZXNoYTI1NpSMBnNoYTI1NpSTlCmBlENw")


@pytest.mark.parametrize("matches", [True, False])
async def test_lost_hash_state_is_recomputed_from_storage(
    client: httpx.AsyncClient, registry: RegistryUnderTest, matches: bool
) -> None:
    data = b"z" * 5000
    location = (await client.post(f"/v2/{REPO}/blobs/uploads/")).headers["Location"]
    await client.patch(location, content=data)
    await registry.rows("update blobupload set sha_state = null")
    digest = sha256(data) if matches else sha256(b"other")
    done = await client.put(f"{location}?digest={digest}")
    if matches:
        assert done.status_code == 201
        assert (await client.get(f"/v2/{REPO}/blobs/{digest}")).content == data
    else:
        assert done.status_code == 400
        assert done.json()["errors"][0]["code"] == "DIGEST_INVALID"
        assert not (registry.storage_root / "sha256").exists()
        assert await registry.rows("select id from blobupload") == []
    assert not list((registry.storage_root / "uploads").iterdir())


async def test_refused_monolithic_uploads_leave_no_session(
    client: httpx.AsyncClient, registry: RegistryUnderTest
) -> None:
    bad_digest = await client.post(f"/v2/{REPO}/blobs/uploads/?digest=sha256:nothex", content=b"x")
    assert bad_digest.status_code == 400
    assert bad_digest.json()["errors"][0]["code"] == "DIGEST_INVALID"
    wrong = await client.post(f"/v2/{REPO}/blobs/uploads/?digest={sha256(b'y')}", content=b"x")
    assert wrong.status_code == 400
    assert await registry.rows("select id from blobupload") == []
