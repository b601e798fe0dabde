"""Switches under load: an organisation flipped to Wharf while 20 chunked pushes are in flight
through both replicas, and a rollback with `wharf edge rollback` served by both replicas
within a second.

Blobs are checked on each registry directly: through the edge, reads follow the table, so
after the flip a read of `orgm/*` would ask Wharf whatever happened to the upload.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
from datetime import datetime

import httpx
import pytest

from tests.e2e.registries import Registry
from tests.integration.edge_migration.client import RegistryClient, digest_of, manifest_for
from tests.integration.edge_migration.topology import (
    CANARY_ORGANISATIONS,
    PROPAGATION_LIMIT_S,
    Replica,
    Topology,
    wharf_command,
)

pytestmark = pytest.mark.server("docker-registry")

PUSHES = 20
CHUNKS = 4
CHUNK_BYTES = 16 << 10


def blob_on(
    registry: Registry, repository: str, digest: str, token: str | None = None
) -> httpx.Response:
    """The blob as `registry` itself serves it (distribution asks for no token)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    url = f"{registry.url}/v2/{repository}/blobs/{digest}"
    return httpx.get(url, headers=headers, timeout=10)


def answering_upstream(replica: Replica, repository: str) -> str:
    """Which registry answers a tag list through `replica`: Wharf challenges for a token,
    distribution (no auth) says the repository is unknown."""
    answer = httpx.get(f"{replica.proxy}/v2/{repository}/tags/list", timeout=5)
    if answer.status_code == 401 and answer.headers["www-authenticate"].startswith("Bearer "):
        return "wharf"
    if answer.status_code == 404 and "www-authenticate" not in answer.headers:
        assert answer.json()["errors"][0]["code"] == "NAME_UNKNOWN", answer.text
        return "legacy"
    raise AssertionError(f"neither registry's answer: {answer.status_code} {answer.text}")


async def test_a_flip_in_the_middle_of_twenty_chunked_pushes(topology: Topology) -> None:
    bases = [replica.proxy for replica in topology.replicas]
    blobs = {f"orgm/push-{i:02d}": os.urandom(CHUNKS * CHUNK_BYTES) for i in range(PUSHES)}
    posted: list[str] = []
    all_posted, flipped = asyncio.Event(), asyncio.Event()

    async def push(index: int, repository: str, data: bytes, client: RegistryClient) -> None:
        # The POST alternates replicas per push, and each later step alternates again, so
        # most steps reach the replica that did not pin the session and must read the pin.
        started = await client.start_upload(bases[index % 2], repository)
        assert started.status_code == 202, f"{repository}: {started.status_code} {started.text}"
        location = started.headers["location"]
        posted.append(repository)
        if len(posted) == PUSHES:
            all_posted.set()
        for step in range(CHUNKS):
            if step == 1:
                await flipped.wait()  # the first chunk may cross the flip; the rest follow it
            await asyncio.sleep(0.01 * (index % 5))  # a little jitter between clients
            offset = step * CHUNK_BYTES
            chunk = data[offset : offset + CHUNK_BYTES]
            patched = await client.patch(bases[(index + step + 1) % 2], location, offset, chunk)
            assert patched.status_code == 202, f"{repository} chunk {step}: {patched.text}"
            location = patched.headers["location"]
        done = await client.finish(bases[index % 2], location, digest_of(data))
        assert done.status_code == 201, f"{repository}: {done.status_code} {done.text}"
        assert done.headers["docker-content-digest"] == digest_of(data)

    flip = topology.table(organisations=(*CANARY_ORGANISATIONS, "orgm"))
    limits = httpx.Limits(max_connections=2 * PUSHES)
    async with httpx.AsyncClient(timeout=30, limits=limits) as http:
        client = RegistryClient(http, topology.wharf.credentials())
        try:
            # A failing push cancels the others and this block: nothing waits forever.
            async with asyncio.TaskGroup() as group:
                for index, (repository, data) in enumerate(blobs.items()):
                    group.create_task(push(index, repository, data, client))
                await all_posted.wait()
                # In a thread, so that first chunks in flight cross the flip on the wire.
                version = await asyncio.to_thread(topology.put_table, flip, "orgm to wharf")
                flipped.set()  # stored, and served by both replicas

            # A push that starts now goes to Wharf, token and all through the edge.
            fresh = os.urandom(CHUNK_BYTES)
            digest = await client.push_blob(bases, "orgm/after-flip", fresh)
            assert client.realms, "Wharf never asked for a token"
            assert all(realm.startswith(tuple(bases)) for realm in client.realms), client.realms
        finally:
            if flipped.is_set():
                await asyncio.to_thread(topology.rollback, "orgm back")

    # Every step of the pushes that the new table served went to legacy by its pin.
    after = [
        (entry["method"], entry["upstream"], entry["reason"])
        for replica in topology.replicas
        for entry in replica.access_log()
        if entry["path"].startswith("/v2/orgm/push-") and entry["table_version"] == version
    ]
    assert len(after) >= PUSHES * CHUNKS  # chunks 2 to 4 and the final PUT, at least
    assert set(after) <= {("PATCH", "legacy", "sticky"), ("PUT", "legacy", "sticky")}

    token = topology.wharf_token([*blobs, "orgm/after-flip"])
    assert blob_on(topology.wharf, "orgm/after-flip", digest, token).content == fresh
    assert blob_on(topology.legacy, "orgm/after-flip", digest).status_code == 404
    for repository, data in blobs.items():
        on_legacy = blob_on(topology.legacy, repository, digest_of(data))
        assert on_legacy.status_code == 200, f"{repository} not on legacy: {on_legacy.text}"
        assert on_legacy.content == data
        assert blob_on(topology.wharf, repository, digest_of(data), token).status_code == 404


