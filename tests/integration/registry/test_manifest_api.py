"""Manifests through the HTTP API, on SQLite, PostgreSQL and a Quay-created schema."""

from __future__ import annotations

import asyncio
import hashlib
import json

import httpx

from tests.integration.registry.conftest import RegistryUnderTest
from tests.integration.registry.images import (
    DOCKER_LIST,
    DOCKER_MANIFEST,
    OCI_INDEX,
    OCI_MANIFEST,
    docker_image,
    index_of,
    oci_image,
    push_blobs,
    push_image,
    put_manifest,
    sha256,
)

REPO = "library/app"


def error_codes(response: httpx.Response) -> list[str]:
    return [entry["code"] for entry in response.json()["errors"]]


async def test_push_by_tag_then_pull_exact_bytes(
    client: httpx.AsyncClient, registry: RegistryUnderTest
) -> None:
    image = oci_image()
    response = await push_image(client, REPO, "v1", image)
    assert response.headers["Location"] == f"/v2/{REPO}/manifests/{image.digest}"
    assert response.headers["Docker-Content-Digest"] == image.digest
    assert "OCI-Subject" not in response.headers

    for reference in ("v1", image.digest):
        got = await client.get(f"/v2/{REPO}/manifests/{reference}")
        assert got.status_code == 200
        assert got.content == image.manifest
        assert got.headers["Content-Type"] == OCI_MANIFEST
        assert got.headers["Docker-Content-Digest"] == image.digest
        head = await client.head(f"/v2/{REPO}/manifests/{reference}")
        assert head.status_code == 200
        assert head.content == b""
        assert head.headers["Content-Length"] == str(len(image.manifest))
        assert head.headers["Docker-Content-Digest"] == image.digest

    # Quay's rows: the exact text, one manifestblob per blob, a visible tag, a scan status.
    stored = await registry.rows(
        "select m.digest, m.manifest_bytes, t.name, m.config_media_type, "
        "m.layers_compressed_size from manifest m join mediatype t on t.id = m.media_type_id"
    )
    assert stored == [
        (
            image.digest,
            image.manifest.decode(),
            OCI_MANIFEST,
            "application/vnd.oci.image.config.v1+json",
            64,
        )
    ]
    assert len(await registry.rows("select id from manifestblob")) == 2
    tag_rows = await registry.rows(
        "select name, hidden, lifetime_end_ms, tag_kind_id, reversion, immutable from tag"
    )
    assert tag_rows == [("v1", False, None, 1, False, False)]
    status = await registry.rows(
        "select index_status, indexer_version, indexer_hash from manifestsecuritystatus"
    )
    assert status == [(0, 4, "")]


async def test_moving_a_tag_ends_the_old_row(
    client: httpx.AsyncClient, registry: RegistryUnderTest
) -> None:
    first, second = oci_image(), oci_image()
    await push_image(client, REPO, "latest", first)
    await push_image(client, REPO, "latest", second)
    got = await client.get(f"/v2/{REPO}/manifests/latest")
    assert got.content == second.manifest
    history = await registry.rows(
        "select lifetime_start_ms, lifetime_end_ms from tag where name = 'latest' order by id"
    )
    assert len(history) == 2
    assert history[0][1] == history[1][0]  # the old row ends when the new one starts
    assert history[1][1] is None
    # Pushing the same manifest to the same tag again adds no history.
    await put_manifest(client, REPO, "latest", second)
    assert len(await registry.rows("select id from tag where name = 'latest'")) == 2
    # The first manifest is still in the table but unreachable: its only tag ended.
    assert (await client.get(f"/v2/{REPO}/manifests/{first.digest}")).status_code == 404


async def test_content_negotiation(client: httpx.AsyncClient) -> None:
    image = oci_image()
    await push_image(client, REPO, "v1", image)
    url = f"/v2/{REPO}/manifests/v1"
    for accept in (
        None,
        OCI_MANIFEST,
        f"{DOCKER_MANIFEST}, {OCI_MANIFEST};q=0.5",
        "*/*",
        "application/*",
        "garbage",
    ):
        headers = {} if accept is None else {"Accept": accept}
        got = await client.get(url, headers=headers)
        assert got.status_code == 200, accept
        assert got.content == image.manifest
    for accept in (DOCKER_MANIFEST, f"{OCI_MANIFEST};q=0", "text/plain"):
        refused = await client.get(url, headers={"Accept": accept})
        assert refused.status_code == 404, accept
        assert error_codes(refused) == ["MANIFEST_UNKNOWN"]
    # By digest the bytes are fixed: served whatever the client asks for.
    by_digest = await client.get(
        f"/v2/{REPO}/manifests/{image.digest}", headers={"Accept": DOCKER_MANIFEST}
    )
    assert by_digest.status_code == 200
    etag = by_digest.headers["ETag"]
    assert etag == f'"{image.digest}"'
    cached = await client.get(url, headers={"If-None-Match": etag})
    assert cached.status_code == 304
    assert cached.content == b""


