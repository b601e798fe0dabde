"""Digests at the API level, strictly per the OCI grammar (image-spec descriptor.md, "Digests").

`wharf.storage.parse_digest` is Quay's lenient storage parser (any algorithm, any case): it
maps digests already stored to keys. This one decides what a client may send: the OCI grammar,
and only the algorithms Wharf can verify.
"""

from __future__ import annotations

import hashlib
import re
from typing import NamedTuple

from wharf.registry.manifests.errors import DigestInvalid, DigestUnsupported

SUPPORTED_ALGORITHMS = ("sha256", "sha512")

# digest ::= algorithm ":" encoded
# algorithm ::= algorithm-component (algorithm-separator algorithm-component)*
# algorithm-component ::= [a-z0-9]+ ; algorithm-separator ::= [+._-] ; encoded ::= [a-zA-Z0-9=_-]+
_GRAMMAR = re.compile(r"([a-z0-9]+(?:[+._-][a-z0-9]+)*):([a-zA-Z0-9=_-]+)")
# "When the algorithm identifier is sha256, the encoded portion MUST match /[a-f0-9]{64}/";
# sha512: /[a-f0-9]{128}/. "Note that [A-F] MUST NOT be used here."
_ENCODED = {"sha256": re.compile(r"[a-f0-9]{64}"), "sha512": re.compile(r"[a-f0-9]{128}")}


class ParsedDigest(NamedTuple):
    """A digest split into its algorithm and its (lowercase hex) encoded part."""

    algorithm: str
    hex: str

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hex}"


def parse_digest(value: str) -> ParsedDigest:
    """Split `algorithm:hex`, refusing anything the OCI grammar or the algorithm forbids.

    `DigestInvalid`: not the grammar, or sha256/sha512 with an encoded part that is not 64/128
    lowercase hex characters. `DigestUnsupported`: well formed, but another algorithm
    (`sha384`, `multihash+base58`, ...), which Wharf cannot verify.
    """
    if not isinstance(value, str):
        raise DigestInvalid(f"a digest must be a string, not {type(value).__name__}")
    match = _GRAMMAR.fullmatch(value)
    if match is None:
        raise DigestInvalid(
            f"{_show(value)} is not a digest: expected algorithm:encoded, as in sha256:<64 hex>"
        )
    algorithm, encoded = match.group(1), match.group(2)
    pattern = _ENCODED.get(algorithm)
    if pattern is None:
        raise DigestUnsupported(
            f"digest algorithm {algorithm!r} is not supported (supported: sha256, sha512)"
        )
    if pattern.fullmatch(encoded) is None:
        length = 64 if algorithm == "sha256" else 128
        raise DigestInvalid(
            f"{_show(value)} is not a valid {algorithm} digest: "
            f"expected {length} lowercase hexadecimal characters"
        )
    return ParsedDigest(algorithm, encoded)


def digest_of(raw: bytes, algorithm: str = "sha256") -> str:
    """The digest of `raw` with `algorithm` (sha256 or sha512), as `algorithm:hex`."""
    if algorithm not in SUPPORTED_ALGORITHMS:
        raise DigestUnsupported(
            f"digest algorithm {algorithm!r} is not supported (supported: sha256, sha512)"
        )
    return f"{algorithm}:{hashlib.new(algorithm, raw).hexdigest()}"


def _show(value: str, limit: int = 80) -> str:
    return repr(value if len(value) <= limit else value[:limit] + "...")
