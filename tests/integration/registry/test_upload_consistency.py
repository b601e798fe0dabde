"""Bodies that end early or run long never leave storage and the upload row disagreeing."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.integration.registry.conftest import local_context
from wharf.registry.errors import RegistryError
from wharf.registry.names import RepositoryName
from wharf.registry.repositories import create_repository
from wharf.registry.uploads import Uploads
from wharf.storage.streams import iterate_bytes


@pytest.fixture
async def uploads(tmp_path: Path) -> AsyncIterator[tuple[Uploads, int]]:
    context = await local_context(tmp_path, tmp_path / "wharf.db")
    db = context.db
    async with db.writer() as session:
        repository = await create_repository(session, RepositoryName("ns", "repo"), public=True)
    yield Uploads(context), repository.id
    await db.dispose()


@pytest.mark.parametrize("body", [b"12345", b"1234567890123"], ids=["short", "long"])
async def test_a_body_of_the_wrong_length_is_refused_and_the_upload_goes_on(
    uploads: tuple[Uploads, int], body: bytes
) -> None:
    service, repository_id = uploads
    upload_id = await service.start(repository_id)
    assert await service.append(repository_id, upload_id, iterate_bytes(b"abc")) == 3
    with pytest.raises(RegistryError) as info:
        await service.append(repository_id, upload_id, iterate_bytes(body), start=3, length=10)
    assert info.value.code.code == "SIZE_INVALID"
    state = await service.state(repository_id, upload_id)
    assert state.byte_count == 3
    # The next chunk lands where the row says the upload ends, and the digest is right.
    assert await service.append(repository_id, upload_id, iterate_bytes(b"defg"), start=3) == 7
    digest = "sha256:" + hashlib.sha256(b"abcdefg").hexdigest()
    blob = await service.finish(repository_id, upload_id, digest)
    assert blob.size == 7
