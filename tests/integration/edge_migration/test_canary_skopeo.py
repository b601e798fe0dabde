"""`skopeo copy` through the edge: a canary repository and organisation land on Wharf, the
rest on the legacy registry, and both pull back byte for byte through the other replica.

Where an image landed is read on each registry directly, not through the edge: the edge
routes reads by the same table, so it could not tell a misrouted push from a correct one.

skopeo authenticates only if its ping of `/v2/` is challenged. `/v2/` names no repository
and goes to the owner, here a legacy registry without auth, so with the plain table skopeo
never asks for a token and the canary answers 401 (docs/edge.md says so). The working
table answers `/v2/` and every token request on Wharf: the challenge then points at the
edge's `/v2/auth`, Wharf issues the token whatever the repository, and distribution ignores
it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import pytest

from tests.e2e.ocilayout import OCI_MANIFEST, Layout, image_layout
from tests.e2e.registries import Registry, bearer_token
from tests.e2e.test_skopeo import skopeo
from tests.integration.edge_migration.topology import Topology
from tests.servers import unavailable

pytestmark = [pytest.mark.server("docker-registry"), pytest.mark.server("skopeo")]

LAYER_SIZE = 64 << 10


@pytest.fixture(scope="module", autouse=True)
def needs_skopeo() -> None:
    """Before the topology (autouse fixtures come first in their scope): without skopeo,
    skip or fail at once instead of starting four servers for nothing."""
    if shutil.which("skopeo") is None:
        unavailable("skopeo")


def manifest_on(registry: Registry, repository: str, reference: str) -> httpx.Response:
    """The manifest as `registry` itself serves it (a token when it asks for one)."""
    token = bearer_token(registry, f"repository:{repository}:pull")
    headers = {"Accept": OCI_MANIFEST}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return httpx.get(
        f"{registry.url}/v2/{repository}/manifests/{reference}", headers=headers, timeout=10
    )


@pytest.mark.parametrize(
    ("repository", "expected"),
    [("orga/app", "wharf"), ("orgc/tool", "wharf"), ("orgb/other", "legacy")],
    ids=["canary-repo", "canary-org", "owner"],
)
def test_skopeo_copy_lands_by_the_canary_and_pulls_back(
    topology: Topology, home: Path, tmp_path: Path, repository: str, expected: str
) -> None:
    source = Layout(tmp_path / "source")
    manifest = image_layout(source.root, "v1", LAYER_SIZE, compress=True)
    user, password = topology.wharf.credentials()
    wanted, other = (
        (topology.wharf, topology.legacy)
        if expected == "wharf"
        else (topology.legacy, topology.wharf)
    )
    with topology.changed(topology.table(base_and_auth_on_wharf=True), "skopeo authenticates"):
        skopeo(
            "copy", "--preserve-digests", "--dest-tls-verify=false",
            f"--dest-creds={user}:{password}", f"oci:{source.root}:v1",
            f"docker://{topology.a.host}/{repository}:v1",
        )  # fmt: skip

        landed = manifest_on(wanted, repository, "v1")
        assert landed.status_code == 200, f"not on {wanted.kind}: {landed.text}"
        assert landed.content == source.blob(manifest.digest)
        elsewhere = manifest_on(other, repository, "v1")
        assert elsewhere.status_code == 404, f"also on {other.kind}: {elsewhere.status_code}"

        pulled = Layout(tmp_path / "pulled")
        skopeo(
            "copy", "--preserve-digests", "--src-tls-verify=false",
            f"--src-creds={user}:{password}",
            f"docker://{topology.b.host}/{repository}:v1", f"oci:{pulled.root}:v1",
        )  # fmt: skip
    assert pulled.resolve("v1").digest == manifest.digest
    assert pulled.closure(pulled.resolve("v1")) == source.closure(manifest)


def test_skopeo_to_the_legacy_owner_with_the_plain_table(
    topology: Topology, home: Path, tmp_path: Path
) -> None:
    """No auth anywhere on this path: the plain table is enough."""
    source = Layout(tmp_path / "source")
    manifest = image_layout(source.root, "v1", LAYER_SIZE, compress=True)
    ref = f"docker://{topology.a.host}/orgb/plain:v1"
    skopeo("copy", "--preserve-digests", "--dest-tls-verify=false", f"oci:{source.root}:v1", ref)
    assert manifest_on(topology.legacy, "orgb/plain", "v1").content == source.blob(manifest.digest)
    assert manifest_on(topology.wharf, "orgb/plain", "v1").status_code == 404
