"""What a user (or an anonymous client) may do on a repository, computed as Quay's `/v2/auth` does.

Rules (Quay's `endpoints/v2/v2auth.py` and `auth/permissions.py`):
- the repository is found by namespace username and name, skipping `state = 3` (marked for
  deletion), like Quay's lookups;
- role on a repository (`repositorypermission` of the user, `role` name): `read` -> pull;
  `write` -> pull, push, delete; `admin` -> pull, push, delete, `*`. A user is `admin` of every
  repository in the namespace named after them. Quay lets write delete manifests (its DELETE
  routes only require write), so Wharf grants `delete` alongside `push`;
- a public repository can be pulled by anyone, anonymous clients included unless anonymous
  access is off (`FEATURE_ANONYMOUS_ACCESS`);
- `READ_ONLY` repositories: no push, delete or `*`; `MIRROR` / `ORG_MIRROR`: pushes and deletes
  only by the mirroring user, never `*`;
- a repository that does not exist yet: pull and push for whoever may create repositories in
  the namespace (their own namespace); the caller creates it when the token grants push (Quay
  creates it during `/v2/auth`);
- a disabled requester (`enabled = false`) is anonymous; a disabled namespace, or a repository
  of another kind than `image`, gets nothing (Quay answers those with an error: see the flags).

Where Wharf differs from Quay:
- teams and organisation roles are not modelled (Wharf's schema has no team tables): members
  of an organisation reach its repositories only through direct `repositorypermission` rows,
  and nobody may create repositories in an organisation except superusers and push-anywhere
  users;
- `superusers` (Quay's `SUPER_USERS`) are admins of every repository and may create
  repositories in any existing namespace. Quay's token endpoint does not consult superuser
  status (only some newer route decorators do, with `allow_for_superuser`);
- `push_anywhere` users (mirror mode's admin) have the superuser rights, may also create
  repositories in namespaces that do not exist yet (the caller creates the namespace), and are
  the ones allowed to push to `MIRROR` repositories (Quay's mirror robot: the mirror
  configuration table is not in Wharf's schema);
- single-component names (`ubuntu`) are refused: Wharf has no `LIBRARY_NAMESPACE`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from wharf.db.models import (
    Repository,
    RepositoryKind,
    RepositoryPermission,
    RepositoryState,
    Role,
    User,
    Visibility,
)
from wharf.registry.auth.scopes import (
    ALL,
    CATALOG,
    DELETE,
    PULL,
    PUSH,
    REGISTRY,
    REPOSITORY,
    Grant,
)
from wharf.registry.names import RepositoryName, parse_repository_name

ROLE_ACTIONS: dict[str, frozenset[str]] = {
    "read": frozenset({PULL}),
    "write": frozenset({PULL, PUSH, DELETE}),
    "admin": frozenset({PULL, PUSH, DELETE, ALL}),
}
ADMIN = ROLE_ACTIONS["admin"]
_WRITES = frozenset({PUSH, DELETE, ALL})
_MIRROR_STATES = (RepositoryState.MIRROR, RepositoryState.ORG_MIRROR)


@dataclass(frozen=True)
class AccessPolicy:
    """The configuration permissions depend on."""

    superusers: frozenset[str] = frozenset()
    push_anywhere: frozenset[str] = frozenset()
    anonymous_access: bool = True


@dataclass(frozen=True, slots=True)
class RepositoryAccess:
    name: RepositoryName
    actions: frozenset[str]
    repository_id: int | None = None
    """None: the repository does not exist (yet)."""
    namespace_id: int | None = None
    """None: no `user` row holds the namespace."""
    create_on_push: bool = False
    """Push was allowed on a repository that does not exist: create it (and the namespace when
    `namespace_id` is None) before answering with a token that grants push."""
    namespace_disabled: bool = False
    not_an_image_repository: bool = False


def _requester(user: User | None) -> User | None:
    # Quay's auth context drops a disabled user or robot: the client is then anonymous.
    return user if user is not None and user.enabled else None


def _is_owner(user: User, namespace: User) -> bool:
    return user.id == namespace.id and not user.robot and not user.organization


async def repository_access(
    session: AsyncSession,
    user: User | None,
    name: str | RepositoryName,
    policy: AccessPolicy,
) -> RepositoryAccess:
    """Every action `user` (None: anonymous) may take on the repository `name`.

    Raises `RegistryError(NAME_INVALID)` when `name` is not `namespace/repo[/...]`.
    """
    parsed = name if isinstance(name, RepositoryName) else parse_repository_name(name)
    user = _requester(user)
    namespace = (
        await session.execute(select(User).where(User.username == parsed.namespace))
    ).scalar_one_or_none()
    privileged = user is not None and (
        user.username in policy.superusers or user.username in policy.push_anywhere
    )
    if namespace is None:
        may_create = user is not None and user.username in policy.push_anywhere
        creatable = frozenset({PULL, PUSH}) if may_create else frozenset()
        return RepositoryAccess(parsed, creatable, create_on_push=may_create)
    if not namespace.enabled:
        return RepositoryAccess(parsed, frozenset(), None, namespace.id, namespace_disabled=True)

    row = (
        await session.execute(
            select(Repository.id, Repository.state, Visibility.name, RepositoryKind.name)
            .join(Visibility, Visibility.id == Repository.visibility_id)
            .join(RepositoryKind, RepositoryKind.id == Repository.kind_id)
            .where(
                Repository.namespace_user_id == namespace.id,
                Repository.name == parsed.repository,
                Repository.state != int(RepositoryState.MARKED_FOR_DELETION),
            )
        )
    ).one_or_none()
    if row is None:
        may_create = user is not None and (privileged or _is_owner(user, namespace))
        creatable = frozenset({PULL, PUSH}) if may_create else frozenset()
        return RepositoryAccess(parsed, creatable, None, namespace.id, create_on_push=may_create)
    repository_id, state, visibility, kind = row
    if kind != "image":
        return RepositoryAccess(
            parsed, frozenset(), repository_id, namespace.id, not_an_image_repository=True
        )

    actions: set[str] = set()
    if visibility == "public" and (user is not None or policy.anonymous_access):
        actions.add(PULL)
    if user is not None:
        if privileged or _is_owner(user, namespace):
            actions |= ADMIN
        else:
            role = (
                await session.execute(
                    select(Role.name)
                    .join(RepositoryPermission, RepositoryPermission.role_id == Role.id)
                    .where(
                        RepositoryPermission.user_id == user.id,
                        RepositoryPermission.repository_id == repository_id,
                    )
                )
            ).scalar_one_or_none()
            actions |= ROLE_ACTIONS.get(role or "", frozenset())

    if state == RepositoryState.READ_ONLY:
        actions -= _WRITES
    elif state in _MIRROR_STATES:
        actions.discard(ALL)
        if user is None or user.username not in policy.push_anywhere:
            actions -= _WRITES
    return RepositoryAccess(parsed, frozenset(actions), repository_id, namespace.id)


@dataclass(frozen=True)
class ScopeAuthorization:
    grants: tuple[Grant, ...]
    """The requested scopes, downscoped to what is allowed (possibly with no actions left)."""
    repositories: tuple[RepositoryAccess, ...]
    """The access computed for each repository scope, in the order of those scopes."""

    def to_create(self) -> tuple[RepositoryAccess, ...]:
        """Repositories to create before issuing the token: missing, and push granted."""
        repository_grants = [grant for grant in self.grants if grant.type == REPOSITORY]
        return tuple(
            access
            for grant, access in zip(repository_grants, self.repositories, strict=True)
            if access.create_on_push and grant.allows(PUSH)
        )


async def authorize_scopes(
    session: AsyncSession,
    user: User | None,
    scopes: Iterable[Grant],
    policy: AccessPolicy,
) -> ScopeAuthorization:
    """Intersect each requested scope with what `user` may do (the token spec's downscoping).

    `registry:catalog:*` is granted to every authenticated user, and to anonymous clients when
    anonymous access is on: the catalog route lists only what the caller may pull.
    """
    grants: list[Grant] = []
    repositories: list[RepositoryAccess] = []
    for scope in scopes:
        if scope.type == REGISTRY and scope.name == CATALOG:
            may_list = _requester(user) is not None or policy.anonymous_access
            grants.append(scope if may_list else scope.intersect(()))
            continue
        access = await repository_access(session, user, scope.name, policy)
        repositories.append(access)
        grants.append(scope.intersect(access.actions))
    return ScopeAuthorization(tuple(grants), tuple(repositories))
