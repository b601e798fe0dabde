"""Blob metadata in Quay's tables: which blobs a repository may read, and committing new ones."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from wharf.db.models import (
    ImageStorage,
    ImageStoragePlacement,
    UploadedBlob,
    utcnow,
)

UPLOADED_BLOB_LIFETIME = dt.timedelta(seconds=3600)
"""Quay's `PUSH_TEMP_TAG_EXPIRATION_SEC`: how long a fresh blob is protected from GC."""


@dataclass(frozen=True, slots=True)
class BlobRecord:
    storage_id: int
    digest: str
    size: int
    locations: frozenset[str]


BLOB_IN_REPOSITORY = text(
    """
    SELECT r.id, s.id, s.image_size, l.name
    FROM repository r JOIN "user" u ON u.id = r.namespace_user_id
    LEFT JOIN imagestorage s ON s.content_checksum = :digest AND (
        EXISTS (
            SELECT 1 FROM uploadedblob ub WHERE ub.blob_id = s.id AND ub.repository_id = r.id
        )
        OR EXISTS (
            SELECT 1 FROM manifestblob mb WHERE mb.blob_id = s.id AND mb.repository_id = r.id
        )
    )
    LEFT JOIN imagestorageplacement p ON p.storage_id = s.id
    LEFT JOIN imagestoragelocation l ON l.id = p.location_id
    WHERE u.username = :namespace AND r.name = :repository AND r.state != 3
    ORDER BY s.id
    """
)
"""A blob the repository may read (uploaded to it, or part of one of its manifests), with
the repository lookup, as one statement (see `manifest_rows.BY_TAG` for why text)."""


def lookup_blob(
    session: Session, namespace: str, repository: str, digest: str
) -> tuple[int | None, BlobRecord | None]:
    """(repository id or None when unknown, the blob or None). Synchronous: run it with
    `Database.read`, or `AsyncSession.run_sync` inside a transaction."""
    params = {"namespace": namespace, "repository": repository, "digest": digest}
    rows = session.execute(BLOB_IN_REPOSITORY, params).all()
    if not rows:
        return None, None
    repository_id, storage_id, size = rows[0][0], rows[0][1], rows[0][2]
    if storage_id is None:
        return repository_id, None
    locations = frozenset(row[3] for row in rows if row[1] == storage_id and row[3] is not None)
    return repository_id, BlobRecord(storage_id, digest, size or 0, locations)


async def commit_blob(
    session: AsyncSession,
    *,
    repository_id: int,
    digest: str,
    size: int,
    location: str,
    location_ids: Mapping[str, int],
) -> int:
    """Quay's commit: get or create the `imagestorage` row and its placement, then protect the
    blob for this repository with an `uploadedblob` row. Returns the storage id.

    Quay's schema has no unique constraint on the digest: concurrent commits of one digest on
    PostgreSQL are serialised by a transaction advisory lock on it (SQLite writers already
    are), so that they share one row."""
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(
            text("SELECT pg_advisory_xact_lock(:key)"), {"key": _blob_lock_key(digest)}
        )
    storage = (
        (
            await session.execute(
                select(ImageStorage).where(ImageStorage.content_checksum == digest).limit(1)
            )
        )
        .scalars()
        .first()
    )
    if storage is None:
        storage = ImageStorage(
            content_checksum=digest, image_size=size, cas_path=True, uploading=True
        )
        session.add(storage)
        await session.flush()
    elif storage.image_size is None:
        storage.image_size = size
    location_id = location_ids[location]
    placed = await session.execute(
        select(ImageStoragePlacement.id).where(
            ImageStoragePlacement.storage_id == storage.id,
            ImageStoragePlacement.location_id == location_id,
        )
    )
    if placed.first() is None:
        try:
            async with session.begin_nested():
                session.add(ImageStoragePlacement(storage_id=storage.id, location_id=location_id))
        except IntegrityError:
            pass  # a concurrent commit placed it first; one row per (blob, location) either way
    now = utcnow()
    session.add(
        UploadedBlob(
            repository_id=repository_id,
            blob_id=storage.id,
            uploaded_at=now,
            expires_at=now + UPLOADED_BLOB_LIFETIME,
        )
    )
    await session.flush()
    return storage.id


def _blob_lock_key(digest: str) -> int:
    seed = hashlib.sha256(f"wharf_commit_blob:{digest}".encode()).digest()[:8]
    return int.from_bytes(seed, "big", signed=True)
