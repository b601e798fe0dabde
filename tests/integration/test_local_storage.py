"""LocalStorage: the shared contract plus what only local disk can show."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import IO

import pytest

from tests.contract.storage_contract import Broken, StorageContract, failing_after, payload
from tests.integration.loop_guard import guard_loop_thread
from wharf.storage import InvalidUpload, StorageDriver, build_driver
from wharf.storage.drivers import file_writes
from wharf.storage.protocol import ChunkTap
from wharf.storage.streams import iterate_bytes

MiB = 1024 * 1024


def local(root: Path, location: str = "local_us") -> StorageDriver:
    return build_driver(location, "LocalStorage", {"storage_path": str(root)})


def files_under(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


class TestLocalContract(StorageContract):
    @pytest.fixture(autouse=True)
    def file_io_off_the_loop(self) -> Iterator[None]:
        """Every contract test also checks that the driver did no blocking file I/O on the
        event loop's thread."""
        with guard_loop_thread() as caught:
            yield
        assert caught == []

    @pytest.fixture
    async def driver(self, tmp_path: Path) -> AsyncIterator[StorageDriver]:
        driver = local(tmp_path / "root")
        yield driver
        await driver.aclose()

    @pytest.fixture
    def other_driver(self, tmp_path: Path) -> StorageDriver:
        return local(tmp_path / "other", "local_eu")

    @pytest.fixture
    def backend_keys(self, tmp_path: Path):  # type: ignore[no-untyped-def]
        return lambda: files_under(tmp_path / "root")


async def test_upload_lives_at_quays_upload_path(tmp_path: Path) -> None:
    driver = local(tmp_path)
    upload_id, metadata = await driver.initiate_chunked_upload()
    assert metadata == {}
    assert (tmp_path / "uploads" / upload_id).is_file()
    await driver.upload_chunk(upload_id, 0, iterate_bytes(b"abc"), metadata)
    assert (tmp_path / "uploads" / upload_id).read_bytes() == b"abc"


async def test_interrupted_write_never_shows_under_the_final_key(tmp_path: Path) -> None:
    driver = local(tmp_path)
    gate = asyncio.Event()

    async def slow() -> AsyncIterator[bytes]:
        yield payload(2 * MiB)
        await gate.wait()
        yield b"end"

    task = asyncio.create_task(driver.stream_write("blob", slow()))
    await asyncio.sleep(0.2)
    # Mid-write: the bytes exist only in a hidden partial file under uploads/.
    assert not (tmp_path / "blob").exists()
    assert [name for name in files_under(tmp_path) if name.startswith("uploads/.blob.")]
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert files_under(tmp_path) == []


async def test_a_second_chunk_while_one_is_in_flight_is_refused(tmp_path: Path) -> None:
    driver = local(tmp_path)
    upload_id, metadata = await driver.initiate_chunked_upload()
    gate = asyncio.Event()

    async def held() -> AsyncIterator[bytes]:
        yield b"x" * (2 * MiB)
        await gate.wait()

    first = asyncio.create_task(driver.upload_chunk(upload_id, 0, held(), metadata))
    await asyncio.sleep(0.2)
    with pytest.raises(InvalidUpload, match="another chunk"):
        await driver.upload_chunk(upload_id, 0, iterate_bytes(b"y"), metadata)
    gate.set()
    assert (await first).bytes_written == 2 * MiB


async def test_failed_chunk_truncates_back(tmp_path: Path) -> None:
    driver = local(tmp_path)
    upload_id, metadata = await driver.initiate_chunked_upload()
    await driver.upload_chunk(upload_id, 0, iterate_bytes(b"abc"), metadata)
    with pytest.raises(Broken):
        await driver.upload_chunk(upload_id, 3, failing_after(payload(3 * MiB)), metadata)
    assert (tmp_path / "uploads" / upload_id).read_bytes() == b"abc"


async def test_relative_storage_path_resolves_from_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    driver = build_driver("l", "LocalStorage", {"storage_path": "data/registry"})
    await driver.put_content("k", b"v")
    assert (tmp_path / "data" / "registry" / "k").read_bytes() == b"v"


async def test_a_file_where_a_directory_is_needed_is_a_precise_error(tmp_path: Path) -> None:
    from wharf.storage import BackendError

    driver = local(tmp_path)
    await driver.put_content("a", b"object")
    with pytest.raises(BackendError, match="is an object, not a directory"):
        await driver.put_content("a/b", b"v")
    assert await driver.get_content("a") == b"object"


class GatedWrites:
    """Stands in for `write_all`: records batch sizes and can hold a write in its thread."""

    def __init__(self) -> None:
        self.sizes: list[int] = []
        self.gate = threading.Event()
        self.gate.set()
        self.running = 0
        self.real = file_writes.write_all

    def __call__(self, handle: IO[bytes], batch: list[bytes], tap: ChunkTap | None = None) -> int:
        self.running += 1
        try:
            self.gate.wait(10)
            self.sizes.append(sum(len(chunk) for chunk in batch))
            return self.real(handle, batch, tap)
        finally:
            self.running -= 1


@pytest.fixture
def writes(monkeypatch: pytest.MonkeyPatch) -> GatedWrites:
    gated = GatedWrites()
    monkeypatch.setattr(file_writes, "write_all", gated)
    return gated


