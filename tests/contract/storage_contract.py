"""The one contract every storage driver passes (after distribution's `testsuites`).

A backend's test module subclasses `StorageContract` and provides two fixtures: `driver`, a
fresh driver whose keys start empty, and `backend_keys`, a callable listing the keys the
backend really holds under the driver's root (relative, as Quay lays them out).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from tests.conftest import drain
from wharf.storage import (
    InvalidPath,
    InvalidUpload,
    ObjectNotFound,
    StorageDriver,
    content_path,
)
from wharf.storage.base import MAX_READ_CHUNK
from wharf.storage.streams import iterate_bytes

MiB = 1024 * 1024
BackendKeys = Callable[[], list[str]]

HOSTILE_KEYS = ["../escape", "a/../../b", "/absolute", "nul\x00byte", "a//b", "./a", "a/", ""]


def payload(size: int, seed: int = 0) -> bytes:
    """Deterministic, incompressible bytes."""
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(f"{seed}:{counter}".encode()).digest() * 64
        counter += 1
    return bytes(out[:size])


def persisted(metadata: dict[str, Any]) -> dict[str, Any]:
    """What the registry gets back after storing the metadata in a JSON column."""
    result: dict[str, Any] = json.loads(json.dumps(metadata))
    return result


async def chunked(data: bytes, sizes: list[int]) -> AsyncIterator[bytes]:
    start = 0
    for size in sizes:
        yield data[start : start + size]
        start += size
    if start < len(data):
        yield data[start:]


class Broken(Exception):
    """Raised by a test's own source iterator."""


async def failing_after(data: bytes) -> AsyncIterator[bytes]:
    yield data
    raise Broken("the client went away")


