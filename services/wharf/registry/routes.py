"""HTTP routes for blobs and blob uploads under /v2/<name>/blobs/."""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from wharf.db.models import Repository, User
from wharf.registry import blobs
from wharf.registry.access import Authorized, authorize, registry_context
from wharf.registry.auth import repository_access
from wharf.registry.auth.scopes import DELETE, PULL, PUSH
from wharf.registry.context import RegistryContext
from wharf.registry.errors import (
    BLOB_UNKNOWN,
    BLOB_UPLOAD_INVALID,
    DIGEST_INVALID,
    NAME_UNKNOWN,
    RANGE_INVALID,
    UNSUPPORTED,
    RegistryError,
)
from wharf.registry.names import RepositoryName, parse_repository_name
from wharf.registry.ranges import RangeError, parse_content_range, parse_range, upload_range_header
from wharf.registry.repositories import create_repository, find_repository
from wharf.registry.uploads import Uploads
from wharf.storage import DownloadContext, content_path

SUPPORTED_DIGEST_ALGORITHMS = {"sha256": 64, "sha512": 128}

router = APIRouter()


def _ctx(request: Request) -> RegistryContext:
    return registry_context(request)


def check_digest(value: str | None) -> str:
    algorithm, _, hexpart = (value or "").partition(":")
    width = SUPPORTED_DIGEST_ALGORITHMS.get(algorithm)
    if width is None or len(hexpart) != width or not all(c in "0123456789abcdef" for c in hexpart):
        raise RegistryError(DIGEST_INVALID, {"digest": value, "reason": "not sha256/sha512 hex"})
    return value or ""


async def resolve_repository(
    request: Request, authorized: Authorized, *, create: bool = False
) -> Repository:
    """The repository the request is authorized on; with `create`, a push creates it when the
    token grants push and the policy lets the token's user create it (checked again now)."""
    parsed = authorized.name
    ctx = _ctx(request)
    async with ctx.db.reader(fresh=True) as session:
        repository = await find_repository(session, parsed)
    if repository is None and create and authorized.allows(parsed, PUSH):
        async with ctx.db.writer() as session:
            repository = await find_repository(session, parsed)
            if repository is None and await _may_create(session, ctx, authorized):
                repository = await create_repository(session, parsed, public=ctx.public_on_create)
    if repository is None:
        raise RegistryError(NAME_UNKNOWN, {"name": str(parsed)})
    return repository


async def _may_create(session: AsyncSession, ctx: RegistryContext, authorized: Authorized) -> bool:
    subject = authorized.token.subject
    if subject is None:
        return False
    user = (
        await session.execute(select(User).where(User.username == subject))
    ).scalar_one_or_none()
    if user is None:
        return False
    access = await repository_access(session, user, authorized.name, ctx.auth.policy)
    return access.create_on_push


def _upload_location(name: RepositoryName | str, upload_id: str) -> str:
    return f"/v2/{name}/blobs/uploads/{upload_id}"


def _upload_response(name: str, upload_id: str, received: int, status: int) -> Response:
    return Response(
        status_code=status,
        headers={
            "Location": _upload_location(name, upload_id),
            "Docker-Upload-UUID": upload_id,
            "Range": upload_range_header(received),
            "Content-Length": "0",
        },
    )


def _created(name: str, digest: str) -> Response:
    return Response(
        status_code=201,
        headers={
            "Location": f"/v2/{name}/blobs/{digest}",
            "Docker-Content-Digest": digest,
            "Content-Length": "0",
        },
    )


def _declared_length(request: Request) -> int | None:
    raw = request.headers.get("content-length")
    if raw is None:
        return None
    if not raw.isdigit():
        raise RegistryError(BLOB_UPLOAD_INVALID, {"reason": "invalid Content-Length"})
    return int(raw)


@router.post("/v2/{name:path}/blobs/uploads/")
async def start_upload(request: Request, name: str) -> Response:
    authorized = authorize(request, name, PUSH)
    repository = await resolve_repository(request, authorized, create=True)
    uploads = Uploads(_ctx(request))
    mount, source = request.query_params.get("mount"), request.query_params.get("from")
    if mount and source:
        mounted = await _mount(request, authorized, repository, check_digest(mount), source)
        if mounted:
            return _created(name, mount)
    digest = request.query_params.get("digest")
    if digest is not None:
        check_digest(digest)  # before a session exists: a refused request leaves nothing
    declared = _declared_length(request)
    upload_id = await uploads.start(repository.id)
    if digest is None:
        return _upload_response(name, upload_id, 0, 202)
    try:
        await uploads.append(repository.id, upload_id, request.stream(), length=declared)
        await uploads.finish(repository.id, upload_id, digest)
    except RegistryError as exc:
        if exc.code.code != "DIGEST_INVALID":  # a digest mismatch has cancelled it already
            await uploads.cancel(repository.id, upload_id)
        raise
    return _created(name, digest)


async def _mount(
    request: Request, authorized: Authorized, target: Repository, digest: str, source: str
) -> bool:
    """Link a blob of `source` into `target`; False (a plain upload follows, as distribution
    does) when the source is unknown, lacks the blob, or the token cannot pull from it."""
    ctx = _ctx(request)
    try:
        source_name = parse_repository_name(source)
    except RegistryError:
        return False
    if not authorized.allows(source_name, PULL):
        return False
    async with ctx.db.writer() as session:
        _, blob = await session.run_sync(
            lambda sync: blobs.lookup_blob(
                sync, source_name.namespace, source_name.repository, digest
            )
        )
        if blob is None or not blob.locations:
            return False
        location = sorted(blob.locations)[0]
        await blobs.commit_blob(
            session,
            repository_id=target.id,
            digest=digest,
            size=blob.size,
            location=location,
            location_ids=ctx.location_ids,
        )
    return True


