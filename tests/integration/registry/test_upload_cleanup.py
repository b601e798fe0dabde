"""Abandoned uploads are cancelled after BLOBUPLOAD_DELETION_DATE_THRESHOLD; live ones stay."""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, text, update

from tests.conftest import raw_s3_client
from tests.integration.registry.conftest import local_context
from tests.integration.test_s3_storage import s3_driver
from tests.servers import S3Server
from wharf.db.models import BlobUpload, localnow
from wharf.registry import upload_cleanup
from wharf.registry.context import RegistryContext
from wharf.registry.names import RepositoryName
from wharf.registry.repositories import create_repository
from wharf.registry.upload_cleanup import CleanupReport, UploadCleanup
from wharf.registry.uploads import Uploads
from wharf.storage import (
    BackendUnavailable,
    DistributedStorage,
    InvalidUpload,
)
from wharf.storage.streams import iterate_bytes

TWO_DAYS = timedelta(days=2)


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[tuple[RegistryContext, Uploads, int]]:
    context = await local_context(tmp_path / "storage", tmp_path / "wharf.db")
    db = context.db
    async with db.writer() as session:
        repository = await create_repository(session, RepositoryName("ns", "repo"), public=True)
    yield context, Uploads(context), repository.id
    await db.dispose()


async def age(context: RegistryContext, upload_id: str, by: timedelta) -> None:
    async with context.db.writer() as session:
        await session.execute(
            update(BlobUpload).where(BlobUpload.uuid == upload_id).values(created=localnow() - by)
        )


async def upload_ids(context: RegistryContext) -> set[str]:
    async with context.db.reader() as session:
        return set((await session.execute(select(BlobUpload.uuid))).scalars())


def upload_file(tmp_path: Path, upload_id: str) -> Path:
    return tmp_path / "storage" / "uploads" / upload_id


async def test_stale_uploads_go_and_live_ones_stay(
    service: tuple[RegistryContext, Uploads, int], tmp_path: Path
) -> None:
    context, uploads, repository_id = service
    stale = await uploads.start(repository_id)
    await uploads.append(repository_id, stale, iterate_bytes(b"abandoned bytes"))
    live = await uploads.start(repository_id)
    await uploads.append(repository_id, live, iterate_bytes(b"still "))
    await age(context, stale, TWO_DAYS + timedelta(minutes=1))
    await age(context, live, TWO_DAYS - timedelta(minutes=5))
    # A file of a crashed process, with no row, as old as the stale upload.
    stray = upload_file(tmp_path, "crashed-upload")
    stray.write_bytes(b"x")
    old = time.time() - TWO_DAYS.total_seconds() - 60
    os.utime(stray, (old, old))
    os.utime(upload_file(tmp_path, stale), (old, old))

    report = await UploadCleanup(context, older_than=TWO_DAYS).run_once()

    assert report.uploads_cancelled == 1
    assert report.partial_objects_removed == 1  # the stray file; the stale one went with its row
    assert await upload_ids(context) == {live}
    assert not upload_file(tmp_path, stale).exists()
    assert not stray.exists()
    # The live upload is untouched and finishes.
    await uploads.append(repository_id, live, iterate_bytes(b"going"), start=6)
    digest = "sha256:" + hashlib.sha256(b"still going").hexdigest()
    assert (await uploads.finish(repository_id, live, digest)).size == 11
    # Nothing left to do: a second round (another replica, say) finds nothing.
    assert await UploadCleanup(context, older_than=TWO_DAYS).run_once() == CleanupReport()


