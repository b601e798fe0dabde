"""The once-per-process check that decides whether SHA-256 states can be exported.

`self_test()` runs lazily (the first `ResumableSHA256()` triggers it) and caches its result:

1. ``WHARF_DIGEST_RESUMABLE=0`` (or off/false/no) disables the OpenSSL engine on purpose,
   e.g. where policy requires the FIPS provider, which the low-level API bypasses.
2. libcrypto loads and exports ``SHA256_Init``, ``SHA256_Update`` and ``SHA256_Final``.
3. The context layout is the one `_openssl` assumes: `SHA256_Init` on a guarded buffer
   writes only the first 112 bytes and leaves the IV, counters and ``md_len`` where expected.
4. Known vectors match hashlib, and exporting to Quay's format, parsing back and resuming
   at offsets 0, 1, 55, 56, 63, 64, 65, 127, 128, 129 and 1000 gives hashlib's digest, through
   the bytes, bytearray and memoryview paths; the fresh state equals Quay's own bytes.

If any step fails, `resumable_available()` is False and `ResumableSHA256` runs on hashlib:
hashing works, exporting or importing a state raises `HashStateUnavailable`.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import threading
from dataclasses import dataclass

from wharf.digest import _openssl
from wharf.digest.quay_state import INITIAL_STATE, encode_quay_state, parse_quay_state

log = logging.getLogger("wharf.digest")

DISABLE_VARIABLE = "WHARF_DIGEST_RESUMABLE"
_GUARD = 64
_CUTS = (0, 1, 55, 56, 63, 64, 65, 127, 128, 129, 1000)
# pickle.dumps(resumablesha256.sha256()) as Quay writes it into a new blobupload row.
QUAY_INITIAL_PICKLE = bytes.fromhex(
    "80049595000000000000008c0f726573756d61626c65736861323536948c06736861323536949394"
    "2981944370" + "00" * 80 + "67e6096a85ae67bb72f36e3c3af54fa57f520e518c68059babd9831f"
    "19cde05b94622e"
)


@dataclass(frozen=True, slots=True)
class SelfTestResult:
    """`available`: states can be exported and imported; else `reason` says why not."""

    available: bool
    library: str | None = None
    reason: str | None = None


_lock = threading.Lock()
_result: SelfTestResult | None = None
_library: _openssl.LibCrypto | None = None


def self_test(*, force: bool = False) -> SelfTestResult:
    """Run the self-test once (again with `force`, e.g. in tests) and return its result."""
    global _result, _library
    with _lock:
        if _result is None or force:
            library, _result = _run()
            _library = library if _result.available else None
            if not _result.available:
                log.warning(
                    "resumable SHA-256 unavailable, upload hash states will not be stored "
                    "(uploads resume by re-hashing from storage): %s",
                    _result.reason,
                )
        return _result


def resumable_available() -> bool:
    """Whether `ResumableSHA256.export_state` / `from_state` work in this process."""
    return self_test().available


def engine() -> _openssl.LibCrypto | None:
    """The verified libcrypto, or None for the hashlib fallback."""
    self_test()
    return _library


def _run() -> tuple[_openssl.LibCrypto | None, SelfTestResult]:
    if os.environ.get(DISABLE_VARIABLE, "").strip().lower() in {"0", "off", "false", "no"}:
        return None, SelfTestResult(False, reason=f"disabled by {DISABLE_VARIABLE}")
    try:
        library = _openssl.LibCrypto.load()
    except _openssl.LibCryptoUnavailable as exc:
        return None, SelfTestResult(False, reason=f"libcrypto unusable: {exc}")
    try:
        _check_layout(library)
        _check_vectors(library)
    except Exception as exc:  # any surprise means: do not trust this engine
        return None, SelfTestResult(False, library.name, f"self-test failed: {exc}")
    return library, SelfTestResult(True, library.name)


def _check_layout(library: _openssl.LibCrypto) -> None:
    size = _openssl.CTX_SIZE
    guarded = b"\xa5" * (size + _GUARD)
    buffer = bytearray(guarded)
    library.init((ctypes.c_char * (size + _GUARD)).from_buffer(buffer))
    if bytes(buffer[size:]) != guarded[size:]:
        raise RuntimeError(f"SHA256_Init wrote past {size} bytes: the context is larger")
    state = _openssl.context_to_state((ctypes.c_char * size).from_buffer(buffer))
    if state != INITIAL_STATE:
        raise RuntimeError("SHA256_Init left an unexpected layout")


def _check_vectors(library: _openssl.LibCrypto) -> None:
    known = {
        b"": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        b"abc": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
    }
    for message, expected in known.items():
        context = library.new_context()
        library.update(context, message)
        if library.digest(context).hex() != expected:
            raise RuntimeError(f"wrong digest for {message!r}")
    fresh = _openssl.context_to_state(library.new_context())
    if encode_quay_state(fresh) != QUAY_INITIAL_PICKLE:
        raise RuntimeError("the fresh state differs from Quay's")
    message = bytes(range(256)) * 4 + b"wharf"
    expected_digest = hashlib.sha256(message).digest()
    for cut in _CUTS:
        context = library.new_context()
        library.update(context, message[:cut])
        state = _openssl.context_to_state(context)
        if _openssl.bytes_hashed(context) != cut or state.length != cut:
            raise RuntimeError(f"byte counter wrong at {cut}")
        resumed = _openssl.state_to_context(parse_quay_state(encode_quay_state(state)))
        library.update(resumed, memoryview(message)[cut:])
        first = library.digest(resumed)
        if first != expected_digest or library.digest(resumed) != first:
            raise RuntimeError(f"resume at {cut} gives a wrong digest")
        if cut % 2:  # the bytearray path, and the same state resumed a second time
            context = _openssl.state_to_context(state)
            library.update(context, bytearray(message[cut:]))
            if library.digest(context) != expected_digest:
                raise RuntimeError(f"bytearray resume at {cut} gives a wrong digest")
