"""Namespaces (users, organisations, robots), repositories and the permission tables."""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Integer,
    PrimaryKeyConstraint,
    String,
    Text,
    false,
    text,
    true,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from wharf.db.models.base import Base, ix, new_uuid, random_email_placeholder, utcnow

DEFAULT_REMOVED_TAG_EXPIRATION_S = 1_209_600  # two weeks: Quay's time-machine window


class RepositoryState(enum.IntEnum):
    """`repository.state`. Lookups always exclude MARKED_FOR_DELETION."""

    NORMAL = 0
    READ_ONLY = 1
    MIRROR = 2
    MARKED_FOR_DELETION = 3
    ORG_MIRROR = 4


class User(Base):
    """A user, an organisation (`organization`) or a robot (`robot`, named `<ns>+<short>`)."""

    __tablename__ = "user"
    __table_args__ = (
        ix("user", "uuid"),
        ix("user", "username", unique=True),
        ix("user", "email", name="user_email_idx"),
        ix(
            "user",
            "email",
            name="user_email_unique_non_org",
            unique=True,
            postgresql_where=text("organization = false"),
            sqlite_where=text("organization = 0"),
        ),
        ix("user", "stripe_id"),
        ix("user", "organization"),
        ix("user", "robot"),
        ix("user", "invoice_email_address"),
        ix("user", "last_accessed"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    uuid: Mapped[str | None] = mapped_column(String(36), default=new_uuid)
    username: Mapped[str] = mapped_column(String(255))
    password_hash: Mapped[str | None] = mapped_column(String(255))
    email: Mapped[str] = mapped_column(String(255), default=random_email_placeholder)
    verified: Mapped[bool] = mapped_column(Boolean, default=False)
    stripe_id: Mapped[str | None] = mapped_column(String(255))
    organization: Mapped[bool] = mapped_column(Boolean, default=False)
    robot: Mapped[bool] = mapped_column(Boolean, default=False)
    invoice_email: Mapped[bool] = mapped_column(Boolean, default=False)
    invalid_login_attempts: Mapped[int] = mapped_column(
        Integer, default=0, server_default=text("0")
    )
    last_invalid_login: Mapped[dt.datetime] = mapped_column(DateTime(), default=utcnow)
    removed_tag_expiration_s: Mapped[int] = mapped_column(
        BigInteger,
        default=DEFAULT_REMOVED_TAG_EXPIRATION_S,
        server_default=text(str(DEFAULT_REMOVED_TAG_EXPIRATION_S)),
    )
    enabled: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    invoice_email_address: Mapped[str | None] = mapped_column(String(255))
    company: Mapped[str | None] = mapped_column(String(255))
    family_name: Mapped[str | None] = mapped_column(String(255))
    given_name: Mapped[str | None] = mapped_column(String(255))
    location: Mapped[str | None] = mapped_column(String(255))
    maximum_queued_builds_count: Mapped[int | None] = mapped_column(Integer)
    creation_date: Mapped[dt.datetime | None] = mapped_column(DateTime(), default=utcnow)
    last_accessed: Mapped[dt.datetime | None] = mapped_column(DateTime())


class Visibility(Base):
    """Seeded: 1 `public`, 2 `private`."""

    __tablename__ = "visibility"
    __table_args__ = (ix("visibility", "name", unique=True),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255))


class RepositoryKind(Base):
    """Seeded: 1 `image`, 2 `application`."""

    __tablename__ = "repositorykind"
    __table_args__ = (ix("repositorykind", "name", unique=True),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255))


class Repository(Base):
    """A repository; UNIQUE (namespace_user_id, name). On PostgreSQL the migration also adds
    Quay's pg_trgm GIN indexes on `name` and `description` when the extension is available."""

    __tablename__ = "repository"
    __table_args__ = (
        ix("repository", "namespace_user_id"),
        ix("repository", "namespace_user_id", "name", unique=True),
        ix("repository", "visibility_id"),
        ix("repository", "kind_id"),
        ix("repository", "state"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    namespace_user_id: Mapped[int | None] = mapped_column(Integer, ForeignKey("user.id"))
    name: Mapped[str] = mapped_column(String(255))
    visibility_id: Mapped[int] = mapped_column(Integer, ForeignKey("visibility.id"))
    description: Mapped[str | None] = mapped_column(Text)
    badge_token: Mapped[str] = mapped_column(String(255), default=new_uuid)
    kind_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("repositorykind.id"), default=1, server_default=text("1")
    )
    trust_enabled: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    state: Mapped[int] = mapped_column(
        Integer, default=int(RepositoryState.NORMAL), server_default=text("0")
    )

    namespace_user: Mapped[User | None] = relationship(lazy="raise")
    visibility: Mapped[Visibility] = relationship(lazy="raise")


class Role(Base):
    """Seeded: 1 `admin`, 2 `write`, 3 `read`."""

    __tablename__ = "role"
    __table_args__ = (ix("role", "name", unique=True),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255))


