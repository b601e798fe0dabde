"""HTTP routes for manifests: `/v2/<name>/manifests/<reference>` (GET, HEAD, PUT, DELETE).

- PUT validates the manifest (`wharf.registry.manifests.parse_manifest`), checks that every
  blob and child manifest it references is in the repository, stores the exact bytes, and
  points the tag (or, by digest, every `?tag=`) at it. A push by digest alone keeps the
  manifest alive with a hidden `$temp-` tag: an hour, or for ever for a referrer (it has a
  `subject`), as Quay does.
- GET by tag serves the stored bytes when the client's `Accept` admits their media type or
  states no preference, else 404: Wharf never converts manifests. GET by digest always serves
  the stored bytes: the digest pins them.
- DELETE by tag ends the tag; DELETE by digest ends every tag on the manifest, hidden ones too,
  so that a manifest pushed by digest (a referrer) can be deleted. Rows stay for Quay's GC.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterable

from fastapi import APIRouter, Request, Response
from sqlalchemy.orm import Session

from wharf.db.models import Repository, now_ms
from wharf.registry import manifest_rows as rows
from wharf.registry import tags
from wharf.registry.access import Authorized, authorize, registry_context
from wharf.registry.auth.scopes import DELETE, PULL, PUSH
from wharf.registry.errors import (
    DIGEST_INVALID,
    MANIFEST_BLOB_UNKNOWN,
    MANIFEST_INVALID,
    MANIFEST_TOO_LARGE,
    MANIFEST_UNKNOWN,
    NAME_UNKNOWN,
    RegistryError,
)
from wharf.registry.manifests import (
    MAX_MANIFEST_BYTES,
    ManifestInvalid,
    ManifestTooLarge,
    ParsedManifest,
    parse_manifest,
)
from wharf.registry.names import is_tag
from wharf.registry.negotiation import accepts
from wharf.registry.routes import check_digest, resolve_repository

router = APIRouter()


def _reference(reference: str) -> tuple[str | None, str | None]:
    """(tag, None) or (None, digest); a reference that is neither is refused."""
    if ":" in reference:
        return None, check_digest(reference)
    if is_tag(reference):
        return reference, None
    raise RegistryError(
        MANIFEST_INVALID,
        {
            "reference": reference,
            "reason": "neither a tag ([a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}) "
            "nor a sha256/sha512 digest",
        },
    )


async def _read_body(body: AsyncIterable[bytes], declared: str | None) -> bytes:
    """The request body, refused with 413 as soon as it is known to pass the limit."""
    if declared is not None and declared.isdigit() and int(declared) > MAX_MANIFEST_BYTES:
        raise _too_large(ManifestTooLarge(int(declared), MAX_MANIFEST_BYTES))
    received = bytearray()
    async for chunk in body:
        received += chunk
        if len(received) > MAX_MANIFEST_BYTES:
            raise _too_large(ManifestTooLarge(len(received), MAX_MANIFEST_BYTES))
    return bytes(received)


def _too_large(error: ManifestTooLarge) -> RegistryError:
    return RegistryError(MANIFEST_TOO_LARGE, {"reason": error.reason, "limit": error.limit})


def _digest_of(body: bytes, algorithm: str) -> str:
    return f"{algorithm}:{hashlib.new(algorithm, body).hexdigest()}"


@router.put("/v2/{name:path}/manifests/{reference}")
async def put_manifest(request: Request, name: str, reference: str) -> Response:
    authorized = authorize(request, name, PUSH)
    tag, digest = _reference(reference)
    extra_tags = request.query_params.getlist("tag")
    for extra in extra_tags:
        if not is_tag(extra):
            raise RegistryError(MANIFEST_INVALID, {"tag": extra, "reason": "not a valid tag"})
    body = await _read_body(request.stream(), request.headers.get("content-length"))
    try:
        parsed = parse_manifest(body, request.headers.get("content-type"))
    except ManifestInvalid as error:
        raise RegistryError(MANIFEST_INVALID, {"reason": error.reason}) from None
    except ManifestTooLarge as error:
        raise _too_large(error) from None
    if digest is not None:
        actual = _digest_of(body, digest.partition(":")[0])
        if actual != digest:
            raise RegistryError(
                DIGEST_INVALID,
                {"digest": digest, "reason": f"the manifest's digest is {actual}"},
            )
    else:
        digest = parsed.digest
    repository = await resolve_repository(request, authorized, create=True)
    tag_names = list(dict.fromkeys(([tag] if tag else []) + extra_tags))
    await _store(request, repository, parsed, digest, tag_names, pushed_by_digest=tag is None)
    headers = {
        "Location": f"/v2/{name}/manifests/{digest}",
        "Docker-Content-Digest": digest,
        "Content-Length": "0",
    }
    if parsed.subject is not None:
        headers["OCI-Subject"] = parsed.subject.digest
    response = Response(status_code=201, headers=headers)
    for extra in dict.fromkeys(extra_tags):
        response.headers.append("OCI-Tag", extra)
    return response


async def _store(
    request: Request,
    repository: Repository,
    parsed: ParsedManifest,
    digest: str,
    tag_names: list[str],
    *,
    pushed_by_digest: bool,
) -> None:
    ctx = registry_context(request)
    async with ctx.db.writer() as session:
        now = now_ms()
        manifest_id = await rows.find_manifest_id(session, repository.id, digest)
        if manifest_id is None:
            blob_ids = await rows.resolve_blobs(session, repository.id, parsed.blob_digests)
            child_ids = await rows.resolve_manifests(session, repository.id, parsed.child_digests)
            missing = [d for d in parsed.blob_digests if d not in blob_ids]
            missing += [d for d in parsed.child_digests if d not in child_ids]
            if missing:
                raise RegistryError(
                    MANIFEST_BLOB_UNKNOWN,
                    {"digest": missing[0]},
                    more_details=[{"digest": d} for d in missing[1:]],
                )
            manifest_id = await rows.insert_manifest(
                session,
                repository_id=repository.id,
                namespace_id=repository.namespace_user_id,
                parsed=parsed,
                digest=digest,
                blob_ids=blob_ids.values(),
                child_ids=child_ids.values(),
            )
        for tag_name in tag_names:
            await tags.retarget_tag(session, repository.id, tag_name, manifest_id, now)
        if pushed_by_digest:
            lifetime = None if parsed.subject is not None else tags.PUSH_TEMP_TAG_LIFETIME_MS
            await tags.keep_alive_untagged(
                session, repository.id, manifest_id, now, lifetime_ms=lifetime
            )


async def _find(
    request: Request, authorized: Authorized, tag: str | None, digest: str | None
) -> rows.StoredManifest:
    name, now = authorized.name, now_ms()

    def lookup(session: Session) -> rows.StoredManifest:
        found = rows.lookup_manifest(
            session, name.namespace, name.repository, tag=tag, digest=digest, now_ms=now
        )
        if found.repository_id is None:
            raise RegistryError(NAME_UNKNOWN, {"name": str(name)})
        if found.manifest is not None:
            return found.manifest
        if tag is not None:
            expired = rows.tag_ever_existed(session, found.repository_id, tag)
            reason = "the tag has expired or was deleted" if expired else "no such tag"
            raise RegistryError(MANIFEST_UNKNOWN, {"tag": tag, "reason": reason})
        raise RegistryError(MANIFEST_UNKNOWN, {"digest": digest})

    # The hot path of every pull: one read transaction, one hop (see `Database.read`).
    return await registry_context(request).db.read(lookup)


@router.api_route("/v2/{name:path}/manifests/{reference}", methods=["GET", "HEAD"])
async def get_manifest(request: Request, name: str, reference: str) -> Response:
    authorized = authorize(request, name, PULL)
    tag, digest = _reference(reference)
    stored = await _find(request, authorized, tag, digest)
    if tag is not None and not accepts(request.headers.getlist("accept"), stored.media_type):
        raise RegistryError(
            MANIFEST_UNKNOWN,
            {
                "tag": tag,
                "mediaType": stored.media_type,
                "reason": "the manifest's media type is not in the Accept header, and Wharf "
                "does not convert manifests",
            },
        )
    etag = f'"{stored.digest}"'
    headers = {
        "Content-Type": stored.media_type,
        "Docker-Content-Digest": stored.digest,
        "ETag": etag,
        "Content-Length": str(len(stored.body)),
    }
    if etag in _etags(request.headers.getlist("if-none-match")):
        return Response(
            status_code=304, headers={k: v for k, v in headers.items() if k != "Content-Length"}
        )
    if request.method == "HEAD":
        return Response(status_code=200, headers=headers)
    return Response(content=stored.body, status_code=200, headers=headers)


def _etags(values: list[str]) -> set[str]:
    return {item.strip().removeprefix("W/") for value in values for item in value.split(",")}


@router.delete("/v2/{name:path}/manifests/{reference}")
async def delete_manifest(request: Request, name: str, reference: str) -> Response:
    authorized = authorize(request, name, DELETE)
    tag, digest = _reference(reference)
    repository = await resolve_repository(request, authorized)
    ctx = registry_context(request)
    async with ctx.db.writer() as session:
        now = now_ms()
        if tag is not None:
            if not await tags.end_tag(session, repository.id, tag, now):
                raise RegistryError(MANIFEST_UNKNOWN, {"tag": tag})
        else:
            assert digest is not None
            found = await session.run_sync(
                lambda sync: rows.lookup_manifest(
                    sync, authorized.name.namespace, authorized.name.repository,
                    digest=digest, now_ms=now,
                )
            )  # fmt: skip
            stored = found.manifest
            if stored is None:
                raise RegistryError(MANIFEST_UNKNOWN, {"digest": digest})
            await tags.end_manifest_tags(session, repository.id, stored.id, now)
    return Response(status_code=202, headers={"Content-Length": "0"})
