"""The declarative base shared by every model, and the conventions of Quay's schema.

Quay's conventions, as its migrations create them:

- every table has an `id` primary key named `pk_<table>` (`serial`, or `bigserial` where noted);
- a foreign key is a plain `<name>_id` column with its own index and a constraint named
  `fk_<table>_<column>_<referred table>`, never ON DELETE CASCADE;
- uniqueness is a UNIQUE INDEX named `<table>_<col>[_<col>...]`, never a UNIQUE constraint;
- almost every default is client side; the few defaults the database holds are repeated here as
  `server_default` so that a Wharf-created database has them too;
- timestamps are `timestamp without time zone` (naive datetimes; see `utcnow` and `localnow`).
"""

from __future__ import annotations

import secrets
import string
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import BigInteger, Index, Integer, MetaData
from sqlalchemy.orm import DeclarativeBase

NAMING_CONVENTION = {
    "pk": "pk_%(table_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "ix": "%(table_name)s_%(column_0_N_name)s",
    "uq": "%(table_name)s_%(column_0_N_name)s",
}

# `bigserial` on PostgreSQL; on SQLite only INTEGER PRIMARY KEY is an auto-incrementing rowid.
BigIntPK = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def ix(
    table: str, *columns: str, unique: bool = False, name: str | None = None, **kwargs: Any
) -> Index:
    """An index named the way Quay names it, `<table>_<col>[_<col>...]`, unless `name` is given."""
    return Index(name or f"{table}_{'_'.join(columns)}", *columns, unique=unique, **kwargs)


def utcnow() -> datetime:
    """Naive UTC, what Quay writes with `datetime.utcnow()` (most timestamp columns)."""
    return datetime.now(UTC).replace(tzinfo=None)


def localnow() -> datetime:
    """Naive local time, what Quay writes with `datetime.now()` (`blobupload.created`)."""
    return datetime.now()  # local wall-clock time, deliberately (Quay's quirk)


def now_ms() -> int:
    """Milliseconds since the epoch, the unit of `tag.lifetime_start_ms`/`lifetime_end_ms`."""
    return int(time.time() * 1000)


def new_uuid() -> str:
    return str(uuid.uuid4())


def random_email_placeholder() -> str:
    """Quay's client default for `user.email`: 64 random characters (robots and orgs)."""
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(64))
