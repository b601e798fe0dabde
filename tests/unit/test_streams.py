from __future__ import annotations

import asyncio

from hypothesis import given, settings
from hypothesis import strategies as st

from wharf.storage.drivers.s3.multipart import (
    MAX_PART_SIZE,
    MAX_PARTS,
    part_size_for,
    split_range,
)
from wharf.storage.streams import fixed_size_parts

MiB = 1024 * 1024
GiB = 1024 * MiB


async def _from(chunks: list[bytes]):  # type: ignore[no-untyped-def]
    for chunk in chunks:
        yield chunk


def collect(stream) -> list[bytes]:  # type: ignore[no-untyped-def]
    async def run() -> list[bytes]:
        return [chunk async for chunk in stream]

    return asyncio.run(run())


chunk_lists = st.lists(st.binary(min_size=0, max_size=50), max_size=30)


@given(chunk_lists, st.integers(min_value=1, max_value=40))
@settings(max_examples=200)
def test_fixed_size_parts_are_exact(chunks: list[bytes], size: int) -> None:
    blocks = [part.read() for part, _ in collect(fixed_size_parts(_from(chunks), lambda _: size))]
    assert b"".join(blocks) == b"".join(chunks)
    assert all(len(block) == size for block in blocks[:-1])
    assert not blocks or 0 < len(blocks[-1]) <= size


@given(chunk_lists)
def test_fixed_size_parts_follow_a_growing_size(chunks: list[bytes]) -> None:
    parts = collect(fixed_size_parts(_from(chunks), lambda i: 3 + i))
    assert all(len(part.getvalue()) == size for part, size in parts)
    blocks = [part.read() for part, _ in parts]
    assert b"".join(blocks) == b"".join(chunks)
    assert all(len(block) == 3 + i for i, block in enumerate(blocks[:-1]))


def parts_needed(total: int, base: int) -> int:
    parts, written = 0, 0
    while written < total:
        written += part_size_for(parts, base)
        parts += 1
    return parts


def test_a_100_gib_blob_stays_under_the_part_limit() -> None:
    assert parts_needed(100 * GiB, 8 * MiB) < MAX_PARTS
    assert parts_needed(100 * GiB, 5 * MiB) < MAX_PARTS
    # and nearly all of S3's 5 TiB object limit fits too
    assert parts_needed(4900 * GiB, 5 * MiB) <= MAX_PARTS


def test_part_sizes_start_small_and_are_capped() -> None:
    assert part_size_for(0, 8 * MiB) == 8 * MiB
    assert part_size_for(999, 8 * MiB) == 8 * MiB
    assert part_size_for(1000, 8 * MiB) == 16 * MiB
    assert part_size_for(9999, 8 * MiB) == 4096 * MiB
    assert part_size_for(9999, 64 * MiB) == MAX_PART_SIZE


def test_split_range_matches_quays_rechunk() -> None:
    assert split_range(100, 40) == [25, 25, 25, 25]
    assert split_range(100, 99) == [50, 50]
    assert split_range(100, 100) == [100]
    assert split_range(7, 3) == [3, 2, 2]


@given(st.integers(min_value=1, max_value=10**12), st.integers(min_value=1, max_value=10**4))
def test_split_range_covers_exactly(length: int, divisor: int) -> None:
    maximum = max(1, length // divisor)
    pieces = split_range(length, maximum)
    assert sum(pieces) == length
    assert all(0 < piece <= maximum for piece in pieces)
