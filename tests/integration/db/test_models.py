"""Wharf's models read and write a database Quay built (quay-schema.sql), and Wharf's own.

Each test runs on three databases: PostgreSQL made from Quay's DDL, PostgreSQL made by Wharf's
migration, and SQLite made by Wharf's migration. The rows are written the way a push writes
them (see reference/quay-db.md, "Write sequences"), and read back the way a pull reads them.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import and_, func, insert, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload

from tests.integration.db.quay_schema import load_quay_schema
from tests.postgres import create_database, drop_database
from wharf.db import Database, ensure_storage_locations
from wharf.db.migrate import upgrade_database
from wharf.db.models import (
    BlobUpload,
    ImageStorage,
    ImageStorageLocation,
    ImageStoragePlacement,
    Label,
    LabelSourceType,
    Manifest,
    ManifestBlob,
    ManifestChild,
    ManifestLabel,
    ManifestSecurityStatus,
    MediaType,
    Repository,
    RepositoryActionCount,
    RepositoryKind,
    RepositoryPermission,
    RepositorySearchScore,
    RepositoryState,
    Role,
    Tag,
    TagKind,
    UploadedBlob,
    User,
    Visibility,
    now_ms,
    utcnow,
)

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
# Served back byte for byte: odd spacing, key order and non-ASCII text must survive.
MANIFEST_TEXT = (
    '{"schemaVersion":2,  "mediaType":"application/vnd.oci.image.manifest.v1+json",\n'
    '"config":{"mediaType":"application/vnd.oci.image.config.v1+json","size":2,'
    '"digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"},'
    '"layers":[], "annotations":{"note":"caf\u00e9 \u2603 \U0001f433"}}'
)


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture(params=["quay-postgresql", "wharf-postgresql", "wharf-sqlite"])
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    if request.param == "wharf-sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'wharf.db'}"
        await upgrade_database(url)
        async with Database(url) as database:
            yield database
        return
    server = request.getfixturevalue("postgres_url")
    url = await create_database(server)
    try:
        if request.param == "quay-postgresql":
            await load_quay_schema(url)
        else:
            await upgrade_database(url)
        async with Database(url) as database:
            yield database
    finally:
        await drop_database(url)


async def id_of(session, model, name: str) -> int:  # type: ignore[no-untyped-def]
    return (await session.execute(select(model.id).where(model.name == name))).scalar_one()


async def test_seed_ids_are_quays(db: Database) -> None:
    async with db.reader() as session:
        assert await id_of(session, Visibility, "public") == 1
        assert await id_of(session, Visibility, "private") == 2
        assert await id_of(session, RepositoryKind, "image") == 1
        assert await id_of(session, TagKind, "tag") == 1
        assert await id_of(session, Role, "admin") == 1
        assert await id_of(session, Role, "read") == 3
        assert await id_of(session, MediaType, OCI_MANIFEST) == 18
        assert await id_of(session, MediaType, "text/plain") == 1
        assert await id_of(session, LabelSourceType, "manifest") == 1
        assert await id_of(session, ImageStorageLocation, "local") == 7


async def test_a_push_and_a_pull_through_the_models(db: Database) -> None:
    layer = b"layer bytes"
    manifest_bytes = MANIFEST_TEXT.encode()
    async with db.writer() as session:
        locations = await ensure_storage_locations(session, ["default", "local"])
        user = User(username="alice", email="alice@example.com", password_hash="$2b$12$x")
        session.add(user)
        await session.flush()
        repo = Repository(
            namespace_user_id=user.id,
            name="app",
            visibility_id=await id_of(session, Visibility, "private"),
            kind_id=await id_of(session, RepositoryKind, "image"),
        )
        session.add(repo)
        await session.flush()
        session.add_all(
            [
                RepositoryActionCount(
                    repository_id=repo.id, count=0, date=dt.date.today() - dt.timedelta(days=1)
                ),
                RepositorySearchScore(repository_id=repo.id),
                RepositoryPermission(
                    user_id=user.id,
                    repository_id=repo.id,
                    role_id=await id_of(session, Role, "admin"),
                ),
                BlobUpload(
                    repository_id=repo.id,
                    uuid="6f1c0a4e-upload",
                    location_id=locations["default"],
                    storage_metadata='{"chunks": [["uploads/x", 0, 11]]}',
                ),
            ]
        )
        blob = ImageStorage(content_checksum=sha256(layer), image_size=len(layer))
        session.add(blob)
        await session.flush()
        session.add(ImageStoragePlacement(storage_id=blob.id, location_id=locations["default"]))
        session.add(
            UploadedBlob(
                repository_id=repo.id, blob_id=blob.id, expires_at=utcnow() + dt.timedelta(hours=1)
            )
        )
        manifest = Manifest(
            repository_id=repo.id,
            digest=sha256(manifest_bytes),
            media_type_id=await id_of(session, MediaType, OCI_MANIFEST),
            manifest_bytes=manifest_bytes.decode(),
            config_media_type="application/vnd.oci.image.config.v1+json",
            layers_compressed_size=0,
        )
        session.add(manifest)
        await session.flush()
        index = Manifest(
            repository_id=repo.id,
            digest=sha256(b"{}"),
            media_type_id=await id_of(session, MediaType, OCI_INDEX),
            manifest_bytes="{}",
        )
        session.add(index)
        await session.flush()
        label = Label(
            key="quay.expires-after",
            value="2w",
            media_type_id=await id_of(session, MediaType, "text/plain"),
            source_type_id=await id_of(session, LabelSourceType, "manifest"),
        )
        session.add(label)
        await session.flush()
        start = now_ms()
        session.add_all(
            [
                ManifestBlob(repository_id=repo.id, manifest_id=manifest.id, blob_id=blob.id),
                ManifestChild(
                    repository_id=repo.id, manifest_id=index.id, child_manifest_id=manifest.id
                ),
                ManifestSecurityStatus(manifest_id=manifest.id, repository_id=repo.id),
                ManifestLabel(repository_id=repo.id, manifest_id=manifest.id, label_id=label.id),
                # The tag's history: an ended row, then the live one starting when it ended.
                Tag(
                    name="latest",
                    repository_id=repo.id,
                    manifest_id=index.id,
                    lifetime_start_ms=start - 1000,
                    lifetime_end_ms=start,
                    tag_kind_id=await id_of(session, TagKind, "tag"),
                ),
                Tag(
                    name="latest",
                    repository_id=repo.id,
                    manifest_id=manifest.id,
                    lifetime_start_ms=start,
                    tag_kind_id=await id_of(session, TagKind, "tag"),
                ),
            ]
        )

    async with db.reader(fresh=True) as session:
        now = now_ms()
        live = (
            await session.execute(
                select(Tag, Manifest)
                .join(Manifest, Tag.manifest_id == Manifest.id)
                .join(Repository, Tag.repository_id == Repository.id)
                .join(User, Repository.namespace_user_id == User.id)
                .where(
                    User.username == "alice",
                    Repository.name == "app",
                    Repository.state != RepositoryState.MARKED_FOR_DELETION,
                    Tag.name == "latest",
                    or_(Tag.lifetime_end_ms.is_(None), Tag.lifetime_end_ms > now),
                    Tag.hidden.is_(False),
                )
            )
        ).all()
        assert len(live) == 1
        tag, found = live[0]
        assert found.manifest_bytes.encode() == manifest_bytes  # byte for byte
        assert found.digest == sha256(manifest_bytes)
        assert (tag.hidden, tag.reversion, tag.immutable, tag.linked_tag_id) == (
            False,
            False,
            False,
            None,
        )

        blob_row = (
            await session.execute(
                select(ImageStorage)
                .options(
                    selectinload(ImageStorage.placements).selectinload(
                        ImageStoragePlacement.location
                    )
                )
                .join(UploadedBlob, UploadedBlob.blob_id == ImageStorage.id)
                .where(
                    and_(
                        UploadedBlob.repository_id == found.repository_id,
                        ImageStorage.content_checksum == sha256(layer),
                    )
                )
                .limit(1)
            )
        ).scalar_one()
        assert [p.location.name for p in blob_row.placements] == ["default"]
        assert (blob_row.cas_path, blob_row.uploading, blob_row.image_size) == (True, True, 11)
        assert len(blob_row.uuid) == 36

        status = (await session.execute(select(ManifestSecurityStatus))).scalar_one()
        assert (status.index_status, status.indexer_hash, status.indexer_version) == (0, "", 4)
        assert (status.error_json, status.metadata_json) == ("{}", "{}")
        assert status.last_indexed.tzinfo is None

        upload = (await session.execute(select(BlobUpload))).scalar_one()
        assert (upload.byte_count, upload.chunk_count, upload.sha_state) == (0, 0, None)
        assert upload.created.tzinfo is None

        user = (await session.execute(select(User).where(User.username == "alice"))).scalar_one()
        assert (user.enabled, user.removed_tag_expiration_s, user.invalid_login_attempts) == (
            True,
            1_209_600,
            0,
        )
        assert (await session.execute(select(func.count()).select_from(Tag))).scalar_one() == 2


async def test_database_side_defaults_apply_to_rows_other_writers_insert(db: Database) -> None:
    """Quay (peewee) omits nothing, but a row inserted without them gets Quay's DB defaults."""
    async with db.writer() as session:
        user_id = (
            await session.execute(
                insert(User)
                .values(
                    username="bob",
                    email="bob@example.com",
                    verified=False,
                    organization=False,
                    robot=False,
                    invoice_email=False,
                    last_invalid_login=utcnow(),
                )
                .returning(User.id)
            )
        ).scalar_one()
        repo_id = (
            await session.execute(
                insert(Repository)
                .values(namespace_user_id=user_id, name="r", visibility_id=1, badge_token="t")
                .returning(Repository.id)
            )
        ).scalar_one()
    async with db.reader() as session:
        repo = (
            await session.execute(select(Repository).where(Repository.id == repo_id))
        ).scalar_one()
        assert (repo.kind_id, repo.trust_enabled, repo.state) == (1, False, 0)
        user = (await session.execute(select(User).where(User.id == user_id))).scalar_one()
        assert (user.enabled, user.removed_tag_expiration_s, user.invalid_login_attempts) == (
            True,
            1_209_600,
            0,
        )


