"""One database, two registries: what Wharf writes, Quay's queries read, and the reverse.

Quay's side is played by its SQL, taken from the reference (`shared/reference/quay-db.md`):
the GET-by-tag query, the blob lookups and the rows of a push, written by hand.
"""

from __future__ import annotations

import hashlib
import json
import os
import time

import httpx

from tests.integration.registry.conftest import RegistryUnderTest
from tests.integration.registry.images import (
    OCI_INDEX,
    OCI_MANIFEST,
    index_of,
    oci_image,
    push_blobs,
    push_image,
    put_manifest,
    sha256,
)

REPO = "quayorg/shared"


def quay_tag_query(repository_id: int, tag: str, now_ms: int) -> str:
    # Quay's GET-by-tag: no ORDER BY, uniqueness is the writers' job.
    return (
        "SELECT manifest.digest, manifest.manifest_bytes, mediatype.name FROM tag "
        "JOIN manifest ON tag.manifest_id = manifest.id "
        "JOIN mediatype ON mediatype.id = manifest.media_type_id "
        f"WHERE tag.repository_id = {repository_id} AND tag.name = '{tag}' AND "
        f"(tag.lifetime_end_ms IS NULL OR tag.lifetime_end_ms > {now_ms}) "
        "AND tag.hidden = false LIMIT 1"
    )


def quay_blob_query(repository_id: int, digest: str) -> str:
    return (
        "SELECT imagestorage.uuid, imagestorage.image_size FROM imagestorage "
        "JOIN uploadedblob ON uploadedblob.blob_id = imagestorage.id "
        f"WHERE uploadedblob.repository_id = {repository_id} "
        f"AND imagestorage.content_checksum = '{digest}' "
        "UNION SELECT imagestorage.uuid, imagestorage.image_size FROM imagestorage "
        "JOIN manifestblob ON manifestblob.blob_id = imagestorage.id "
        f"WHERE manifestblob.repository_id = {repository_id} "
        f"AND imagestorage.content_checksum = '{digest}'"
    )


async def repository_id(registry: RegistryUnderTest, name: str) -> int:
    namespace, repo = name.split("/", 1)
    rows = await registry.rows(
        'SELECT repository.id FROM repository JOIN "user" ON "user".id = '
        f"repository.namespace_user_id WHERE \"user\".username = '{namespace}' "
        f"AND repository.name = '{repo}' AND repository.state != 3"
    )
    assert len(rows) == 1
    return int(rows[0][0])  # type: ignore[call-overload]


async def test_quay_reads_what_wharf_pushed(
    client: httpx.AsyncClient, registry: RegistryUnderTest
) -> None:
    image = oci_image()
    await push_image(client, REPO, "v1", image)
    children = [oci_image(), oci_image()]
    for child in children:
        await push_blobs(client, REPO, child)
        await put_manifest(client, REPO, child.digest, child)
    index = index_of(*children)
    await put_manifest(client, REPO, "multi", index)

    repo_id = await repository_id(registry, REPO)
    now = int(time.time() * 1000)
    assert await registry.rows(quay_tag_query(repo_id, "v1", now)) == [
        (image.digest, image.manifest.decode(), OCI_MANIFEST)
    ]
    ((digest, text, media_type),) = await registry.rows(quay_tag_query(repo_id, "multi", now))
    assert (digest, text.encode(), media_type) == (index.digest, index.manifest, OCI_INDEX)  # type: ignore[union-attr]
    for blob_digest, data in image.blobs.items():
        found = await registry.rows(quay_blob_query(repo_id, blob_digest))
        assert len(found) == 1
        assert found[0][1] == len(data)
    # Every child is linked to the index, as Quay's GC and GET-by-digest expect.
    links = await registry.rows(
        "SELECT child.digest FROM manifestchild JOIN manifest parent ON parent.id = "
        "manifestchild.manifest_id JOIN manifest child ON child.id = "
        f"manifestchild.child_manifest_id WHERE parent.digest = '{index.digest}'"
    )
    assert sorted(d for (d,) in links) == sorted(c.digest for c in children)
    # Exactly one alive visible row per tag name.
    counts = await registry.rows(
        "SELECT name, count(*) FROM tag WHERE hidden = false AND lifetime_end_ms IS NULL "
        "GROUP BY name ORDER BY name"
    )
    assert counts == [("multi", 1), ("v1", 1)]


