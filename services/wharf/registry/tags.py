"""Tags in Quay's `tag` table: rows are never moved, only ended and replaced.

A tag row is alive while `lifetime_end_ms IS NULL OR lifetime_end_ms > now`. Moving a tag ends
the alive row at `now` and inserts a new one starting at the same `now`, under a per-repository
lock so that two writers never leave two alive rows of one name: on PostgreSQL the transaction
advisory lock Quay takes (same key, so Quay and Wharf writers exclude each other), on SQLite the
database write lock every Wharf writer holds from `BEGIN IMMEDIATE`.

Hidden `$temp-<uuid4>` tags keep manifests pushed by digest alive for a while (or for ever, for
referrers), as Quay's do.
"""

from __future__ import annotations

import hashlib
import uuid

from sqlalchemy import ColumnElement, Select, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from wharf.db.models import Tag
from wharf.registry.errors import DENIED, RegistryError

TEMP_TAG_PREFIX = "$temp-"
TAG_KIND_TAG = 1
PUSH_TEMP_TAG_LIFETIME_MS = 3_600_000
"""Quay's PUSH_TEMP_TAG_EXPIRATION_SEC: a manifest pushed by digest lives an hour untagged."""
EXISTING_TEMP_TAG_LIFETIME_MS = 300_000
"""Quay's TEMP_TAG_EXPIRATION_SEC: the grace given to a known manifest pushed again."""


def tag_lock_key(repository_id: int) -> int:
    """Quay's advisory lock key: the first 8 bytes of sha256("retarget_tag:<id>"), a signed
    big-endian int64."""
    seed = hashlib.sha256(f"retarget_tag:{repository_id}".encode()).digest()[:8]
    return int.from_bytes(seed, "big", signed=True)


async def lock_tags(session: AsyncSession, repository_id: int) -> None:
    """Serialise tag moves in one repository until the transaction ends."""
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(
            text("SELECT pg_advisory_xact_lock(:key)"), {"key": tag_lock_key(repository_id)}
        )
    # SQLite: the writer's BEGIN IMMEDIATE already holds the database's only write lock.


def byte_ordered(
    session: AsyncSession, column: ColumnElement[str] | InstrumentedAttribute[str]
) -> ColumnElement[str] | InstrumentedAttribute[str]:
    """The column compared byte by byte: PostgreSQL databases usually sort by a locale
    (`en_US.UTF-8` puts `B` after `a`), the spec's pagination wants plain lexical order."""
    if session.get_bind().dialect.name == "postgresql":
        return column.collate("C")
    return column


def alive(now_ms: int) -> ColumnElement[bool]:
    return or_(Tag.lifetime_end_ms.is_(None), Tag.lifetime_end_ms > now_ms)


async def live_tag(session: AsyncSession, repository_id: int, name: str, now_ms: int) -> Tag | None:
    """The alive, visible tag `name` (Quay's GET-by-tag query, ordered for determinism)."""
    query = (
        select(Tag)
        .where(
            Tag.repository_id == repository_id,
            Tag.name == name,
            alive(now_ms),
            Tag.hidden.is_(False),
        )
        .order_by(Tag.lifetime_start_ms.desc(), Tag.id.desc())
        .limit(1)
    )
    return (await session.execute(query)).scalars().first()


def existed_query(repository_id: int, name: str) -> Select[int]:
    """Any visible row of that name, alive or ended (an ended one is Quay's TAG_EXPIRED)."""
    return (
        select(Tag.id)
        .where(Tag.repository_id == repository_id, Tag.name == name, Tag.hidden.is_(False))
        .limit(1)
    )


async def retarget_tag(
    session: AsyncSession, repository_id: int, name: str, manifest_id: int, now_ms: int
) -> None:
    """Point `name` at the manifest: end the alive row (unless it already points there and
    lives for ever) and insert the new one. The caller's transaction commits both."""
    await lock_tags(session, repository_id)
    current = await live_tag(session, repository_id, name, now_ms)
    if current is not None:
        if current.manifest_id == manifest_id and current.lifetime_end_ms is None:
            return
        if current.immutable:
            raise RegistryError(DENIED, {"tag": name, "reason": "the tag is immutable"})
        now_ms = _end_time(current, now_ms)
        await _end(session, current, now_ms)
    await _insert(session, repository_id, manifest_id, name, now_ms, end_ms=None, hidden=False)


