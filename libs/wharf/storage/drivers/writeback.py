"""Early writeback: ask the kernel to start writing a file's dirty pages to disk right away.

Local disk flushes every object with `fsync` before renaming it into place. Left alone, the
kernel holds a 1 GiB write in the page cache and that `fsync` then writes all of it while
the client waits (0.35 s per GiB on the reference machine). Starting the writeback of each
batch as soon as it is written (Linux `sync_file_range(SYNC_FILE_RANGE_WRITE)`, which
queues the pages and does not wait for them) overlaps the disk with the network, and the
final `fsync` finds almost nothing left: 1 GiB written in 1 MiB blocks then flushed went
from 1.12-1.16 s to 0.78-0.89 s, and three such writers at once finished all three in
2.3-3.0 s instead of 3.6-4.3 s. Databases do the same (RocksDB's `bytes_per_sync`,
PostgreSQL's `backend_flush_after`). The cost: a writer that shares the disk with another
process's large, unflushed write waits behind that write's pages (1 GiB took 1.8-2.5 s
instead of 0.7-1.0 s next to a 3 GB `dd`), where without it the data would have stayed in
the page cache until the final `fsync`.

Python's `os` has no `sync_file_range`, so it is called through ctypes (which releases the
GIL); where the C library lacks it (not Linux) this is a no-op and `fsync` does all the work.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Callable
from typing import Final

SYNC_FILE_RANGE_WRITE: Final = 2

_Starter = Callable[[int, int, int, int], int]


def _load() -> _Starter | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        function = libc.sync_file_range
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    function.restype = ctypes.c_int
    starter: _Starter = function
    return starter


_sync_file_range: Final = _load()


def available() -> bool:
    return _sync_file_range is not None


def start_writeback(fd: int, offset: int, length: int) -> None:
    """Queue the dirty pages of `fd` in [offset, offset + length) for writing, without
    waiting. Best effort: a failure (a file system that does not support it) is ignored,
    because the `fsync` that follows is what makes the data durable."""
    if _sync_file_range is not None and length > 0:
        _sync_file_range(fd, offset, length, SYNC_FILE_RANGE_WRITE)
