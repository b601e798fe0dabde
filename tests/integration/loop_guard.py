"""Catches blocking file I/O that library code runs on the event loop's thread.

`guard_loop_thread()` wraps the file system calls of `os`, `io`, `builtins` and `fcntl`; a
call made on the thread that installed it, whose nearest caller outside the standard library
lies under `wharf/`, is recorded. Calls from the tests themselves, from pytest and from
asyncio's own machinery are not: only Wharf's code must keep off the loop. Non-blocking
reads through ctypes (`cached_read`) do not go through these functions.
"""

from __future__ import annotations

import builtins
import fcntl
import io
import os
import sys
import sysconfig
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

BLOCKING = {
    os: (
        "open", "read", "pread", "readv", "preadv", "write", "pwrite", "writev", "fsync",
        "fdatasync", "close", "replace", "rename", "unlink", "remove", "stat", "lstat",
        "fstat", "listdir", "scandir", "mkdir", "makedirs", "rmdir", "ftruncate", "truncate",
        "utime", "sendfile", "copy_file_range",
    ),
    io: ("open",),
    builtins: ("open",),
    fcntl: ("flock", "lockf"),
}  # fmt: skip
STDLIB = (sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["platstdlib"])
WHARF = str(Path(__file__).resolve().parents[2] / "libs" / "wharf")


def _wharf_caller() -> str | None:
    """`file:line` of the nearest caller outside the stdlib and this module, if it is
    Wharf's; None if it is anybody else's."""
    frame = sys._getframe(2)
    while frame is not None:
        filename = frame.f_code.co_filename
        if filename != __file__ and not filename.startswith(STDLIB):
            return f"{filename}:{frame.f_lineno}" if filename.startswith(WHARF) else None
        frame = frame.f_back  # type: ignore[assignment]
    return None


@contextmanager
def guard_loop_thread() -> Iterator[list[str]]:
    """Yields the list that collects `function at file:line` of each call caught."""
    caught: list[str] = []
    loop_thread = threading.get_ident()
    originals: list[tuple[ModuleType, str, Callable[..., Any]]] = []

    def wrap(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def guarded(*args: Any, **kwargs: Any) -> Any:
            if threading.get_ident() == loop_thread:
                where = _wharf_caller()
                if where is not None:
                    caught.append(f"{name} at {where}")
            return function(*args, **kwargs)

        return guarded

    for module, names in BLOCKING.items():
        for name in names:
            if hasattr(module, name):
                original = getattr(module, name)
                originals.append((module, name, original))
                setattr(module, name, wrap(f"{module.__name__}.{name}", original))
    try:
        yield caught
    finally:
        for module, name, original in originals:
            setattr(module, name, original)
