"""The S3 family on aiobotocore: objects, ranged streaming, presigned URLs, chunked uploads.

Chunked uploads keep Quay's metadata, `{"chunks": [["uploads/<uuid4>", offset, length], ...]}`:
every chunk is its own object, and completion assembles them server-side with `UploadPartCopy`
when every chunk but the last is at least `minimum_chunk_size`, else joins them by streaming.
"""

from __future__ import annotations

import asyncio
import copy
import uuid
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from wharf.storage.base import BaseDriver
from wharf.storage.drivers.s3.client import S3Connection, error_code, translate
from wharf.storage.drivers.s3.multipart import (
    DEFAULT_PART_SIZE,
    CopyPiece,
    MultipartWriter,
    copy_assemble,
)
from wharf.storage.drivers.s3.settings import S3Settings
from wharf.storage.errors import InvalidPath, InvalidUpload, StorageError
from wharf.storage.keys import UPLOADS, check_key, prefixed_key
from wharf.storage.protocol import ChunkResult, DownloadContext, JSONDict, ObjectInfo, StorageDriver

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client

DELETE_CONCURRENCY = 16
S3_READ_CHUNK = 1024 * 1024


class S3FamilyDriver(BaseDriver):
    driver_name = "S3Storage"
    client_side_join_only = False
    """GCS-through-S3 never assembles server-side (Quay always joins it client-side)."""

    def __init__(self, location: str, settings: S3Settings) -> None:
        super().__init__(location)
        self.settings = settings
        self.connection = S3Connection(settings)
        self.part_size = max(settings.minimum_chunk_size, DEFAULT_PART_SIZE)

    def _key(self, path: str) -> str:
        return prefixed_key(self.settings.storage_path, path)

    async def _client(self) -> S3Client:
        return await self.connection.client()

    def _translate(self, exc: Exception, path: str | None) -> StorageError:
        return translate(exc, self.settings.bucket, path)

    async def aclose(self) -> None:
        await self.connection.aclose()

    def supports_resumable_downloads(self) -> bool:
        return True

    # -- objects ---------------------------------------------------------------------------

    async def _do_get_content(self, path: str) -> bytes:
        client = await self._client()
        response = await client.get_object(Bucket=self.settings.bucket, Key=self._key(path))
        async with response["Body"] as body:
            return await body.read()

    async def _do_put_content(self, path: str, content: bytes) -> None:
        client = await self._client()
        await client.put_object(
            Bucket=self.settings.bucket,
            Key=self._key(path),
            Body=content,
            **self.settings.upload_params,
        )

    async def _do_stream_read(
        self, path: str, offset: int, length: int | None
    ) -> AsyncGenerator[bytes, None]:
        client = await self._client()
        request: dict[str, Any] = {"Bucket": self.settings.bucket, "Key": self._key(path)}
        if offset or length is not None:
            end = "" if length is None else str(offset + length - 1)
            request["Range"] = f"bytes={offset}-{end}"
        try:
            response = await client.get_object(**request)
        except ClientError as exc:
            if error_code(exc) != "InvalidRange":
                raise
            await self._do_stat(path)  # past the end of an existing object: nothing to read
            return
        async with response["Body"] as body:
            async for chunk in body.iter_chunks(S3_READ_CHUNK):
                yield chunk

    async def _do_stream_write(
        self,
        path: str,
        chunks: AsyncIterable[bytes],
        content_type: str | None,
        content_encoding: str | None,
    ) -> int:
        extra = dict(self.settings.upload_params)
        if content_type:
            extra["ContentType"] = content_type
        if content_encoding:
            extra["ContentEncoding"] = content_encoding
        # Unlike Quay, an empty stream writes an empty object: the empty blob must be readable.
        return await self._write(self._key(path), chunks, extra)

    async def _write(
        self,
        key: str,
        chunks: AsyncIterable[bytes],
        extra: dict[str, Any] | None = None,
        *,
        allow_empty: bool = True,
    ) -> int:
        writer = MultipartWriter(
            await self._client(),
            self.settings.bucket,
            key,
            base_part_size=self.part_size,
            location=self.location,
            extra_args=dict(self.settings.upload_params) if extra is None else extra,
        )
        return await writer.write(chunks, allow_empty=allow_empty)

    async def _do_stat(self, path: str) -> ObjectInfo:
        client = await self._client()
        head = await client.head_object(Bucket=self.settings.bucket, Key=self._key(path))
        return ObjectInfo(
            size=head["ContentLength"],
            last_modified=head.get("LastModified"),
            etag=head.get("ETag", "").strip('"') or None,
            content_type=head.get("ContentType"),
        )

    async def _do_remove(self, path: str) -> None:
        client = await self._client()
        key = self._key(path)
        try:
            await client.head_object(Bucket=self.settings.bucket, Key=key)
        except ClientError as exc:
            if not self._is_not_found(exc, path):
                raise
            # Quay: a key that is not an object may be a "directory" of objects.
            await self._delete_keys([k async for k, _ in self._list(key + "/")])
            return
        await client.delete_object(Bucket=self.settings.bucket, Key=key)

    async def _do_get_checksum(self, path: str) -> str:
        info = await self._do_stat(path)
        return (info.etag or "")[:7]

    async def _do_copy_to_same_backend(self, destination: StorageDriver, path: str) -> bool:
        if not (
            isinstance(destination, S3FamilyDriver)
            and type(destination) is type(self)
            and self._same_account(destination)
        ):
            return False
        size = (await self._do_stat(path)).size
        await destination._server_side_copy(
            [CopyPiece(self._key(path), 0, size)], destination._key(path), self.settings.bucket
        )
        return True

    def _same_account(self, other: S3FamilyDriver) -> bool:
        mine, theirs = self.settings, other.settings
        return bool(mine.access_key) and (
            mine.access_key,
            mine.secret_key,
            mine.endpoint_url,
            mine.region,
        ) == (theirs.access_key, theirs.secret_key, theirs.endpoint_url, theirs.region)

    async def _do_direct_download_url(
        self, path: str, expires_in: int, context: DownloadContext, head: bool, requires_cors: bool
    ) -> str | None:
        if requires_cors and not self.settings.presign_with_cors:
            return None
        client = await self._client()
        url: str = await client.generate_presigned_url(
            "head_object" if head else "get_object",
            Params={"Bucket": self.settings.bucket, "Key": self._key(path)},
            ExpiresIn=expires_in,
        )
        return url

    # -- chunked uploads -------------------------------------------------------------------

    async def _do_initiate_chunked_upload(self) -> tuple[str, JSONDict]:
        return str(uuid.uuid4()), {"chunks": []}

    async def _do_upload_chunk(
        self, upload_id: str, offset: int, chunks: AsyncIterable[bytes], metadata: JSONDict
    ) -> ChunkResult:
        records = chunk_records(metadata)
        received = sum(length for _, _, length in records)
        if offset != received:
            raise InvalidUpload(
                f"chunk starts at byte {offset} but the upload holds {received} bytes"
            )
        chunk_key = f"{UPLOADS}/{uuid.uuid4()}"
        written = await self._write(self._key(chunk_key), chunks, allow_empty=False)
        updated = copy.deepcopy(metadata)
        if written:
            updated["chunks"] = [*[list(r) for r in records], [chunk_key, offset, written]]
        return ChunkResult(written, updated)

    async def _do_complete_chunked_upload(
        self, upload_id: str, final_path: str, metadata: JSONDict
    ) -> None:
        records = chunk_records(metadata)
        final_key = self._key(final_path)
        if not records:
            await self._do_put_content(final_path, b"")
            return
        # Unlike Quay, each chunk object is read from its own byte 0: a chunk sent at a
        # non-zero blob offset holds its bytes from the start of its object.
        pieces = [CopyPiece(self._key(key), 0, length) for key, _, length in records]
        server_side = (
            self.settings.server_side_assembly
            and not self.client_side_join_only
            and all(p.length >= self.settings.minimum_chunk_size for p in pieces[:-1])
        )
        if server_side or len(pieces) == 1:
            await self._server_side_copy(pieces, final_key, self.settings.bucket)
        else:
            await self._write(final_key, self._join(pieces))
        # Unlike Quay, chunk objects go at once instead of waiting for the periodic cleanup.
        await self._delete_keys([p.source_key for p in pieces], quietly=True)

    async def _do_cancel_chunked_upload(self, upload_id: str, metadata: JSONDict) -> None:
        records = chunk_records(metadata)
        await self._delete_keys([self._key(key) for key, _, _ in records])

    async def _do_clean_partial_uploads(self, older_than: timedelta) -> int:
        cutoff = datetime.now(UTC) - older_than
        prefix = self._key(UPLOADS)
        stale = [key async for key, modified in self._list(prefix) if modified <= cutoff]
        await self._delete_keys(stale)
        return len(stale)

    async def _do_clean_orphaned_multipart_uploads(self, older_than: timedelta) -> int:
        """Abort multipart uploads under this driver's prefix started before the threshold."""
        client = await self._client()
        cutoff = datetime.now(UTC) - older_than
        prefix = self._key("x")[:-1]
        aborted = 0
        paginator = client.get_paginator("list_multipart_uploads")
        async for page in paginator.paginate(Bucket=self.settings.bucket, Prefix=prefix):
            for upload in page.get("Uploads", []):
                if upload["Initiated"] > cutoff:
                    continue
                try:
                    await client.abort_multipart_upload(
                        Bucket=self.settings.bucket,
                        Key=upload["Key"],
                        UploadId=upload["UploadId"],
                    )
                    aborted += 1
                except ClientError as exc:
                    if error_code(exc) not in ("NoSuchUpload", "NoSuchKey", "404"):
                        raise
        return aborted

    # -- helpers ---------------------------------------------------------------------------

    async def _server_side_copy(self, pieces: list[CopyPiece], key: str, bucket: str) -> None:
        client = await self._client()
        single = pieces[0] if len(pieces) == 1 else None
        if single and single.start == 0 and single.length <= self.settings.maximum_chunk_size:
            await client.copy_object(
                Bucket=self.settings.bucket,
                Key=key,
                CopySource={"Bucket": bucket, "Key": single.source_key},
                **self.settings.upload_params,
            )
            return
        await copy_assemble(
            client,
            self.settings.bucket,
            key,
            pieces,
            maximum_part_size=self.settings.maximum_chunk_size,
            location=self.location,
            extra_args=self.settings.upload_params,
        )

    async def _join(self, pieces: list[CopyPiece]) -> AsyncIterator[bytes]:
        client = await self._client()
        for piece in pieces:
            response = await client.get_object(
                Bucket=self.settings.bucket,
                Key=piece.source_key,
                Range=f"bytes={piece.start}-{piece.start + piece.length - 1}",
            )
            async with response["Body"] as body:
                async for chunk in body.iter_chunks(S3_READ_CHUNK):
                    yield chunk

    async def _list(self, prefix: str) -> AsyncIterator[tuple[str, datetime]]:
        client = await self._client()
        paginator = client.get_paginator("list_objects_v2")
        async for page in paginator.paginate(Bucket=self.settings.bucket, Prefix=prefix):
            for entry in page.get("Contents", []):
                yield entry["Key"], entry["LastModified"]

    async def _delete_keys(self, keys: list[str], *, quietly: bool = False) -> None:
        client = await self._client()
        limiter = asyncio.Semaphore(DELETE_CONCURRENCY)

        async def delete(key: str) -> None:
            async with limiter:
                await client.delete_object(Bucket=self.settings.bucket, Key=key)

        try:
            await asyncio.gather(*(delete(key) for key in keys))
        except Exception:
            if not quietly:
                raise


def chunk_records(metadata: JSONDict) -> list[tuple[str, int, int]]:
    """Read Quay's S3 chunk list, refusing anything that is not exactly that shape."""
    chunks = metadata.get("chunks") if isinstance(metadata, dict) else None
    if not isinstance(chunks, list):
        raise InvalidUpload("upload metadata has no 'chunks' list")
    records = []
    for entry in chunks:
        if (
            not isinstance(entry, list | tuple)
            or len(entry) != 3
            or not isinstance(entry[0], str)
            or not all(isinstance(n, int) and not isinstance(n, bool) for n in entry[1:])
            or entry[1] < 0
            or entry[2] <= 0
        ):
            raise InvalidUpload(f"malformed chunk record {entry!r}")
        try:
            key = check_key(entry[0])
        except InvalidPath:
            raise InvalidUpload(f"chunk record holds a refused key: {entry[0]!r}") from None
        if not key.startswith(f"{UPLOADS}/"):
            raise InvalidUpload(f"chunk record points outside {UPLOADS}/: {key!r}")
        records.append((key, entry[1], entry[2]))
    return records
