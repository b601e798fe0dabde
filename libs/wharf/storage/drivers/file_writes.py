"""Writing a stream to an open file from the thread pool: batches, writeback, taps.

Used by `LocalStorage` for whole objects and for chunked uploads. Only ever blocks a pool
thread, never the event loop.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterable
from typing import IO

from wharf.storage.drivers.writeback import start_writeback
from wharf.storage.protocol import ChunkTap

WRITE_BATCH_MIN = 1024 * 1024
WRITE_BATCH_MAX = 4 * 1024 * 1024
"""Chunks go to the disk in batches, one `writev` per thread-pool round trip: a batch leaves
once it holds `WRITE_BATCH_MIN` bytes and the writer is idle, or `WRITE_BATCH_MAX` bytes.
A fast source (a copy) gets big batches, so few round trips; a network-paced one (a PATCH)
keeps the writer busy as bytes arrive, so little is left to write once the last byte came.
Measured: fixed 4 MiB batches moved 16 MiB PATCHes at 286-391 MB/s and fixed 1 MiB at
405-512, while a 1 GiB stream write from memory was 20-30% faster at 4 MiB than at 1 MiB."""


def write_all(handle: IO[bytes], batch: list[bytes], tap: ChunkTap | None = None) -> int:
    """Write every chunk of `batch`, then start writing it to disk (the `fsync` before the
    rename then has little left to do). Without a tap: one `writev` for the batch, as few
    system calls as the kernel allows. With one: each chunk goes to the tap and then at
    once to the file, while it is still in this CPU's cache (see `ChunkTap`)."""
    fd = handle.fileno()
    total = sum(len(chunk) for chunk in batch)
    if tap is None:
        write_vectors(fd, [memoryview(chunk) for chunk in batch])
    else:
        for chunk in batch:
            tap(chunk)
            write_vectors(fd, [memoryview(chunk)])
    start_writeback(fd, os.lseek(fd, 0, os.SEEK_CUR) - total, total)
    return total


def write_vectors(fd: int, views: list[memoryview]) -> None:
    while views:
        done = os.writev(fd, views)
        while views and done >= len(views[0]):
            done -= len(views[0])
            views.pop(0)
        if views and done:
            views[0] = views[0][done:]


async def write_pipelined(
    handle: IO[bytes], chunks: AsyncIterable[bytes], tap: ChunkTap | None = None
) -> int:
    """Write `chunks` in order, one batch on the disk while the next one arrives: receiving
    (and hashing) and writing overlap instead of taking turns. At most two batches are held.

    However it ends (the source fails, the task is cancelled), it returns or raises only once
    no write is running in the pool: the caller truncates and closes the file next."""
    loop = asyncio.get_running_loop()
    pending: asyncio.Future[int] | None = None
    written = 0
    batch: list[bytes] = []
    size = 0
    try:
        async for chunk in chunks:
            if not chunk:
                continue
            batch.append(chunk)
            size += len(chunk)
            idle = pending is None or pending.done()
            if size >= WRITE_BATCH_MAX or (size >= WRITE_BATCH_MIN and idle):
                if pending is not None:
                    # Shielded: a cancellation must not orphan the write in the thread.
                    written += await asyncio.shield(pending)
                pending = loop.run_in_executor(None, write_all, handle, batch, tap)
                batch, size = [], 0
        if batch:
            if pending is not None:
                written += await asyncio.shield(pending)
            pending = loop.run_in_executor(None, write_all, handle, batch, tap)
        if pending is not None:
            written += await asyncio.shield(pending)
            pending = None
    finally:
        if pending is not None:
            if not pending.done():
                await asyncio.wait([pending])
            if not pending.cancelled():
                pending.exception()  # retrieved: the first error already propagates
    return written