async def test_a_push_straddling_the_flip_completes_with_its_manifest(topology: Topology) -> None:
    repository, bases = "orgn/straddle", [replica.proxy for replica in topology.replicas]
    config, layer = b'{"architecture":"amd64","os":"linux"}', os.urandom(CHUNK_BYTES)
    async with httpx.AsyncClient(timeout=30) as http:
        client = RegistryClient(http, topology.wharf.credentials())
        await client.push_blob(bases, repository, config)
        started = await client.start_upload(bases[0], repository)
        assert started.status_code == 202, started.text
        flip = topology.table(organisations=(*CANARY_ORGANISATIONS, "orgn"))
        with topology.changed(flip, "orgn to wharf"):
            patched = await client.patch(bases[1], started.headers["location"], 0, layer)
            assert patched.status_code == 202, patched.text
            finished = await client.finish(bases[0], patched.headers["location"], digest_of(layer))
            assert finished.status_code == 201, finished.text  # sticky: on legacy
            body = manifest_for(config, [layer])
            manifest = await client.put_manifest(bases[1], repository, "v1", body)
            assert manifest.status_code == 201, f"{manifest.status_code} {manifest.text}"


def test_a_rollback_reaches_both_replicas_within_a_second(topology: Topology) -> None:
    changed = topology.put_table(
        topology.table(organisations=(*CANARY_ORGANISATIONS, "orgr")), "orgr to wharf"
    )
    try:
        assert [answering_upstream(r, "orgr/app") for r in topology.replicas] == ["wharf"] * 2
        rollback = [
            "edge", "rollback", "--reason", "errors on orgr", "--admin-url", topology.a.admin,
            "--token-file", str(topology.token_file), "--json",
        ]  # fmt: skip
        done = subprocess.run(
            wharf_command(*rollback), capture_output=True, text=True, timeout=60, check=False
        )
        assert done.returncode == 0, done.stderr
        answer = json.loads(done.stdout)
        assert answer["version"] == changed + 1
        assert answer["reason"] == f"rollback to v{changed - 1}: errors on orgr"
        # From the moment the store holds the rollback (its own timestamp; one clock, one
        # machine) to each replica both reporting it and routing orgr back to legacy.
        stored_at = datetime.fromisoformat(answer["created_at"]).timestamp()
        seen: dict[str, float] = {}
        while len(seen) < 2:
            for replica in topology.replicas:
                if (
                    replica.name not in seen
                    and replica.version() == changed + 1
                    and answering_upstream(replica, "orgr/app") == "legacy"
                ):
                    seen[replica.name] = time.time() - stored_at
            elapsed = time.time() - stored_at
            assert elapsed < PROPAGATION_LIMIT_S, f"rollback not everywhere after {elapsed:.2f} s"
            time.sleep(0.01)
        print(f"\nrollback in force: {', '.join(f'{n} {s:.3f} s' for n, s in seen.items())}")
        assert answering_upstream(topology.b, "orga/app") == "wharf"  # the rest untouched
    finally:
        if topology.a.version() == changed:  # the rollback did not happen: undo the change
            topology.rollback("cleanup after a failed test")
