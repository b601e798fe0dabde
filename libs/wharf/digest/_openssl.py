"""libcrypto's low-level ``SHA256_Init/Update/Final`` through ctypes.

OpenSSL's ``SHA256_CTX`` (``openssl/sha.h``, unchanged from 1.0 to 3.x) is 112 bytes with no
pointers: ``u32 h[8]``, ``u32 Nl, Nh`` (total *bits*, low/high word), ``u8 data[64]`` (the
partial block; declared as u32 words but used as bytes), ``u32 num`` (bytes in ``data``),
``u32 md_len``. All words are native-endian. The functions are deprecated in OpenSSL 3 but
still exported; `wharf.digest.selftest` checks the layout before anything relies on it.

`CDLL` calls release the GIL, so a large `update` lets other threads run. Nothing here is
thread-safe: `ResumableSHA256` serialises access to a context with its lock.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import struct

from wharf.digest.quay_state import Sha256State

CTX_SIZE = 112
DIGEST_SIZE = 32
_COUNTS = struct.Struct("=II")  # Nl, Nh at offset 32; num, md_len at offset 104
_WORDS = struct.Struct("=8I")
_NL_OFFSET, _DATA_OFFSET, _NUM_OFFSET = 32, 40, 104
_PYBUF_SIMPLE = 0

Context = ctypes.Array[ctypes.c_char]


class LibCryptoUnavailable(Exception):
    """libcrypto or one of its SHA256_* symbols cannot be loaded."""


def candidate_names() -> list[str]:
    """Where to look for libcrypto, in order; `WHARF_LIBCRYPTO` (a path or soname) first."""
    names = [os.environ.get("WHARF_LIBCRYPTO", ""), ctypes.util.find_library("crypto") or ""]
    names += ["libcrypto.so.3", "libcrypto.so.1.1", "libcrypto.3.dylib", "libcrypto.dylib"]
    return list(dict.fromkeys(name for name in names if name))


class _PyBuffer(ctypes.Structure):
    """CPython's ``Py_buffer`` (part of the stable ABI since 3.11)."""

    _fields_ = (
        ("buf", ctypes.c_void_p),
        ("obj", ctypes.c_void_p),
        ("len", ctypes.c_ssize_t),
        ("itemsize", ctypes.c_ssize_t),
        ("readonly", ctypes.c_int),
        ("ndim", ctypes.c_int),
        ("format", ctypes.c_void_p),
        ("shape", ctypes.c_void_p),
        ("strides", ctypes.c_void_p),
        ("suboffsets", ctypes.c_void_p),
        ("internal", ctypes.c_void_p),
    )


# Own function objects (item access is not cached), so their argtypes cannot clash with
# anyone else's use of ctypes.pythonapi. They run with the GIL held, as they must.
_get_buffer = ctypes.pythonapi["PyObject_GetBuffer"]
_get_buffer.argtypes = (ctypes.py_object, ctypes.POINTER(_PyBuffer), ctypes.c_int)
_get_buffer.restype = ctypes.c_int
_release_buffer = ctypes.pythonapi["PyBuffer_Release"]
_release_buffer.argtypes = (ctypes.POINTER(_PyBuffer),)
_release_buffer.restype = None


class LibCrypto:
    """The three SHA-256 functions of one loaded libcrypto."""

    def __init__(self, name: str) -> None:
        try:
            library = ctypes.CDLL(name)
            self._init = library["SHA256_Init"]
            self._update = library["SHA256_Update"]
            self._final = library["SHA256_Final"]
        except (OSError, AttributeError) as exc:
            raise LibCryptoUnavailable(f"{name}: {exc}") from None
        self.name = name
        self._init.argtypes = (ctypes.c_void_p,)
        self._update.argtypes = (ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t)
        self._final.argtypes = (ctypes.c_void_p, ctypes.c_void_p)
        for function in (self._init, self._update, self._final):
            function.restype = ctypes.c_int

    @classmethod
    def load(cls) -> LibCrypto:
        problems = []
        for name in candidate_names():
            try:
                return cls(name)
            except LibCryptoUnavailable as exc:
                problems.append(str(exc))
        raise LibCryptoUnavailable("; ".join(problems) or "no libcrypto candidate")

    def init(self, context: Context) -> None:
        if self._init(context) != 1:
            raise RuntimeError("SHA256_Init failed")

    def new_context(self) -> Context:
        context = ctypes.create_string_buffer(CTX_SIZE)
        self.init(context)
        return context

    def update(self, context: Context, data: bytes | bytearray | memoryview) -> None:
        """Hash `data` with no copy: bytes directly, other buffers pinned through Py_buffer."""
        if type(data) is bytes:
            if data and self._update(context, data, len(data)) != 1:
                raise RuntimeError("SHA256_Update failed")
            return
        view = _PyBuffer()
        try:
            _get_buffer(data, ctypes.byref(view), _PYBUF_SIMPLE)
        except BufferError:  # not C-contiguous: a copy is the only way
            self.update(context, memoryview(data).tobytes())
            return
        try:
            if view.len and self._update(context, view.buf, view.len) != 1:
                raise RuntimeError("SHA256_Update failed")
        finally:
            _release_buffer(ctypes.byref(view))

    def digest(self, context: Context) -> bytes:
        """Finalize a copy of `context`, which stays usable."""
        scratch = copy_context(context)
        out = ctypes.create_string_buffer(DIGEST_SIZE)
        if self._final(out, scratch) != 1:
            raise RuntimeError("SHA256_Final failed")
        return out.raw


def copy_context(context: Context) -> Context:
    return (ctypes.c_char * CTX_SIZE).from_buffer_copy(context)


def bytes_hashed(context: Context) -> int:
    low, high = _COUNTS.unpack_from(context, _NL_OFFSET)
    return int((high << 32) | low) >> 3


def context_to_state(context: Context) -> Sha256State:
    raw = context.raw
    low, high = _COUNTS.unpack_from(raw, _NL_OFFSET)
    num, md_len = _COUNTS.unpack_from(raw, _NUM_OFFSET)
    bits = (high << 32) | low
    if md_len != DIGEST_SIZE or num > 63 or bits % 8 or (bits >> 3) % 64 != num:
        raise RuntimeError(f"inconsistent SHA256_CTX (bits {bits}, num {num}, md_len {md_len})")
    h0, h1, h2, h3, h4, h5, h6, h7 = _WORDS.unpack_from(raw, 0)
    pending = raw[_DATA_OFFSET : _DATA_OFFSET + num]
    return Sha256State((h0, h1, h2, h3, h4, h5, h6, h7), bits >> 3, pending)


def state_to_context(state: Sha256State) -> Context:
    bits = state.length << 3
    raw = b"".join(
        (
            _WORDS.pack(*state.words),
            _COUNTS.pack(bits & 0xFFFFFFFF, bits >> 32),
            state.pending.ljust(64, b"\0"),
            _COUNTS.pack(len(state.pending), DIGEST_SIZE),
        )
    )
    return (ctypes.c_char * CTX_SIZE).from_buffer_copy(raw)
