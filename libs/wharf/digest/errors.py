"""Errors of the digest package."""

from __future__ import annotations


class DigestError(Exception):
    """Base class of the digest package's errors."""


class InvalidHashState(DigestError, ValueError):
    """A stored hash state is not exactly a state this package can resume.

    `reason` is a stable machine-readable code (tests and metrics match on it); the message
    says where and what. The registry treats every reason alike: the stored state cannot be
    resumed, so re-hash the upload from storage (or answer BLOB_UPLOAD_UNKNOWN).

    Reasons: ``not-base64``, ``oversized``, ``truncated``, ``unexpected-opcode``,
    ``unsupported-protocol``, ``bad-frame``, ``wrong-class``, ``bad-payload-length``,
    ``negative-counter``, ``datalen-out-of-range``, ``bitlen-misaligned``.
    """

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"invalid hash state ({reason}): {detail}")
        self.reason = reason
        self.detail = detail


class HashStateUnavailable(DigestError):
    """This process cannot export or import a SHA-256 state (libcrypto's low-level
    SHA256_* functions are missing, failed the self-test, or were disabled).

    Hashing still works; only persisting the running state does not. The caller stores no
    state (NULL `sha_state`) and, to continue an upload later, re-hashes the bytes already
    in storage. `wharf.digest.resumable_available()` says up front which mode is active.
    """
