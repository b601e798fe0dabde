"""wharf.digest: hashlib equivalence, Quay's sha_state format, strict parsing, fallback, streams.

The golden states below were written by Quay's own hasher: `resumablesha256==1.0` (installed in
a throwaway venv, never a dependency of Wharf), as ``base64(pickle.dumps(h))`` after
``h.update(MESSAGE[:cut])``, exactly as Quay's `_ResumableSHAField` stores them. The same
session checked the reverse direction too (Wharf's states unpickled by resumablesha256 under a
Quay-style restricted unpickler and resumed to the right digest, at 220 offsets).
"""

from __future__ import annotations

import asyncio
import base64
import ctypes.util
import hashlib
import itertools
import pickle
import re
import struct
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.servers import unavailable
from wharf.digest import (
    HashStateUnavailable,
    InvalidHashState,
    ResumableSHA256,
    StreamingDigester,
    _openssl,
    hashlib_digest_of_stream,
    parse_quay_state,
    parse_quay_state_text,
    resumable_available,
    self_test,
    selftest,
)


def message(size: int) -> bytes:
    """The golden input: SHA-256 of an 8-byte big-endian counter, concatenated, cut."""
    blocks = (hashlib.sha256(i.to_bytes(8, "big")).digest() for i in range(size // 32 + 1))
    return b"".join(blocks)[:size]


MESSAGE = message((1 << 20) + 100)
MESSAGE_SHA256 = "5c0addc37b10ec6e72f50c31d2495037759c1e4594d5a75594e885162071858e"
GOLDEN = {  # cut -> sha_state written by resumablesha256 after update(MESSAGE[:cut])
    0: (
        "gASVlQAAAAAAAACMD3Jlc3VtYWJsZXNoYTI1NpSMBnNoYTI1NpSTlCmBlENwAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAABn5glqha5n"
        "u3Lzbjw69U+lf1IOUYxoBZur2YMfGc3gW5RiLg=="
    ),
    1: (
        "gASVlQAAAAAAAACMD3Jlc3VtYWJsZXNoYTI1NpSMBnNoYTI1NpSTlCmBlENwrwAAAAAAAAAAAAAAAAAAAAAAAAAA"
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAEAAAAAAAAAAAAAAAAAAABn5glqha5n"
        "u3Lzbjw69U+lf1IOUYxoBZur2YMfGc3gW5RiLg=="
    ),
    63: (
        "gASVlQAAAAAAAACMD3Jlc3VtYWJsZXNoYTI1NpSMBnNoYTI1NpSTlCmBlENwr1Vw9aGBC3r3jK9LxwpmDw31HkK6"
        "+R1N5bIyjeDoPfzNJmIVTm12srK5LnDAysPM9TT5t061uJgZ7FCQg9AKAD8AAAAAAAAAAAAAAAAAAABn5glqha5n"
        "u3Lzbjw69U+lf1IOUYxoBZur2YMfGc3gW5RiLg=="
    ),
    64: (
        "gASVlQAAAAAAAACMD3Jlc3VtYWJsZXNoYTI1NpSMBnNoYTI1NpSTlCmBlENwr1Vw9aGBC3r3jK9LxwpmDw31HkK6"
        "+R1N5bIyjeDoPfzNJmIVTm12srK5LnDAysPM9TT5t061uJgZ7FCQg9AKUAAAAAAAAAAAAAIAAAAAAADdZ+Po3ovY"
        "y08ZjCfj1GNMqlqS8Nt2CnOlNYy2YaoLbpRiLg=="
    ),
    65: (
        "gASVlQAAAAAAAACMD3Jlc3VtYWJsZXNoYTI1NpSMBnNoYTI1NpSTlCmBlENwzVVw9aGBC3r3jK9LxwpmDw31HkK6"
        "+R1N5bIyjeDoPfzNJmIVTm12srK5LnDAysPM9TT5t061uJgZ7FCQg9AKUAEAAAAAAAAAAAIAAAAAAADdZ+Po3ovY"
        "y08ZjCfj1GNMqlqS8Nt2CnOlNYy2YaoLbpRiLg=="
    ),
    1000: (
        "gASVlQAAAAAAAACMD3Jlc3VtYWJsZXNoYTI1NpSMBnNoYTI1NpSTlCmBlENwSKl+QhVG+NTK4c+IxRpFmowQqIRC"
        "7tY2Q90mPO+IDBwWZKbg6hLSNARS9aNaZ0PEISlG9/Mt7Sin2f2xdnLLVCgAAAAAAAAAAB4AAAAAAAD6xGalkXHB"
        "ZsyrBo/XHZOX38770fpUkbi6RiLhwg0/c5RiLg=="
    ),
    (1 << 20) + 7: (
        "gASVlQAAAAAAAACMD3Jlc3VtYWJsZXNoYTI1NpSMBnNoYTI1NpSTlCmBlENwJLXW551NPSe5tWX18TvwO+HMr3U8"
        "GJ8V9eeigPbXOYd2JsdR5Ka/URGJVL3+Oc0GRc+9fHRFe22uoqcYYAcHQQcAAAAAAAAAAACAAAAAAABKBLpwP51j"
        "CqM0wqo07mQlngj0NARoYGDjX2/ceKbDp5RiLg=="
    ),
}
# The same state as GOLDEN[1000], pickled with protocol 5 (Python 3.14's default).
GOLDEN_1000_PROTOCOL_5 = (
    "gAWVlQAAAAAAAACMD3Jlc3VtYWJsZXNoYTI1NpSMBnNoYTI1NpSTlCmBlENwSKl+QhVG+NTK4c+IxRpFmowQqIRC"
    "7tY2Q90mPO+IDBwWZKbg6hLSNARS9aNaZ0PEISlG9/Mt7Sin2f2xdnLLVCgAAAAAAAAAAB4AAAAAAAD6xGalkXHB"
    "ZsyrBo/XHZOX38770fpUkbi6RiLhwg0/c5RiLg=="
)
OFFSET_DATALEN, OFFSET_BITLEN = 45 + 64, 45 + 72  # inside the pickle: struct fields


def golden(cut: int) -> bytes:
    return base64.b64decode(GOLDEN[cut])


def without_stale(state: bytes) -> bytes:
    """A Quay pickle minus the buffer bytes past datalen, which no reader looks at."""
    (datalen,) = struct.unpack_from("<I", state, OFFSET_DATALEN)
    return state[: 45 + datalen] + state[45 + 64 :]


@pytest.fixture(autouse=True)
def fresh_self_test() -> Iterator[None]:
    """Every test starts and ends with the real engine choice (fallback tests change it)."""
    self_test(force=True)
    yield
    self_test(force=True)


@pytest.fixture
def openssl() -> None:
    if not resumable_available():
        unavailable(f"resumable SHA-256 ({self_test().reason})")


# -- hashing -------------------------------------------------------------------------------


@pytest.mark.usefixtures("openssl")
def test_known_vectors_and_hashlib_api() -> None:
    assert ResumableSHA256().hexdigest() == hashlib.sha256().hexdigest()
    assert ResumableSHA256(b"abc").hexdigest() == hashlib.sha256(b"abc").hexdigest()
    hasher = ResumableSHA256()
    for _ in range(1000):
        hasher.update(b"a" * 1000)
    assert hasher.hexdigest() == (
        "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"
    )
    assert (hasher.name, hasher.digest_size, hasher.block_size) == ("sha256", 32, 64)
    assert hasher.resumable
    assert hasher.bytes_hashed == 1_000_000


buffers = st.sampled_from([bytes, bytearray, memoryview, lambda b: memoryview(b"__" + b)[2:]])


@given(
    data=st.binary(max_size=3000),
    cuts=st.lists(st.integers(0, 3000), max_size=12),
    resume_at=st.sets(st.integers(0, 12)),
    kinds=st.lists(buffers, min_size=13, max_size=13),
)
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_random_chunkings_and_resumes_equal_hashlib(
    data: bytes, cuts: list[int], resume_at: set[int], kinds: list[Any]
) -> None:
    if not resumable_available():
        unavailable("resumable SHA-256")
    bounds = [0, *sorted(min(c, len(data)) for c in cuts), len(data)]
    hasher = ResumableSHA256()
    for index, (start, end) in enumerate(itertools.pairwise(bounds)):
        if index in resume_at:
            hasher.digest()  # must not disturb the running state
            hasher = ResumableSHA256.from_state(hasher.export_state())
        hasher.update(kinds[index](data[start:end]))
        assert hasher.bytes_hashed == end
    assert hasher.digest() == hashlib.sha256(data).digest()


@pytest.mark.usefixtures("openssl")
def test_copy_and_digest_leave_the_original_running() -> None:
    hasher = ResumableSHA256(MESSAGE[:100])
    clone = hasher.copy()
    assert hasher.digest() == hasher.digest() == hashlib.sha256(MESSAGE[:100]).digest()
    clone.update(MESSAGE[100:200])
    hasher.update(MESSAGE[100:150])
    assert clone.hexdigest() == hashlib.sha256(MESSAGE[:200]).hexdigest()
    assert hasher.hexdigest() == hashlib.sha256(MESSAGE[:150]).hexdigest()


@pytest.mark.usefixtures("openssl")
def test_any_buffer_is_hashed_without_changing_it() -> None:
    data = bytearray(MESSAGE[:5000])
    hasher = ResumableSHA256()
    hasher.update(memoryview(data)[:1000])
    hasher.update(memoryview(bytes(data))[1000:3000])  # read-only slice
    hasher.update(memoryview(data).cast("I")[750:1000])  # 4-byte items: counted in bytes
    hasher.update(memoryview(data[4000:]))
    assert hasher.digest() == hashlib.sha256(data).digest()
    strided = memoryview(MESSAGE[:100])[::2]  # not contiguous: copied
    assert ResumableSHA256(strided).digest() == hashlib.sha256(MESSAGE[:100:2]).digest()
    with pytest.raises(TypeError):
        ResumableSHA256().update("text")  # type: ignore[arg-type]


# -- Quay's format ---------------------------------------------------------------------------


@pytest.mark.usefixtures("openssl")
@pytest.mark.parametrize("cut", sorted(GOLDEN))
def test_resumes_quays_golden_states(cut: int) -> None:
    hasher = ResumableSHA256.from_state_text(GOLDEN[cut])
    assert hasher.bytes_hashed == cut
    hasher.update(MESSAGE[cut:])
    assert hasher.hexdigest() == MESSAGE_SHA256
    assert ResumableSHA256.from_state(golden(cut)).bytes_hashed == cut


@pytest.mark.usefixtures("openssl")
@pytest.mark.parametrize("cut", sorted(GOLDEN))
def test_exports_quays_bytes(cut: int) -> None:
    exported = ResumableSHA256(MESSAGE[:cut]).export_state()
    assert len(exported) == 160
    if cut < 64:  # Quay's buffer holds no stale bytes yet: identical
        assert exported == golden(cut)
        assert ResumableSHA256(MESSAGE[:cut]).export_state_text() == GOLDEN[cut]
    else:  # Wharf zeroes the stale bytes past datalen; everything else is identical
        assert without_stale(exported) == without_stale(golden(cut))
        assert exported[45 + cut % 64 : 45 + 64] == bytes(64 - cut % 64)


@pytest.mark.usefixtures("openssl")
def test_protocol_5_is_read_and_protocol_4_written() -> None:
    hasher = ResumableSHA256.from_state_text(GOLDEN_1000_PROTOCOL_5)
    assert hasher.export_state_text()[:3] == "gAS"
    hasher.update(MESSAGE[1000:])
    assert hasher.hexdigest() == MESSAGE_SHA256


def test_parsing_never_unpickles(monkeypatch: pytest.MonkeyPatch) -> None:
    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("pickle machinery used")

    for name in ("loads", "load", "Unpickler", "_loads", "_Unpickler"):
        monkeypatch.setattr(pickle, name, forbidden)
    for cut in GOLDEN:
        assert parse_quay_state(golden(cut)).length == cut


def replace(state: bytes, offset: int, new: bytes) -> bytes:
    return state[:offset] + new + state[offset + len(new) :]


def pack_at(offset: int, fmt: str, value: int) -> bytes:
    return replace(golden(65), offset, struct.pack(fmt, value))


G = golden(65)
REFUSALS = {
    "empty": (b"", "truncated"),
    "truncated by one byte": (G[:-1], "truncated"),
    "truncated in the struct": (G[:100], "truncated"),
    "one byte too many": (G + b".", "oversized"),
    "two states": (G + G, "oversized"),
    "protocol 3": (replace(G, 1, b"\x03"), "unsupported-protocol"),
    "pickle protocol 2 dump": (bytes.fromhex("80026372657375") + G[7:], "unsupported-protocol"),
    "not a pickle": (b"{" + G[1:], "unexpected-opcode"),
    "frame length": (replace(G, 3, b"\x96"), "bad-frame"),
    "GLOBAL instead of STACK_GLOBAL": (replace(G, 38, b"c"), "unexpected-opcode"),
    "REDUCE instead of NEWOBJ": (replace(G, 41, b"R"), "unexpected-opcode"),
    "REDUCE instead of BUILD": (replace(G, 158, b"R"), "unexpected-opcode"),
    "missing STOP": (replace(G, 159, b"\x94"), "unexpected-opcode"),
    "BINUNICODE module": (replace(G, 11, b"X"), "unexpected-opcode"),
    "other module, same length": (replace(G, 13, b"subprocess.run("), "wrong-class"),
    "other class": (replace(G, 31, b"system"), "wrong-class"),
    "payload of 111 bytes": (replace(G, 44, b"\x6f"), "bad-payload-length"),
    "datalen negative": (pack_at(OFFSET_DATALEN, "<I", 0xFFFFFFFF), "negative-counter"),
    "bitlen negative": (pack_at(OFFSET_BITLEN, "<Q", 1 << 63), "negative-counter"),
    "datalen 64": (pack_at(OFFSET_DATALEN, "<I", 64), "datalen-out-of-range"),
    "bitlen inside a block": (pack_at(OFFSET_BITLEN, "<Q", 520), "bitlen-misaligned"),
}


@pytest.mark.parametrize(("state", "reason"), REFUSALS.values(), ids=REFUSALS.keys())
def test_strict_parser_refuses(state: bytes, reason: str) -> None:
    with pytest.raises(InvalidHashState) as caught:
        parse_quay_state(state)
    assert caught.value.reason == reason
    with pytest.raises(InvalidHashState, match=reason):
        ResumableSHA256.from_state(state)


def test_strict_parser_refuses_the_old_rehash_pickles_by_class() -> None:
    # What older Quay releases stored: another module and class of other lengths.
    body = b"\x8c\x06rehash\x94\x8c\x06sha256\x94\x93\x94)\x81\x94"
    state = b"\x80\x04\x95" + struct.pack("<Q", 149) + body + b"C" * (149 - len(body))
    with pytest.raises(InvalidHashState, match=re.escape("'rehash.sha256'")) as caught:
        parse_quay_state(state)
    assert caught.value.reason == "wrong-class"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("not base64!", "not-base64"),
        (GOLDEN[1][:-4], "truncated"),
        (GOLDEN[1] + "AAAA", "oversized"),
        ("é" * 10, "not-base64"),
        (GOLDEN[1][:-1], "not-base64"),
    ],
)
def test_text_refusals(text: str, reason: str) -> None:
    with pytest.raises(InvalidHashState) as caught:
        parse_quay_state_text(text)
    assert caught.value.reason == reason


