"""The shared base of every driver: argument checks, error mapping and metrics, done once.

Public methods check keys and arguments, time the call and count its outcome, then call the
driver's `_do_*` method. Whatever a backend raises that is not already a `StorageError` goes
through the driver's single `_translate` method.
"""

from __future__ import annotations

import abc
import time
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator
from contextlib import aclosing, asynccontextmanager
from datetime import timedelta
from typing import ClassVar

from wharf.storage import metrics
from wharf.storage.errors import BackendError, InvalidUpload, ObjectNotFound, StorageError
from wharf.storage.keys import VERIFY_KEY, check_key
from wharf.storage.protocol import (
    ChunkResult,
    ChunkTap,
    DownloadContext,
    JSONDict,
    ObjectInfo,
    StorageDriver,
)

MAX_READ_CHUNK = 4 * 1024 * 1024
"""No driver yields a larger chunk from `stream_read`: what bounds a reader's memory."""


class BaseDriver(abc.ABC):
    driver_name: ClassVar[str]

    def __init__(self, location: str) -> None:
        self.location = location

    # -- error mapping and metrics -------------------------------------------------------

    @abc.abstractmethod
    def _translate(self, exc: Exception, path: str | None) -> StorageError:
        """Map one backend exception to the library's hierarchy; called for every failure."""

    def _stamp(self, error: StorageError, path: str | None) -> StorageError:
        error.driver = error.driver or self.driver_name
        error.location = error.location or self.location
        if path is not None and error.path is None:
            error.path = path
        return error

    @asynccontextmanager
    async def _operation(self, name: str, path: str | None = None) -> AsyncIterator[None]:
        started = time.perf_counter()
        outcome = "ok"
        try:
            yield
        except SourceStreamFailed as exc:
            # The caller's own stream broke (say, a client hung up): theirs to handle, not ours.
            outcome = "source_failed"
            raise exc.cause from None
        except StorageError as exc:
            outcome = type(exc).__name__
            self._stamp(exc, path)
            raise
        except Exception as exc:
            mapped = self._stamp(self._translate(exc, path), path)
            outcome = type(mapped).__name__
            raise mapped from exc
        finally:
            metrics.OPERATIONS.labels(self.driver_name, self.location, name, outcome).inc()
            metrics.OPERATION_SECONDS.labels(self.driver_name, name).observe(
                time.perf_counter() - started
            )

    def _count_bytes(self, direction: str, count: int) -> None:
        if count:
            metrics.BYTES.labels(self.driver_name, self.location, direction).inc(count)

    # -- the public contract -------------------------------------------------------------

    async def get_content(self, path: str) -> bytes:
        async with self._operation("get_content", check_key(path)):
            data = await self._do_get_content(path)
        self._count_bytes("read", len(data))
        return data

    async def put_content(self, path: str, content: bytes) -> None:
        async with self._operation("put_content", check_key(path)):
            await self._do_put_content(path, bytes(content))
        self._count_bytes("write", len(content))

    async def stream_read(
        self, path: str, offset: int = 0, length: int | None = None
    ) -> AsyncIterator[bytes]:
        check_key(path)
        if offset < 0 or (length is not None and length < 0):
            raise self._stamp(BackendError("offset and length must not be negative"), path)
        total = 0
        async with self._operation("stream_read", path):
            if length == 0:
                await self._do_stat(path)
                return
            # Closed with this stream, not later by the garbage collector: a caller that
            # stops early gets the file or connection released before it goes on.
            async with aclosing(self._do_stream_read(path, offset, length)) as chunks:
                async for chunk in chunks:
                    total += len(chunk)
                    yield chunk
        self._count_bytes("read", total)

    async def stream_write(
        self,
        path: str,
        chunks: AsyncIterable[bytes],
        *,
        content_type: str | None = None,
        content_encoding: str | None = None,
        tap: ChunkTap | None = None,
    ) -> int:
        async with self._operation("stream_write", check_key(path)):
            written = await self._do_stream_write_tapped(
                path, guard_source(chunks), content_type, content_encoding, tap
            )
        self._count_bytes("write", written)
        return written

    async def exists(self, path: str) -> bool:
        async with self._operation("exists", check_key(path)):
            return await self._do_exists(path)

    async def stat(self, path: str) -> ObjectInfo:
        async with self._operation("stat", check_key(path)):
            return await self._do_stat(path)

    async def remove(self, path: str) -> None:
        async with self._operation("remove", check_key(path)):
            await self._do_remove(path)

    async def get_checksum(self, path: str) -> str:
        async with self._operation("get_checksum", check_key(path)):
            return await self._do_get_checksum(path)

    async def copy_to(self, destination: StorageDriver, path: str) -> None:
        async with self._operation("copy_to", check_key(path)):
            if not await self._do_copy_to_same_backend(destination, path):
                await destination.stream_write(path, self.stream_read(path))

    async def validate(self) -> None:
        async with self._operation("validate", VERIFY_KEY):
            await self.put_content(VERIFY_KEY, b"testing 123")
            if not await self.exists(VERIFY_KEY):
                raise BackendError("could not find the verification file after writing it")
            await self._do_validate()

    async def direct_download_url(
        self,
        path: str,
        *,
        expires_in: int = 60,
        context: DownloadContext | None = None,
        head: bool = False,
        requires_cors: bool = False,
    ) -> str | None:
        async with self._operation("direct_download_url", check_key(path)):
            return await self._do_direct_download_url(
                path, expires_in, context or DownloadContext(), head, requires_cors
            )

    def supports_resumable_downloads(self) -> bool:
        return False

    async def initiate_chunked_upload(self) -> tuple[str, JSONDict]:
        async with self._operation("initiate_chunked_upload"):
            return await self._do_initiate_chunked_upload()

    async def upload_chunk(
        self,
        upload_id: str,
        offset: int,
        chunks: AsyncIterable[bytes],
        metadata: JSONDict,
        *,
        length: int | None = None,
        tap: ChunkTap | None = None,
    ) -> ChunkResult:
        async with self._operation("upload_chunk", check_key(upload_id)):
            if offset < 0 or (length is not None and length < 0):
                raise InvalidUpload("chunk offset and length must not be negative")
            source = guard_source(chunks if length is None else limit_stream(chunks, length))
            result = await self._do_upload_chunk_tapped(upload_id, offset, source, metadata, tap)
        self._count_bytes("write", result.bytes_written)
        return result

    async def complete_chunked_upload(
        self, upload_id: str, final_path: str, metadata: JSONDict
    ) -> None:
        check_key(upload_id)
        async with self._operation("complete_chunked_upload", check_key(final_path)):
            await self._do_complete_chunked_upload(upload_id, final_path, metadata)

    async def cancel_chunked_upload(self, upload_id: str, metadata: JSONDict) -> None:
        async with self._operation("cancel_chunked_upload", check_key(upload_id)):
            await self._do_cancel_chunked_upload(upload_id, metadata)

    async def clean_partial_uploads(self, older_than: timedelta) -> int:
        async with self._operation("clean_partial_uploads"):
            return await self._do_clean_partial_uploads(older_than)

    async def clean_orphaned_multipart_uploads(self, older_than: timedelta) -> int:
        async with self._operation("clean_orphaned_multipart_uploads"):
            return await self._do_clean_orphaned_multipart_uploads(older_than)

    async def aclose(self) -> None:  # noqa: B027 - most drivers hold nothing to close
        """Release connections; drivers holding none need not override it."""

    # -- what each driver implements -----------------------------------------------------

    async def _do_get_content(self, path: str) -> bytes:
        return b"".join([chunk async for chunk in self._do_stream_read(path, 0, None)])

    @abc.abstractmethod
    async def _do_put_content(self, path: str, content: bytes) -> None: ...

    @abc.abstractmethod
    def _do_stream_read(
        self, path: str, offset: int, length: int | None
    ) -> AsyncGenerator[bytes, None]:
        """Yield `[offset, offset+length)`; a missing key raises before the first chunk."""

    @abc.abstractmethod
    async def _do_stream_write(
        self,
        path: str,
        chunks: AsyncIterable[bytes],
        content_type: str | None,
        content_encoding: str | None,
    ) -> int: ...

    async def _do_stream_write_tapped(
        self,
        path: str,
        chunks: AsyncIterable[bytes],
        content_type: str | None,
        content_encoding: str | None,
        tap: ChunkTap | None,
    ) -> int:
        """`_do_stream_write` with a tap (or None); see `_do_upload_chunk_tapped`."""
        source = chunks if tap is None else tapped(chunks, tap)
        return await self._do_stream_write(path, source, content_type, content_encoding)

    async def _do_exists(self, path: str) -> bool:
        try:
            await self._do_stat(path)
        except Exception as exc:
            if self._is_not_found(exc, path):
                return False
            raise
        return True

    def _is_not_found(self, exc: Exception, path: str | None) -> bool:
        """Whether a raw backend exception (or an already mapped one) means "no such key"."""
        if isinstance(exc, StorageError):
            return isinstance(exc, ObjectNotFound)
        return isinstance(self._translate(exc, path), ObjectNotFound)

    @abc.abstractmethod
    async def _do_stat(self, path: str) -> ObjectInfo: ...

    @abc.abstractmethod
    async def _do_remove(self, path: str) -> None: ...

    @abc.abstractmethod
    async def _do_get_checksum(self, path: str) -> str: ...

    async def _do_copy_to_same_backend(self, destination: StorageDriver, path: str) -> bool:
        """Copy server-side when the destination shares this backend; False means stream it."""
        return False

    async def _do_validate(self) -> None:  # noqa: B027 - optional hook
        """Driver-specific checks after the write probe."""

    async def _do_direct_download_url(
        self, path: str, expires_in: int, context: DownloadContext, head: bool, requires_cors: bool
    ) -> str | None:
        return None

    @abc.abstractmethod
    async def _do_initiate_chunked_upload(self) -> tuple[str, JSONDict]: ...

    @abc.abstractmethod
    async def _do_upload_chunk(
        self, upload_id: str, offset: int, chunks: AsyncIterable[bytes], metadata: JSONDict
    ) -> ChunkResult: ...

    async def _do_upload_chunk_tapped(
        self,
        upload_id: str,
        offset: int,
        chunks: AsyncIterable[bytes],
        metadata: JSONDict,
        tap: ChunkTap | None,
    ) -> ChunkResult:
        """`_do_upload_chunk` with a tap (or None): by default the tap sees each chunk on the
        event loop as the driver takes it; a driver that writes in a worker thread overrides
        this and calls it there."""
        source = chunks if tap is None else tapped(chunks, tap)
        return await self._do_upload_chunk(upload_id, offset, source, metadata)

    @abc.abstractmethod
    async def _do_complete_chunked_upload(
        self, upload_id: str, final_path: str, metadata: JSONDict
    ) -> None: ...

    @abc.abstractmethod
    async def _do_cancel_chunked_upload(self, upload_id: str, metadata: JSONDict) -> None: ...

    @abc.abstractmethod
    async def _do_clean_partial_uploads(self, older_than: timedelta) -> int: ...

    async def _do_clean_orphaned_multipart_uploads(self, older_than: timedelta) -> int:
        """Only backends with multipart uploads of their own (the S3 family) have any."""
        return 0


class SourceStreamFailed(Exception):
    """Raised inside a driver when the caller's chunk iterator failed; carries that failure."""

    def __init__(self, cause: Exception) -> None:
        super().__init__(str(cause))
        self.cause = cause


async def guard_source(chunks: AsyncIterable[bytes]) -> AsyncIterator[bytes]:
    """Mark failures of the caller's iterator so they are not mistaken for backend failures."""
    iterator = aiter(chunks)
    while True:
        try:
            chunk = await anext(iterator)
        except StopAsyncIteration:
            return
        except Exception as exc:
            raise SourceStreamFailed(exc) from exc
        yield chunk


async def tapped(chunks: AsyncIterable[bytes], tap: ChunkTap) -> AsyncIterator[bytes]:
    """Pass every chunk to `tap`, then on."""
    async for chunk in chunks:
        tap(chunk)
        yield chunk


async def limit_stream(chunks: AsyncIterable[bytes], length: int) -> AsyncIterator[bytes]:
    """Pass through at most `length` bytes of `chunks`."""
    remaining = length
    if remaining <= 0:
        return
    async for chunk in chunks:
        if len(chunk) >= remaining:
            yield chunk[:remaining]
            return
        remaining -= len(chunk)
        yield chunk
