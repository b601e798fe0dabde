"""Abandoned uploads: what Quay's blob-upload cleanup worker does, run inside `wharf serve`.

A client that starts an upload and never finishes it leaves a `blobupload` row and bytes
under `uploads/` (or S3 chunk objects and multipart uploads) forever. Every `interval` this
task, like Quay's worker:

1. cancels uploads whose row is older than `older_than` (Quay's
   `BLOBUPLOAD_DELETION_DATE_THRESHOLD`, 2 days): the storage first (`cancel_chunked_upload`),
   then the row, so a failure leaves the row for the next round, never orphaned bytes;
2. with `clean_folder` (Quay's `CLEAN_BLOB_UPLOAD_FOLDER`, on), removes whatever else under
   `uploads/` in the preferred location is that old (`clean_partial_uploads`): chunk objects
   of uploads whose row is gone, files of a crashed process;
3. aborts S3 multipart uploads older than a day, as Quay does every 6 hours.

`blobupload.created` is local wall-clock time, as Quay writes it, so the cutoff is too.
Several replicas (or a Quay beside Wharf) may run this at once: every step is idempotent.
"""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, select

from wharf.db.models import BlobUpload, localnow
from wharf.registry.context import RegistryContext
from wharf.registry.uploads import parse_storage_metadata
from wharf.storage import InvalidUpload, ObjectNotFound, StorageError

log = logging.getLogger("wharf.registry.cleanup")

DEFAULT_MAX_AGE = timedelta(minutes=60 * 48)
MULTIPART_MAX_AGE = timedelta(days=1)
MULTIPART_EVERY = timedelta(hours=6)
DEFAULT_INTERVAL_S = 3600.0
FIRST_RUN_S = 600.0
BATCH = 100
"""Rows read per query: a backlog is worked off in bounded steps."""


@dataclass
class CleanupReport:
    uploads_cancelled: int = 0
    uploads_failed: int = 0
    partial_objects_removed: int = 0
    multipart_uploads_aborted: int = 0


@dataclass
class UploadCleanup:
    ctx: RegistryContext
    older_than: timedelta = DEFAULT_MAX_AGE
    clean_folder: bool = True
    _last_multipart: float | None = field(default=None, init=False)

    async def run_once(self) -> CleanupReport:
        report = CleanupReport()
        if self.ctx.storage.readonly:
            return report  # nothing may be removed; the uploads wait for a writable registry
        await self._cancel_stale_rows(report)
        if self.clean_folder:
            await self._clean_folder(report)
        await self._abort_old_multipart_uploads(report)
        return report

    async def run_forever(self, interval_s: float = DEFAULT_INTERVAL_S) -> None:
        """Run every `interval_s` seconds until cancelled; a failed round is logged only.

        The first round comes after a random part of the interval (at most `FIRST_RUN_S`):
        a process restarted more often than the interval still sweeps, and replicas started
        together do not sweep in step."""
        delay = random.uniform(0.1, 1.0) * min(interval_s, FIRST_RUN_S)
        while True:
            await asyncio.sleep(delay)
            delay = interval_s
            try:
                report = await self.run_once()
            except Exception:  # a background task must survive anything
                log.warning("upload cleanup failed", exc_info=True)
                continue
            if report != CleanupReport():
                log.info("upload cleanup: %s", report)

    async def _cancel_stale_rows(self, report: CleanupReport) -> None:
        cutoff = localnow() - self.older_than
        names = {v: k for k, v in self.ctx.location_ids.items()}
        after = 0
        while True:
            async with self.ctx.db.reader(fresh=True) as session:
                rows = (
                    await session.execute(
                        select(
                            BlobUpload.id,
                            BlobUpload.uuid,
                            BlobUpload.location_id,
                            BlobUpload.storage_metadata,
                        )
                        .where(BlobUpload.created < cutoff, BlobUpload.id > after)
                        .order_by(BlobUpload.id)
                        .limit(BATCH)
                    )
                ).all()
            for row_id, upload_id, location_id, metadata in rows:
                after = row_id
                location = names.get(location_id)
                if location is None:
                    report.uploads_failed += 1  # a location this config lacks: not ours to drop
                    continue
                if await self._cancel(location, upload_id, parse_storage_metadata(metadata) or {}):
                    async with self.ctx.db.writer() as session:
                        await session.execute(delete(BlobUpload).where(BlobUpload.id == row_id))
                    report.uploads_cancelled += 1
                else:
                    report.uploads_failed += 1
            if len(rows) < BATCH:
                return

    async def _cancel(self, location: str, upload_id: str, metadata: dict[str, Any]) -> bool:
        try:
            await self.ctx.storage.cancel_chunked_upload([location], upload_id, metadata)
        except (InvalidUpload, ObjectNotFound):
            # Nothing that can be cancelled (unreadable metadata, bytes already gone): the
            # row goes, and what bytes remain are the folder sweep's, as in Quay.
            return True
        except StorageError as exc:
            log.warning("could not cancel stale upload %s in %s: %s", upload_id, location, exc)
            return False
        return True

    async def _clean_folder(self, report: CleanupReport) -> None:
        locations = self.ctx.storage.preferred_locations[:1]
        try:
            removed = await self.ctx.storage.clean_partial_uploads(locations, self.older_than)
        except NotImplementedError:
            return
        except StorageError as exc:
            log.warning("could not clean the upload folder: %s", exc)
            return
        report.partial_objects_removed += removed

    async def _abort_old_multipart_uploads(self, report: CleanupReport) -> None:
        loop = asyncio.get_running_loop()
        if (
            self._last_multipart is not None
            and loop.time() - self._last_multipart < MULTIPART_EVERY.total_seconds()
        ):
            return
        self._last_multipart = loop.time()
        storage = self.ctx.storage
        for location in storage.locations:
            try:
                report.multipart_uploads_aborted += await storage.clean_orphaned_multipart_uploads(
                    [location], MULTIPART_MAX_AGE
                )
            except StorageError as exc:
                log.warning("could not abort old multipart uploads in %s: %s", location, exc)
