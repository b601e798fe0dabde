"""Finding and creating repositories in Quay's tables (`user` namespaces + `repository`)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from wharf.db.models import (
    Repository,
    RepositoryActionCount,
    RepositorySearchScore,
    RepositoryState,
    User,
)
from wharf.registry.names import RepositoryName

VISIBILITY_PUBLIC = 1
VISIBILITY_PRIVATE = 2
KIND_IMAGE = 1


def repository_query(name: RepositoryName) -> Select[Repository]:
    """Quay's lookup: namespace by username, repository by name, never one being deleted."""
    return (
        select(Repository)
        .join(User, Repository.namespace_user_id == User.id)
        .where(
            User.username == name.namespace,
            Repository.name == name.repository,
            Repository.state != RepositoryState.MARKED_FOR_DELETION,
        )
    )


async def find_repository(session: AsyncSession, name: RepositoryName) -> Repository | None:
    return (await session.execute(repository_query(name))).scalars().first()


async def create_repository(
    session: AsyncSession, name: RepositoryName, *, public: bool
) -> Repository:
    """Create the namespace (a `user` row) if needed and the repository, as Quay's push does."""
    namespace = (
        await session.execute(select(User).where(User.username == name.namespace))
    ).scalar_one_or_none()
    if namespace is None:
        namespace = User(username=name.namespace, organization=True)
        session.add(namespace)
        await session.flush()
    repository = Repository(
        namespace_user_id=namespace.id,
        name=name.repository,
        visibility_id=VISIBILITY_PUBLIC if public else VISIBILITY_PRIVATE,
        kind_id=KIND_IMAGE,
    )
    session.add(repository)
    await session.flush()
    session.add(RepositoryActionCount(repository_id=repository.id, count=0, date=_yesterday()))
    session.add(RepositorySearchScore(repository_id=repository.id, score=0))
    await session.flush()
    return repository


def _yesterday() -> dt.date:
    return dt.date.today() - dt.timedelta(days=1)
