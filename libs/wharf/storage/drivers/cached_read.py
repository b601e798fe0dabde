"""Reading bytes that are already in the page cache without leaving the event loop.

`preadv2(..., RWF_NOWAIT)` (Linux 4.14+) copies from the page cache, or fails with `EAGAIN`
instead of waiting for the disk: it never blocks on I/O, so the event loop may call it, and
only reads that would wait go to the thread pool. That saves a thread-pool round trip per
block, which was the largest cost of local reads (see docs/architecture.md, local disk).

Python's `os.preadv` only fills writable buffers (a `bytearray`, zero-filled first: 20% of
the time of a cached read), so this module does what `os.pread` does in C: it creates an
uninitialised `bytes` of the wanted size and reads into it before anyone else sees it. That
needs CPython and its `bytes` layout; `read_cached` checks both once and otherwise answers
None (the caller then reads in the thread pool, as before).
"""

from __future__ import annotations

import ctypes
import errno
import os
import sys
from typing import Any


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
        ctypes.POINTER(_IoVec),
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


def read_cached(fd: int, size: int, offset: int) -> bytes | None:
    """Up to `size` bytes at `offset` if the page cache holds them (b"" at end of file);
    None when the read would wait for the disk or this platform cannot say."""
    if _NATIVE is None or size <= 0:
        return None
    preadv2, new_bytes, data_offset = _NATIVE
    buffer: bytes = new_bytes(None, size)
    vector = _IoVec(id(buffer) + data_offset, size)
    count = preadv2(fd, ctypes.byref(vector), 1, offset, os.RWF_NOWAIT)
    if count < 0:
        code = ctypes.get_errno()
        if code in (errno.EAGAIN, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
            return None
        raise OSError(code, os.strerror(code))
    return buffer if count == size else buffer[:count]