def test_state_must_be_bytes() -> None:
    with pytest.raises(TypeError):
        parse_quay_state(GOLDEN[0])  # type: ignore[arg-type]


@given(st.integers(0, 159), st.integers(1, 255))
@settings(max_examples=500)
def test_any_altered_byte_parses_or_is_refused_precisely(offset: int, xor: int) -> None:
    state = bytearray(G)
    state[offset] ^= xor
    try:
        parse_quay_state(bytes(state))
    except InvalidHashState:
        return
    # Only struct bytes (state words, buffer, padding) may change, or protocol 4 become 5.
    assert 45 <= offset < 45 + 112 or (offset, state[offset]) == (1, 5)


# -- fallback mode ---------------------------------------------------------------------------


def _fail_load() -> _openssl.LibCrypto:
    raise _openssl.LibCryptoUnavailable("simulated: libcrypto.so.3: cannot open shared object")


def check_fallback() -> None:
    assert not resumable_available()
    hasher = ResumableSHA256(MESSAGE[:1000])
    assert not hasher.resumable
    hasher.update(memoryview(MESSAGE)[1000:])
    assert hasher.bytes_hashed == len(MESSAGE)
    strided = memoryview(MESSAGE[:100])[::2]
    assert ResumableSHA256(strided).digest() == hashlib.sha256(MESSAGE[:100:2]).digest()
    assert hasher.copy().hexdigest() == hasher.hexdigest() == MESSAGE_SHA256
    with pytest.raises(HashStateUnavailable):
        hasher.export_state()
    with pytest.raises(HashStateUnavailable):
        hasher.export_state_text()
    with pytest.raises(HashStateUnavailable):
        ResumableSHA256.from_state_text(GOLDEN[65])
    with pytest.raises(InvalidHashState):  # still validated first
        ResumableSHA256.from_state(G[:10])


