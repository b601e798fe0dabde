"""Quay's `blobupload.sha_state`: produced and parsed byte by byte, never unpickled.

Quay stores ``base64(pickle.dumps(resumablesha256.sha256_obj))``. With pickle protocol 4 (the
default on Python 3.8-3.13; 3.14 defaults to 5, which only changes the PROTO byte) that is
always these 160 bytes::

    80 04                 PROTO 4
    95 <u64 LE = 149>     FRAME 149
    8c 0f "resumablesha256" 94    SHORT_BINUNICODE, MEMOIZE
    8c 06 "sha256" 94             SHORT_BINUNICODE, MEMOIZE
    93 94                 STACK_GLOBAL, MEMOIZE
    29 81 94              EMPTY_TUPLE, NEWOBJ, MEMOIZE
    43 70 <112 bytes> 94  SHORT_BINBYTES 112 (the C struct), MEMOIZE
    62 2e                 BUILD, STOP

The 112 bytes are Brad Conte's ``SHA256_CTX`` as laid out on x86-64/aarch64 (little-endian):
``data[64]`` (the partial block; bytes past ``datalen`` are stale), ``u32 datalen``, 4 bytes
of padding, ``u64 bitlen`` (bits in *completed* 64-byte blocks only), ``u32 state[8]``.

`parse_quay_state` accepts exactly that opcode sequence (PROTO 4 or 5) and nothing else, so no
pickle machinery ever runs on stored data; every refusal is an `InvalidHashState` whose
`reason` names the problem. The padding bytes carry no meaning and are not checked (Quay's
are zero; Wharf writes zero). `encode_quay_state` writes protocol 4 and zeroes the stale
buffer bytes, so for offsets below 64 its output equals Quay's byte for byte and above that
differs only in those stale bytes, which no reader looks at.

A big-endian Quay (s390x) would write the struct big-endian; such states are refused (most
likely as ``datalen-out-of-range``) and the upload is re-hashed from storage.
"""

from __future__ import annotations

import base64
import binascii
import struct
from dataclasses import dataclass

from wharf.digest.errors import InvalidHashState

SHA256_IV = (
    0x6A09E667,
    0xBB67AE85,
    0x3C6EF372,
    0xA54FF53A,
    0x510E527F,
    0x9B05688C,
    0x1F83D9AB,
    0x5BE0CD19,
)
MAX_LENGTH = 1 << 60
"""Exclusive bound on the bytes a state may count: Quay's `bitlen` must stay a non-negative
int64 (a top bit set is how a corrupted counter shows up; no upload reaches an exbibyte)."""

QUAY_MODULE = b"resumablesha256"
QUAY_CLASS = b"sha256"
PAYLOAD_SIZE = 112
PICKLE_SIZE = 160
TEXT_SIZE = 216  # base64 of 160 bytes
_HEADER_SIZE = 11  # PROTO 2 bytes + FRAME 9 bytes
_FRAME_SIZE = PICKLE_SIZE - _HEADER_SIZE
_ACCEPTED_PROTOCOLS = (4, 5)

_PROTO, _FRAME, _UNICODE, _MEMOIZE = 0x80, 0x95, 0x8C, 0x94
_STACK_GLOBAL, _EMPTY_TUPLE, _NEWOBJ = 0x93, 0x29, 0x81
_BINBYTES, _BUILD, _STOP = 0x43, 0x62, 0x2E
_OPCODE_NAMES = {
    _PROTO: "PROTO",
    _FRAME: "FRAME",
    _UNICODE: "SHORT_BINUNICODE",
    _MEMOIZE: "MEMOIZE",
    _STACK_GLOBAL: "STACK_GLOBAL",
    _EMPTY_TUPLE: "EMPTY_TUPLE",
    _NEWOBJ: "NEWOBJ",
    _BINBYTES: "SHORT_BINBYTES",
    _BUILD: "BUILD",
    _STOP: "STOP",
}
_CTX_TAIL = struct.Struct("<I4xQ8I")  # datalen, padding, bitlen, state[8] (after data[64])


@dataclass(frozen=True, slots=True)
class Sha256State:
    """An engine-neutral SHA-256 running state.

    `words` are H0..H7 after the last complete block, `length` counts every byte hashed and
    `pending` holds the ``length % 64`` bytes of the block not yet compressed.
    """

    words: tuple[int, int, int, int, int, int, int, int]
    length: int
    pending: bytes

    def __post_init__(self) -> None:
        if len(self.words) != 8 or any(not 0 <= w <= 0xFFFFFFFF for w in self.words):
            raise ValueError("words must be eight unsigned 32-bit integers")
        if not 0 <= self.length < MAX_LENGTH:
            raise ValueError(f"length {self.length} is outside [0, 2**60)")
        if len(self.pending) != self.length % 64:
            raise ValueError(f"pending holds {len(self.pending)} bytes, not length % 64")


INITIAL_STATE = Sha256State(SHA256_IV, 0, b"")


