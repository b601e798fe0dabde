"""`Range` (blob downloads) and `Content-Range` (chunked uploads) headers."""

from __future__ import annotations

import re
from dataclasses import dataclass

_CONTENT_RANGE = re.compile(r"(?:bytes[ =])?([0-9]+)-([0-9]+)(?:/(?:[0-9]+|\*))?")
_RANGE = re.compile(r"bytes=([0-9]*)-([0-9]*)")


class RangeError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class ByteRange:
    start: int
    length: int

    @property
    def end(self) -> int:
        """The last byte, inclusive, as HTTP writes it."""
        return self.start + self.length - 1

    def content_range(self, total: int) -> str:
        return f"bytes {self.start}-{self.end}/{total}"


def parse_content_range(value: str) -> ByteRange:
    """A PATCH chunk's `Content-Range: <start>-<end>` (inclusive); `bytes ` is tolerated."""
    match = _CONTENT_RANGE.fullmatch(value.strip())
    if match is None:
        raise RangeError(f"malformed Content-Range {value!r}: expected <start>-<end>")
    start, end = int(match.group(1)), int(match.group(2))
    if end < start:
        raise RangeError(f"Content-Range {value!r} ends before it starts")
    return ByteRange(start, end - start + 1)


def parse_range(value: str, total: int) -> ByteRange | None:
    """A download's single `Range: bytes=...` against an object of `total` bytes.

    Returns None when the header should be ignored (not a single bytes range, per RFC 9110
    a server may then send the whole object); raises `RangeError` when unsatisfiable.
    """
    match = _RANGE.fullmatch(value.strip())
    if match is None or (not match.group(1) and not match.group(2)):
        return None
    first, last = match.group(1), match.group(2)
    if not first:  # suffix: the last N bytes
        suffix = int(last)
        if suffix == 0 or total == 0:
            raise RangeError("empty suffix range")
        length = min(suffix, total)
        return ByteRange(total - length, length)
    start = int(first)
    if start >= total:
        raise RangeError(f"range starts at {start} but the object has {total} bytes")
    end = min(int(last), total - 1) if last else total - 1
    if end < start:
        return None
    return ByteRange(start, end - start + 1)


def upload_range_header(received: int) -> str:
    """The `Range` an upload status reports: `0-<last byte received>` (`0-0` when empty)."""
    return f"0-{max(received - 1, 0)}"