async def keep_alive_untagged(
    session: AsyncSession,
    repository_id: int,
    manifest_id: int,
    now_ms: int,
    *,
    lifetime_ms: int | None,
) -> None:
    """Protect a manifest pushed by digest with a hidden `$temp-` tag ending after
    `lifetime_ms` (None: never), unless an alive tag already protects it that long."""
    needed_end = None if lifetime_ms is None else now_ms + lifetime_ms
    query = select(Tag.lifetime_end_ms).where(
        Tag.repository_id == repository_id, Tag.manifest_id == manifest_id, alive(now_ms)
    )
    for (end,) in await session.execute(query):
        if end is None or (needed_end is not None and end >= needed_end):
            return
    name = f"{TEMP_TAG_PREFIX}{uuid.uuid4()}"
    await _insert(session, repository_id, manifest_id, name, now_ms, end_ms=needed_end, hidden=True)


async def _insert(
    session: AsyncSession,
    repository_id: int,
    manifest_id: int,
    name: str,
    start_ms: int,
    *,
    end_ms: int | None,
    hidden: bool,
) -> None:
    """A new tag row as Quay writes one (never a reversion, kind `tag`, mutable)."""
    session.add(
        Tag(
            name=name,
            repository_id=repository_id,
            manifest_id=manifest_id,
            lifetime_start_ms=start_ms,
            lifetime_end_ms=end_ms,
            hidden=hidden,
            reversion=False,
            tag_kind_id=TAG_KIND_TAG,
            immutable=False,
        )
    )
    await session.flush()


async def end_tag(session: AsyncSession, repository_id: int, name: str, now_ms: int) -> bool:
    """End the alive visible tag `name`; False when there is none."""
    await lock_tags(session, repository_id)
    current = await live_tag(session, repository_id, name, now_ms)
    if current is None:
        return False
    if current.immutable:
        raise RegistryError(DENIED, {"tag": name, "reason": "the tag is immutable"})
    await _end(session, current, now_ms)
    return True


async def end_manifest_tags(
    session: AsyncSession, repository_id: int, manifest_id: int, now_ms: int
) -> int:
    """End every alive tag on the manifest, hidden ones included (so that a manifest pushed
    by digest can be deleted by digest); the number of visible tags ended."""
    await lock_tags(session, repository_id)
    query = select(Tag).where(
        Tag.repository_id == repository_id, Tag.manifest_id == manifest_id, alive(now_ms)
    )
    tags = (await session.execute(query)).scalars().all()
    for tag in tags:
        if tag.immutable:
            raise RegistryError(DENIED, {"tag": tag.name, "reason": "the tag is immutable"})
    for tag in tags:
        await _end(session, tag, now_ms)
    return sum(1 for tag in tags if not tag.hidden)


def _end_time(tag: Tag, now_ms: int) -> int:
    """A row started this millisecond ends the next one: ending it at its start would collide
    with its predecessor's end in UNIQUE (repository_id, name, lifetime_end_ms)."""
    return max(now_ms, tag.lifetime_start_ms + 1)


async def _end(session: AsyncSession, tag: Tag, now_ms: int) -> None:
    """End the row at `now_ms` (see `_end_time`), in Quay's optimistic form: only if it still
    ends where it did when it was read."""
    now_ms = _end_time(tag, now_ms)
    await session.execute(
        update(Tag)
        .where(Tag.id == tag.id)
        .where(
            Tag.lifetime_end_ms.is_(None)
            if tag.lifetime_end_ms is None
            else Tag.lifetime_end_ms == tag.lifetime_end_ms
        )
        .values(lifetime_end_ms=now_ms)
        .execution_options(synchronize_session=False)
    )


async def tag_names(
    session: AsyncSession, repository_id: int, now_ms: int, *, after: str | None, limit: int
) -> list[str]:
    """Alive visible tag names in lexical (byte) order, strictly after `after`."""
    name = byte_ordered(session, Tag.name)
    query = (
        select(name)
        .where(Tag.repository_id == repository_id, alive(now_ms), Tag.hidden.is_(False))
        .distinct()
        .order_by(name)
        .limit(limit)
    )
    if after is not None:
        query = query.where(name > after)
    return list((await session.execute(query)).scalars().all())