async def test_a_storage_failure_keeps_the_row_for_the_next_round(
    service: tuple[RegistryContext, Uploads, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    context, uploads, repository_id = service
    stale = await uploads.start(repository_id)
    await age(context, stale, TWO_DAYS * 2)

    async def unavailable(*args: object, **kwargs: object) -> None:
        raise BackendUnavailable("storage is down")

    with monkeypatch.context() as patched:
        patched.setattr(context.storage, "cancel_chunked_upload", unavailable)
        report = await UploadCleanup(context, older_than=TWO_DAYS, clean_folder=False).run_once()
    assert (report.uploads_cancelled, report.uploads_failed) == (0, 1)
    assert await upload_ids(context) == {stale}
    report = await UploadCleanup(context, older_than=TWO_DAYS, clean_folder=False).run_once()
    assert report.uploads_cancelled == 1
    assert await upload_ids(context) == set()


async def test_the_folder_is_left_alone_when_told(
    service: tuple[RegistryContext, Uploads, int], tmp_path: Path
) -> None:
    context, _, _ = service
    stray = upload_file(tmp_path, "crashed-upload")
    stray.parent.mkdir(parents=True, exist_ok=True)
    stray.write_bytes(b"x")
    old = time.time() - TWO_DAYS.total_seconds() * 2
    os.utime(stray, (old, old))
    await UploadCleanup(context, older_than=TWO_DAYS, clean_folder=False).run_once()
    assert stray.exists()


async def test_an_upload_storage_cannot_cancel_is_dropped(
    service: tuple[RegistryContext, Uploads, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    context, uploads, repository_id = service
    stale = await uploads.start(repository_id)
    await age(context, stale, TWO_DAYS * 2)

    async def corrupt(*args: object, **kwargs: object) -> None:
        raise InvalidUpload("unreadable chunk records")

    monkeypatch.setattr(context.storage, "cancel_chunked_upload", corrupt)
    report = await UploadCleanup(context, older_than=TWO_DAYS, clean_folder=False).run_once()
    assert (report.uploads_cancelled, report.uploads_failed) == (1, 0)
    assert await upload_ids(context) == set()


async def test_read_only_storage_is_left_alone(
    service: tuple[RegistryContext, Uploads, int],
) -> None:
    context, uploads, repository_id = service
    stale = await uploads.start(repository_id)
    await age(context, stale, TWO_DAYS * 2)
    context.storage.readonly = True
    assert await UploadCleanup(context, older_than=TWO_DAYS).run_once() == CleanupReport()
    assert await upload_ids(context) == {stale}


async def test_the_sweeper_survives_a_failed_round_and_stops_when_cancelled(
    service: tuple[RegistryContext, Uploads, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    context, _, _ = service
    rounds: list[str] = []

    async def flaky(self: UploadCleanup) -> CleanupReport:
        rounds.append("round")
        if len(rounds) == 1:
            raise RuntimeError("the database went away")
        return CleanupReport()

    monkeypatch.setattr(UploadCleanup, "run_once", flaky)
    sweeper = asyncio.create_task(UploadCleanup(context).run_forever(interval_s=0.02))
    for _ in range(200):
        if len(rounds) >= 3:
            break
        await asyncio.sleep(0.01)
    assert len(rounds) >= 3
    sweeper.cancel()
    with pytest.raises(asyncio.CancelledError):
        await sweeper


async def test_a_backlog_is_worked_off_in_batches(
    service: tuple[RegistryContext, Uploads, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    context, uploads, repository_id = service
    monkeypatch.setattr(upload_cleanup, "BATCH", 2)
    stale = [await uploads.start(repository_id) for _ in range(5)]
    for upload_id in stale:
        await age(context, upload_id, TWO_DAYS * 2)
    report = await UploadCleanup(context, older_than=TWO_DAYS, clean_folder=False).run_once()
    assert report.uploads_cancelled == 5
    assert await upload_ids(context) == set()


async def test_an_upload_in_a_location_this_config_lacks_is_left_alone(
    service: tuple[RegistryContext, Uploads, int],
) -> None:
    context, uploads, repository_id = service
    foreign = await uploads.start(repository_id)
    await age(context, foreign, TWO_DAYS * 2)
    async with context.db.writer() as session:
        await session.execute(
            text("INSERT INTO imagestoragelocation (name) VALUES ('quay_only_location')")
        )
        await session.execute(
            update(BlobUpload)
            .where(BlobUpload.uuid == foreign)
            .values(
                location_id=text(
                    "(SELECT id FROM imagestoragelocation WHERE name = 'quay_only_location')"
                )
            )
        )
    report = await UploadCleanup(context, older_than=TWO_DAYS, clean_folder=False).run_once()
    assert (report.uploads_cancelled, report.uploads_failed) == (0, 1)
    assert await upload_ids(context) == {foreign}


async def test_old_multipart_uploads_are_aborted_in_every_location(
    service: tuple[RegistryContext, Uploads, int],
    s3: tuple[S3Server, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Multipart uploads a crashed process left in S3 are aborted through the storage facade,
    in every location, local disk (which has none) included, then not again for 6 hours."""
    context, _, _ = service
    prefix = f"registry/{uuid.uuid4().hex[:10]}"
    remote = s3_driver(*s3, "/" + prefix, location="s3_eu")
    local = context.storage.drivers["local"]
    context.storage = DistributedStorage({"local": local, "s3_eu": remote})
    client = raw_s3_client(s3[0])
    client.create_multipart_upload(Bucket=s3[1], Key=f"{prefix}/uploads/orphan")
    # RGW dates the upload now, moto in 2010: a negative age takes both.
    monkeypatch.setattr(upload_cleanup, "MULTIPART_MAX_AGE", timedelta(seconds=-60))
    cleanup = UploadCleanup(context, older_than=TWO_DAYS)
    try:
        assert (await cleanup.run_once()).multipart_uploads_aborted == 1
        left = client.list_multipart_uploads(Bucket=s3[1], Prefix=prefix).get("Uploads", [])
        assert left == []
        client.create_multipart_upload(Bucket=s3[1], Key=f"{prefix}/uploads/later")
        assert (await cleanup.run_once()).multipart_uploads_aborted == 0  # within 6 hours
    finally:
        await remote.aclose()