@router.patch("/v2/{name:path}/blobs/uploads/{upload_id}")
async def upload_chunk(request: Request, name: str, upload_id: str) -> Response:
    authorized = authorize(request, name, PUSH)
    start = length = None
    content_range = request.headers.get("content-range")
    if content_range is not None:
        try:
            byte_range = parse_content_range(content_range)
        except RangeError as exc:
            raise RegistryError(RANGE_INVALID, {"reason": str(exc)}) from None
        start, length = byte_range.start, byte_range.length
        declared = _declared_length(request)
        if declared is not None and declared != length:
            raise RegistryError(
                RANGE_INVALID, {"reason": "Content-Length does not match Content-Range"}
            )
    uploads = Uploads(_ctx(request))
    repository_id, state = await uploads.locate(authorized.name, upload_id)
    received = await uploads.append(
        repository_id,
        upload_id,
        request.stream(),
        start=start,
        length=length,
        location_header=_upload_location(name, upload_id),
        state=state,
    )
    return _upload_response(name, upload_id, received, 202)


@router.put("/v2/{name:path}/blobs/uploads/{upload_id}")
async def finish_upload(request: Request, name: str, upload_id: str) -> Response:
    authorized = authorize(request, name, PUSH)
    digest = check_digest(request.query_params.get("digest"))
    uploads = Uploads(_ctx(request))
    declared = _declared_length(request)
    repository_id, state = await uploads.locate(authorized.name, upload_id)
    if declared == 0:
        await uploads.finish(repository_id, upload_id, digest, state)
    else:  # a final chunk, appended where the upload ends; `finish` reads the new state
        await uploads.append(
            repository_id, upload_id, request.stream(), length=declared, state=state
        )
        await uploads.finish(repository_id, upload_id, digest)
    return _created(name, digest)


@router.get("/v2/{name:path}/blobs/uploads/{upload_id}")
async def upload_status(request: Request, name: str, upload_id: str) -> Response:
    authorized = authorize(request, name, PULL)
    _, state = await Uploads(_ctx(request)).locate(authorized.name, upload_id)
    return _upload_response(name, upload_id, state.byte_count, 204)


@router.delete("/v2/{name:path}/blobs/uploads/{upload_id}")
async def cancel_upload(request: Request, name: str, upload_id: str) -> Response:
    authorized = authorize(request, name, PUSH)
    uploads = Uploads(_ctx(request))
    repository_id, state = await uploads.locate(authorized.name, upload_id)
    await uploads.cancel(repository_id, upload_id, state)
    return Response(status_code=204)


@router.api_route("/v2/{name:path}/blobs/{digest}", methods=["GET", "HEAD"])
async def get_blob(request: Request, name: str, digest: str) -> Response:
    head = request.method == "HEAD"
    authorized = authorize(request, name, PULL)
    check_digest(digest)
    ctx = _ctx(request)
    name_parsed = authorized.name

    def lookup(session: Session) -> blobs.BlobRecord | None:
        repository_id, blob = blobs.lookup_blob(
            session, name_parsed.namespace, name_parsed.repository, digest
        )
        if repository_id is None:
            raise RegistryError(NAME_UNKNOWN, {"name": str(name_parsed)})
        return blob

    blob = await ctx.db.read(lookup)  # one read transaction, one hop: see `Database.read`
    if blob is None or not blob.locations:
        raise RegistryError(BLOB_UNKNOWN, {"digest": digest})
    headers = {
        "Docker-Content-Digest": digest,
        "Content-Type": "application/octet-stream",
        "Accept-Ranges": "bytes",
    }
    byte_range = None
    if "range" in request.headers:
        try:
            byte_range = parse_range(request.headers["range"], blob.size)
        except RangeError as exc:
            raise RegistryError(
                RANGE_INVALID,
                {"reason": str(exc)},
                headers={"Content-Range": f"bytes */{blob.size}"},
            ) from None
    if head:
        headers["Content-Length"] = str(blob.size)
        return Response(status_code=200, headers=headers)
    if ctx.blob_redirects:
        url = await ctx.storage.direct_download_url(
            blob.locations,
            content_path(digest),
            context=DownloadContext(
                client_ip=request.client.host if request.client else None,
                namespace=authorized.name.namespace,
                repository=authorized.name.repository,
                username=authorized.token.subject,
                host=request.headers.get("host"),
            ),
        )
        if url is not None:
            # The client repeats its Range header against the URL; storage answers it.
            return Response(
                status_code=307, headers={"Location": url, "Docker-Content-Digest": digest}
            )
    offset, length, status = 0, blob.size, 200
    if byte_range is not None:
        offset, length, status = byte_range.start, byte_range.length, 206
        headers["Content-Range"] = byte_range.content_range(blob.size)
    headers["Content-Length"] = str(length)
    stream = ctx.storage.stream_read(blob.locations, content_path(digest), offset, length)
    try:  # fail with a proper error before the headers go out
        first = await anext(stream)
    except StopAsyncIteration:
        first = b""
    return StreamingResponse(_prepend(first, stream), status_code=status, headers=headers)


@router.delete("/v2/{name:path}/blobs/{digest}")
async def delete_blob(request: Request, name: str, digest: str) -> Response:
    authorize(request, name, DELETE)
    raise RegistryError(UNSUPPORTED, {"reason": "blob deletion is done by garbage collection"})


async def _prepend(first: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    if first:
        yield first
    async for chunk in rest:
        yield chunk
