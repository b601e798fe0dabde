"""Re-chunking of async byte streams with bounded memory."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Callable


async def coalesce(chunks: AsyncIterable[bytes], min_size: int) -> AsyncIterator[bytes]:
    """Yield blocks of at least `min_size` bytes (the last may be shorter); big ones pass as is."""
    buffer = bytearray()
    async for chunk in chunks:
        if not chunk:
            continue
        if not buffer and len(chunk) >= min_size:
            yield chunk
            continue
        buffer += chunk
        if len(buffer) >= min_size:
            yield bytes(buffer)
            buffer.clear()
    if buffer:
        yield bytes(buffer)


async def fixed_blocks(
    chunks: AsyncIterable[bytes], block_size: Callable[[int], int]
) -> AsyncIterator[bytes]:
    """Yield blocks of exactly `block_size(index)` bytes, the last one possibly shorter.

    Memory stays within one block plus one incoming chunk.
    """
    index = 0
    want = block_size(index)
    buffer = bytearray()
    async for chunk in chunks:
        view = memoryview(chunk)
        while view:
            take = min(want - len(buffer), len(view))
            if not buffer and take == want:
                yield bytes(view[:take])
            else:
                buffer += view[:take]
                if len(buffer) < want:
                    break
                yield bytes(buffer)
                buffer.clear()
            view = view[take:]
            index += 1
            want = block_size(index)
    if buffer:
        yield bytes(buffer)


async def iterate_bytes(data: bytes, chunk_size: int = 1024 * 1024) -> AsyncIterator[bytes]:
    """An async iterator over an in-memory value (tests and small writes)."""
    view = memoryview(data)
    for start in range(0, len(view), chunk_size):
        yield bytes(view[start : start + chunk_size])