async def test_docker_manifest_and_list(client: httpx.AsyncClient) -> None:
    amd, arm = docker_image(), docker_image()
    for child in (amd, arm):
        await push_blobs(client, REPO, child)
        response = await put_manifest(client, REPO, child.digest, child)
        assert response.status_code == 201
    listing = index_of(amd, arm, media_type=DOCKER_LIST)
    response = await put_manifest(client, REPO, "multi", listing)
    assert response.status_code == 201, response.text
    got = await client.get(f"/v2/{REPO}/manifests/multi", headers={"Accept": DOCKER_LIST})
    assert got.content == listing.manifest
    assert got.headers["Content-Type"] == DOCKER_LIST
    child = await client.get(f"/v2/{REPO}/manifests/{amd.digest}")
    assert child.content == amd.manifest


async def test_index_children_stay_reachable_through_the_index(
    client: httpx.AsyncClient, registry: RegistryUnderTest
) -> None:
    children = [oci_image(), oci_image()]
    for child in children:
        await push_blobs(client, REPO, child)
        assert (await put_manifest(client, REPO, child.digest, child)).status_code == 201
    temp = await registry.rows("select name, hidden, lifetime_end_ms - lifetime_start_ms from tag")
    assert all(name.startswith("$temp-") and hidden for name, hidden, _ in temp)  # type: ignore[union-attr]
    assert {lifetime for *_, lifetime in temp} == {3_600_000}
    index = index_of(*children)
    assert (await put_manifest(client, REPO, "v1", index)).status_code == 201
    assert len(await registry.rows("select id from manifestchild")) == 2
    assert await registry.rows(
        "select count(*) from manifestblob mb join manifest m on m.id = mb.manifest_id "
        f"where m.digest = '{index.digest}'"
    ) == [(0,)]
    # The temp tags expire; the children are still served, through the tagged index.
    await registry.rows("update tag set lifetime_end_ms = 1 where hidden")
    for child in children:
        got = await client.get(f"/v2/{REPO}/manifests/{child.digest}")
        assert got.status_code == 200
    assert (await client.get(f"/v2/{REPO}/manifests/v1")).headers["Content-Type"] == OCI_INDEX


async def test_references_must_exist(
    client: httpx.AsyncClient, registry: RegistryUnderTest
) -> None:
    image = oci_image()
    await client.post(f"/v2/{REPO}/blobs/uploads/?digest={sha256(b'x')}", content=b"x")
    response = await put_manifest(client, REPO, "v1", image)
    assert response.status_code == 400
    errors = response.json()["errors"]
    assert [e["code"] for e in errors] == ["MANIFEST_BLOB_UNKNOWN"] * 2
    assert {e["detail"]["digest"] for e in errors} == set(image.blobs)
    missing_child = index_of(oci_image())
    response = await put_manifest(client, REPO, "v2", missing_child)
    assert response.status_code == 400
    assert error_codes(response) == ["MANIFEST_BLOB_UNKNOWN"]
    assert await registry.rows("select id from manifest") == []
    assert await registry.rows("select id from tag") == []
    # A blob of another repository is not enough.
    other = oci_image()
    await push_blobs(client, "other/repo", other)
    assert (await put_manifest(client, REPO, "v3", other)).status_code == 400


async def test_bad_manifests(client: httpx.AsyncClient, registry: RegistryUnderTest) -> None:
    url = f"/v2/{REPO}/manifests/v1"
    cases = [
        (b"not json", OCI_MANIFEST),
        (b'{"schemaVersion": 2, "mediaType": "' + OCI_MANIFEST.encode() + b'"}', OCI_MANIFEST),
        (json.dumps({"schemaVersion": 1, "name": "x"}).encode(), "application/json"),
        (oci_image().manifest, DOCKER_MANIFEST),  # Content-Type contradicts mediaType
        (b"\xff\xfe", OCI_MANIFEST),
    ]
    for body, content_type in cases:
        response = await client.put(url, content=body, headers={"Content-Type": content_type})
        assert response.status_code == 400, body
        assert error_codes(response) == ["MANIFEST_INVALID"]
    huge = b'{"schemaVersion": 2, "x": "' + b"a" * (4 * 1024 * 1024) + b'"}'
    response = await client.put(url, content=huge, headers={"Content-Type": OCI_MANIFEST})
    assert response.status_code == 413
    assert error_codes(response) == ["MANIFEST_INVALID"]
    response = await client.put(f"/v2/{REPO}/manifests/bad%20tag", content=b"{}")
    assert response.status_code == 400
    response = await client.put(f"/v2/{REPO}/manifests/v1?tag=-bad", content=oci_image().manifest)
    assert response.status_code == 400
    assert await registry.rows("select id from manifest") == []


