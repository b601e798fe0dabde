"""Quay's registry tables, as Quay's migrations leave them at head 9fa37f66a9b6.

Creates the tables Wharf reads and writes on an empty database, with Quay's names, types,
indexes and foreign keys, and seeds them as Quay does. Differences, on purpose:
- `repositorypermission.team_id` has no foreign key (Wharf does not create Quay's `team`);
- `blobupload.created` has no database default (Quay's is a frozen timestamp literal);
- the pg_trgm GIN indexes on `repository.name`/`description` are created only on PostgreSQL,
  and only when the pg_trgm extension is (or can be) installed.

Revision ID: wharf_0001
Revises:
Create Date: 2026-11-21
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.exc import DBAPIError

revision: str = "wharf_0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

log = logging.getLogger("wharf.db.migrations")

BIGSERIAL = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIMESTAMP = sa.DateTime(timezone=False)


def _id(kind: Any = sa.Integer) -> sa.Column[Any]:
    return sa.Column("id", kind, nullable=False, autoincrement=True)


def _str(name: str, length: int = 255, *, nullable: bool = False) -> sa.Column[Any]:
    return sa.Column(name, sa.String(length), nullable=nullable)


def _col(name: str, kind: Any, *, nullable: bool = False, default: Any = None) -> sa.Column[Any]:
    return sa.Column(name, kind, nullable=nullable, server_default=default)


def _table(
    name: str,
    *columns: sa.Column[Any],
    refs: Sequence[tuple[str, str]] = (),
    indexes: Sequence[tuple[str, ...]] = (),
    unique: Sequence[tuple[str, ...]] = (),
    pk_name: str | None = None,
) -> None:
    """Create a table the Quay way: pk_<t>, fk_<t>_<col>_<ref>, indexes named <t>_<cols>."""
    op.create_table(
        name,
        *columns,
        sa.PrimaryKeyConstraint("id", name=pk_name or f"pk_{name}"),
        *(
            sa.ForeignKeyConstraint([column], [f"{ref}.id"], name=f"fk_{name}_{column}_{ref}")
            for column, ref in refs
        ),
    )
    for cols in indexes:
        op.create_index(f"{name}_{'_'.join(cols)}", name, list(cols))
    for cols in unique:
        op.create_index(f"{name}_{'_'.join(cols)}", name, list(cols), unique=True)


def _lookup(name: str) -> None:
    _table(name, _id(), _str("name"), unique=[("name",)])


def upgrade() -> None:
    _table(
        "user",
        _id(),
        _str("uuid", 36, nullable=True),
        _str("username"),
        _str("password_hash", nullable=True),
        _str("email"),
        _col("verified", sa.Boolean()),
        _str("stripe_id", nullable=True),
        _col("organization", sa.Boolean()),
        _col("robot", sa.Boolean()),
        _col("invoice_email", sa.Boolean()),
        _col("invalid_login_attempts", sa.Integer(), default=sa.text("0")),
        _col("last_invalid_login", TIMESTAMP),
        _col("removed_tag_expiration_s", sa.BigInteger(), default=sa.text("1209600")),
        _col("enabled", sa.Boolean(), default=sa.true()),
        _str("invoice_email_address", nullable=True),
        _str("company", nullable=True),
        _str("family_name", nullable=True),
        _str("given_name", nullable=True),
        _str("location", nullable=True),
        _col("maximum_queued_builds_count", sa.Integer(), nullable=True),
        _col("creation_date", TIMESTAMP, nullable=True),
        _col("last_accessed", TIMESTAMP, nullable=True),
        indexes=[
            ("uuid",),
            ("stripe_id",),
            ("organization",),
            ("robot",),
            ("invoice_email_address",),
            ("last_accessed",),
        ],
        unique=[("username",)],
    )
    op.create_index("user_email_idx", "user", ["email"])
    op.create_index(
        "user_email_unique_non_org",
        "user",
        ["email"],
        unique=True,
        postgresql_where=sa.text("organization = false"),
        sqlite_where=sa.text("organization = 0"),
    )

    for lookup in ("visibility", "repositorykind", "role", "imagestoragelocation"):
        _lookup(lookup)
    _lookup("mediatype")
    _lookup("tagkind")
    _table(
        "labelsourcetype",
        _id(),
        _str("name"),
        _col("mutable", sa.Boolean()),
        unique=[("name",)],
    )

    _table(
        "repository",
        _id(),
        _col("namespace_user_id", sa.Integer(), nullable=True),
        _str("name"),
        _col("visibility_id", sa.Integer()),
        _col("description", sa.Text(), nullable=True),
        _str("badge_token"),
        _col("kind_id", sa.Integer(), default=sa.text("1")),
        _col("trust_enabled", sa.Boolean(), default=sa.false()),
        _col("state", sa.Integer(), default=sa.text("0")),
        refs=[
            ("namespace_user_id", "user"),
            ("visibility_id", "visibility"),
            ("kind_id", "repositorykind"),
        ],
        indexes=[("namespace_user_id",), ("visibility_id",), ("kind_id",), ("state",)],
        unique=[("namespace_user_id", "name")],
    )
    _create_trigram_indexes()

    _table(
        "repositorypermission",
        _id(),
        _col("team_id", sa.Integer(), nullable=True),
        _col("user_id", sa.Integer(), nullable=True),
        _col("repository_id", sa.Integer()),
        _col("role_id", sa.Integer()),
        refs=[("user_id", "user"), ("repository_id", "repository"), ("role_id", "role")],
        indexes=[("team_id",), ("user_id",), ("repository_id",), ("role_id",)],
        unique=[("team_id", "repository_id"), ("user_id", "repository_id")],
    )
    _table(
        "repositoryactioncount",
        _id(),
        _col("repository_id", sa.Integer()),
        _col("count", sa.Integer()),
        _col("date", sa.Date()),
        refs=[("repository_id", "repository")],
        indexes=[("repository_id",), ("date",)],
        unique=[("repository_id", "date")],
    )
    _table(
        "repositorysearchscore",
        _id(),
        _col("repository_id", sa.Integer()),
        _col("score", sa.BigInteger()),
        _col("last_updated", TIMESTAMP, nullable=True),
        refs=[("repository_id", "repository")],
        indexes=[("score",)],
        unique=[("repository_id",)],
    )
    _table(
        "robotaccounttoken",
        _id(),
        _col("robot_account_id", sa.Integer()),
        _str("token"),
        _col("fully_migrated", sa.Boolean(), default=sa.false()),
        refs=[("robot_account_id", "user")],
        unique=[("robot_account_id",)],
    )
    _table(
        "quotanamespacesize",
        _id(),
        _col("namespace_user_id", sa.Integer()),
        _col("size_bytes", sa.BigInteger(), default="0"),
        _col("backfill_start_ms", sa.BigInteger(), nullable=True),
        _col("backfill_complete", sa.Boolean(), default=sa.false()),
        refs=[("namespace_user_id", "user")],
        indexes=[("size_bytes",), ("backfill_start_ms",)],
        unique=[("namespace_user_id",)],
        pk_name="pk_quotanamespacesizeid",
    )
    _table(
        "quotarepositorysize",
        _id(),
        _col("repository_id", sa.Integer()),
        _col("size_bytes", sa.BigInteger(), default="0"),
        _col("backfill_start_ms", sa.BigInteger(), nullable=True),
        _col("backfill_complete", sa.Boolean(), default=sa.false()),
        refs=[("repository_id", "repository")],
        indexes=[("size_bytes",)],
        unique=[("repository_id",)],
        pk_name="pk_quotarepositorysizeid",
    )

    _table(
        "imagestorage",
        _id(),
        _str("uuid"),
        _col("image_size", sa.BigInteger(), nullable=True),
        _col("uncompressed_size", sa.BigInteger(), nullable=True),
        _col("uploading", sa.Boolean(), nullable=True),
        _col("cas_path", sa.Boolean(), default=sa.false()),
        _str("content_checksum", nullable=True),
        indexes=[("content_checksum",)],
        unique=[("uuid",)],
    )
    _table(
        "imagestorageplacement",
        _id(),
        _col("storage_id", sa.Integer()),
        _col("location_id", sa.Integer()),
        refs=[("storage_id", "imagestorage"), ("location_id", "imagestoragelocation")],
        indexes=[("storage_id",), ("location_id",)],
        unique=[("storage_id", "location_id")],
    )
    _table(
        "blobupload",
        _id(),
        _col("repository_id", sa.Integer()),
        _str("uuid"),
        _col("byte_count", sa.BigInteger()),
        _col("sha_state", sa.Text(), nullable=True),
        _col("location_id", sa.Integer()),
        _col("storage_metadata", sa.Text(), nullable=True),
        _col("chunk_count", sa.Integer(), default=sa.text("0")),
        _col("uncompressed_byte_count", sa.BigInteger(), nullable=True),
        _col("created", TIMESTAMP),
        _col("piece_sha_state", sa.Text(), nullable=True),
        _col("piece_hashes", sa.Text(), nullable=True),
        refs=[("repository_id", "repository"), ("location_id", "imagestoragelocation")],
        indexes=[("repository_id",), ("location_id",), ("created",)],
        unique=[("uuid",), ("repository_id", "uuid")],
    )
    _table(
        "uploadedblob",
        _id(BIGSERIAL),
        _col("repository_id", sa.Integer()),
        _col("blob_id", sa.Integer()),
        _col("uploaded_at", TIMESTAMP),
        _col("expires_at", TIMESTAMP),
        refs=[("repository_id", "repository"), ("blob_id", "imagestorage")],
        indexes=[("repository_id",), ("blob_id",), ("expires_at",)],
    )

    _table(
        "manifest",
        _id(),
        _col("repository_id", sa.Integer()),
        _str("digest"),
        _col("media_type_id", sa.Integer()),
        _col("manifest_bytes", sa.Text()),
        _str("config_media_type", nullable=True),
        _col("layers_compressed_size", sa.BigInteger(), nullable=True),
        _str("subject", nullable=True),
        _col("subject_backfilled", sa.Boolean(), nullable=True),
        _str("artifact_type", nullable=True),
        _col("artifact_type_backfilled", sa.Boolean(), nullable=True),
        refs=[("repository_id", "repository"), ("media_type_id", "mediatype")],
        indexes=[
            ("repository_id",),
            ("digest",),
            ("media_type_id",),
            ("repository_id", "media_type_id"),
            ("repository_id", "config_media_type"),
            ("repository_id", "subject"),
            ("repository_id", "artifact_type"),
            ("subject_backfilled",),
            ("artifact_type_backfilled",),
        ],
        unique=[("repository_id", "digest")],
    )
    _table(
        "manifestblob",
        _id(BIGSERIAL),
        _col("repository_id", sa.Integer()),
        _col("manifest_id", sa.Integer()),
        _col("blob_id", sa.Integer()),
        refs=[
            ("repository_id", "repository"),
            ("manifest_id", "manifest"),
            ("blob_id", "imagestorage"),
        ],
        indexes=[("repository_id",), ("manifest_id",), ("blob_id",), ("repository_id", "blob_id")],
        unique=[("manifest_id", "blob_id")],
    )
    _table(
        "manifestchild",
        _id(),
        _col("repository_id", sa.Integer()),
        _col("manifest_id", sa.Integer()),
        _col("child_manifest_id", sa.Integer()),
        refs=[
            ("repository_id", "repository"),
            ("manifest_id", "manifest"),
            ("child_manifest_id", "manifest"),
        ],
        indexes=[
            ("repository_id",),
            ("manifest_id",),
            ("child_manifest_id",),
            ("repository_id", "manifest_id"),
            ("repository_id", "child_manifest_id"),
            ("repository_id", "manifest_id", "child_manifest_id"),
        ],
        unique=[("manifest_id", "child_manifest_id")],
    )
    _table(
        "tag",
        _id(),
        _str("name"),
        _col("repository_id", sa.Integer()),
        _col("manifest_id", sa.Integer(), nullable=True),
        _col("lifetime_start_ms", sa.BigInteger()),
        _col("lifetime_end_ms", sa.BigInteger(), nullable=True),
        _col("hidden", sa.Boolean(), default=sa.false()),
        _col("reversion", sa.Boolean(), default=sa.false()),
        _col("tag_kind_id", sa.Integer()),
        _col("linked_tag_id", sa.Integer(), nullable=True),
        _col("immutable", sa.Boolean(), default=sa.false()),
        refs=[
            ("repository_id", "repository"),
            ("manifest_id", "manifest"),
            ("tag_kind_id", "tagkind"),
            ("linked_tag_id", "tag"),
        ],
        indexes=[
            ("repository_id",),
            ("manifest_id",),
            ("tag_kind_id",),
            ("linked_tag_id",),
            ("lifetime_end_ms",),
            ("repository_id", "name"),
            ("repository_id", "name", "hidden"),
            ("repository_id", "name", "tag_kind_id"),
            ("repository_id", "lifetime_start_ms"),
            ("repository_id", "lifetime_end_ms"),
            ("repository_id", "immutable"),
            ("manifest_id", "immutable"),
            ("manifest_id", "lifetime_end_ms"),
        ],
        unique=[("repository_id", "name", "lifetime_end_ms")],
    )
    _table(
        "manifestsecuritystatus",
        _id(),
        _col("manifest_id", sa.Integer()),
        _col("repository_id", sa.Integer()),
        _col("index_status", sa.Integer()),
        _col("error_json", sa.Text()),
        _col("last_indexed", TIMESTAMP),
        _str("indexer_hash", 128),
        _col("indexer_version", sa.Integer()),
        _col("metadata_json", sa.Text()),
        refs=[("manifest_id", "manifest"), ("repository_id", "repository")],
        indexes=[
            ("repository_id",),
            ("index_status",),
            ("last_indexed",),
            ("indexer_hash",),
            ("indexer_version",),
        ],
        unique=[("manifest_id",)],
    )
    _table(
        "label",
        _id(),
        _str("uuid"),
        _str("key"),
        _col("value", sa.Text()),
        _col("media_type_id", sa.Integer()),
        _col("source_type_id", sa.Integer()),
        refs=[("media_type_id", "mediatype"), ("source_type_id", "labelsourcetype")],
        indexes=[("key",), ("media_type_id",), ("source_type_id",)],
        unique=[("uuid",)],
    )
    _table(
        "manifestlabel",
        _id(),
        _col("repository_id", sa.Integer()),
        _col("manifest_id", sa.Integer()),
        _col("label_id", sa.Integer()),
        refs=[
            ("repository_id", "repository"),
            ("manifest_id", "manifest"),
            ("label_id", "label"),
        ],
        indexes=[("repository_id",), ("manifest_id",), ("label_id",)],
        unique=[("manifest_id", "label_id")],
    )

    _seed()


def _create_trigram_indexes() -> None:
    """Quay's search indexes: GIN with pg_trgm, PostgreSQL only, skipped if pg_trgm is missing."""
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    installed = bind.execute(
        sa.text("SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm'")
    ).scalar()
    if not installed:
        available = bind.execute(
            sa.text("SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm'")
        ).scalar()
        if not available:
            log.warning("pg_trgm is not available: skipping the repository search indexes")
            return
        try:
            with bind.begin_nested():
                bind.execute(sa.text("CREATE EXTENSION IF NOT EXISTS pg_trgm"))
        except DBAPIError as error:
            log.warning("cannot create pg_trgm (%s): skipping the search indexes", error.orig)
            return
    for column in ("name", "description"):
        op.execute(
            f"CREATE INDEX repository_{column}__fulltext ON repository "
            f"USING gin ({column} gin_trgm_ops)"
        )