async def test_uniqueness_is_quays(db: Database) -> None:
    async with db.writer() as session:
        # Organisations may share an email; users may not (partial unique index).
        session.add_all(
            [
                User(username="org1", email="team@example.com", organization=True),
                User(username="org2", email="team@example.com", organization=True),
                User(username="carol", email="team@example.com"),
            ]
        )
    with pytest.raises(IntegrityError):
        async with db.writer() as session:
            session.add(User(username="dave", email="team@example.com"))

    async with db.writer() as session:
        owner = (await session.execute(select(User).where(User.username == "carol"))).scalar_one()
        repo = Repository(namespace_user_id=owner.id, name="r", visibility_id=1)
        session.add(repo)
        await session.flush()
        # Two rows with a NULL lifetime end do not collide (NULLs are distinct)...
        session.add_all(
            [
                Tag(name="t", repository_id=repo.id, tag_kind_id=1),
                Tag(name="t", repository_id=repo.id, tag_kind_id=1),
            ]
        )
        repo_id = repo.id
    # ...but two with the same end do.
    with pytest.raises(IntegrityError):
        async with db.writer() as session:
            session.add_all(
                [
                    Tag(name="t", repository_id=repo_id, tag_kind_id=1, lifetime_end_ms=5),
                    Tag(name="t", repository_id=repo_id, tag_kind_id=1, lifetime_end_ms=5),
                ]
            )


async def test_foreign_keys_are_enforced(db: Database) -> None:
    with pytest.raises(IntegrityError):
        async with db.writer() as session:
            session.add(ImageStoragePlacement(storage_id=123456, location_id=1))