def test_fallback_without_libcrypto(monkeypatch: pytest.MonkeyPatch) -> None:
    before = ResumableSHA256(b"abc")
    monkeypatch.setattr(_openssl.LibCrypto, "load", staticmethod(_fail_load))
    result = self_test(force=True)
    assert not result.available
    assert result.reason is not None
    assert "simulated" in result.reason
    check_fallback()
    assert before.hexdigest() == hashlib.sha256(b"abc").hexdigest()  # keeps its engine


def test_fallback_when_symbols_are_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    libc = ctypes.util.find_library("c")
    if libc is None:
        pytest.skip("no libc to stand in for a libcrypto without SHA256_*")
    monkeypatch.setattr(_openssl, "candidate_names", lambda: [libc])
    result = self_test(force=True)
    assert result.reason is not None
    assert "SHA256_Init" in result.reason
    check_fallback()


def test_fallback_when_the_self_test_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(selftest, "QUAY_INITIAL_PICKLE", b"\x80\x04 something else")
    result = self_test(force=True)
    assert result.reason == "self-test failed: the fresh state differs from Quay's"
    check_fallback()


def test_fallback_on_request(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WHARF_DIGEST_RESUMABLE", "off")
    assert self_test(force=True).reason == "disabled by WHARF_DIGEST_RESUMABLE"
    check_fallback()


def test_self_test_passes_here(openssl: None) -> None:
    result = self_test()
    assert result.available
    assert result.library


# -- streams ---------------------------------------------------------------------------------


async def stream_of(chunks: list[bytes]) -> AsyncIterator[bytes]:
    for chunk in chunks:
        await asyncio.sleep(0)
        yield chunk


async def refilled_buffer(data: bytes, size: int) -> AsyncIterator[bytearray]:
    """Like a readinto loop: one bytearray, overwritten for every chunk."""
    buffer = bytearray(size)
    for start in range(0, len(data), size):
        piece = data[start : start + size]
        buffer[: len(piece)] = piece
        del buffer[len(piece) :]
        yield buffer
        buffer[:] = b"\xee" * len(buffer)  # the source scribbles as soon as it resumes


SIZES = [0, 1, 100, 4096, 4095, 10_000, 70_000, 1, 300_000, 65_536, 5]


@pytest.mark.parametrize("threshold", [0, 4096, 1 << 40])
async def test_passthrough_yields_the_same_chunks_and_hashes_them(threshold: int) -> None:
    offsets = [sum(SIZES[:i]) for i in range(len(SIZES) + 1)]
    chunks = [MESSAGE[a:b] for a, b in itertools.pairwise(offsets)]
    hasher = ResumableSHA256()
    digester = StreamingDigester(hasher, offload_threshold=threshold)
    seen = [chunk async for chunk in digester.passthrough(stream_of(chunks))]
    assert all(a is b for a, b in zip(seen, chunks, strict=True))
    assert digester.bytes_hashed == offsets[-1]
    assert hasher.digest() == hashlib.sha256(MESSAGE[: offsets[-1]]).digest()


@pytest.mark.parametrize("threshold", [0, 1 << 40])
async def test_passthrough_with_a_reused_buffer(threshold: int) -> None:
    hasher = ResumableSHA256()
    digester = StreamingDigester(hasher, offload_threshold=threshold)
    copies = [bytes(c) async for c in digester.passthrough(refilled_buffer(MESSAGE, 100_000))]
    assert b"".join(copies) == MESSAGE
    assert hasher.hexdigest() == MESSAGE_SHA256


@pytest.mark.usefixtures("openssl")
async def test_upload_resumed_across_requests_through_quay_text() -> None:
    first = ResumableSHA256()
    await StreamingDigester(first, offload_threshold=0).consume(stream_of([MESSAGE[:300_001]]))
    stored = first.export_state_text()  # what the PATCH writes into blobupload.sha_state
    second = ResumableSHA256.from_state_text(stored)  # the next PATCH, maybe another process
    await StreamingDigester(second).consume(
        stream_of([MESSAGE[300_001:700_000], MESSAGE[700_000:]])
    )
    assert second.hexdigest() == MESSAGE_SHA256


async def test_source_errors_propagate_and_no_worker_outlives_the_stream() -> None:
    async def broken() -> AsyncIterator[bytes]:
        yield MESSAGE[:500_000]
        raise ConnectionResetError("client went away")

    digester = StreamingDigester(ResumableSHA256(), offload_threshold=0)
    with pytest.raises(ConnectionResetError):
        async for _ in digester.passthrough(broken()):
            pass
    assert digester.bytes_hashed == 500_000


async def test_consumer_leaving_early_waits_for_the_worker() -> None:
    digester = StreamingDigester(ResumableSHA256(), offload_threshold=0)
    stream = digester.passthrough(stream_of([MESSAGE[:600_000], MESSAGE[600_000:]]))
    assert await anext(stream) is not None
    await stream.aclose()  # type: ignore[attr-defined]
    assert digester.bytes_hashed == 600_000  # the in-flight chunk finished before aclose did


async def test_offloading_uses_the_given_executor() -> None:
    with ThreadPoolExecutor(1, thread_name_prefix="digest-test") as pool:
        submitted: list[object] = []
        original = pool.submit

        def counting(*args: Any, **kwargs: Any) -> Any:
            submitted.append(args[0])
            return original(*args, **kwargs)

        pool.submit = counting  # type: ignore[method-assign]
        digester = StreamingDigester(ResumableSHA256(), offload_threshold=1000, executor=pool)
        await digester.consume(stream_of([b"x" * 999, b"y" * 1000, b"z"]))
    assert len(submitted) == 1


@pytest.mark.parametrize("algorithm", ["sha256", "sha512"])
async def test_hashlib_digest_of_stream(algorithm: str) -> None:
    chunks = [MESSAGE[:1], MESSAGE[1:400_000], MESSAGE[400_000:]]
    expected = hashlib.new(algorithm, MESSAGE).hexdigest()
    assert await hashlib_digest_of_stream(algorithm, stream_of(chunks)) == expected
    digest = await hashlib_digest_of_stream(algorithm, refilled_buffer(MESSAGE, 300_000))
    assert digest == expected


async def test_hashlib_digest_of_stream_refuses_other_algorithms() -> None:
    with pytest.raises(ValueError, match="md5"):
        await hashlib_digest_of_stream("md5", stream_of([b"x"]))
