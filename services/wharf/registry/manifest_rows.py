"""Manifests in Quay's tables: `manifest`, `manifestblob`, `manifestchild`,
`manifestsecuritystatus`, and which of them a repository can serve.

A manifest row stores the exact bytes received (as text) and is never changed. It is
reachable, and so served by digest, while an alive tag (hidden `$temp-` tags included) points
at it or at an index that lists it: Quay's rule, so that both see the same repository.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import Select, and_, exists, false, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from wharf.db.models import (
    ImageStorage,
    Manifest,
    ManifestBlob,
    ManifestChild,
    ManifestSecurityStatus,
    MediaType,
    QuotaNamespaceSize,
    QuotaRepositorySize,
    Tag,
    UploadedBlob,
)
from wharf.registry.manifests import ParsedManifest
from wharf.registry.tags import alive


@dataclass(frozen=True, slots=True)
class StoredManifest:
    id: int
    digest: str
    media_type: str
    body: bytes

    @classmethod
    def from_row(cls, manifest: Manifest, media_type: str) -> StoredManifest:
        return cls(manifest.id, manifest.digest, media_type, manifest.manifest_bytes.encode())


def _with_media_type() -> Select[Manifest, str]:
    return select(Manifest, MediaType.name).join(MediaType, MediaType.id == Manifest.media_type_id)


# The pull path's lookups, one statement each: the repository (Quay's lookup), then the
# manifest of an alive visible tag (Quay's GET-by-tag query) or a reachable digest. Written
# once as text: building the equivalent ORM statement on every request cost 0.5 ms of CPU.
BY_TAG = text(
    """
    SELECT r.id, m.id, m.digest, m.manifest_bytes, mt.name
    FROM repository r JOIN "user" u ON u.id = r.namespace_user_id
    LEFT JOIN tag t ON t.repository_id = r.id AND t.name = :tag AND t.hidden = :hidden
        AND (t.lifetime_end_ms IS NULL OR t.lifetime_end_ms > :now)
    LEFT JOIN manifest m ON m.id = t.manifest_id
    LEFT JOIN mediatype mt ON mt.id = m.media_type_id
    WHERE u.username = :namespace AND r.name = :repository AND r.state != 3
    ORDER BY t.lifetime_start_ms DESC, t.id DESC
    LIMIT 1
    """
)
BY_DIGEST = text(
    """
    SELECT r.id, m.id, m.digest, m.manifest_bytes, mt.name
    FROM repository r JOIN "user" u ON u.id = r.namespace_user_id
    LEFT JOIN manifest m ON m.repository_id = r.id AND m.digest = :digest AND (
        EXISTS (
            SELECT 1 FROM tag t WHERE t.manifest_id = m.id
            AND (t.lifetime_end_ms IS NULL OR t.lifetime_end_ms > :now)
        )
        OR EXISTS (
            SELECT 1 FROM manifestchild mc JOIN tag pt ON pt.manifest_id = mc.manifest_id
            WHERE mc.child_manifest_id = m.id
            AND (pt.lifetime_end_ms IS NULL OR pt.lifetime_end_ms > :now)
        )
    )
    LEFT JOIN mediatype mt ON mt.id = m.media_type_id
    WHERE u.username = :namespace AND r.name = :repository AND r.state != 3
    LIMIT 1
    """
)
TAG_EVER_EXISTED = text(
    "SELECT 1 FROM tag WHERE repository_id = :repository_id AND name = :tag"
    " AND hidden = :hidden LIMIT 1"
)


@dataclass(frozen=True, slots=True)
class Lookup:
    """A pull-path answer: the repository (None: unknown) and the manifest (None: unknown)."""

    repository_id: int | None
    manifest: StoredManifest | None


def lookup_manifest(
    session: Session,
    namespace: str,
    repository: str,
    *,
    tag: str | None = None,
    digest: str | None = None,
    now_ms: int,
) -> Lookup:
    """Synchronous, for `Database.read`: one statement, one round trip."""
    params: dict[str, object] = {"namespace": namespace, "repository": repository, "now": now_ms}
    if tag is not None:
        statement, params = BY_TAG, {**params, "tag": tag, "hidden": False}
    else:
        statement, params = BY_DIGEST, {**params, "digest": digest}
    row = session.execute(statement, params).first()
    if row is None:
        return Lookup(None, None)
    repository_id, manifest_id, found_digest, text_bytes, media_type = row
    if manifest_id is None:
        return Lookup(repository_id, None)
    stored = StoredManifest(manifest_id, found_digest, media_type, text_bytes.encode())
    return Lookup(repository_id, stored)


def tag_ever_existed(session: Session, repository_id: int, tag: str) -> bool:
    params = {"repository_id": repository_id, "tag": tag, "hidden": False}
    return session.execute(TAG_EVER_EXISTED, params).first() is not None


async def find_manifest_id(session: AsyncSession, repository_id: int, digest: str) -> int | None:
    """The row of `digest` in the repository, alive or not (Quay reuses dead rows too)."""
    query = select(Manifest.id).where(
        Manifest.repository_id == repository_id, Manifest.digest == digest
    )
    return (await session.execute(query)).scalar_one_or_none()


async def resolve_blobs(
    session: AsyncSession, repository_id: int, digests: Sequence[str]
) -> dict[str, int]:
    """`imagestorage` ids of the digests the repository may reference: uploaded to it (an
    `uploadedblob` row) or already part of one of its manifests."""
    if not digests:
        return {}
    uploaded = (
        select(ImageStorage.content_checksum, ImageStorage.id)
        .join(UploadedBlob, UploadedBlob.blob_id == ImageStorage.id)
        .where(UploadedBlob.repository_id == repository_id)
        .where(ImageStorage.content_checksum.in_(digests))
    )
    referenced = (
        select(ImageStorage.content_checksum, ImageStorage.id)
        .join(ManifestBlob, ManifestBlob.blob_id == ImageStorage.id)
        .where(ManifestBlob.repository_id == repository_id)
        .where(ImageStorage.content_checksum.in_(digests))
    )
    found: dict[str, int] = {}
    for query in (uploaded, referenced):
        for digest, storage_id in await session.execute(query):
            if digest is not None:
                found.setdefault(digest, storage_id)
        if len(found) == len(set(digests)):
            break
    return found


async def resolve_manifests(
    session: AsyncSession, repository_id: int, digests: Sequence[str]
) -> dict[str, int]:
    """Manifest ids of the digests present in the repository (children of an index)."""
    if not digests:
        return {}
    query = select(Manifest.digest, Manifest.id).where(
        Manifest.repository_id == repository_id, Manifest.digest.in_(digests)
    )
    return {digest: manifest_id for digest, manifest_id in await session.execute(query)}


async def media_type_id(session: AsyncSession, name: str) -> int:
    """`mediatype` ids differ between Quay's migrations and its test seed: look them up."""
    found = (
        await session.execute(select(MediaType.id).where(MediaType.name == name))
    ).scalar_one_or_none()
    if found is None:
        raise LookupError(f"media type {name!r} is not seeded in the mediatype table")
    return found