# Seed rows with Quay's ids, frozen as they were when this revision was written.
_SEED: dict[str, list[str]] = {
    "visibility": ["public", "private"],
    "repositorykind": ["image", "application"],
    "role": ["admin", "write", "read"],
    "tagkind": ["tag"],
    "mediatype": [
        "text/plain",
        "application/json",
        "text/markdown",
        "application/vnd.cnr.blob.v0.tar+gzip",
        "application/vnd.cnr.package-manifest.helm.v0.json",
        "application/vnd.cnr.package-manifest.kpm.v0.json",
        "application/vnd.cnr.package-manifest.docker-compose.v0.json",
        "application/vnd.cnr.package.kpm.v0.tar+gzip",
        "application/vnd.cnr.package.helm.v0.tar+gzip",
        "application/vnd.cnr.package.docker-compose.v0.tar+gzip",
        "application/vnd.cnr.manifests.v0.json",
        "application/vnd.cnr.manifest.list.v0.json",
        "application/vnd.docker.distribution.manifest.v1+prettyjws",
        "application/vnd.docker.distribution.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.oci.image.manifest.v1+json",
    ],
    "imagestoragelocation": [
        "s3_us_east_1",
        "s3_eu_west_1",
        "s3_ap_southeast_1",
        "s3_ap_southeast_2",
        "s3_ap_northeast_1",
        "s3_sa_east_1",
        "local",
        "s3_us_west_1",
    ],
}
_LABEL_SOURCE_TYPES = [("manifest", False), ("api", True), ("internal", False)]


