"""Listings: tags (`/v2/<name>/tags/list`), the catalog (`/v2/_catalog`) and referrers
(`/v2/<name>/referrers/<digest>`).

Tags and catalog paginate as the spec says: `n` results at most, strictly after `last`, in
lexical order, with `Link: <...?n=N&last=L>; rel="next"` when more remain. Without `n` a page
holds at most `MAX_PAGE` entries (the spec lets a registry cap it, with the same `Link`).
"""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy import exists, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from wharf.db.models import (
    Repository,
    RepositoryKind,
    RepositoryPermission,
    RepositoryState,
    User,
    Visibility,
    now_ms,
)
from wharf.registry import manifest_rows as rows
from wharf.registry import tags
from wharf.registry.access import authorize, challenge, registry_context, verified_token
from wharf.registry.auth.scopes import CATALOG, PULL, REGISTRY
from wharf.registry.errors import PAGINATION_NUMBER_INVALID, UNAUTHORIZED, RegistryError
from wharf.registry.manifests import OCI_INDEX, ManifestError, parse_manifest, referrer_descriptor
from wharf.registry.routes import check_digest, resolve_repository

MAX_PAGE = 1000
CATALOG_ACTIONS = ("*",)

router = APIRouter()


def _page_size(request: Request) -> int:
    raw = request.query_params.get("n")
    if raw is None or raw == "":
        return MAX_PAGE
    if not raw.isdigit():
        raise RegistryError(
            PAGINATION_NUMBER_INVALID, {"n": raw, "reason": "must be a non-negative integer"}
        )
    return min(int(raw), MAX_PAGE)


def _link(path: str, n: int, last: str) -> str:
    return f'<{path}?{urlencode({"n": n, "last": last})}>; rel="next"'


def _page(path: str, items: list[str], n: int) -> tuple[list[str], dict[str, str]]:
    """`items` holds up to n+1 entries: the extra one only says that a next page exists."""
    if len(items) <= n or n == 0:
        return items[:n], {}
    page = items[:n]
    return page, {"Link": _link(path, n, page[-1])}


@router.get("/v2/{name:path}/tags/list")
async def list_tags(request: Request, name: str) -> Response:
    authorized = authorize(request, name, PULL)
    n = _page_size(request)
    last = request.query_params.get("last") or None
    repository = await resolve_repository(request, authorized)
    async with registry_context(request).db.reader() as session:
        names = await tags.tag_names(session, repository.id, now_ms(), after=last, limit=n + 1)
    page, headers = _page(f"/v2/{name}/tags/list", names, n)
    return JSONResponse({"name": str(authorized.name), "tags": page}, headers=headers)


@router.get("/v2/_catalog")
async def catalog(request: Request) -> Response:
    """Repositories the caller may pull, given a token with `registry:catalog:*`."""
    ctx = registry_context(request)
    scope = f"{REGISTRY}:{CATALOG}:*"
    token = verified_token(request, scopes=(scope,))
    if not token.allows(REGISTRY, CATALOG, "*"):
        raise RegistryError(
            UNAUTHORIZED,
            {"reason": f"the token does not grant {scope}"},
            headers={
                "WWW-Authenticate": challenge(request, scopes=(scope,), error="insufficient_scope")
            },
        )
    n = _page_size(request)
    last = request.query_params.get("last") or None
    async with ctx.db.reader() as session:
        names = await _visible_repositories(session, request, token.subject, last, n + 1)
    page, headers = _page("/v2/_catalog", names, n)
    return JSONResponse({"repositories": page}, headers=headers)


async def _visible_repositories(
    session: AsyncSession, request: Request, username: str | None, after: str | None, limit: int
) -> list[str]:
    policy = registry_context(request).auth.policy
    user = None
    if username is not None:
        user = (
            await session.execute(select(User).where(User.username == username))
        ).scalar_one_or_none()
        if user is not None and not user.enabled:
            user = None
    namespace = User.__table__.alias("namespace")
    full_name = tags.byte_ordered(session, namespace.c.username + "/" + Repository.name)
    visible = []
    if user is not None or policy.anonymous_access:
        visible.append(Visibility.name == "public")
    if user is not None:
        if user.username in policy.superusers or user.username in policy.push_anywhere:
            visible.append(Repository.id.is_not(None))
        visible.append(namespace.c.id == user.id)
        visible.append(
            exists().where(
                RepositoryPermission.repository_id == Repository.id,
                RepositoryPermission.user_id == user.id,
            )
        )
    if not visible:
        return []
    query = (
        select(full_name)
        .select_from(Repository)
        .join(namespace, namespace.c.id == Repository.namespace_user_id)
        .join(Visibility, Visibility.id == Repository.visibility_id)
        .join(RepositoryKind, RepositoryKind.id == Repository.kind_id)
        .where(
            RepositoryKind.name == "image",
            Repository.state != int(RepositoryState.MARKED_FOR_DELETION),
            namespace.c.enabled.is_(True),
            or_(*visible),
        )
        .order_by(full_name)
        .limit(limit)
    )
    if after is not None:
        query = query.where(full_name > after)
    return [str(name) for name in (await session.execute(query)).scalars().all()]


@router.get("/v2/{name:path}/referrers/{digest}")
async def list_referrers(request: Request, name: str, digest: str) -> Response:
    authorized = authorize(request, name, PULL)
    check_digest(digest)
    repository = await resolve_repository(request, authorized)
    async with registry_context(request).db.reader() as session:
        found = await rows.referrers(session, repository.id, digest, now_ms())
    wanted = request.query_params.get("artifactType")
    descriptors = []
    for stored in found:
        try:
            parsed = parse_manifest(stored.body, stored.media_type)
        except ManifestError:
            continue  # written by another tool and unreadable to us: not a referrer we can list
        descriptor = referrer_descriptor(parsed, stored.digest, len(stored.body))
        if wanted is None or descriptor.get("artifactType") == wanted:
            descriptors.append(descriptor)
    headers = {"Content-Type": OCI_INDEX}
    if wanted is not None:
        headers["OCI-Filters-Applied"] = "artifactType"
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": descriptors}
    return JSONResponse(index, headers=headers, media_type=OCI_INDEX)
