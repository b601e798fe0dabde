"""Page-cache reads on the event loop, and the local driver with and without them."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncGenerator, Callable
from pathlib import Path

import pytest

from wharf.storage import build_driver
from wharf.storage.drivers import cached_read, local
from wharf.storage.drivers.cached_read import PageCacheRead
from wharf.storage.protocol import StorageDriver


@pytest.fixture
def data_file(tmp_path: Path) -> tuple[int, bytes]:
    data = os.urandom(3 * 1024 * 1024 + 17)
    path = tmp_path / "blob"
    path.write_bytes(data)
    fd = os.open(path, os.O_RDONLY)
    os.pread(fd, len(data), 0)  # in the page cache now
    yield fd, data  # type: ignore[misc]
    os.close(fd)


@pytest.mark.skipif(not cached_read.available(), reason="needs CPython on Linux 4.14+")
def test_reads_what_pread_reads(data_file: tuple[int, bytes]) -> None:
    fd, data = data_file
    read = cached_read.cached_reader(fd)
    assert read is not None
    kept = []  # one reader, many reads: each answer stays its own object
    for offset, size in [(0, 10), (5, 1024 * 1024), (len(data) - 3, 10), (len(data), 5)]:
        got = read(size, offset)
        assert got == data[offset : offset + size]
        assert type(got) is bytes
        fresh = cached_read.cached_reader(fd)  # a second reader of the same file agrees
        assert fresh is not None
        assert fresh(size, offset) == got
        kept.append((got, data[offset : offset + size]))
    assert all(got == expected for got, expected in kept)
    assert read(0, 0) is None
    bad = cached_read.cached_reader(-1)
    assert bad is not None
    with pytest.raises(OSError, match="Bad file descriptor"):
        bad(10, 0)


def test_unavailable_means_none(
    data_file: tuple[int, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cached_read, "_NATIVE", None)
    assert cached_read.cached_reader(data_file[0]) is None


def cached_for(blocks: int | None) -> Callable[[int], PageCacheRead]:
    """Readers of a page cache that holds the first `blocks` blocks asked for in each
    stream (all when None)."""

    def reader(fd: int) -> PageCacheRead:
        asked = 0

        def read(size: int, offset: int) -> bytes | None:
            nonlocal asked
            asked += 1
            return os.pread(fd, size, offset) if blocks is None or asked <= blocks else None

        return read

    return reader


async def read_all(
    driver: StorageDriver, offset: int = 0, length: int | None = None
) -> list[bytes]:
    return [chunk async for chunk in driver.stream_read("some/blob", offset, length)]


@pytest.mark.parametrize("cached_blocks", [None, 0, 2], ids=["page-cache", "thread-pool", "mixed"])
async def test_local_stream_read_either_way(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cached_blocks: int | None
) -> None:
    """Whole and ranged reads, served from the page cache, the pool, or first one then the
    other (the host reclaimed the rest of the file)."""
    driver = build_driver("local", "LocalStorage", {"storage_path": str(tmp_path)})
    data = os.urandom(9 * 1024 * 1024 + 5)
    await driver.put_content("some/blob", data)
    block = local.CACHED_READ_SIZE
    ranges = [
        (0, None),
        (4 * 1024 * 1024 - 3, 5_000_001),
        (1, 3 * block),  # ends mid-block
        (block, 2 * block),  # ends on a block boundary
        (len(data) - 7, None),
        (len(data) - 7, 100),  # asks for more than there is
    ]
    for offset, length in ranges:
        monkeypatch.setattr(local, "cached_reader", cached_for(cached_blocks))
        chunks = await read_all(driver, offset, length)
        end = len(data) if length is None else offset + length
        assert b"".join(chunks) == data[offset:end]
        assert all(chunks)
        assert max(map(len, chunks)) <= local.LOCAL_READ_SIZE


async def test_a_stream_closed_mid_disk_read_waits_for_the_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Left after one block, with the next block's read in flight in the pool: closing the
    stream waits for that read before the file is closed, and leaves no stray task."""
    driver = build_driver("local", "LocalStorage", {"storage_path": str(tmp_path)})
    await driver.put_content("some/blob", os.urandom(3 * local.LOCAL_READ_SIZE))
    monkeypatch.setattr(local, "cached_reader", cached_for(0))
    closed: list[int] = []
    monkeypatch.setattr(local, "_disk_blocks", recording_close(local._disk_blocks, closed))
    stream = driver.stream_read("some/blob")
    first = await anext(stream)
    assert len(first) == local.LOCAL_READ_SIZE
    await stream.aclose()
    assert closed == [1]
    assert not [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]


def recording_close(
    blocks: Callable[[int, int, int | None], AsyncGenerator[bytes, None]], closed: list[int]
) -> Callable[[int, int, int | None], AsyncGenerator[bytes, None]]:
    async def wrapped(fd: int, position: int, end: int | None) -> AsyncGenerator[bytes, None]:
        try:
            async with contextlib.aclosing(blocks(fd, position, end)) as inner:
                async for chunk in inner:
                    yield chunk
        finally:
            os.fstat(fd)  # still open: the stream closes the file only after this
            closed.append(1)

    return wrapped