async def test_push_by_digest_with_tags_and_digest_checks(
    client: httpx.AsyncClient, registry: RegistryUnderTest
) -> None:
    image = oci_image()
    await push_blobs(client, REPO, image)
    wrong = sha256(b"something else")
    response = await put_manifest(client, REPO, wrong, image)
    assert response.status_code == 400
    assert error_codes(response) == ["DIGEST_INVALID"]

    response = await put_manifest(
        client, REPO, image.digest, image, params=[("tag", "a"), ("tag", "b")]
    )
    assert response.status_code == 201
    assert response.headers.get_list("OCI-Tag") == ["a", "b"]
    for tag in ("a", "b"):
        assert (await client.get(f"/v2/{REPO}/manifests/{tag}")).content == image.manifest
    # The tags protect it for ever: no hidden temp tag is needed.
    hidden = await registry.rows("select count(*) from tag where hidden")
    assert hidden == [(0,)]

    sha512 = "sha512:" + hashlib.sha512(image.manifest).hexdigest()
    await push_blobs(client, "library/other", image)
    response = await put_manifest(client, "library/other", sha512, image)
    assert response.status_code == 201
    assert response.headers["Docker-Content-Digest"] == sha512
    assert (await client.get(f"/v2/library/other/manifests/{sha512}")).content == image.manifest


async def test_delete_by_tag_and_by_digest(
    client: httpx.AsyncClient, registry: RegistryUnderTest
) -> None:
    image = oci_image()
    await push_image(client, REPO, "v1", image)
    await put_manifest(client, REPO, "v2", image)
    deleted = await client.delete(f"/v2/{REPO}/manifests/v1")
    assert deleted.status_code == 202
    gone = await client.get(f"/v2/{REPO}/manifests/v1")
    assert gone.status_code == 404
    assert gone.json()["errors"][0]["detail"]["reason"] == "the tag has expired or was deleted"
    assert (await client.delete(f"/v2/{REPO}/manifests/v1")).status_code == 404
    assert (await client.get(f"/v2/{REPO}/manifests/v2")).status_code == 200

    assert (await client.delete(f"/v2/{REPO}/manifests/{image.digest}")).status_code == 202
    assert (await client.get(f"/v2/{REPO}/manifests/v2")).status_code == 404
    assert (await client.get(f"/v2/{REPO}/manifests/{image.digest}")).status_code == 404
    assert (await client.delete(f"/v2/{REPO}/manifests/{image.digest}")).status_code == 404
    # Rows stay for garbage collection, as in Quay.
    assert len(await registry.rows("select id from manifest")) == 1
    assert await registry.rows("select count(*) from tag where lifetime_end_ms is null") == [(0,)]


async def test_concurrent_pushes_of_one_tag_leave_one_alive_row(
    client: httpx.AsyncClient, registry: RegistryUnderTest
) -> None:
    images = [oci_image() for _ in range(8)]
    for image in images:
        await push_blobs(client, REPO, image)
    responses = await asyncio.gather(*(put_manifest(client, REPO, "race", i) for i in images))
    assert [r.status_code for r in responses] == [201] * len(images)
    alive = await registry.rows(
        "select count(*) from tag where name = 'race' and lifetime_end_ms is null"
    )
    assert alive == [(1,)]
    # The same manifest pushed concurrently is stored once.
    same = oci_image()
    await push_blobs(client, REPO, same)
    responses = await asyncio.gather(*(put_manifest(client, REPO, f"t{i}", same) for i in range(6)))
    assert {r.status_code for r in responses} == {201}
    count = await registry.rows(f"select count(*) from manifest where digest = '{same.digest}'")
    assert count == [(1,)]


async def test_pull_rules(registry: RegistryUnderTest, client: httpx.AsyncClient) -> None:
    image = oci_image()
    await push_image(client, REPO, "v1", image)
    anonymous = await registry.client(login=None)
    assert (await anonymous.get(f"/v2/{REPO}/manifests/v1")).status_code == 401
    pulled = await registry.client(login=None)
    token = await registry.token(f"repository:{REPO}:pull", login=None)
    headers = {"Authorization": f"Bearer {token}"}
    assert (await pulled.get(f"/v2/{REPO}/manifests/v1", headers=headers)).status_code == 200
    refused = await pulled.put(f"/v2/{REPO}/manifests/v2", content=image.manifest, headers=headers)
    assert refused.status_code == 401
    assert (await client.get("/v2/library/nothing/manifests/v1")).status_code == 404
    assert error_codes(await client.get("/v2/library/nothing/manifests/v1")) == ["NAME_UNKNOWN"]
    assert error_codes(await client.get(f"/v2/{REPO}/manifests/missing")) == ["MANIFEST_UNKNOWN"]
    bad = await client.get(f"/v2/{REPO}/manifests/sha256:abc")
    assert bad.status_code == 400
    assert error_codes(bad) == ["DIGEST_INVALID"]
