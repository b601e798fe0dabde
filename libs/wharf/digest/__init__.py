"""Wharf's digests: resumable SHA-256 in Quay's `sha_state` format, and stream hashing.

* `ResumableSHA256`: hashlib-like SHA-256 on libcrypto (GIL released while hashing) whose
  running state is exported and imported as the exact `resumablesha256` pickle Quay keeps in
  `blobupload.sha_state`, produced and parsed byte by byte (never unpickled).
* `resumable_available()`: False when libcrypto's SHA256_* functions are missing or failed
  the lazy `self_test()`. Hashing still works then, but `export_state()` / `from_state()`
  raise `HashStateUnavailable`: store NULL in `sha_state` and re-hash from storage.
* `StreamingDigester`: hashes chunks of an async stream while passing them through, offloading
  big chunks to a thread. `hashlib_digest_of_stream`: one-shot digest of a stream (sha512).
"""

from wharf.digest.errors import DigestError, HashStateUnavailable, InvalidHashState
from wharf.digest.quay_state import (
    Sha256State,
    encode_quay_state,
    encode_quay_state_text,
    parse_quay_state,
    parse_quay_state_text,
)
from wharf.digest.resumable import BytesLike, ResumableSHA256
from wharf.digest.selftest import SelfTestResult, resumable_available, self_test
from wharf.digest.streaming import (
    OFFLOAD_THRESHOLD,
    STREAM_ALGORITHMS,
    Hasher,
    StreamingDigester,
    hashlib_digest_of_stream,
)

__all__ = [
    "OFFLOAD_THRESHOLD",
    "STREAM_ALGORITHMS",
    "BytesLike",
    "DigestError",
    "HashStateUnavailable",
    "Hasher",
    "InvalidHashState",
    "ResumableSHA256",
    "SelfTestResult",
    "Sha256State",
    "StreamingDigester",
    "encode_quay_state",
    "encode_quay_state_text",
    "hashlib_digest_of_stream",
    "parse_quay_state",
    "parse_quay_state_text",
    "resumable_available",
    "self_test",
]
