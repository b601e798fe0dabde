"""Page-cache reads on the event loop, and the local driver with and without them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from wharf.storage import build_driver
from wharf.storage.drivers import cached_read, local


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
    for offset, size in [(0, 10), (5, 1024 * 1024), (len(data) - 3, 10), (len(data), 5)]:
        got = cached_read.read_cached(fd, size, offset)
        assert got == data[offset : offset + size]
        assert type(got) is bytes
    assert cached_read.read_cached(fd, 0, 0) is None
    with pytest.raises(OSError, match="Bad file descriptor"):
        cached_read.read_cached(-1, 10, 0)


def test_unavailable_means_none(
    data_file: tuple[int, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cached_read, "_NATIVE", None)
    assert cached_read.read_cached(data_file[0], 10, 0) is None


@pytest.mark.parametrize("cached", [True, False], ids=["page-cache", "thread-pool"])
async def test_local_stream_read_either_way(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cached: bool
) -> None:
    if not cached:
        monkeypatch.setattr(local, "read_cached", lambda fd, size, offset: None)
    driver = build_driver("local", "LocalStorage", {"storage_path": str(tmp_path)})
    data = os.urandom(9 * 1024 * 1024 + 5)
    await driver.put_content("some/blob", data)
    whole = b"".join([chunk async for chunk in driver.stream_read("some/blob")])
    assert whole == data
    part = b"".join(
        [chunk async for chunk in driver.stream_read("some/blob", 4 * 1024 * 1024 - 3, 5_000_001)]
    )
    assert part == data[4 * 1024 * 1024 - 3 : 4 * 1024 * 1024 - 3 + 5_000_001]
    sizes = [len(chunk) async for chunk in driver.stream_read("some/blob")]
    assert max(sizes) <= local.LOCAL_READ_SIZE
