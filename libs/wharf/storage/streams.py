"""Re-chunking of async byte streams with bounded memory."""

from __future__ import annotations

import io
from collections.abc import AsyncIterable, AsyncIterator, Callable


async def fixed_size_parts(
    chunks: AsyncIterable[bytes], part_size: Callable[[int], int]
) -> AsyncIterator[tuple[io.BytesIO, int]]:
    """Yield rewound buffers of exactly `part_size(index)` bytes (the last may be shorter).

    Each byte is copied once, into the buffer that is sent: a `BytesIO` that owns its memory,
    so HTTP clients can take a view of it instead of another copy. Memory stays within one
    part plus one incoming chunk.
    """
    index, filled = 0, 0
    want = part_size(index)
    part = io.BytesIO()
    async for chunk in chunks:
        view = memoryview(chunk)
        while view:
            take = min(want - filled, len(view))
            part.write(view[:take])
            filled += take
            view = view[take:]
            if filled == want:
                part.seek(0)
                yield part, filled
                index, filled = index + 1, 0
                want = part_size(index)
                part = io.BytesIO()
    if filled:
        part.seek(0)
        yield part, filled


async def iterate_bytes(data: bytes, chunk_size: int = 1024 * 1024) -> AsyncIterator[bytes]:
    """An async iterator over an in-memory value (tests and small writes)."""
    view = memoryview(data)
    for start in range(0, len(view), chunk_size):
        yield bytes(view[start : start + chunk_size])