def _seed() -> None:
    def lookup(name: str, *extra: sa.ColumnClause[Any]) -> sa.TableClause:
        return sa.table(name, sa.column("id", sa.Integer), sa.column("name", sa.String), *extra)

    for table_name, names in _SEED.items():
        rows = [{"id": i, "name": n} for i, n in enumerate(names, start=1)]
        op.bulk_insert(lookup(table_name), rows)
    op.bulk_insert(
        lookup("labelsourcetype", sa.column("mutable", sa.Boolean)),
        [
            {"id": i, "name": n, "mutable": mutable}
            for i, (n, mutable) in enumerate(_LABEL_SOURCE_TYPES, start=1)
        ],
    )
    if op.get_bind().dialect.name == "postgresql":
        # Explicit ids do not advance serial sequences: move them past the seeded rows.
        for table_name in [*_SEED, "labelsourcetype"]:
            op.execute(
                f"SELECT setval(pg_get_serial_sequence('{table_name}', 'id'), "  # noqa: S608
                f"(SELECT max(id) FROM {table_name}))"
            )


_ALL_TABLES = [
    "user",
    "visibility",
    "repositorykind",
    "role",
    "imagestoragelocation",
    "mediatype",
    "tagkind",
    "labelsourcetype",
    "repository",
    "repositorypermission",
    "repositoryactioncount",
    "repositorysearchscore",
    "robotaccounttoken",
    "quotanamespacesize",
    "quotarepositorysize",
    "imagestorage",
    "imagestorageplacement",
    "blobupload",
    "uploadedblob",
    "manifest",
    "manifestblob",
    "manifestchild",
    "tag",
    "manifestsecuritystatus",
    "label",
    "manifestlabel",
]


def downgrade() -> None:
    for table_name in reversed(_ALL_TABLES):
        op.drop_table(table_name)