class RepositoryPermission(Base):
    """A user's or a team's role on a repository.

    Quay's `team_id` references `team(id)`; Wharf does not create Quay's team tables, so in a
    Wharf-created database the column exists without that foreign key (it is always NULL there).
    """

    __tablename__ = "repositorypermission"
    __table_args__ = (
        ix("repositorypermission", "team_id"),
        ix("repositorypermission", "user_id"),
        ix("repositorypermission", "repository_id"),
        ix("repositorypermission", "role_id"),
        ix("repositorypermission", "team_id", "repository_id", unique=True),
        ix("repositorypermission", "user_id", "repository_id", unique=True),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    team_id: Mapped[int | None] = mapped_column(Integer)
    user_id: Mapped[int | None] = mapped_column(Integer, ForeignKey("user.id"))
    repository_id: Mapped[int] = mapped_column(Integer, ForeignKey("repository.id"))
    role_id: Mapped[int] = mapped_column(Integer, ForeignKey("role.id"))


class RepositoryActionCount(Base):
    """Written by `create_repository` with `count = 0` and `date = yesterday`."""

    __tablename__ = "repositoryactioncount"
    __table_args__ = (
        ix("repositoryactioncount", "repository_id"),
        ix("repositoryactioncount", "date"),
        ix("repositoryactioncount", "repository_id", "date", unique=True),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    repository_id: Mapped[int] = mapped_column(Integer, ForeignKey("repository.id"))
    count: Mapped[int] = mapped_column(Integer)
    date: Mapped[dt.date] = mapped_column(Date)


class RepositorySearchScore(Base):
    """Written by `create_repository` with `score = 0`."""

    __tablename__ = "repositorysearchscore"
    __table_args__ = (
        ix("repositorysearchscore", "repository_id", unique=True),
        ix("repositorysearchscore", "score"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    repository_id: Mapped[int] = mapped_column(Integer, ForeignKey("repository.id"))
    score: Mapped[int] = mapped_column(BigInteger, default=0)
    last_updated: Mapped[dt.datetime | None] = mapped_column(DateTime())


class RobotAccountToken(Base):
    """A robot's token. Quay stores it encrypted with its DATABASE_SECRET_KEY."""

    __tablename__ = "robotaccounttoken"
    __table_args__ = (ix("robotaccounttoken", "robot_account_id", unique=True),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    robot_account_id: Mapped[int] = mapped_column(Integer, ForeignKey("user.id"))
    token: Mapped[str] = mapped_column(String(255))
    fully_migrated: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class QuotaNamespaceSize(Base):
    """Per-namespace quota total. With quota off, a manifest write only resets it (0 rows)."""

    __tablename__ = "quotanamespacesize"
    __table_args__ = (
        PrimaryKeyConstraint("id", name="pk_quotanamespacesizeid"),
        ix("quotanamespacesize", "namespace_user_id", unique=True),
        ix("quotanamespacesize", "size_bytes"),
        ix("quotanamespacesize", "backfill_start_ms"),
    )

    id: Mapped[int] = mapped_column(Integer)
    namespace_user_id: Mapped[int] = mapped_column(Integer, ForeignKey("user.id"))
    size_bytes: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    backfill_start_ms: Mapped[int | None] = mapped_column(BigInteger)
    backfill_complete: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class QuotaRepositorySize(Base):
    """Per-repository quota total (same rules as `QuotaNamespaceSize`)."""

    __tablename__ = "quotarepositorysize"
    __table_args__ = (
        PrimaryKeyConstraint("id", name="pk_quotarepositorysizeid"),
        ix("quotarepositorysize", "repository_id", unique=True),
        ix("quotarepositorysize", "size_bytes"),
    )

    id: Mapped[int] = mapped_column(Integer)
    repository_id: Mapped[int] = mapped_column(Integer, ForeignKey("repository.id"))
    size_bytes: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    backfill_start_ms: Mapped[int | None] = mapped_column(BigInteger)
    backfill_complete: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
