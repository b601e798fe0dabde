"""Reading bytes that are already in the page cache without leaving the event loop.

`preadv2(..., RWF_NOWAIT)` (Linux 4.14+) copies from the page cache, or fails with `EAGAIN`
instead of waiting for the disk: it never blocks on I/O, so the event loop may call it, and
only reads that would wait go to the thread pool. That saves a thread-pool round trip per
block, which was the largest cost of local reads (see docs/architecture.md, local disk).

Python's `os.preadv` only fills writable buffers (a `bytearray`, zero-filled first: 20% of
the time of a cached read), so this module does what `os.pread` does in C: it creates an
uninitialised `bytes` of the wanted size and reads into it before anyone else sees it. That
needs CPython and its `bytes` layout, checked once at import; elsewhere `cached_reader`
answers None (the caller then reads in the thread pool, as before).

A stream asks for one reader per open file (`cached_reader`): it builds its I/O vector once,
since every object a cached read touches costs a cache miss right after a 2 MiB copy (the
per-block work of a stream measured 2-3% of a cached 1 GiB read).
"""

from __future__ import annotations

import ctypes
import errno
import os
import sys
from collections.abc import Callable
from typing import Any

PageCacheRead = Callable[[int, int], bytes | None]
"""`read(size, offset)`: up to `size` bytes at `offset` if the page cache holds them (b"" at
the end of the file); None when the read would wait for the disk."""


class _IoVec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("length", ctypes.c_size_t)]


def _load() -> tuple[Any, Any, int] | None:
    if sys.implementation.name != "cpython" or not hasattr(os, "RWF_NOWAIT"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        preadv2 = libc.preadv2
    except (OSError, AttributeError):
        return None
    preadv2.restype = ctypes.c_ssize_t
    preadv2.argtypes = [
        ctypes.c_int,
        ctypes.c_void_p,
        ctypes.c_int,
        ctypes.c_longlong,
        ctypes.c_int,
    ]
    new_bytes = ctypes.pythonapi.PyBytes_FromStringAndSize
    new_bytes.restype = ctypes.py_object
    new_bytes.argtypes = [ctypes.c_void_p, ctypes.c_ssize_t]
    data_offset = sys.getsizeof(b"") - 1  # the header before `ob_sval` (its NUL is counted)
    probe = new_bytes(None, 3)
    ctypes.memmove(id(probe) + data_offset, b"abc", 3)
    if probe != b"abc":
        return None
    return preadv2, new_bytes, data_offset


_NATIVE = _load()


def available() -> bool:
    return _NATIVE is not None


def cached_reader(fd: int) -> PageCacheRead | None:
    """A reader of `fd`'s cached blocks, for one stream at a time; None when this platform
    cannot read without waiting (the caller reads in the thread pool instead)."""
    if _NATIVE is None:
        return None
    preadv2, new_bytes, data_offset = _NATIVE
    vector = _IoVec(0, 0)
    address = ctypes.addressof(vector)  # `vector` lives as long as `read` does
    nowait = os.RWF_NOWAIT

    def read(size: int, offset: int) -> bytes | None:
        if size <= 0:
            return None
        buffer: bytes = new_bytes(None, size)
        vector.base = id(buffer) + data_offset
        vector.length = size
        count = preadv2(fd, address, 1, offset, nowait)
        if count < 0:
            code = ctypes.get_errno()
            if code in (errno.EAGAIN, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                return None
            raise OSError(code, os.strerror(code))
        return buffer if count == size else buffer[:count]

    return read