def encode_quay_state(state: Sha256State) -> bytes:
    """The 160 pickle bytes Quay stores (before base64) for `state`."""
    datalen = len(state.pending)
    payload = state.pending.ljust(64, b"\0") + _CTX_TAIL.pack(
        datalen, 8 * (state.length - datalen), *state.words
    )
    body = b"".join(
        (
            _short_unicode(QUAY_MODULE),
            _short_unicode(QUAY_CLASS),
            bytes((_STACK_GLOBAL, _MEMOIZE, _EMPTY_TUPLE, _NEWOBJ, _MEMOIZE)),
            bytes((_BINBYTES, PAYLOAD_SIZE)),
            payload,
            bytes((_MEMOIZE, _BUILD, _STOP)),
        )
    )
    return bytes((_PROTO, 4, _FRAME)) + struct.pack("<Q", len(body)) + body


def parse_quay_state(data: bytes) -> Sha256State:
    """Parse the 160 pickle bytes Quay stores; `InvalidHashState` for anything else."""
    if not isinstance(data, bytes):
        raise TypeError(f"state must be bytes, not {type(data).__name__}")
    if len(data) > PICKLE_SIZE:
        raise InvalidHashState("oversized", f"{len(data)} bytes, a state is {PICKLE_SIZE}")
    reader = _Reader(data)
    reader.opcode(_PROTO)
    protocol = reader.take(1)[0]
    if protocol not in _ACCEPTED_PROTOCOLS:
        raise InvalidHashState("unsupported-protocol", f"pickle protocol {protocol}, not 4 or 5")
    reader.opcode(_FRAME)
    (frame,) = struct.unpack("<Q", reader.take(8))
    if frame != _FRAME_SIZE:
        raise InvalidHashState("bad-frame", f"frame of {frame} bytes, not {_FRAME_SIZE}")
    module = reader.short_unicode()
    reader.opcode(_MEMOIZE)
    name = reader.short_unicode()
    if (module, name) != (QUAY_MODULE, QUAY_CLASS):
        found = f"{module.decode('utf-8', 'replace')}.{name.decode('utf-8', 'replace')}"
        raise InvalidHashState("wrong-class", f"class {found!r}, not resumablesha256.sha256")
    for opcode in (_MEMOIZE, _STACK_GLOBAL, _MEMOIZE, _EMPTY_TUPLE, _NEWOBJ, _MEMOIZE):
        reader.opcode(opcode)
    reader.opcode(_BINBYTES)
    size = reader.take(1)[0]
    if size != PAYLOAD_SIZE:
        raise InvalidHashState("bad-payload-length", f"{size}-byte state, not {PAYLOAD_SIZE}")
    payload = reader.take(PAYLOAD_SIZE)
    for opcode in (_MEMOIZE, _BUILD, _STOP):
        reader.opcode(opcode)
    if reader.pos != len(data):  # unreachable while the size check above holds; kept as a guard
        raise InvalidHashState("oversized", f"{len(data) - reader.pos} bytes after STOP")
    return _decode_payload(payload)


def encode_quay_state_text(state: Sha256State) -> str:
    """The `blobupload.sha_state` column value: base64 of `encode_quay_state`."""
    return base64.b64encode(encode_quay_state(state)).decode("ascii")


def parse_quay_state_text(text: str) -> Sha256State:
    """Parse a `blobupload.sha_state` column value (base64 text)."""
    if len(text) > TEXT_SIZE:
        raise InvalidHashState("oversized", f"{len(text)} characters, a state is {TEXT_SIZE}")
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error) as exc:
        raise InvalidHashState("not-base64", str(exc)) from None
    return parse_quay_state(raw)


def _decode_payload(payload: bytes) -> Sha256State:
    datalen, bitlen, *words = _CTX_TAIL.unpack_from(payload, 64)
    if datalen >= 1 << 31:
        raise InvalidHashState("negative-counter", f"datalen {datalen} is negative as an int32")
    if bitlen >= 1 << 63:
        raise InvalidHashState("negative-counter", f"bitlen {bitlen} is negative as an int64")
    if datalen > 63:
        raise InvalidHashState("datalen-out-of-range", f"datalen {datalen}, must be below 64")
    if bitlen % 512:
        raise InvalidHashState("bitlen-misaligned", f"bitlen {bitlen} is not whole blocks")
    h0, h1, h2, h3, h4, h5, h6, h7 = words
    return Sha256State((h0, h1, h2, h3, h4, h5, h6, h7), bitlen // 8 + datalen, payload[:datalen])


def _short_unicode(text: bytes) -> bytes:
    return bytes((_UNICODE, len(text))) + text + bytes((_MEMOIZE,))


class _Reader:
    """A cursor over the pickle bytes that refuses anything off the one expected path."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, count: int) -> bytes:
        end = self.pos + count
        if end > len(self.data):
            raise InvalidHashState(
                "truncated", f"{len(self.data)} bytes, ends inside the field at offset {self.pos}"
            )
        chunk = self.data[self.pos : end]
        self.pos = end
        return chunk

    def opcode(self, expected: int) -> None:
        at = self.pos
        found = self.take(1)[0]
        if found != expected:
            got = _OPCODE_NAMES.get(found, "an opcode outside the template")
            raise InvalidHashState(
                "unexpected-opcode",
                f"offset {at}: expected {_OPCODE_NAMES[expected]} (0x{expected:02x}), "
                f"found 0x{found:02x} ({got})",
            )

    def short_unicode(self) -> bytes:
        self.opcode(_UNICODE)
        return self.take(self.take(1)[0])
