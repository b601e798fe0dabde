"""Blob upload sessions on Quay's `blobupload` rows, any replica able to continue them.

After every chunk the row holds the byte count, the storage metadata and the SHA-256 state
(Quay's `sha_state` format), so a restarted process or another replica picks up where the
last chunk ended. No database connection is held while bytes stream to storage.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select, text
from sqlalchemy.orm import Session

from wharf.db.models import BlobUpload, localnow
from wharf.digest import (
    HashStateUnavailable,
    InvalidHashState,
    ResumableSHA256,
    hashlib_digest_of_stream,
)
from wharf.registry import blobs
from wharf.registry.context import RegistryContext
from wharf.registry.errors import (
    BLOB_UPLOAD_INVALID,
    BLOB_UPLOAD_UNKNOWN,
    DIGEST_INVALID,
    NAME_UNKNOWN,
    RANGE_INVALID,
    SIZE_INVALID,
    RegistryError,
)
from wharf.registry.names import RepositoryName
from wharf.registry.ranges import upload_range_header
from wharf.storage import InvalidUpload, content_path
from wharf.storage.keys import UPLOADS

UPLOAD_ID_RE = re.compile(r"[A-Za-z0-9_.-]{1,255}")
"""What an upload id can look like (Quay's and Wharf's are UUIDs)."""

UPLOAD_IN_REPOSITORY = text(
    """
    SELECT r.id, b.id, b.uuid, b.byte_count, b.chunk_count, b.location_id,
           b.storage_metadata, b.sha_state
    FROM repository r JOIN "user" u ON u.id = r.namespace_user_id
    LEFT JOIN blobupload b ON b.repository_id = r.id AND b.uuid = :uuid
    WHERE u.username = :namespace AND r.name = :repository AND r.state != 3
    """
)
"""The repository (never one marked for deletion) and its upload, in one statement: text,
as `blobs.BLOB_IN_REPOSITORY`, because building the ORM form cost more than running it."""

SAVE_CHUNK = text(
    """
    UPDATE blobupload
    SET byte_count = :new_count, chunk_count = chunk_count + 1,
        storage_metadata = :metadata, sha_state = :sha_state
    WHERE id = :id AND byte_count = :old_count
    """
)
"""After a chunk: the row moves on only from the byte count the chunk started at."""


@dataclass(frozen=True)
class UploadState:
    id: int
    upload_id: str
    byte_count: int
    chunk_count: int
    location: str
    metadata: dict[str, Any]
    sha_state: str | None


class Uploads:
    def __init__(self, context: RegistryContext) -> None:
        self.ctx = context
        self._location_names = {v: k for k, v in context.location_ids.items()}

    async def start(self, repository_id: int) -> str:
        location = self.ctx.upload_location
        upload_id, metadata = await self.ctx.storage.initiate_chunked_upload([location])
        async with self.ctx.db.writer() as session:
            session.add(
                BlobUpload(
                    repository_id=repository_id,
                    uuid=upload_id,
                    byte_count=0,
                    chunk_count=0,
                    location_id=self.ctx.location_ids[location],
                    storage_metadata=json.dumps(metadata),
                    sha_state=_fresh_state(),
                    created=localnow(),
                )
            )
        return upload_id

    async def state(self, repository_id: int, upload_id: str) -> UploadState:
        _check_upload_id(upload_id)

        def query(session: Session) -> UploadState:
            row = session.execute(
                select(
                    BlobUpload.repository_id,
                    BlobUpload.id,
                    BlobUpload.uuid,
                    BlobUpload.byte_count,
                    BlobUpload.chunk_count,
                    BlobUpload.location_id,
                    BlobUpload.storage_metadata,
                    BlobUpload.sha_state,
                ).where(BlobUpload.repository_id == repository_id, BlobUpload.uuid == upload_id)
            ).first()
            return self._state_of(row, upload_id)

        return await self.ctx.db.read(query, fresh=True)

    async def locate(self, name: RepositoryName, upload_id: str) -> tuple[int, UploadState]:
        """The repository's id and the upload's state, in one read (a chunk's first step)."""
        _check_upload_id(upload_id)
        params = {"namespace": name.namespace, "repository": name.repository, "uuid": upload_id}

        row = await self.ctx.db.fetch_one(UPLOAD_IN_REPOSITORY, params, fresh=True)
        if row is None:
            raise RegistryError(NAME_UNKNOWN, {"name": str(name)})
        return row[0], self._state_of(row, upload_id)

    def _state_of(self, row: Any, upload_id: str) -> UploadState:
        """From (repository id, id, uuid, byte_count, chunk_count, location_id,
        storage_metadata, sha_state), the upload's columns None when there is no upload."""
        if row is None or row[1] is None:
            raise RegistryError(BLOB_UPLOAD_UNKNOWN, {"uuid": upload_id})
        _, row_id, uuid, byte_count, chunk_count, location_id, raw_metadata, sha_state = row
        metadata = parse_storage_metadata(raw_metadata)
        if metadata is None:
            raise RegistryError(BLOB_UPLOAD_INVALID, {"reason": "corrupt upload metadata"})
        return UploadState(
            row_id,
            uuid,
            byte_count,
            chunk_count,
            self._location_names[location_id],
            metadata,
            sha_state,
        )

    async def append(
        self,
        repository_id: int,
        upload_id: str,
        chunks: AsyncIterable[bytes],
        *,
        start: int | None = None,
        length: int | None = None,
        location_header: str = "",
        state: UploadState | None = None,
    ) -> int:
        """Add one chunk; returns the upload's byte count afterwards. `state`: the upload's
        state when the caller has just read it (see `locate`)."""
        if state is None:
            state = await self.state(repository_id, upload_id)
        skip = 0
        if start is not None:
            if start > state.byte_count:
                raise RegistryError(
                    RANGE_INVALID,
                    {"uuid": upload_id, "received": state.byte_count, "chunk_start": start},
                    headers={
                        "Range": upload_range_header(state.byte_count),
                        "Location": location_header,
                        "Docker-Upload-UUID": upload_id,
                    },
                )
            skip = state.byte_count - start  # a resent overlap: keep what we have
        source: AsyncIterable[bytes] = _skip(chunks, skip) if skip else chunks
        if length is not None:
            length = max(length - skip, 0)
            # Failing inside the stream makes the driver drop the partial chunk, so storage
            # and the row never disagree about how many bytes the upload holds.
            source = _exactly(source, length)
        hasher = _restore(state.sha_state)
        try:
            # The hash is fed by the storage driver, possibly in the thread that writes each
            # chunk right after hashing it (see `ChunkTap`).
            result = await self.ctx.storage.upload_chunk(
                [state.location],
                upload_id,
                state.byte_count,
                source,
                state.metadata,
                tap=hasher.update if hasher is not None else None,
            )
        except InvalidUpload as exc:
            raise RegistryError(BLOB_UPLOAD_INVALID, {"reason": exc.message}) from None
        new_count = state.byte_count + result.bytes_written
        if new_count > self.ctx.max_blob_size:
            raise RegistryError(SIZE_INVALID, {"reason": "blob exceeds the maximum size"})
        params = {
            "id": state.id,
            "old_count": state.byte_count,
            "new_count": new_count,
            "metadata": json.dumps(result.metadata),
            "sha_state": _export(hasher),
        }
        if await self.ctx.db.execute(SAVE_CHUNK, params) != 1:
            raise RegistryError(
                BLOB_UPLOAD_INVALID, {"reason": "another chunk of this upload won the race"}
            )
        return new_count

    async def finish(
        self, repository_id: int, upload_id: str, digest: str, state: UploadState | None = None
    ) -> blobs.BlobRecord:
        """Check the digest, move the bytes under the blob's key and record the blob."""
        if state is None:
            state = await self.state(repository_id, upload_id)
        algorithm = digest.partition(":")[0]
        hasher = _restore(state.sha_state) if algorithm == "sha256" else None
        if hasher is not None and hasher.bytes_hashed == state.byte_count:
            computed = f"sha256:{hasher.hexdigest()}"
            final = content_path(computed)
            if computed != digest:
                await self.cancel(repository_id, upload_id)
                raise RegistryError(DIGEST_INVALID, {"digest": digest, "computed": computed})
            await self._complete(state, final)
        else:
            # No usable running hash (sha512, or state lost): verify from storage, through a
            # scratch key, so a wrong digest never shows under a blob key.
            computed = await self._digest_from_storage(state, algorithm)
            if computed != digest:
                await self.ctx.storage.remove([state.location], _scratch_key(upload_id))
                await self._delete_row(state)
                raise RegistryError(DIGEST_INVALID, {"digest": digest, "computed": computed})
            final = content_path(computed)
            scratch = _scratch_key(upload_id)
            if not await self.ctx.storage.exists([state.location], final):
                await self.ctx.storage.stream_write(
                    [state.location], final, self.ctx.storage.stream_read([state.location], scratch)
                )
            await self.ctx.storage.remove([state.location], scratch)
        async with self.ctx.db.writer() as session:
            storage_id = await blobs.commit_blob(
                session,
                repository_id=repository_id,
                digest=digest,
                size=state.byte_count,
                location=state.location,
                location_ids=self.ctx.location_ids,
            )
            await session.execute(delete(BlobUpload).where(BlobUpload.id == state.id))
        return blobs.BlobRecord(storage_id, digest, state.byte_count, frozenset([state.location]))

    async def cancel(
        self, repository_id: int, upload_id: str, state: UploadState | None = None
    ) -> None:
        if state is None:
            state = await self.state(repository_id, upload_id)
        await self.ctx.storage.cancel_chunked_upload([state.location], upload_id, state.metadata)
        await self._delete_row(state)

    async def _complete(self, state: UploadState, final: str) -> None:
        storage = self.ctx.storage
        if await storage.exists([state.location], final):
            await storage.cancel_chunked_upload([state.location], state.upload_id, state.metadata)
        else:
            await storage.complete_chunked_upload(
                [state.location], state.upload_id, final, state.metadata
            )

    async def _digest_from_storage(self, state: UploadState, algorithm: str) -> str:
        scratch = _scratch_key(state.upload_id)
        storage = self.ctx.storage
        await storage.complete_chunked_upload(
            [state.location], state.upload_id, scratch, state.metadata
        )
        # The route admits only sha256 and sha512, both of which this helper hashes.
        hexdigest = await hashlib_digest_of_stream(
            algorithm, storage.stream_read([state.location], scratch)
        )
        return f"{algorithm}:{hexdigest}"

    async def _delete_row(self, state: UploadState) -> None:
        async with self.ctx.db.writer() as session:
            await session.execute(delete(BlobUpload).where(BlobUpload.id == state.id))


def parse_storage_metadata(text: str | None) -> dict[str, Any] | None:
    """`blobupload.storage_metadata` as a dict (`{}` when empty); None when it is corrupt."""
    try:
        value = json.loads(text or "{}")
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _check_upload_id(upload_id: str) -> None:
    if not UPLOAD_ID_RE.fullmatch(upload_id):
        # Never a row: and a NUL byte or odd text must not reach the database driver.
        raise RegistryError(BLOB_UPLOAD_UNKNOWN, {"uuid": upload_id[:64]})


def _fresh_state() -> str | None:
    try:
        return ResumableSHA256().export_state_text()
    except HashStateUnavailable:
        return None


def _restore(text: str | None) -> ResumableSHA256 | None:
    if text is None:
        return None
    try:
        return ResumableSHA256.from_state_text(text)
    except (HashStateUnavailable, InvalidHashState):
        return None


def _export(hasher: ResumableSHA256 | None) -> str | None:
    if hasher is None:
        return None
    try:
        return hasher.export_state_text()
    except HashStateUnavailable:
        return None


def _scratch_key(upload_id: str) -> str:
    return f"{UPLOADS}/{upload_id}.verify"


async def _exactly(chunks: AsyncIterable[bytes], length: int) -> AsyncIterator[bytes]:
    """Pass `chunks` through, failing if they hold more or fewer than `length` bytes."""
    received = 0
    async for chunk in chunks:
        received += len(chunk)
        if received > length:
            raise RegistryError(
                SIZE_INVALID, {"reason": "body longer than declared", "declared": length}
            )
        yield chunk
    if received != length:
        raise RegistryError(
            SIZE_INVALID,
            {"reason": "body shorter than declared", "declared": length, "received": received},
        )


async def _skip(chunks: AsyncIterable[bytes], count: int) -> AsyncIterator[bytes]:
    async for chunk in chunks:
        if count >= len(chunk):
            count -= len(chunk)
            continue
        yield chunk[count:] if count else chunk
        count = 0