async def chunks_of(size: int, count: int, pause: float = 0.0) -> AsyncIterator[bytes]:
    for _ in range(count):
        if pause:
            await asyncio.sleep(pause)
        yield b"z" * size


async def test_batches_grow_while_the_writer_is_busy(tmp_path: Path, writes: GatedWrites) -> None:
    driver = local(tmp_path)
    upload_id, metadata = await driver.initiate_chunked_upload()
    writes.gate.clear()  # the first batch stays on the disk while the rest arrives
    task = asyncio.create_task(
        driver.upload_chunk(upload_id, 0, chunks_of(64 * 1024, 160), metadata)
    )
    await asyncio.sleep(0.2)
    writes.gate.set()
    assert (await task).bytes_written == 10 * MiB
    min_size, max_size = file_writes.WRITE_BATCH_MIN, file_writes.WRITE_BATCH_MAX
    assert writes.sizes[:2] == [min_size, max_size]
    assert sum(writes.sizes) == 10 * MiB


async def test_a_paced_source_is_written_as_it_arrives(tmp_path: Path, writes: GatedWrites) -> None:
    driver = local(tmp_path)
    upload_id, metadata = await driver.initiate_chunked_upload()
    source = chunks_of(256 * 1024, 16, pause=0.01)  # the writer is idle at every step
    assert (await driver.upload_chunk(upload_id, 0, source, metadata)).bytes_written == 4 * MiB
    assert writes.sizes == [file_writes.WRITE_BATCH_MIN] * 4


async def test_cancelled_mid_write_waits_for_the_thread_then_truncates(
    tmp_path: Path, writes: GatedWrites
) -> None:
    driver = local(tmp_path)
    upload_id, metadata = await driver.initiate_chunked_upload()
    await driver.upload_chunk(upload_id, 0, iterate_bytes(b"abc"), metadata)
    writes.gate.clear()
    task = asyncio.create_task(driver.upload_chunk(upload_id, 3, chunks_of(MiB, 3), metadata))
    await asyncio.sleep(0.2)
    assert writes.running == 1
    task.cancel()
    await asyncio.sleep(0.1)
    assert not task.done()  # still waiting for the write in the thread
    writes.gate.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert writes.running == 0
    # Truncated after the write ended: the upload still ends where it did, and goes on.
    assert (tmp_path / "uploads" / upload_id).read_bytes() == b"abc"
    result = await driver.upload_chunk(upload_id, 3, iterate_bytes(b"def"), metadata)
    assert result.bytes_written == 3


async def test_every_written_byte_is_queued_for_writeback_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each batch's range goes to the disk as soon as it is written, so the fsync before the
    rename (whole objects) or at completion (chunked uploads) has little left to do."""
    ranges: list[tuple[int, int]] = []
    monkeypatch.setattr(file_writes, "start_writeback", lambda _fd, *span: ranges.append(span))
    driver = local(tmp_path)
    await driver.stream_write("whole", chunks_of(256 * 1024, 24))
    upload_id, metadata = await driver.initiate_chunked_upload()
    await driver.upload_chunk(upload_id, 0, chunks_of(256 * 1024, 8), metadata)
    await driver.upload_chunk(upload_id, 2 * MiB, chunks_of(256 * 1024, 8), metadata)

    def contiguous(spans: list[tuple[int, int]], total: int) -> bool:
        ends = [0]
        for offset, length in spans:
            if offset != ends[-1] or length <= 0:
                return False
            ends.append(offset + length)
        return ends[-1] == total

    assert sum(length for _, length in ranges) == 6 * MiB + 4 * MiB
    # The whole-object write's spans come first and cover it exactly, then the upload's.
    split = next(i for i in range(len(ranges) + 1) if sum(n for _, n in ranges[:i]) == 6 * MiB)
    assert contiguous(ranges[:split], 6 * MiB)
    assert contiguous(ranges[split:], 4 * MiB)


def test_writeback_is_available_and_harmless_on_linux(tmp_path: Path) -> None:
    from wharf.storage.drivers import writeback

    assert writeback.available()  # Linux's C library has sync_file_range
    target = tmp_path / "file"
    with open(target, "wb") as handle:
        handle.write(b"x" * MiB)
        writeback.start_writeback(handle.fileno(), 0, MiB)
        writeback.start_writeback(handle.fileno(), 0, 0)  # nothing to do
    assert target.read_bytes() == b"x" * MiB


async def test_the_tap_runs_in_the_writer_thread_just_before_each_chunk_is_written(
    tmp_path: Path,
) -> None:
    """Each chunk is hashed (tapped) and written back to back in one pool thread, so the copy
    into the page cache reads bytes the hash just brought into that CPU's cache."""
    driver = local(tmp_path)
    upload_id, metadata = await driver.initiate_chunked_upload()
    upload_file = tmp_path / "uploads" / upload_id
    seen: list[tuple[str, int, int]] = []

    def tap(chunk: bytes) -> None:
        seen.append((threading.current_thread().name, upload_file.stat().st_size, len(chunk)))

    await driver.upload_chunk(upload_id, 0, chunks_of(256 * 1024, 12), metadata, tap=tap)
    assert len(seen) == 12
    assert all(name != threading.main_thread().name for name, _, _ in seen)
    tapped_before = 0
    for _, size_on_disk, length in seen:
        assert size_on_disk == tapped_before  # every earlier chunk written, this one not yet
        tapped_before += length
