"""Blobs (`imagestorage`), where they are stored, uploads in progress and upload protection."""

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
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from wharf.db.models.base import Base, BigIntPK, ix, localnow, new_uuid, utcnow


class ImageStorageLocation(Base):
    """A storage location: a key of DISTRIBUTED_STORAGE_CONFIG (see `ensure_storage_locations`)."""

    __tablename__ = "imagestoragelocation"
    __table_args__ = (ix("imagestoragelocation", "name", unique=True),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255))


class ImageStorage(Base):
    """A blob. Logically one row per digest, but the database does not enforce it.

    v2 blobs have `cas_path = True` (stored at `sha256/<2 hex>/<hex>`) and, as in Quay,
    `uploading = True` forever. The column's database default for `cas_path` is false (Quay's
    quirk); the client default here is True, like Quay's model.
    """

    __tablename__ = "imagestorage"
    __table_args__ = (
        ix("imagestorage", "uuid", unique=True),
        ix("imagestorage", "content_checksum"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    uuid: Mapped[str] = mapped_column(String(255), default=new_uuid)
    image_size: Mapped[int | None] = mapped_column(BigInteger)
    uncompressed_size: Mapped[int | None] = mapped_column(BigInteger)
    uploading: Mapped[bool | None] = mapped_column(Boolean, default=True)
    cas_path: Mapped[bool] = mapped_column(Boolean, default=True, server_default=false())
    content_checksum: Mapped[str | None] = mapped_column(String(255))

    placements: Mapped[list[ImageStoragePlacement]] = relationship(
        back_populates="storage", lazy="raise"
    )


class ImageStoragePlacement(Base):
    """One row per (blob, location); UNIQUE (storage_id, location_id)."""

    __tablename__ = "imagestorageplacement"
    __table_args__ = (
        ix("imagestorageplacement", "storage_id"),
        ix("imagestorageplacement", "location_id"),
        ix("imagestorageplacement", "storage_id", "location_id", unique=True),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    storage_id: Mapped[int] = mapped_column(Integer, ForeignKey("imagestorage.id"))
    location_id: Mapped[int] = mapped_column(Integer, ForeignKey("imagestoragelocation.id"))

    storage: Mapped[ImageStorage] = relationship(back_populates="placements", lazy="raise")
    location: Mapped[ImageStorageLocation] = relationship(lazy="raise")


class BlobUpload(Base):
    """An upload in progress, saved after every chunk so any replica can continue it.

    `created` is naive *local* time, as Quay writes it (its cleanup worker compares it with
    local time). `sha_state` is Quay's base64(pickle(resumablesha256)) and `storage_metadata` is
    JSON text whose shape depends on the driver family.
    """

    __tablename__ = "blobupload"
    __table_args__ = (
        ix("blobupload", "repository_id"),
        ix("blobupload", "location_id"),
        ix("blobupload", "created"),
        ix("blobupload", "uuid", unique=True),
        ix("blobupload", "repository_id", "uuid", unique=True),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    repository_id: Mapped[int] = mapped_column(Integer, ForeignKey("repository.id"))
    uuid: Mapped[str] = mapped_column(String(255))
    byte_count: Mapped[int] = mapped_column(BigInteger, default=0)
    sha_state: Mapped[str | None] = mapped_column(Text)
    location_id: Mapped[int] = mapped_column(Integer, ForeignKey("imagestoragelocation.id"))
    storage_metadata: Mapped[str | None] = mapped_column(Text, default="{}")
    chunk_count: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    uncompressed_byte_count: Mapped[int | None] = mapped_column(BigInteger)
    # Quay's migration left a frozen literal (its own run time) as the database default here;
    # Wharf deliberately has no database default: the row's writer always sets it.
    created: Mapped[dt.datetime] = mapped_column(DateTime(), default=localnow)
    piece_sha_state: Mapped[str | None] = mapped_column(Text)
    piece_hashes: Mapped[str | None] = mapped_column(Text)


class UploadedBlob(Base):
    """Keeps a freshly uploaded or mounted blob alive in a repository until `expires_at` (UTC).

    No uniqueness: every commit or mount adds a row.
    """

    __tablename__ = "uploadedblob"
    __table_args__ = (
        ix("uploadedblob", "repository_id"),
        ix("uploadedblob", "blob_id"),
        ix("uploadedblob", "expires_at"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    repository_id: Mapped[int] = mapped_column(Integer, ForeignKey("repository.id"))
    blob_id: Mapped[int] = mapped_column(Integer, ForeignKey("imagestorage.id"))
    uploaded_at: Mapped[dt.datetime] = mapped_column(DateTime(), default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime())
