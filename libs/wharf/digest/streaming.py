"""Hash an async byte stream on its way through, without stalling the event loop.

Policy, from measurements on the 2-vCPU reference machine (`make bench`, Digest section).
Hashing on the event loop blocks every other request for as long as it takes: SHA-256 costs
about 38 us per 64 KiB, 150 us per 256 KiB and 590 us per MiB (SHA-512 about 2.3x that).
Handing a chunk to the executor costs the loop 35-60 us of its own CPU per chunk (future,
wake-up, callback) and adds latency to the stream: one stream offloading every chunk reaches
only 0.5 GB/s with 64 KiB chunks, 1.15 GB/s with 256 KiB and 1.6 GB/s with 1 MiB (inline:
1.7 GB/s for all). So chunks of at least `OFFLOAD_THRESHOLD` (256 KiB) go to the executor,
where they block the loop 3-10x less than inline; smaller ones are hashed inline, where the
hop would cost about as much loop time as the hashing. The loop is therefore never blocked
for more than about 0.15 ms of SHA-256 (0.37 ms of SHA-512) per chunk. Storage reads (1-4
MiB) go to the thread pool. The GIL is released while libcrypto or hashlib hashes. (Uploads
do not come through here: their running hash is the storage write's `ChunkTap`, which local
disk calls in its writer thread.)

An offloaded chunk is hashed while the consumer handles it (a storage write, usually), so the
two overlap. The wrapper waits for that hash before it asks the source for the next chunk
whenever the chunk is a mutable buffer (the source may reuse it); `bytes` chunks are hashed
while the next one is fetched as well. Updates stay strictly in stream order.

If the consumer stops early, or anything raises, the hasher's state is undefined (a chunk may
or may not be in it): drop it and resume from the last stored state.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterable, AsyncIterator, Callable
from concurrent.futures import Executor
from typing import Generic, Protocol, TypeVar

from wharf.digest.resumable import BytesLike

OFFLOAD_THRESHOLD = 256 * 1024
STREAM_ALGORITHMS: dict[str, Callable[[], hashlib._Hash]] = {
    "sha256": hashlib.sha256,
    "sha512": hashlib.sha512,
}

ChunkT = TypeVar("ChunkT", bound=BytesLike)


class Hasher(Protocol):
    """Anything with hashlib's `update`: `ResumableSHA256`, `hashlib.sha512()`, ..."""

    def update(self, data: BytesLike, /) -> None: ...


HasherT = TypeVar("HasherT", bound=Hasher)


class StreamingDigester(Generic[HasherT]):
    """Feeds the chunks of a stream into `hasher` while passing them through unchanged.

    ::

        digester = StreamingDigester(hashlib.sha512())
        await digester.consume(storage.stream_read(locations, key))
        computed = "sha512:" + digester.hasher.hexdigest()
    """

    def __init__(
        self,
        hasher: HasherT,
        *,
        offload_threshold: int = OFFLOAD_THRESHOLD,
        executor: Executor | None = None,
    ) -> None:
        self.hasher: HasherT = hasher
        self.offload_threshold = offload_threshold
        self.executor = executor
        self.bytes_hashed = 0
        """Bytes this digester has fed into `hasher` (hashing finished)."""

    def _update(self, chunk: BytesLike, size: int) -> None:
        self.hasher.update(chunk)
        self.bytes_hashed += size

    async def passthrough(self, chunks: AsyncIterable[ChunkT]) -> AsyncIterator[ChunkT]:
        """Yield every chunk of `chunks` (the same objects) after or while hashing it."""
        loop = asyncio.get_running_loop()
        pending: asyncio.Future[None] | None = None
        try:
            async for chunk in chunks:
                if pending is not None:  # one update at a time, in order
                    await pending
                    pending = None
                size = chunk.nbytes if isinstance(chunk, memoryview) else len(chunk)
                if size < self.offload_threshold:
                    self._update(chunk, size)
                    yield chunk
                    continue
                pending = loop.run_in_executor(self.executor, self._update, chunk, size)
                yield chunk
                if type(chunk) is not bytes:  # the source may refill a mutable buffer
                    await pending
                    pending = None
            if pending is not None:
                await pending
                pending = None
        finally:
            if pending is not None and not pending.done():
                # Left early: let the worker finish so nothing feeds the hasher afterwards.
                await asyncio.wait([pending])
            if pending is not None and pending.done() and not pending.cancelled():
                pending.exception()  # retrieved: the first error already propagates

    async def consume(self, chunks: AsyncIterable[BytesLike]) -> int:
        """Hash a whole stream, keeping nothing; returns the bytes it held."""
        before = self.bytes_hashed
        async for _ in self.passthrough(chunks):
            pass
        return self.bytes_hashed - before


async def hashlib_digest_of_stream(
    algorithm: str,
    chunks: AsyncIterable[BytesLike],
    *,
    offload_threshold: int = OFFLOAD_THRESHOLD,
    executor: Executor | None = None,
) -> str:
    """The hex digest of a stream under `algorithm` (``sha256`` or ``sha512``).

    For digests that are not resumed, e.g. a ``sha512:`` upload re-hashed from storage at
    PUT time. Memory stays at one chunk (plus the one being fetched, for bytes chunks).
    """
    try:
        hasher = STREAM_ALGORITHMS[algorithm]()
    except KeyError:
        raise ValueError(f"unsupported digest algorithm {algorithm!r}") from None
    digester = StreamingDigester(hasher, offload_threshold=offload_threshold, executor=executor)
    await digester.consume(chunks)
    return hasher.hexdigest()