async def insert_manifest(
    session: AsyncSession,
    *,
    repository_id: int,
    namespace_id: int | None,
    parsed: ParsedManifest,
    digest: str,
    blob_ids: Iterable[int],
    child_ids: Iterable[int],
) -> int:
    """Quay's manifest creation in the caller's transaction: the manifest, its blobs, its
    children, the pending security status, and the quota reset. A concurrent writer that
    inserted the same digest first wins; its row is returned."""
    manifest = Manifest(
        repository_id=repository_id,
        digest=digest,
        media_type_id=await media_type_id(session, parsed.media_type),
        manifest_bytes=parsed.text,
        config_media_type=parsed.config_media_type,
        layers_compressed_size=parsed.layers_compressed_size,
        subject=parsed.subject.digest if parsed.subject else None,
        subject_backfilled=True,
        artifact_type=parsed.artifact_type,
        artifact_type_backfilled=True,
    )
    try:
        async with session.begin_nested():
            session.add(manifest)
    except IntegrityError:
        existing = await find_manifest_id(session, repository_id, digest)
        if existing is None:
            raise
        return existing
    session.add_all(
        ManifestBlob(repository_id=repository_id, manifest_id=manifest.id, blob_id=blob_id)
        for blob_id in dict.fromkeys(blob_ids)
    )
    session.add_all(
        ManifestChild(repository_id=repository_id, manifest_id=manifest.id, child_manifest_id=c)
        for c in dict.fromkeys(child_ids)
    )
    session.add(ManifestSecurityStatus(manifest_id=manifest.id, repository_id=repository_id))
    await _reset_quota_backfill(session, repository_id, namespace_id)
    await session.flush()
    return manifest.id


async def _reset_quota_backfill(
    session: AsyncSession, repository_id: int, namespace_id: int | None
) -> None:
    # With quota management off, Quay invalidates any size computed so far (0 rows usually).
    for table, key in (
        (QuotaRepositorySize, QuotaRepositorySize.repository_id == repository_id),
        (QuotaNamespaceSize, QuotaNamespaceSize.namespace_user_id == namespace_id),
    ):
        await session.execute(
            update(table)
            .where(and_(key, table.backfill_start_ms.is_not(None)))
            .values(size_bytes=0, backfill_start_ms=None, backfill_complete=false())
            .execution_options(synchronize_session=False)
        )


async def referrers(
    session: AsyncSession, repository_id: int, subject: str, now_ms: int
) -> list[StoredManifest]:
    """Manifests of the repository whose `subject` is `subject` and that are still alive."""
    query = (
        _with_media_type()
        .where(Manifest.repository_id == repository_id, Manifest.subject == subject)
        .where(exists().where(Tag.manifest_id == Manifest.id, alive(now_ms)))
        .order_by(Manifest.id)
    )
    return [StoredManifest.from_row(m, name) for m, name in await session.execute(query)]