class StorageContract:
    big_size = 20 * MiB  # crosses the S3 part size (8 MiB) more than once

    # -- whole objects ---------------------------------------------------------------------

    async def test_put_and_get_content(self, driver: StorageDriver) -> None:
        await driver.put_content("some/key", b"hello")
        assert await driver.get_content("some/key") == b"hello"
        await driver.put_content("some/key", b"replaced")
        assert await driver.get_content("some/key") == b"replaced"

    async def test_missing_objects_raise_not_found(self, driver: StorageDriver) -> None:
        with pytest.raises(ObjectNotFound) as info:
            await driver.get_content("nope")
        assert info.value.location == driver.location
        assert info.value.driver == driver.driver_name
        with pytest.raises(ObjectNotFound):
            await drain(driver.stream_read("nope"))
        with pytest.raises(ObjectNotFound):
            await driver.stat("nope")
        with pytest.raises(ObjectNotFound):
            await driver.get_checksum("nope")
        assert not await driver.exists("nope")

    async def test_stream_write_and_read_back(self, driver: StorageDriver) -> None:
        data = payload(self.big_size)
        written = await driver.stream_write("big", iterate_bytes(data, 3 * MiB + 17))
        assert written == len(data)
        assert await drain(driver.stream_read("big")) == data
        assert (await driver.stat("big")).size == len(data)

    async def test_stream_read_chunks_are_bounded(self, driver: StorageDriver) -> None:
        data = payload(self.big_size)
        await driver.stream_write("big", iterate_bytes(data))
        sizes = [len(chunk) async for chunk in driver.stream_read("big")]
        assert sum(sizes) == len(data)
        assert max(sizes) <= MAX_READ_CHUNK

    async def test_a_stream_closed_early_is_released_at_once(self, driver: StorageDriver) -> None:
        """Closing a stream after its first chunk finishes the driver's side then and there
        (file closed, read-ahead done, connection back), with no task left to do it later."""
        data = payload(self.big_size)
        await driver.stream_write("big", iterate_bytes(data))
        for _ in range(3):  # more than a connection pool of one would survive if leaked
            stream = driver.stream_read("big")
            first = await anext(stream)
            assert data.startswith(first)
            await stream.aclose()
            current = asyncio.current_task()
            assert [task for task in asyncio.all_tasks() if task is not current] == []
        assert await drain(driver.stream_read("big", 5, 10)) == data[5:15]

    async def test_ranged_reads(self, driver: StorageDriver) -> None:
        data = payload(100_000)
        await driver.put_content("ranged", data)
        assert await drain(driver.stream_read("ranged", 10, 10)) == data[10:20]
        assert await drain(driver.stream_read("ranged", 99_990)) == data[99_990:]
        assert await drain(driver.stream_read("ranged", 99_990, 1000)) == data[99_990:]
        assert await drain(driver.stream_read("ranged", 0, 1)) == data[:1]
        assert await drain(driver.stream_read("ranged", 100_000)) == b""
        assert await drain(driver.stream_read("ranged", 200_000)) == b""
        assert await drain(driver.stream_read("ranged", 5, 0)) == b""
        with pytest.raises(ObjectNotFound):
            await drain(driver.stream_read("missing", 5, 0))

    async def test_empty_object_is_written_and_readable(self, driver: StorageDriver) -> None:
        assert await driver.stream_write("empty", iterate_bytes(b"")) == 0
        assert await driver.exists("empty")
        assert await driver.get_content("empty") == b""
        assert await drain(driver.stream_read("empty")) == b""

    async def test_exists_stat_and_checksum(self, driver: StorageDriver) -> None:
        await driver.put_content("obj", b"x" * 1000)
        assert await driver.exists("obj")
        assert (await driver.stat("obj")).size == 1000
        checksum = await driver.get_checksum("obj")
        assert len(checksum) == 7
        assert checksum == await driver.get_checksum("obj")

    async def test_remove_is_idempotent_and_removes_prefixes(self, driver: StorageDriver) -> None:
        await driver.put_content("dir/a", b"a")
        await driver.put_content("dir/sub/b", b"b")
        await driver.put_content("dirx", b"keep")
        await driver.remove("dir/a")
        assert not await driver.exists("dir/a")
        await driver.remove("dir/a")
        await driver.remove("dir")
        assert not await driver.exists("dir/sub/b")
        assert await driver.get_content("dirx") == b"keep"

    async def test_blob_keys_follow_quays_layout(
        self, driver: StorageDriver, backend_keys: BackendKeys
    ) -> None:
        data = b"layer bytes"
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        await driver.stream_write(content_path(digest), iterate_bytes(data))
        hexpart = digest.split(":")[1]
        assert f"sha256/{hexpart[:2]}/{hexpart}" in backend_keys()

    async def test_hostile_keys_are_refused(self, driver: StorageDriver) -> None:
        for key in HOSTILE_KEYS:
            with pytest.raises(InvalidPath):
                await driver.put_content(key, b"x")
            with pytest.raises(InvalidPath):
                await driver.get_content(key)
            with pytest.raises(InvalidPath):
                await drain(driver.stream_read(key))
            with pytest.raises(InvalidPath):
                await driver.stream_write(key, iterate_bytes(b"x"))
            with pytest.raises(InvalidPath):
                await driver.remove(key)
            with pytest.raises(InvalidPath):
                await driver.exists(key)

    async def test_validate_writes_the_probe(self, driver: StorageDriver) -> None:
        await driver.validate()
        assert await driver.get_content("_verify") == b"testing 123"

    async def test_copy_to_a_driver_of_the_same_backend(
        self, driver: StorageDriver, other_driver: StorageDriver
    ) -> None:
        data = payload(3 * MiB)
        await driver.put_content("copied", data)
        await driver.copy_to(other_driver, "copied")
        assert await other_driver.get_content("copied") == data

    async def test_failed_source_leaves_nothing_at_the_key(
        self, driver: StorageDriver, backend_keys: BackendKeys
    ) -> None:
        with pytest.raises(Broken):
            await driver.stream_write("half", failing_after(payload(9 * MiB)))
        assert not await driver.exists("half")
        await driver.put_content("kept", b"old")
        with pytest.raises(Broken):
            await driver.stream_write("kept", failing_after(payload(9 * MiB)))
        assert await driver.get_content("kept") == b"old"
        assert [key for key in backend_keys() if "half" in key] == []

    async def test_concurrent_writers_of_one_key(self, driver: StorageDriver) -> None:
        bodies = [payload(9 * MiB + i, seed=i) for i in range(4)]
        await asyncio.gather(
            *(driver.stream_write("contended", iterate_bytes(body)) for body in bodies)
        )
        assert await driver.get_content("contended") in bodies

    # -- chunked uploads -------------------------------------------------------------------

    async def _upload(
        self, driver: StorageDriver, data: bytes, sizes: list[int]
    ) -> tuple[str, dict[str, Any]]:
        upload_id, metadata = await driver.initiate_chunked_upload()
        offset = 0
        for size in sizes:
            part = data[offset : offset + size]
            result = await driver.upload_chunk(
                upload_id, offset, iterate_bytes(part, 1 * MiB), persisted(metadata)
            )
            assert result.bytes_written == len(part)
            metadata = persisted(result.metadata)
            offset += result.bytes_written
        assert offset == len(data)
        return upload_id, metadata

    @pytest.mark.parametrize(
        "sizes",
        [
            pytest.param([6 * MiB, 6 * MiB, 100], id="large-chunks"),
            pytest.param([1000] * 12, id="many-small-chunks"),
            pytest.param([5 * MiB + 3, 1, 7 * MiB, 2 * MiB + 5], id="uneven-chunks"),
            pytest.param([3 * MiB], id="one-chunk"),
        ],
    )
    async def test_chunked_upload_assembles_the_bytes_in_order(
        self, driver: StorageDriver, backend_keys: BackendKeys, sizes: list[int]
    ) -> None:
        data = payload(sum(sizes))
        upload_id, metadata = await self._upload(driver, data, sizes)
        await driver.complete_chunked_upload(upload_id, "assembled", metadata)
        assert await driver.get_content("assembled") == data
        assert not [key for key in backend_keys() if key.startswith("uploads/")]

    async def test_a_tap_sees_exactly_the_stored_bytes_in_order(
        self, driver: StorageDriver
    ) -> None:
        """What the registry's running digest relies on, for whole writes and chunks (with
        a length that cuts the source short)."""
        data = payload(9 * MiB + 5)
        seen: list[bytes] = []
        await driver.stream_write("tapped", iterate_bytes(data, 256 * 1024), tap=seen.append)
        assert b"".join(seen) == data
        assert await driver.get_content("tapped") == data

        seen.clear()
        upload_id, metadata = await driver.initiate_chunked_upload()
        first = await driver.upload_chunk(
            upload_id, 0, iterate_bytes(data, 300 * 1024), metadata, length=6 * MiB, tap=seen.append
        )
        second = await driver.upload_chunk(
            upload_id,
            6 * MiB,
            iterate_bytes(data[6 * MiB :], 1000),
            persisted(first.metadata),
            tap=seen.append,
        )
        assert b"".join(seen) == data
        await driver.complete_chunked_upload(upload_id, "tapped-chunks", persisted(second.metadata))
        assert await driver.get_content("tapped-chunks") == data

    async def test_empty_chunked_upload_gives_an_empty_object(self, driver: StorageDriver) -> None:
        upload_id, metadata = await driver.initiate_chunked_upload()
        result = await driver.upload_chunk(upload_id, 0, iterate_bytes(b""), metadata)
        assert result.bytes_written == 0
        await driver.complete_chunked_upload(upload_id, "nothing", persisted(result.metadata))
        assert await driver.get_content("nothing") == b""

    async def test_chunk_length_limits_what_is_read(self, driver: StorageDriver) -> None:
        upload_id, metadata = await driver.initiate_chunked_upload()
        result = await driver.upload_chunk(
            upload_id, 0, iterate_bytes(b"abcdefgh"), metadata, length=5
        )
        assert result.bytes_written == 5
        await driver.complete_chunked_upload(upload_id, "limited", persisted(result.metadata))
        assert await driver.get_content("limited") == b"abcde"

    async def test_chunk_at_a_wrong_offset_is_refused(self, driver: StorageDriver) -> None:
        upload_id, metadata = await self._upload(driver, b"0123456789", [10])
        for offset in (0, 5, 11):
            with pytest.raises(InvalidUpload):
                await driver.upload_chunk(upload_id, offset, iterate_bytes(b"zz"), metadata)
        result = await driver.upload_chunk(upload_id, 10, iterate_bytes(b"ab"), metadata)
        await driver.complete_chunked_upload(upload_id, "offsets", persisted(result.metadata))
        assert await driver.get_content("offsets") == b"0123456789ab"

    async def test_failed_chunk_does_not_advance_the_upload(self, driver: StorageDriver) -> None:
        upload_id, metadata = await self._upload(driver, b"first", [5])
        with pytest.raises(Broken):
            await driver.upload_chunk(upload_id, 5, failing_after(payload(MiB)), metadata)
        result = await driver.upload_chunk(upload_id, 5, iterate_bytes(b"-second"), metadata)
        await driver.complete_chunked_upload(upload_id, "retried", persisted(result.metadata))
        assert await driver.get_content("retried") == b"first-second"

    async def test_cancel_removes_the_upload(
        self, driver: StorageDriver, backend_keys: BackendKeys
    ) -> None:
        upload_id, metadata = await self._upload(driver, payload(2 * MiB), [MiB, MiB])
        await driver.cancel_chunked_upload(upload_id, metadata)
        assert not [key for key in backend_keys() if key.startswith("uploads/")]
        await driver.cancel_chunked_upload(upload_id, metadata)

    async def test_unknown_upload_or_garbage_metadata_is_invalid(
        self, driver: StorageDriver
    ) -> None:
        with pytest.raises((InvalidUpload, InvalidPath)):
            await driver.upload_chunk("../../etc", 0, iterate_bytes(b"x"), {})
        upload_id, metadata = await driver.initiate_chunked_upload()
        if metadata:  # drivers whose state lives in the metadata must check its shape
            for garbage in ({}, {"chunks": "no"}, {"chunks": [["/etc/passwd", 0, 1]]}):
                with pytest.raises(InvalidUpload):
                    await driver.complete_chunked_upload(upload_id, "x", garbage)
            assert not await driver.exists("x")

    async def test_clean_partial_uploads(
        self, driver: StorageDriver, backend_keys: BackendKeys
    ) -> None:
        from datetime import timedelta

        await self._upload(driver, b"abandoned", [9])
        assert await driver.clean_partial_uploads(timedelta(days=1)) == 0
        assert await driver.clean_partial_uploads(timedelta(seconds=-60)) >= 1
        assert not [key for key in backend_keys() if key.startswith("uploads/")]

    async def test_metadata_is_json(self, driver: StorageDriver) -> None:
        upload_id, metadata = await driver.initiate_chunked_upload()
        assert persisted(metadata) == metadata
        result = await driver.upload_chunk(upload_id, 0, iterate_bytes(b"abc"), metadata)
        assert persisted(result.metadata) == result.metadata
        await driver.cancel_chunked_upload(upload_id, result.metadata)
