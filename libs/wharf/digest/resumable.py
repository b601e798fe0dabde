"""`ResumableSHA256`: a hashlib-like SHA-256 whose running state can be stored and resumed.

Two engines, chosen once per process by `self_test()`:

* OpenSSL (normal): libcrypto's ``SHA256_*`` through ctypes, at hashlib's speed, with the
  GIL released during updates. `export_state()` gives Quay's `sha_state` pickle bytes.
* hashlib (fallback, when libcrypto, its symbols or the self-test fail): hashing works the
  same, but `export_state()` and `from_state()` raise `HashStateUnavailable`. Callers check
  `resumable_available()` (or an instance's `resumable`), store no state, and re-hash the
  bytes already in storage when an upload continues.

One instance may be used from several threads (a lock serialises every operation), but the
order of concurrent updates is then undefined: feed an instance from one place at a time.
"""

from __future__ import annotations

import hashlib
import threading
from typing import TYPE_CHECKING, Self

from wharf.digest import _openssl, selftest
from wharf.digest.errors import HashStateUnavailable
from wharf.digest.quay_state import (
    Sha256State,
    encode_quay_state,
    encode_quay_state_text,
    parse_quay_state,
    parse_quay_state_text,
)

if TYPE_CHECKING:
    from hashlib import _Hash

BytesLike = bytes | bytearray | memoryview

_UNAVAILABLE = (
    "resumable SHA-256 is unavailable in this process (see wharf.digest.self_test()); "
    "re-hash the upload from storage instead"
)


class ResumableSHA256:
    """SHA-256 with `export_state()` / `from_state()` in Quay's `blobupload.sha_state` format."""

    name = "sha256"
    digest_size = 32
    block_size = 64
    __slots__ = ("_context", "_count", "_fallback", "_library", "_lock")

    def __init__(self, data: BytesLike = b"") -> None:
        self._lock = threading.Lock()
        self._library = selftest.engine()
        self._context: _openssl.Context | None = None
        self._fallback: _Hash | None = None
        self._count = 0
        if self._library is not None:
            self._context = self._library.new_context()
        else:
            self._fallback = hashlib.sha256()
        if data:
            self.update(data)

    # -- hashing ---------------------------------------------------------------------------

    def update(self, data: BytesLike) -> None:
        """Hash `data` (bytes or any C-contiguous buffer; no copy). Large updates release
        the GIL, so they may run in a worker thread while the event loop carries on."""
        with self._lock:
            if self._context is not None:
                assert self._library is not None
                self._library.update(self._context, data)
            else:
                assert self._fallback is not None
                view = memoryview(data)
                self._fallback.update(view if view.c_contiguous else view.tobytes())
                self._count += view.nbytes

    def digest(self) -> bytes:
        """The digest of everything hashed so far; the running state is left as it is."""
        with self._lock:
            if self._context is not None:
                assert self._library is not None
                return self._library.digest(self._context)
            assert self._fallback is not None
            return self._fallback.digest()

    def hexdigest(self) -> str:
        return self.digest().hex()

    @property
    def bytes_hashed(self) -> int:
        """Bytes hashed since the start of the message (including before a resume)."""
        with self._lock:
            if self._context is not None:
                return _openssl.bytes_hashed(self._context)
            return self._count

    @property
    def resumable(self) -> bool:
        """Whether this instance can export its state (False in the hashlib fallback)."""
        return self._context is not None

    def copy(self) -> Self:
        clone = object.__new__(type(self))
        clone._lock = threading.Lock()
        clone._library = self._library
        with self._lock:
            clone._count = self._count
            clone._context = None if self._context is None else _openssl.copy_context(self._context)
            clone._fallback = None if self._fallback is None else self._fallback.copy()
        return clone

    # -- state -----------------------------------------------------------------------------

    def state(self) -> Sha256State:
        """The engine-neutral running state; `HashStateUnavailable` in the fallback."""
        with self._lock:
            if self._context is None:
                raise HashStateUnavailable(_UNAVAILABLE)
            return _openssl.context_to_state(self._context)

    def export_state(self) -> bytes:
        """The 160 pickle bytes Quay keeps (base64-encoded) in `blobupload.sha_state`."""
        return encode_quay_state(self.state())

    def export_state_text(self) -> str:
        """`export_state()` as the base64 text stored in the `sha_state` column."""
        return encode_quay_state_text(self.state())

    @classmethod
    def from_state(cls, state: bytes) -> Self:
        """Resume from Quay's pickle bytes, parsed strictly (never unpickled).

        Raises `InvalidHashState` for anything but a `resumablesha256.sha256` pickle, and
        `HashStateUnavailable` (after the state parsed) in the hashlib fallback.
        """
        return cls.from_sha256_state(parse_quay_state(state))

    @classmethod
    def from_state_text(cls, text: str) -> Self:
        """Resume from a `blobupload.sha_state` column value (base64 text)."""
        return cls.from_sha256_state(parse_quay_state_text(text))

    @classmethod
    def from_sha256_state(cls, state: Sha256State) -> Self:
        library = selftest.engine()
        if library is None:
            raise HashStateUnavailable(_UNAVAILABLE)
        resumed = cls.__new__(cls)
        resumed._lock = threading.Lock()
        resumed._library = library
        resumed._context = _openssl.state_to_context(state)
        resumed._fallback = None
        resumed._count = 0
        return resumed

    def __repr__(self) -> str:
        engine = "openssl" if self.resumable else "hashlib fallback"
        return f"<ResumableSHA256 {engine}, {self.bytes_hashed} bytes>"
