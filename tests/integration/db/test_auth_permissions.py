"""Repository permissions for `/v2/auth`, computed from Quay's tables on SQLite and PostgreSQL.

One database per test, made by Wharf's migration and filled with users, an organisation, a
robot and repositories in every visibility, state and kind that matters; then each case asks
what one requester may do on one repository.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from sqlalchemy import select

from wharf.db import Database
from wharf.db.migrate import upgrade_database
from wharf.db.models import Base, Repository, RepositoryPermission, RepositoryState, User
from wharf.registry.auth.permissions import (
    AccessPolicy,
    authorize_scopes,
    repository_access,
)
from wharf.registry.auth.scopes import Grant, parse_scopes
from wharf.registry.errors import NAME_INVALID, RegistryError

POLICY = AccessPolicy(superusers=frozenset({"root"}), push_anywhere=frozenset({"mirror"}))
ADMIN = {"pull", "push", "delete", "*"}
WRITE = {"pull", "push", "delete"}
READ = {"pull"}
CREATE = {"pull", "push"}
NONE: set[str] = set()

# (namespace, name, visibility, state, kind)
REPOSITORIES = [
    ("alice", "public", "public", RepositoryState.NORMAL, "image"),
    ("alice", "private", "private", RepositoryState.NORMAL, "image"),
    ("alice", "nested/deep", "private", RepositoryState.NORMAL, "image"),
    ("alice", "readonly", "public", RepositoryState.READ_ONLY, "image"),
    ("alice", "mirrored", "private", RepositoryState.MIRROR, "image"),
    ("alice", "chart", "public", RepositoryState.NORMAL, "application"),
    ("alice", "deleted", "public", RepositoryState.MARKED_FOR_DELETION, "image"),
    ("acme", "app", "private", RepositoryState.NORMAL, "image"),
    ("acme", "pub", "public", RepositoryState.NORMAL, "image"),
    ("gone", "app", "public", RepositoryState.NORMAL, "image"),
]
# (user, repository, role)
PERMISSIONS = [
    ("bob", "alice/private", "read"),
    ("bob", "acme/app", "read"),
    ("carol", "acme/app", "write"),
    ("dave", "acme/app", "admin"),
    ("acme+ci", "acme/app", "write"),
    ("eve", "acme/app", "admin"),
    ("alice", "alice/mirrored", "admin"),
]


@pytest.fixture
async def db(empty_url: str) -> AsyncIterator[Database]:
    await upgrade_database(empty_url)
    async with Database(empty_url) as database:
        await _fill(database)
        yield database


async def _fill(database: Database) -> None:
    async with database.writer() as session:

        async def ids(table: str) -> dict[str, int]:
            columns = Base.metadata.tables[table].c
            rows = await session.execute(select(columns.name, columns.id))
            return {row.name: row.id for row in rows}

        visibility, kinds, roles = (
            await ids("visibility"),
            await ids("repositorykind"),
            await ids("role"),
        )
        users = {
            name: User(username=name, organization=org, robot=robot, enabled=enabled)
            for name, org, robot, enabled in [
                ("alice", False, False, True),
                ("bob", False, False, True),
                ("carol", False, False, True),
                ("dave", False, False, True),
                ("eve", False, False, False),  # disabled
                ("root", False, False, True),
                ("mirror", False, False, True),
                ("acme", True, False, True),  # an organisation
                ("acme+ci", False, True, True),  # its robot
                ("gone", True, False, False),  # a disabled namespace
            ]
        }
        session.add_all(users.values())
        await session.flush()
        repositories = {}
        for namespace, name, vis, state, kind in REPOSITORIES:
            repositories[f"{namespace}/{name}"] = Repository(
                namespace_user_id=users[namespace].id,
                name=name,
                visibility_id=visibility[vis],
                kind_id=kinds[kind],
                state=int(state),
            )
        session.add_all(repositories.values())
        await session.flush()
        session.add_all(
            RepositoryPermission(
                user_id=users[user].id,
                repository_id=repositories[repository].id,
                role_id=roles[role],
            )
            for user, repository, role in PERMISSIONS
        )


async def _user(database: Database, name: str | None) -> User | None:
    if name is None:
        return None
    async with database.reader() as session:
        return (await session.execute(select(User).where(User.username == name))).scalar_one()


@dataclass(frozen=True)
class Case:
    user: str | None
    repository: str
    actions: set[str]
    exists: bool = True
    create: bool = False


CASES = [
    # anonymous: public repositories only
    Case(None, "alice/public", READ),
    Case(None, "acme/pub", READ),
    Case(None, "alice/private", NONE),
    Case(None, "acme/app", NONE),
    Case(None, "alice/new", NONE, exists=False),
    # the owner of a namespace is admin of everything in it, and creates repositories there
    Case("alice", "alice/public", ADMIN),
    Case("alice", "alice/private", ADMIN),
    Case("alice", "alice/nested/deep", ADMIN),
    Case("alice", "alice/new", CREATE, exists=False, create=True),
    Case("alice", "alice/new/nested", CREATE, exists=False, create=True),
    # state 3 is invisible (Quay also renames a repository when it marks it for deletion)
    Case("alice", "alice/deleted", CREATE, exists=False, create=True),
    Case("alice", "alice/readonly", READ),
    Case("alice", "alice/mirrored", READ),
    Case("alice", "acme/app", NONE),
    Case("alice", "acme/pub", READ),
    Case("alice", "acme/new", NONE, exists=False),  # no team roles: nobody owns an org
    Case("alice", "nobody/new", NONE, exists=False),
    # roles on repositories
    Case("bob", "alice/private", READ),
    Case("bob", "alice/nested/deep", NONE),
    Case("bob", "acme/app", READ),
    Case("carol", "acme/app", WRITE),
    Case("dave", "acme/app", ADMIN),
    Case("acme+ci", "acme/app", WRITE),
    Case("acme+ci", "acme/new", NONE, exists=False),
    Case("bob", "bob/first", CREATE, exists=False, create=True),
    # a disabled user is anonymous, even with an admin role
    Case("eve", "acme/app", NONE),
    Case("eve", "alice/public", READ),
    # superusers: admin everywhere, create in existing namespaces
    Case("root", "acme/app", ADMIN),
    Case("root", "alice/private", ADMIN),
    Case("root", "alice/readonly", READ),
    Case("root", "alice/mirrored", READ),
    Case("root", "acme/new", CREATE, exists=False, create=True),
    Case("root", "nobody/new", NONE, exists=False),
    # push-anywhere (mirror mode's admin): also new namespaces and mirror repositories
    Case("mirror", "acme/app", ADMIN),
    Case("mirror", "alice/mirrored", WRITE),
    Case("mirror", "alice/readonly", READ),
    Case("mirror", "nobody/new", CREATE, exists=False, create=True),
]


async def test_repository_access_cases(db: Database) -> None:
    failures = []
    async with db.reader() as session:
        for case in CASES:
            user = await _user(db, case.user)
            access = await repository_access(session, user, case.repository, POLICY)
            got = (set(access.actions), access.repository_id is not None, access.create_on_push)
            want = (case.actions, case.exists, case.create)
            if got != want:
                failures.append(f"{case.user} on {case.repository}: got {got}, want {want}")
    assert not failures, "\n".join(failures)


async def test_namespace_and_kind_flags(db: Database) -> None:
    bob = await _user(db, "bob")
    async with db.reader() as session:
        disabled = await repository_access(session, bob, "gone/app", POLICY)
        assert (disabled.actions, disabled.namespace_disabled) == (frozenset(), True)
        assert disabled.namespace_id is not None
        chart = await repository_access(session, await _user(db, "alice"), "alice/chart", POLICY)
        assert (chart.actions, chart.not_an_image_repository) == (frozenset(), True)
        missing = await repository_access(session, await _user(db, "mirror"), "nobody/x", POLICY)
        assert (missing.namespace_id, missing.repository_id) == (None, None)
        own = await repository_access(session, await _user(db, "alice"), "alice/x", POLICY)
        assert own.namespace_id is not None


async def test_anonymous_access_can_be_turned_off(db: Database) -> None:
    closed = AccessPolicy(anonymous_access=False)
    async with db.reader() as session:
        assert not (await repository_access(session, None, "alice/public", closed)).actions
        bob = await _user(db, "bob")
        assert (await repository_access(session, bob, "alice/public", closed)).actions == READ


async def test_invalid_names_are_refused(db: Database) -> None:
    async with db.reader() as session:
        for name in ("ubuntu", "Alice/app", "alice//app"):
            with pytest.raises(RegistryError) as info:
                await repository_access(session, None, name, POLICY)
            assert info.value.code is NAME_INVALID


async def test_authorize_scopes_downscopes_and_lists_repositories_to_create(db: Database) -> None:
    requested = parse_scopes(
        [
            "repository:alice/new:pull,push",
            "repository:acme/app:pull,push",
            "registry:catalog:*",
            "repository:alice/public:*,pull",
            "repository:alice/other:pull",
        ]
    )
    async with db.reader() as session:
        result = await authorize_scopes(session, await _user(db, "alice"), requested, POLICY)
        assert result.grants == (
            Grant("repository", "alice/new", ("pull", "push")),
            Grant("repository", "acme/app", ()),  # kept with no actions, like Quay
            Grant("registry", "catalog", ("*",)),
            Grant("repository", "alice/public", ("pull", "*")),
            Grant("repository", "alice/other", ("pull",)),
        )
        assert [str(a.name) for a in result.repositories] == [
            "alice/new",
            "acme/app",
            "alice/public",
            "alice/other",
        ]
        # alice/other may be created too, but only a granted push creates it
        assert [str(a.name) for a in result.to_create()] == ["alice/new"]

        anonymous = await authorize_scopes(
            session,
            None,
            parse_scopes(["registry:catalog:*", "repository:acme/app:pull"]),
            AccessPolicy(anonymous_access=False),
        )
        assert anonymous.grants == (
            Grant("registry", "catalog", ()),
            Grant("repository", "acme/app", ()),
        )
        assert anonymous.to_create() == ()
