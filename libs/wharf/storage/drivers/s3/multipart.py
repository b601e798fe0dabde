"""Streaming multipart writes and server-side assembly on S3-compatible backends."""

from __future__ import annotations

import asyncio
import contextlib
import io
from collections.abc import AsyncIterable, AsyncIterator, Coroutine, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from wharf.storage import metrics
from wharf.storage.drivers.s3.settings import GiB, MiB
from wharf.storage.streams import fixed_size_parts

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client
    from types_aiobotocore_s3.type_defs import CompletedPartTypeDef

MAX_PARTS = 10_000
MAX_PART_SIZE = 5 * GiB
DEFAULT_PART_SIZE = 8 * MiB
PARTS_PER_SIZE_STEP = 1_000
IN_FLIGHT_BUDGET = 32 * MiB
"""Bytes of part bodies held in memory at once by one writer (at least one part)."""
COPY_CONCURRENCY = 4


def part_size_for(index: int, base: int) -> int:
    """Part `index` (0-based) of a streaming write: the size doubles every 1,000 parts.

    With an 8 MiB base the first 8 GiB go in 8 MiB parts and a 100 GiB object needs about
    3,700 parts, well under S3's 10,000; small objects keep small parts and little memory.
    """
    return min(base << (index // PARTS_PER_SIZE_STEP), MAX_PART_SIZE)


def split_range(length: int, maximum: int) -> list[int]:
    """Quay's `_rechunk`: halve a copy range until every piece is at most `maximum` bytes."""
    if length <= maximum:
        return [length]
    half = length // 2
    return split_range(half, maximum) + split_range(length - half, maximum)


@dataclass(frozen=True)
class CopyPiece:
    source_key: str
    start: int
    length: int


class MultipartWriter:
    """Writes one object from a byte stream: one PUT when small, else a multipart upload."""

    def __init__(
        self,
        client: S3Client,
        bucket: str,
        key: str,
        *,
        base_part_size: int,
        location: str,
        extra_args: dict[str, Any],
    ) -> None:
        self.client = client
        self.bucket = bucket
        self.key = key
        self.base_part_size = base_part_size
        self.location = location
        self.extra_args = extra_args

    async def write(self, chunks: AsyncIterable[bytes], *, allow_empty: bool = True) -> int:
        parts = aiter(fixed_size_parts(chunks, lambda i: part_size_for(i, self.base_part_size)))
        try:
            first, size = await anext(parts)
        except StopAsyncIteration:  # anext()'s default trips a CPython 3.11 bug here
            first, size = io.BytesIO(), 0
        if size < self.base_part_size:
            # The whole object fits in one part (only the last part is ever short).
            if size or allow_empty:
                await self.client.put_object(
                    Bucket=self.bucket, Key=self.key, Body=first, **self.extra_args
                )
            return size
        upload = await self.client.create_multipart_upload(
            Bucket=self.bucket, Key=self.key, **self.extra_args
        )
        upload_id = upload["UploadId"]
        metrics.MULTIPART_UPLOADS.labels(self.location, "started").inc()
        try:
            total, completed = await self._upload_parts(upload_id, (first, size), parts)
            await self.client.complete_multipart_upload(
                Bucket=self.bucket,
                Key=self.key,
                UploadId=upload_id,
                MultipartUpload={"Parts": completed},
            )
        except BaseException:
            await _abort_quietly(self.client, self.bucket, self.key, upload_id)
            raise
        metrics.MULTIPART_UPLOADS.labels(self.location, "completed").inc()
        return total

    async def _upload_parts(
        self,
        upload_id: str,
        first: tuple[io.BytesIO, int],
        rest: AsyncIterator[tuple[io.BytesIO, int]],
    ) -> tuple[int, list[CompletedPartTypeDef]]:
        etags: dict[int, str] = {}
        pending: set[asyncio.Task[None]] = set()
        total = 0

        async def send(number: int, body: io.BytesIO) -> None:
            response = await self.client.upload_part(
                Bucket=self.bucket, Key=self.key, UploadId=upload_id, PartNumber=number, Body=body
            )
            etags[number] = response["ETag"]

        try:
            number = 0
            part: tuple[io.BytesIO, int] | None = first
            while part is not None:
                body, size = part
                number += 1
                if number > MAX_PARTS:
                    raise ValueError("object too large for S3's 10,000-part limit")
                total += size
                pending.add(asyncio.create_task(send(number, body)))
                in_flight = max(1, IN_FLIGHT_BUDGET // size)
                while len(pending) >= in_flight:
                    done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                    for task in done:
                        task.result()
                part = await _next_or_none(rest)
            if pending:
                await asyncio.gather(*pending)
                pending = set()
        finally:
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
        return total, [{"PartNumber": n, "ETag": etags[n]} for n in sorted(etags)]


async def _next_or_none(
    parts: AsyncIterator[tuple[io.BytesIO, int]],
) -> tuple[io.BytesIO, int] | None:
    try:
        return await anext(parts)
    except StopAsyncIteration:
        return None


async def copy_assemble(
    client: S3Client,
    bucket: str,
    key: str,
    pieces: Sequence[CopyPiece],
    *,
    maximum_part_size: int,
    location: str,
    extra_args: dict[str, Any],
) -> None:
    """Build `key` server-side from byte ranges of other objects with `UploadPartCopy`."""
    ranges = [
        (piece.source_key, start, size)
        for piece in pieces
        for start, size in _offsets(piece, maximum_part_size)
    ]
    upload = await client.create_multipart_upload(Bucket=bucket, Key=key, **extra_args)
    upload_id = upload["UploadId"]
    metrics.MULTIPART_UPLOADS.labels(location, "started").inc()
    etags: dict[int, str] = {}
    limiter = asyncio.Semaphore(COPY_CONCURRENCY)

    async def copy(number: int, source_key: str, start: int, size: int) -> None:
        async with limiter:
            response = await client.upload_part_copy(
                Bucket=bucket,
                Key=key,
                UploadId=upload_id,
                PartNumber=number,
                CopySource={"Bucket": bucket, "Key": source_key},
                CopySourceRange=f"bytes={start}-{start + size - 1}",
            )
            etags[number] = response["CopyPartResult"]["ETag"]

    try:
        await _gather_all([copy(n, *r) for n, r in enumerate(ranges, start=1)])
        await client.complete_multipart_upload(
            Bucket=bucket,
            Key=key,
            UploadId=upload_id,
            MultipartUpload={"Parts": [{"PartNumber": n, "ETag": etags[n]} for n in sorted(etags)]},
        )
    except BaseException:
        await _abort_quietly(client, bucket, key, upload_id)
        raise
    metrics.MULTIPART_UPLOADS.labels(location, "completed").inc()


def _offsets(piece: CopyPiece, maximum: int) -> list[tuple[int, int]]:
    result = []
    start = piece.start
    for size in split_range(piece.length, maximum):
        result.append((start, size))
        start += size
    return result


async def _gather_all(coroutines: Sequence[Coroutine[Any, Any, None]]) -> None:
    """Run every coroutine; on the first failure cancel the rest and raise it."""
    tasks = [asyncio.create_task(coroutine) for coroutine in coroutines]
    try:
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _abort_quietly(client: S3Client, bucket: str, key: str, upload_id: str) -> None:
    # Shielded: a cancelled request must still release the parts it stored.
    with contextlib.suppress(Exception):  # the original failure is what the caller must see
        await asyncio.shield(
            client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
        )
