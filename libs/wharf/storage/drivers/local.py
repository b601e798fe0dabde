"""`LocalStorage`: a directory tree on local disk, Quay's layout.

Writes land in a temporary file under `uploads/` and are renamed into place only once
complete and flushed, so a crash never leaves a half-written object under its final key. All
file I/O runs in the default thread pool, never on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import hashlib
import os
import shutil
import stat
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, ParamSpec, TypeVar

from wharf.storage.base import MAX_READ_CHUNK, BaseDriver
from wharf.storage.drivers.cached_read import cached_reader
from wharf.storage.drivers.file_writes import write_all, write_pipelined
from wharf.storage.errors import (
    BackendError,
    BackendUnavailable,
    InvalidUpload,
    ObjectNotFound,
    StorageConfigError,
    StorageError,
)
from wharf.storage.keys import UPLOADS, upload_path
from wharf.storage.params import LocalStorageParams
from wharf.storage.protocol import ChunkResult, ChunkTap, JSONDict, ObjectInfo, StorageDriver

P = ParamSpec("P")
T = TypeVar("T")

COPY_BLOCK_SIZE = 1024 * 1024
LOCAL_READ_SIZE = MAX_READ_CHUNK
"""Reads from disk in 4 MiB blocks: one thread-pool round trip per block is the main cost."""
CACHED_READ_SIZE = 2 * 1024 * 1024
"""Page-cache reads on the event loop copy 2 MiB at a time (~100 us): short enough not to
delay other requests, long enough that per-block overhead stays small (1 MiB and 4 MiB
measured slightly slower)."""
PARTIAL_SUFFIX = ".partial"


async def _disk_blocks(fd: int, position: int, end: int | None) -> AsyncGenerator[bytes, None]:
    """Blocks from `position` to `end` (or the end of the file) read in the thread pool,
    the next one already being read while the caller consumes this one."""
    loop = asyncio.get_running_loop()

    def read_ahead(at: int) -> asyncio.Future[bytes] | None:
        size = LOCAL_READ_SIZE if end is None else min(LOCAL_READ_SIZE, end - at)
        return loop.run_in_executor(None, os.pread, fd, size, at) if size > 0 else None

    ahead = read_ahead(position)
    try:
        while ahead is not None:
            # Shielded: cancelled here, the read still ends before the file closes.
            chunk = await asyncio.shield(ahead)
            if not chunk:
                ahead = None
                return
            position += len(chunk)
            ahead = read_ahead(position)
            yield chunk
    finally:
        if ahead is not None:
            await asyncio.wait([ahead])
            if not ahead.cancelled():
                ahead.exception()  # retrieved: a read nobody waits for any more


async def _io(func: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(None, lambda: func(*args, **kwargs))


class LocalStorage(BaseDriver):
    driver_name = "LocalStorage"

    def __init__(self, location: str, params: LocalStorageParams) -> None:
        super().__init__(location)
        self.root = Path(params.storage_path).absolute()

    def _file(self, path: str) -> Path:
        return self.root / path

    def _translate(self, exc: Exception, path: str | None) -> StorageError:
        if isinstance(exc, FileNotFoundError | IsADirectoryError | NotADirectoryError):
            return ObjectNotFound(f"no such object: {path}")
        if isinstance(exc, PermissionError):
            return StorageConfigError(f"permission denied under {self.root}: {exc.strerror}")
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EIO):
            return BackendUnavailable(f"disk error: {exc.strerror}")
        return BackendError(f"{type(exc).__name__}: {exc}")

    # -- objects ---------------------------------------------------------------------------

    async def _do_put_content(self, path: str, content: bytes) -> None:
        await _io(self._write_atomically, self._file(path), [content])

    async def _do_stream_read(
        self, path: str, offset: int, length: int | None
    ) -> AsyncGenerator[bytes, None]:
        handle = await _io(open, self._file(path), "rb", buffering=0)
        fd, position = handle.fileno(), offset
        end = None if length is None else offset + length
        try:
            read_cached = cached_reader(fd)
            # Blocks in the page cache are copied here, without a thread-pool round trip
            # (see cached_read). This loop is the hot path of every cached read: it touches
            # as little as it can, since each 2 MiB copy has just evicted the CPU's caches.
            while read_cached is not None:
                size = CACHED_READ_SIZE if end is None else min(CACHED_READ_SIZE, end - position)
                if size <= 0:
                    return
                chunk = read_cached(size, position)
                if chunk is None:
                    break
                if not chunk:
                    return
                position += len(chunk)
                yield chunk
            # The first block that would wait for the disk: from here on, the pool reads.
            async with contextlib.aclosing(_disk_blocks(fd, position, end)) as blocks:
                async for chunk in blocks:
                    yield chunk
        finally:
            await _io(handle.close)

    async def _do_stream_write(
        self,
        path: str,
        chunks: AsyncIterable[bytes],
        content_type: str | None,
        content_encoding: str | None,
    ) -> int:
        return await self._do_stream_write_tapped(
            path, chunks, content_type, content_encoding, None
        )

    async def _do_stream_write_tapped(
        self,
        path: str,
        chunks: AsyncIterable[bytes],
        content_type: str | None,
        content_encoding: str | None,
        tap: ChunkTap | None,
    ) -> int:
        target = self._file(path)
        partial = await _io(self._open_partial, target)
        try:
            written = await write_pipelined(partial, chunks, tap)
            await _io(self._commit_partial, partial, target)
        except BaseException:
            await _io(self._discard_partial, partial)
            raise
        return written

    async def _do_get_content(self, path: str) -> bytes:
        return await _io(self._file(path).read_bytes)

    async def _do_stat(self, path: str) -> ObjectInfo:
        info = await _io(self._file(path).stat)
        if not stat.S_ISREG(info.st_mode):
            raise ObjectNotFound(f"no such object: {path}")
        return ObjectInfo(
            size=info.st_size, last_modified=datetime.fromtimestamp(info.st_mtime, UTC)
        )

    async def _do_remove(self, path: str) -> None:
        await _io(self._remove_tree_or_file, self._file(path))

    async def _do_get_checksum(self, path: str) -> str:
        return (await _io(self._sha256_file, self._file(path)))[:7]

    async def _do_copy_to_same_backend(self, destination: StorageDriver, path: str) -> bool:
        if not isinstance(destination, LocalStorage):
            return False
        await _io(self._copy_file, self._file(path), destination._file(path))
        return True

    # -- chunked uploads (metadata is `{}`, as Quay stores it for local disk) --------------

    async def _do_initiate_chunked_upload(self) -> tuple[str, JSONDict]:
        upload_id = str(uuid.uuid4())
        await _io(self._create_empty, self._file(upload_path(upload_id)))
        return upload_id, {}

    async def _do_upload_chunk(
        self, upload_id: str, offset: int, chunks: AsyncIterable[bytes], metadata: JSONDict
    ) -> ChunkResult:
        return await self._do_upload_chunk_tapped(upload_id, offset, chunks, metadata, None)

    async def _do_upload_chunk_tapped(
        self,
        upload_id: str,
        offset: int,
        chunks: AsyncIterable[bytes],
        metadata: JSONDict,
        tap: ChunkTap | None,
    ) -> ChunkResult:
        # Overridden so that the writer thread calls the tap (see `ChunkTap`).
        handle = await _io(self._open_upload, upload_id, offset)
        try:
            written = await write_pipelined(handle, chunks, tap)
        except BaseException:
            # Forget the partial chunk: the upload still ends at `offset`.
            await _io(self._truncate_and_close, handle, offset)
            raise
        await _io(self._truncate_and_close, handle, offset + written)
        return ChunkResult(written, {})

    async def _do_complete_chunked_upload(
        self, upload_id: str, final_path: str, metadata: JSONDict
    ) -> None:
        source = self._file(upload_path(upload_id))
        if not await _io(source.is_file):
            raise InvalidUpload(f"unknown upload {upload_id}")
        await _io(self._move_into_place, source, self._file(final_path))

    async def _do_cancel_chunked_upload(self, upload_id: str, metadata: JSONDict) -> None:
        await _io(self._remove_tree_or_file, self._file(upload_path(upload_id)))

    async def _do_clean_partial_uploads(self, older_than: timedelta) -> int:
        return await _io(self._sweep, time.time() - older_than.total_seconds())

    # -- blocking helpers: only ever called through `_io` ----------------------------------

    def _open_partial(self, target: Path) -> IO[bytes]:
        # Staged under uploads/ (the same file system as the target, so the rename is
        # atomic): what a crash leaves behind is then found by the upload folder's sweep
        # without walking every blob directory.
        self._make_parent(target)
        staging = self.root / UPLOADS
        staging.mkdir(parents=True, exist_ok=True)
        name = staging / f".{target.name}.{uuid.uuid4().hex}{PARTIAL_SUFFIX}"
        return open(name, "xb", buffering=0)

    def _make_parent(self, target: Path) -> None:
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            blocker = next(p for p in target.parents if p.is_file())
            key = blocker.relative_to(self.root) if blocker.is_relative_to(self.root) else blocker
            raise BackendError(f"{key} is an object, not a directory") from None

    @staticmethod
    def _commit_partial(partial: IO[bytes], target: Path) -> None:
        partial.flush()
        os.fsync(partial.fileno())
        partial.close()
        os.replace(partial.name, target)

    @staticmethod
    def _discard_partial(partial: IO[bytes]) -> None:
        partial.close()
        Path(partial.name).unlink(missing_ok=True)

    def _write_atomically(self, target: Path, blocks: list[bytes]) -> None:
        partial = self._open_partial(target)
        try:
            write_all(partial, blocks)
            self._commit_partial(partial, target)
        except BaseException:
            self._discard_partial(partial)
            raise

    def _create_empty(self, target: Path) -> None:
        self._make_parent(target)
        target.touch(exist_ok=False)

    def _open_upload(self, upload_id: str, offset: int) -> IO[bytes]:
        name = self._file(upload_path(upload_id))
        try:
            handle = open(name, "r+b", buffering=0)  # noqa: SIM115 - closed by _truncate_and_close
        except FileNotFoundError:
            raise InvalidUpload(f"unknown upload {upload_id}") from None
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise InvalidUpload(f"upload {upload_id} is receiving another chunk") from None
        size = os.fstat(handle.fileno()).st_size
        if offset != size:
            handle.close()
            raise InvalidUpload(f"chunk starts at byte {offset} but the upload holds {size} bytes")
        handle.seek(offset)
        return handle

    @staticmethod
    def _truncate_and_close(handle: IO[bytes], size: int) -> None:
        try:
            handle.truncate(size)
        finally:
            handle.close()

    def _move_into_place(self, source: Path, target: Path) -> None:
        self._make_parent(target)
        with open(source, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(source, target)

    def _copy_file(self, source: Path, target: Path) -> None:
        partial = self._open_partial(target)
        try:
            with open(source, "rb") as handle:
                shutil.copyfileobj(handle, partial, COPY_BLOCK_SIZE)
            self._commit_partial(partial, target)
        except BaseException:
            self._discard_partial(partial)
            raise

    @staticmethod
    def _remove_tree_or_file(target: Path) -> None:
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target, ignore_errors=True)
        else:
            target.unlink(missing_ok=True)

    @staticmethod
    def _sha256_file(target: Path) -> str:
        digest = hashlib.sha256()
        with open(target, "rb") as handle:
            while block := handle.read(COPY_BLOCK_SIZE):
                digest.update(block)
        return digest.hexdigest()

    def _sweep(self, cutoff: float) -> int:
        removed = 0
        uploads = self.root / UPLOADS
        candidates = list(uploads.iterdir()) if uploads.is_dir() else []
        for candidate in candidates:
            try:
                if candidate.is_file() and candidate.stat().st_mtime <= cutoff:
                    candidate.unlink()
                    removed += 1
            except FileNotFoundError:
                continue
        return removed
