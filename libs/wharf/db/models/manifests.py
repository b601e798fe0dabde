"""Manifests, the blobs and child manifests they reference, tags, labels and scan status."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Integer,
    String,
    Text,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from wharf.db.models.base import Base, BigIntPK, ix, new_uuid, now_ms, utcnow


class MediaType(Base):
    """Seeded with Quay's 18 media types (ids 1-18, see `wharf.db.seed`)."""

    __tablename__ = "mediatype"
    __table_args__ = (ix("mediatype", "name", unique=True),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255))


class Manifest(Base):
    """A manifest. `manifest_bytes` is text: the exact bytes received, decoded as UTF-8.

    `digest` is `sha256:<hex>` of those bytes; UNIQUE (repository_id, digest).
    """

    __tablename__ = "manifest"
    __table_args__ = (
        ix("manifest", "repository_id"),
        ix("manifest", "digest"),
        ix("manifest", "media_type_id"),
        ix("manifest", "repository_id", "digest", unique=True),
        ix("manifest", "repository_id", "media_type_id"),
        ix("manifest", "repository_id", "config_media_type"),
        ix("manifest", "repository_id", "subject"),
        ix("manifest", "repository_id", "artifact_type"),
        ix("manifest", "subject_backfilled"),
        ix("manifest", "artifact_type_backfilled"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    repository_id: Mapped[int] = mapped_column(Integer, ForeignKey("repository.id"))
    digest: Mapped[str] = mapped_column(String(255))
    media_type_id: Mapped[int] = mapped_column(Integer, ForeignKey("mediatype.id"))
    manifest_bytes: Mapped[str] = mapped_column(Text)
    config_media_type: Mapped[str | None] = mapped_column(String(255))
    layers_compressed_size: Mapped[int | None] = mapped_column(BigInteger)
    subject: Mapped[str | None] = mapped_column(String(255))
    subject_backfilled: Mapped[bool | None] = mapped_column(Boolean, default=True)
    artifact_type: Mapped[str | None] = mapped_column(String(255))
    artifact_type_backfilled: Mapped[bool | None] = mapped_column(Boolean, default=True)

    media_type: Mapped[MediaType] = relationship(lazy="raise")


class ManifestBlob(Base):
    """One row per distinct local blob of a manifest (layers and config; none for lists)."""

    __tablename__ = "manifestblob"
    __table_args__ = (
        ix("manifestblob", "repository_id"),
        ix("manifestblob", "manifest_id"),
        ix("manifestblob", "blob_id"),
        ix("manifestblob", "manifest_id", "blob_id", unique=True),
        ix("manifestblob", "repository_id", "blob_id"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    repository_id: Mapped[int] = mapped_column(Integer, ForeignKey("repository.id"))
    manifest_id: Mapped[int] = mapped_column(Integer, ForeignKey("manifest.id"))
    blob_id: Mapped[int] = mapped_column(Integer, ForeignKey("imagestorage.id"))


class ManifestChild(Base):
    """A manifest list/index (`manifest_id`) and one of its children, deduplicated."""

    __tablename__ = "manifestchild"
    __table_args__ = (
        ix("manifestchild", "repository_id"),
        ix("manifestchild", "manifest_id"),
        ix("manifestchild", "child_manifest_id"),
        ix("manifestchild", "manifest_id", "child_manifest_id", unique=True),
        ix("manifestchild", "repository_id", "manifest_id"),
        ix("manifestchild", "repository_id", "child_manifest_id"),
        ix("manifestchild", "repository_id", "manifest_id", "child_manifest_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    repository_id: Mapped[int] = mapped_column(Integer, ForeignKey("repository.id"))
    manifest_id: Mapped[int] = mapped_column(Integer, ForeignKey("manifest.id"))
    child_manifest_id: Mapped[int] = mapped_column(Integer, ForeignKey("manifest.id"))


class TagKind(Base):
    """Seeded: only 1 `tag`."""

    __tablename__ = "tagkind"
    __table_args__ = (ix("tagkind", "name", unique=True),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255))


class Tag(Base):
    """One row per lifetime of a tag name: a move ends the old row and inserts a new one.

    Lifetimes are epoch milliseconds (UTC). A row is alive when `lifetime_end_ms IS NULL OR
    lifetime_end_ms > now_ms`. UNIQUE (repository_id, name, lifetime_end_ms) does not stop two
    alive rows with a NULL end: writers serialise tag moves per repository themselves.
    """

    __tablename__ = "tag"
    __table_args__ = (
        ix("tag", "repository_id"),
        ix("tag", "manifest_id"),
        ix("tag", "tag_kind_id"),
        ix("tag", "linked_tag_id"),
        ix("tag", "lifetime_end_ms"),
        ix("tag", "repository_id", "name"),
        ix("tag", "repository_id", "name", "hidden"),
        ix("tag", "repository_id", "name", "tag_kind_id"),
        ix("tag", "repository_id", "name", "lifetime_end_ms", unique=True),
        ix("tag", "repository_id", "lifetime_start_ms"),
        ix("tag", "repository_id", "lifetime_end_ms"),
        ix("tag", "repository_id", "immutable"),
        ix("tag", "manifest_id", "immutable"),
        ix("tag", "manifest_id", "lifetime_end_ms"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    repository_id: Mapped[int] = mapped_column(Integer, ForeignKey("repository.id"))
    manifest_id: Mapped[int | None] = mapped_column(Integer, ForeignKey("manifest.id"))
    lifetime_start_ms: Mapped[int] = mapped_column(BigInteger, default=now_ms)
    lifetime_end_ms: Mapped[int | None] = mapped_column(BigInteger)
    hidden: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    reversion: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    tag_kind_id: Mapped[int] = mapped_column(Integer, ForeignKey("tagkind.id"))
    linked_tag_id: Mapped[int | None] = mapped_column(Integer, ForeignKey("tag.id"))
    immutable: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())

    manifest: Mapped[Manifest | None] = relationship(lazy="raise")


INDEX_STATUS_PENDING = 0  # `manifestsecuritystatus.index_status` of a manifest not yet scanned
INDEXER_VERSION = 4  # what Quay writes for a new manifest


class ManifestSecurityStatus(Base):
    """Inserted with every new manifest, in the same transaction, even with no scanner."""

    __tablename__ = "manifestsecuritystatus"
    __table_args__ = (
        ix("manifestsecuritystatus", "manifest_id", unique=True),
        ix("manifestsecuritystatus", "repository_id"),
        ix("manifestsecuritystatus", "index_status"),
        ix("manifestsecuritystatus", "last_indexed"),
        ix("manifestsecuritystatus", "indexer_hash"),
        ix("manifestsecuritystatus", "indexer_version"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    manifest_id: Mapped[int] = mapped_column(Integer, ForeignKey("manifest.id"))
    repository_id: Mapped[int] = mapped_column(Integer, ForeignKey("repository.id"))
    index_status: Mapped[int] = mapped_column(Integer, default=INDEX_STATUS_PENDING)
    error_json: Mapped[str] = mapped_column(Text, default="{}")
    last_indexed: Mapped[dt.datetime] = mapped_column(DateTime(), default=utcnow)
    indexer_hash: Mapped[str] = mapped_column(String(128), default="")
    indexer_version: Mapped[int] = mapped_column(Integer, default=INDEXER_VERSION)
    metadata_json: Mapped[str] = mapped_column(Text, default="{}")


class LabelSourceType(Base):
    """Seeded: 1 `manifest` (immutable), 2 `api` (mutable), 3 `internal` (immutable)."""

    __tablename__ = "labelsourcetype"
    __table_args__ = (ix("labelsourcetype", "name", unique=True),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    mutable: Mapped[bool] = mapped_column(Boolean)


class Label(Base):
    """A key/value label; config `Labels` become labels with source type `manifest`."""

    __tablename__ = "label"
    __table_args__ = (
        ix("label", "uuid", unique=True),
        ix("label", "key"),
        ix("label", "media_type_id"),
        ix("label", "source_type_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    uuid: Mapped[str] = mapped_column(String(255), default=new_uuid)
    key: Mapped[str] = mapped_column(String(255))
    value: Mapped[str] = mapped_column(Text)
    media_type_id: Mapped[int] = mapped_column(Integer, ForeignKey("mediatype.id"))
    source_type_id: Mapped[int] = mapped_column(Integer, ForeignKey("labelsourcetype.id"))


class ManifestLabel(Base):
    """Links a label to a manifest; UNIQUE (manifest_id, label_id)."""

    __tablename__ = "manifestlabel"
    __table_args__ = (
        ix("manifestlabel", "repository_id"),
        ix("manifestlabel", "manifest_id"),
        ix("manifestlabel", "label_id"),
        ix("manifestlabel", "manifest_id", "label_id", unique=True),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    repository_id: Mapped[int] = mapped_column(Integer, ForeignKey("repository.id"))
    manifest_id: Mapped[int] = mapped_column(Integer, ForeignKey("manifest.id"))
    label_id: Mapped[int] = mapped_column(Integer, ForeignKey("label.id"))
