"""Quay's object key layout, byte for byte, and the checks that keep hostile keys out.

See docs/architecture.md ("Object keys"): a blob with digest `alg:hex` lives at
`alg/<hex[:2] zero-padded>/hex`, where `+` and `.` in the algorithm become `/`.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass

from wharf.storage.errors import InvalidPath

_DIGEST_RE = re.compile(r"([A-Za-z0-9_+.-]+):([A-Fa-f0-9]+)")
_ALGORITHM_SEPARATORS = re.compile(r"[+.]+")

SHARED_IMAGES = "sharedimages"
UPLOADS = "uploads"
SEGMENTS = "segments"
VERIFY_KEY = "_verify"


class InvalidDigest(ValueError):
    """A string that is not `algorithm:hex` as Quay's digest grammar defines it."""

    def __init__(self, digest: str) -> None:
        super().__init__(f"invalid digest {digest!r}: expected <algorithm>:<hex>")
        self.digest = digest


@dataclass(frozen=True, slots=True)
class Digest:
    algorithm: str
    hex: str

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hex}"


def parse_digest(digest: str) -> Digest:
    """Split a digest the way Quay does: the whole string must match, case is kept."""
    match = _DIGEST_RE.fullmatch(digest)
    if match is None:
        raise InvalidDigest(digest)
    return Digest(match.group(1), match.group(2))


def content_path(digest: str) -> str:
    """The relative key of a content-addressed blob, identical to Quay's `content_path`."""
    parsed = parse_digest(digest)
    prefix = parsed.hex[:2].rjust(2, "0")
    algorithm = _ALGORITHM_SEPARATORS.sub("/", parsed.algorithm).lstrip("/")
    algorithm = re.sub("/+", "/", algorithm)
    # Quay joins with os.path.join, which drops empty parts; "md5.:1" must give "md5/01/1".
    return posixpath.join(*[part for part in (algorithm, prefix, parsed.hex) if part])


def blob_path(digest: str) -> str:
    return content_path(digest)


def v1_image_layer_path(storage_uuid: str) -> str:
    return f"{SHARED_IMAGES}/{check_key(storage_uuid)}/layer"


def upload_path(upload_id: str) -> str:
    return f"{UPLOADS}/{check_key(upload_id)}"


def check_key(key: str) -> str:
    """Refuse keys that could escape a prefix or mean different things to different backends."""
    if not key:
        raise InvalidPath("empty key", path=key)
    if "\x00" in key or any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in key):
        raise InvalidPath("key contains a NUL or control character", path=repr(key))
    if key.startswith("/"):
        raise InvalidPath("absolute keys are refused", path=key)
    if "\\" in key:
        raise InvalidPath("backslashes are refused in keys", path=key)
    segments = key.split("/")
    if any(segment in ("..", ".") for segment in segments):
        raise InvalidPath("relative segments ('.' or '..') are refused in keys", path=key)
    if any(segment == "" for segment in segments[:-1]) or key.endswith("/"):
        raise InvalidPath("empty path segments are refused in keys", path=key)
    return key


def prefixed_key(storage_path: str, key: str) -> str:
    """The S3 family's rule: `join(storage_path, key)`, then drop exactly one leading `/`."""
    joined = posixpath.join(storage_path, check_key(key))
    return joined[1:] if joined.startswith("/") else joined


def strip_prefix(storage_path: str, full_key: str) -> str:
    """Inverse of `prefixed_key` for keys listed from the backend."""
    prefix = prefixed_key(storage_path, "x")[:-1]
    return full_key[len(prefix) :] if full_key.startswith(prefix) else full_key