async def test_wharf_reads_what_quay_pushed(
    client: httpx.AsyncClient, registry: RegistryUnderTest
) -> None:
    # The repository exists (Quay created it); everything else is Quay's write sequence.
    await client.post(f"/v2/{REPO}/blobs/uploads/")
    repo_id = await repository_id(registry, REPO)
    layer = os.urandom(1000)
    config = json.dumps({"architecture": "amd64", "os": "linux"}).encode()
    location = await registry.rows("SELECT id FROM imagestoragelocation WHERE name = 'local_us'")
    storage_ids = []
    for blob in (config, layer):
        digest = sha256(blob)
        hexpart = digest.split(":")[1]
        path = registry.storage_root / "sha256" / hexpart[:2] / hexpart
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(blob)
        await registry.rows(
            "INSERT INTO imagestorage (uuid, image_size, uncompressed_size, uploading,"
            " cas_path, content_checksum) VALUES "
            f"('{hashlib.md5(blob).hexdigest()}', {len(blob)}, NULL, false, true,"
            f" '{digest}')"
        )
        ((storage_id,),) = await registry.rows(
            f"SELECT id FROM imagestorage WHERE content_checksum = '{digest}'"
        )
        storage_ids.append(storage_id)
        await registry.rows(
            "INSERT INTO imagestorageplacement (storage_id, location_id) VALUES "
            f"({storage_id}, {location[0][0]})"
        )
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": sha256(config),
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": sha256(layer),
                    "size": len(layer),
                }
            ],
        },
        # `text()` reads `:2` as a bind parameter: keep json's default spacing.
    ).encode()
    ((media_type_id,),) = await registry.rows(
        f"SELECT id FROM mediatype WHERE name = '{OCI_MANIFEST}'"
    )
    await registry.rows(
        "INSERT INTO manifest (repository_id, digest, media_type_id, manifest_bytes,"
        " config_media_type, layers_compressed_size, subject_backfilled,"
        " artifact_type_backfilled) VALUES "
        f"({repo_id}, '{sha256(manifest)}', {media_type_id}, '{manifest.decode()}',"
        " 'application/vnd.oci.image.config.v1+json', 1000, true, true)"
    )
    ((manifest_id,),) = await registry.rows(
        f"SELECT id FROM manifest WHERE digest = '{sha256(manifest)}'"
    )
    for storage_id in storage_ids:
        await registry.rows(
            "INSERT INTO manifestblob (repository_id, manifest_id, blob_id) VALUES "
            f"({repo_id}, {manifest_id}, {storage_id})"
        )
    now = int(time.time() * 1000)
    await registry.rows(
        "INSERT INTO tag (name, repository_id, manifest_id, lifetime_start_ms, hidden,"
        f" reversion, tag_kind_id, immutable) VALUES ('quay', {repo_id}, {manifest_id},"
        f" {now}, false, false, 1, false)"
    )

    got = await client.get(f"/v2/{REPO}/manifests/quay")
    assert got.status_code == 200
    assert got.content == manifest
    assert got.headers["Docker-Content-Digest"] == sha256(manifest)
    assert (await client.get(f"/v2/{REPO}/blobs/{sha256(layer)}")).content == layer
    assert (await client.get(f"/v2/{REPO}/tags/list")).json()["tags"] == ["quay"]
    # Wharf moves Quay's tag the Quay way: end the row, insert a new one.
    moved = oci_image()
    await push_image(client, REPO, "quay", moved)
    history = await registry.rows(
        "SELECT manifest_id, lifetime_end_ms IS NULL FROM tag WHERE name = 'quay' ORDER BY id"
    )
    assert [(m, bool(open_)) for m, open_ in history] == [
        (manifest_id, False),
        (history[1][0], True),
    ]
    assert history[1][0] != manifest_id
