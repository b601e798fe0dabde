"""Tags list, catalog and referrers through the HTTP API."""

from __future__ import annotations

import httpx

from tests.integration.registry.conftest import RegistryUnderTest
from tests.integration.registry.images import (
    OCI_INDEX,
    descriptor,
    oci_image,
    push_blobs,
    push_image,
    put_manifest,
)

REPO = "library/app"


async def test_tags_list_paginates_in_lexical_order(client: httpx.AsyncClient) -> None:
    image = oci_image()
    await push_image(client, REPO, "v1", image)
    names = ["v1", "b", "A", "a", "Z", "latest", "1.0"]
    for name in names[1:]:
        assert (await put_manifest(client, REPO, name, image)).status_code == 201
    expected = sorted(names)  # byte order: digits, upper case, lower case
    everything = await client.get(f"/v2/{REPO}/tags/list")
    assert everything.json() == {"name": REPO, "tags": expected}
    assert "Link" not in everything.headers

    seen: list[str] = []
    url: str | None = f"/v2/{REPO}/tags/list?n=3"
    while url is not None:
        page = await client.get(url)
        assert page.status_code == 200
        seen += page.json()["tags"]
        assert len(page.json()["tags"]) <= 3
        link = page.headers.get("Link")
        url = link.split(";")[0].strip("<>") if link else None
    assert seen == expected

    after = await client.get(f"/v2/{REPO}/tags/list", params={"last": "Z"})
    assert after.json()["tags"] == [t for t in expected if t > "Z"]
    assert (await client.get(f"/v2/{REPO}/tags/list?n=0")).json()["tags"] == []
    bad = await client.get(f"/v2/{REPO}/tags/list?n=-1")
    assert bad.status_code == 400
    assert bad.json()["errors"][0]["code"] == "PAGINATION_NUMBER_INVALID"

    # Deleted tags and hidden temp tags are not listed.
    await client.delete(f"/v2/{REPO}/manifests/b")
    await put_manifest(client, REPO, oci_image().digest, image)  # digest mismatch: refused
    pushed = oci_image()
    await push_blobs(client, REPO, pushed)
    await put_manifest(client, REPO, pushed.digest, pushed)
    listed = (await client.get(f"/v2/{REPO}/tags/list")).json()["tags"]
    assert listed == [t for t in expected if t != "b"]
    missing = await client.get("/v2/library/none/tags/list")
    assert missing.status_code == 404
    assert missing.json()["errors"][0]["code"] == "NAME_UNKNOWN"


async def test_catalog_lists_what_the_caller_may_pull(
    registry: RegistryUnderTest, client: httpx.AsyncClient
) -> None:
    for repo in ("zeta/app", "alpha/app", "alpha/app2", "mid/one/two"):
        await push_image(client, repo, "v1", oci_image())
    await registry.rows("update repository set visibility_id = 2 where name = 'app2'")
    full = await client.get("/v2/_catalog")
    assert full.status_code == 200
    assert full.json() == {"repositories": ["alpha/app", "alpha/app2", "mid/one/two", "zeta/app"]}
    page = await client.get("/v2/_catalog?n=2")
    assert page.json()["repositories"] == ["alpha/app", "alpha/app2"]
    assert page.headers["Link"] == '</v2/_catalog?n=2&last=alpha%2Fapp2>; rel="next"'
    rest = await client.get("/v2/_catalog?n=2&last=alpha%2Fapp2")
    assert rest.json()["repositories"] == ["mid/one/two", "zeta/app"]

    anonymous = await registry.client(login=None)
    challenged = await anonymous.get("/v2/_catalog")
    assert challenged.status_code == 401
    assert 'scope="registry:catalog:*"' in challenged.headers["WWW-Authenticate"]
    token = await registry.token("registry:catalog:*", login=None)
    listed = await anonymous.get("/v2/_catalog", headers={"Authorization": f"Bearer {token}"})
    assert listed.json()["repositories"] == ["alpha/app", "mid/one/two", "zeta/app"]


async def test_referrers(client: httpx.AsyncClient, registry: RegistryUnderTest) -> None:
    subject = oci_image()
    await push_image(client, REPO, "v1", subject)
    subject_descriptor = descriptor(subject.media_type, subject.manifest)
    signature = oci_image(
        subject=subject_descriptor,
        artifact_type="application/vnd.example.signature",
        annotations={"org.example": "yes"},
    )
    sbom = oci_image(subject=subject_descriptor, artifact_type="application/spdx+json")
    for referrer in (signature, sbom):
        await push_blobs(client, REPO, referrer)
        response = await put_manifest(client, REPO, referrer.digest, referrer)
        assert response.status_code == 201
        assert response.headers["OCI-Subject"] == subject.digest
    # Referrers pushed by digest never expire (Quay: a temp tag with no end).
    assert await registry.rows(
        "select count(*) from tag where hidden and lifetime_end_ms is null"
    ) == [(2,)]

    listing = await client.get(f"/v2/{REPO}/referrers/{subject.digest}")
    assert listing.status_code == 200
    assert listing.headers["Content-Type"] == OCI_INDEX
    index = listing.json()
    assert index["schemaVersion"] == 2
    assert index["mediaType"] == OCI_INDEX
    by_digest = {m["digest"]: m for m in index["manifests"]}
    assert by_digest[signature.digest] == {
        "mediaType": signature.media_type,
        "digest": signature.digest,
        "size": len(signature.manifest),
        "artifactType": "application/vnd.example.signature",
        "annotations": {"org.example": "yes"},
    }
    assert by_digest[sbom.digest]["artifactType"] == "application/spdx+json"
    assert "OCI-Filters-Applied" not in listing.headers

    filtered = await client.get(
        f"/v2/{REPO}/referrers/{subject.digest}",
        params={"artifactType": "application/spdx+json"},
    )
    assert filtered.headers["OCI-Filters-Applied"] == "artifactType"
    assert [m["digest"] for m in filtered.json()["manifests"]] == [sbom.digest]

    # A subject that is not there yet has an empty list, not a 404.
    unknown = await client.get(f"/v2/{REPO}/referrers/{oci_image().digest}")
    assert unknown.status_code == 200
    assert unknown.json()["manifests"] == []
    # Deleting a referrer by digest removes it from the list.
    assert (await client.delete(f"/v2/{REPO}/manifests/{sbom.digest}")).status_code == 202
    after = await client.get(f"/v2/{REPO}/referrers/{subject.digest}")
    assert [m["digest"] for m in after.json()["manifests"]] == [signature.digest]
    bad = await client.get(f"/v2/{REPO}/referrers/sha256:nothex")
    assert bad.status_code == 400
    assert bad.json()["errors"][0]["code"] == "DIGEST_INVALID"
